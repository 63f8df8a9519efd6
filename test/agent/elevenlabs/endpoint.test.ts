import { createServer, type Server } from 'node:http';
import { describe, expect, it, onTestFinished } from 'vitest';
import { BridgeError, isBridgeError } from '../../../src/errors.js';
import { getSignedUrl, publicConversationUrl, resolveOrigins } from '../../../src/agent/elevenlabs/endpoint.js';
import { FakeElevenLabs } from '../../support/fake-elevenlabs.js';

describe('resolveOrigins', () => {
  it.each([
    ['default', 'https://api.elevenlabs.io', 'wss://api.elevenlabs.io'],
    ['us', 'https://api.us.elevenlabs.io', 'wss://api.us.elevenlabs.io'],
    ['eu', 'https://api.eu.residency.elevenlabs.io', 'wss://api.eu.residency.elevenlabs.io'],
    ['in', 'https://api.in.residency.elevenlabs.io', 'wss://api.in.residency.elevenlabs.io'],
  ] as const)('residency %s', (residency, httpOrigin, wsOrigin) => {
    expect(resolveOrigins({ residency, baseUrl: undefined })).toEqual({ httpOrigin, wsOrigin });
  });

  it('baseUrl overrides residency; ws follows the scheme', () => {
    expect(resolveOrigins({ residency: 'eu', baseUrl: 'http://127.0.0.1:8080' })).toEqual({
      httpOrigin: 'http://127.0.0.1:8080',
      wsOrigin: 'ws://127.0.0.1:8080',
    });
    expect(resolveOrigins({ residency: 'default', baseUrl: 'https://proxy.example.com/el/' })).toEqual({
      httpOrigin: 'https://proxy.example.com/el',
      wsOrigin: 'wss://proxy.example.com/el',
    });
  });

  it('rejects a non-http baseUrl', () => {
    expect(() => resolveOrigins({ residency: 'default', baseUrl: 'ftp://x' })).toThrow(BridgeError);
  });
});

describe('publicConversationUrl', () => {
  it('adds agent_id and optional environment', () => {
    expect(publicConversationUrl('wss://api.elevenlabs.io', 'agent_1')).toBe('wss://api.elevenlabs.io/v1/convai/conversation?agent_id=agent_1');
    expect(publicConversationUrl('ws://127.0.0.1:1', 'a b', 'staging')).toBe(
      'ws://127.0.0.1:1/v1/convai/conversation?agent_id=a+b&environment=staging',
    );
  });
});

async function startHttp(handler: Parameters<typeof createServer>[1]): Promise<string> {
  const server: Server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  onTestFinished(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const address = server.address();
  return `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
}

describe('getSignedUrl against the fake', () => {
  it('fetches the signed URL with xi-api-key, agent_id and environment', async () => {
    const fake = await FakeElevenLabs.start({ agents: [{ agentId: 'agent_p', private: true }] });
    onTestFinished(() => fake.close());
    const url = await getSignedUrl({
      httpOrigin: fake.baseUrl,
      agentId: 'agent_p',
      environment: 'staging',
      apiKey: fake.apiKey,
      timeoutMs: 2_000,
    });
    expect(url).toMatch(new RegExp(`^ws://127\\.0\\.0\\.1:${fake.port}/v1/convai/conversation\\?agent_id=agent_p&environment=staging&conversation_signature=`));
    expect(fake.restRequests).toEqual([
      {
        method: 'GET',
        path: '/v1/convai/conversation/get-signed-url',
        query: { agent_id: 'agent_p', environment: 'staging' },
        apiKeyValid: true,
        status: 200,
      },
    ]);
  });

  it('maps 401 to AGENT_AUTH_FAILED without the key in the message', async () => {
    const fake = await FakeElevenLabs.start({ agents: [{ agentId: 'agent_p', private: true }] });
    onTestFinished(() => fake.close());
    const badKey = 'sk_wrong_key_1234567890';
    const err = await getSignedUrl({ httpOrigin: fake.baseUrl, agentId: 'agent_p', apiKey: badKey, timeoutMs: 2_000 }).catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_AUTH_FAILED')).toBe(true);
    expect((err as Error).message).toContain('HTTP 401');
    expect((err as Error).message).toContain('invalid_api_key');
    expect((err as Error).message).not.toContain(badKey);
  });

  it('maps 403 to AGENT_AUTH_FAILED and 500 to AGENT_CONNECT_FAILED with the status', async () => {
    const fake = await FakeElevenLabs.start({ agents: [{ agentId: 'a', private: true }] });
    onTestFinished(() => fake.close());
    fake.failSignedUrl(403);
    const e403 = await getSignedUrl({ httpOrigin: fake.baseUrl, agentId: 'a', apiKey: fake.apiKey, timeoutMs: 2_000 }).catch((e: unknown) => e);
    expect(isBridgeError(e403, 'AGENT_AUTH_FAILED')).toBe(true);
    fake.failSignedUrl(500);
    const e500 = await getSignedUrl({ httpOrigin: fake.baseUrl, agentId: 'a', apiKey: fake.apiKey, timeoutMs: 2_000 }).catch((e: unknown) => e);
    expect(isBridgeError(e500, 'AGENT_CONNECT_FAILED')).toBe(true);
    expect((e500 as Error).message).toContain('HTTP 500');
  });

  it('times out with AGENT_CONNECT_TIMEOUT', async () => {
    const fake = await FakeElevenLabs.start({ agents: [{ agentId: 'a', private: true }] });
    onTestFinished(() => fake.close());
    fake.failSignedUrl('hang');
    const err = await getSignedUrl({ httpOrigin: fake.baseUrl, agentId: 'a', apiKey: fake.apiKey, timeoutMs: 100 }).catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_CONNECT_TIMEOUT')).toBe(true);
  });

  it('scrubs the key from an error body that echoes it', async () => {
    const key = 'sk_echoed_secret_abcdef';
    const origin = await startHttp((req, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ detail: `bad key ${String(req.headers['xi-api-key'])}` }));
    });
    const err = await getSignedUrl({ httpOrigin: origin, agentId: 'a', apiKey: key, timeoutMs: 2_000 }).catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_CONNECT_FAILED')).toBe(true);
    expect((err as Error).message).toContain('HTTP 400');
    expect((err as Error).message).not.toContain(key);
  });

  it('rejects a response without a ws(s) signed_url as AGENT_PROTOCOL', async () => {
    const origin = await startHttp((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"signed_url":"https://not-a-websocket"}');
    });
    const err = await getSignedUrl({ httpOrigin: origin, agentId: 'a', apiKey: 'k', timeoutMs: 2_000 }).catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_PROTOCOL')).toBe(true);
  });

  it('maps a network failure to AGENT_CONNECT_FAILED with its cause', async () => {
    const origin = await startHttp(() => {});
    const failingFetch: typeof fetch = () => Promise.reject(new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:9') }));
    const err = await getSignedUrl({ httpOrigin: origin, agentId: 'a', apiKey: 'k', timeoutMs: 2_000, fetch: failingFetch }).catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_CONNECT_FAILED')).toBe(true);
    expect((err as Error).message).toContain('ECONNREFUSED');
  });

  it('rejects when the caller aborts', async () => {
    const fake = await FakeElevenLabs.start({ agents: [{ agentId: 'a', private: true }] });
    onTestFinished(() => fake.close());
    fake.failSignedUrl('hang');
    const controller = new AbortController();
    const pending = getSignedUrl({ httpOrigin: fake.baseUrl, agentId: 'a', apiKey: fake.apiKey, timeoutMs: 5_000, signal: controller.signal });
    setTimeout(() => controller.abort(new Error('caller hung up')), 20);
    const err = await pending.catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_CONNECT_FAILED')).toBe(true);
    expect((err as Error).message).toContain('aborted');
  });
});
