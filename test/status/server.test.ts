import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket } from 'ws';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { startServer } from '../../src/main.js';
import { simulateCall } from '../../src/simulate/simulate.js';
import { sine } from '../support/signal.js';

const TOKEN = 'status-token-for-tests';

async function start() {
  const config = parseConfig('agi: { port: 0 }\naudiosocket: { port: 0 }\nstatus: { port: 0 }\nagents:\n  echo: { provider: echo }\n', 't.yaml', {
    AI_CALL_STATUS_TOKEN: TOKEN,
  });
  const server = await startServer(config, { logger: silentLogger() });
  onTestFinished(() => server.close());
  const base = `http://127.0.0.1:${server.status!.port}`;
  return { server, base };
}

describe('status endpoint', () => {
  it('serves /healthz, /calls and /metrics without exposing the token', async () => {
    const { base } = await start();
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    const body = (await health.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ status: 'ok', calls: 0, ami: 'disabled' });
    expect(JSON.stringify(body)).not.toContain(TOKEN);
    expect(await (await fetch(`${base}/calls`)).json()).toEqual({ calls: [] });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toContain('aicall_calls_live');
    expect(metrics).toContain('aicall_nodejs_eventloop_lag');
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });

  it('streams call events on /status and lists the live call with its state', async () => {
    const { server, base } = await start();
    const ws = new WebSocket(`${base.replace('http', 'ws')}/status`);
    const messages: Array<Record<string, unknown>> = [];
    ws.on('message', (data) => messages.push(JSON.parse(String(data)) as Record<string, unknown>));
    await new Promise((resolve) => ws.once('open', resolve));
    onTestFinished(() => ws.close());

    let listed: unknown;
    const call = simulateCall({ agiHost: '127.0.0.1', agiPort: server.agi.port, agent: 'echo', mode: 'assign', audio: sine(1000, 400, 8000), sampleRateHz: 8000, hangupAfterMs: 600 });
    setTimeout(() => {
      void fetch(`${base}/calls`).then(async (r) => (listed = await r.json()));
    }, 300);
    const summary = await call;
    await new Promise((resolve) => setTimeout(resolve, 50));

    expect(messages[0]).toMatchObject({ type: 'hello', calls: [] });
    const types = messages.filter((m) => m['type'] === 'event').map((m) => (m['event'] as { type: string }).type);
    expect(types).toEqual(expect.arrayContaining(['call.started', 'agent.ready', 'media.connected', 'call.ended']));
    const ended = messages.map((m) => m['event'] as { type: string; outcome?: { result: string } } | undefined).find((e) => e?.type === 'call.ended');
    expect(ended?.outcome?.result).toBe('CALLER_HANGUP');
    expect(listed).toMatchObject({ calls: [{ callId: summary.uuid, agent: 'echo', state: 'live', source: 'agi' }] });
  });

  it('hangs up a live call with DELETE /calls/:id only with the bearer token', async () => {
    const { server, base } = await start();
    const call = simulateCall({ agiHost: '127.0.0.1', agiPort: server.agi.port, agent: 'echo', mode: 'assign', audio: Buffer.alloc(0), sampleRateHz: 8000, hangupAfterMs: 5000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const [live] = server.registry.list();
    expect(live).toBeDefined();
    const refused = await fetch(`${base}/calls/${live!.callId}`, { method: 'DELETE' });
    expect(refused.status).toBe(401);
    const wrong = await fetch(`${base}/calls/${live!.callId}`, { method: 'DELETE', headers: { authorization: 'Bearer wrong-token-xxxxx' } });
    expect(wrong.status).toBe(401);
    const ok = await fetch(`${base}/calls/${live!.callId}`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(200);
    const summary = await call;
    expect(summary.media?.endedBy).toBe('server');
    expect(summary.media?.hangupMessageReceived).toBe(true);
    expect(summary.resultVariables['AI_RESULT']).toBe('COMPLETED');
  });
});
