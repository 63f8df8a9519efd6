import { describe, expect, it, onTestFinished } from 'vitest';
import { isBridgeError } from '../../../src/errors.js';
import { ManualClock } from '../../support/manual-clock.js';
import { agentConfig, CALL, captureLogger, makeProvider, recordHandlers, startFake } from './helpers.js';

const never = (): AbortSignal => new AbortController().signal;

describe('ElevenLabsProvider: connecting', () => {
  it('public agent: opens the conversation URL, sends the initiation first, reads formats and conversation id', async () => {
    const fake = await startFake([{ agentId: 'agent_pub', userInputAudioFormat: 'ulaw_8000', agentOutputAudioFormat: 'pcm_16000' }]);
    const rec = recordHandlers();
    const session = await makeProvider(fake, agentConfig()).start(CALL, rec.handlers, never());
    onTestFinishedClose(session);
    const conversation = fake.conversations[0]!;
    expect(conversation.url.pathname).toBe('/v1/convai/conversation');
    expect(Object.fromEntries(conversation.url.searchParams)).toEqual({ agent_id: 'agent_pub' });
    expect(conversation.received[0]!.json['type']).toBe('conversation_initiation_client_data');
    expect(session.formats).toEqual({ input: { encoding: 'ulaw', sampleRateHz: 8_000 }, output: { encoding: 'pcm', sampleRateHz: 16_000 } });
    expect(session.conversationId).toBe(conversation.conversationId);
    expect(fake.restRequests).toEqual([]);
    // No permessage-deflate was negotiated (protocols.md §4.1).
    expect(conversation.headers['sec-websocket-extensions']).toBeUndefined();
  });

  it('passes environment on the public URL', async () => {
    const fake = await startFake([{ agentId: 'agent_pub' }]);
    const session = await makeProvider(fake, agentConfig({ environment: 'staging' })).start(CALL, recordHandlers().handlers, never());
    onTestFinishedClose(session);
    expect(fake.conversations[0]!.url.searchParams.get('environment')).toBe('staging');
  });

  it('private agent: fetches a signed URL with the key and connects with its signature', async () => {
    const fake = await startFake([{ agentId: 'agent_priv', private: true }]);
    const session = await makeProvider(fake, agentConfig({ agentId: 'agent_priv', private: true, environment: 'prod' })).start(
      CALL,
      recordHandlers().handlers,
      never(),
    );
    onTestFinishedClose(session);
    expect(fake.restRequests).toEqual([
      {
        method: 'GET',
        path: '/v1/convai/conversation/get-signed-url',
        query: { agent_id: 'agent_priv', environment: 'prod' },
        apiKeyValid: true,
        status: 200,
      },
    ]);
    const url = fake.conversations[0]!.url;
    expect(url.searchParams.get('conversation_signature')).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    expect(url.searchParams.get('agent_id')).toBe('agent_priv');
  });

  it('private agent with a bad key: AGENT_AUTH_FAILED, no WebSocket', async () => {
    const fake = await startFake([{ agentId: 'agent_priv', private: true }]);
    const err = await makeProvider(fake, agentConfig({ agentId: 'agent_priv', private: true }), { apiKey: 'sk_bad_key_999' })
      .start(CALL, recordHandlers().handlers, never())
      .catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_AUTH_FAILED')).toBe(true);
    expect((err as Error).message).toContain('HTTP 401');
    expect((err as Error).message).not.toContain('sk_bad_key_999');
    expect(fake.conversations).toHaveLength(0);
  });

  it('private agent without any key: AGENT_AUTH_FAILED before any request', async () => {
    const fake = await startFake([{ agentId: 'agent_priv', private: true }]);
    const err = await makeProvider(fake, agentConfig({ agentId: 'agent_priv', private: true }), { apiKey: undefined })
      .start(CALL, recordHandlers().handlers, never())
      .catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_AUTH_FAILED')).toBe(true);
    expect(fake.restRequests).toHaveLength(0);
  });

  it('an agent configured public but private on the platform: upgrade refused 403 → AGENT_AUTH_FAILED', async () => {
    const fake = await startFake([{ agentId: 'agent_priv', private: true }]);
    const err = await makeProvider(fake, agentConfig({ agentId: 'agent_priv', private: false }))
      .start(CALL, recordHandlers().handlers, never())
      .catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_AUTH_FAILED')).toBe(true);
    expect((err as Error).message).toContain('HTTP 403');
    expect(fake.refusedUpgrades).toEqual([{ path: '/v1/convai/conversation', status: 403 }]);
  });

  it('an unknown agent: upgrade refused 404 → AGENT_CONNECT_FAILED', async () => {
    const fake = await startFake([]);
    const err = await makeProvider(fake, agentConfig({ agentId: 'nope' }))
      .start(CALL, recordHandlers().handlers, never())
      .catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_CONNECT_FAILED')).toBe(true);
    expect((err as Error).message).toContain('HTTP 404');
  });

  it('nothing listening: AGENT_CONNECT_FAILED', async () => {
    const fake = await startFake([{ agentId: 'agent_pub' }]);
    const provider = makeProvider(fake, agentConfig());
    await fake.close();
    const err = await provider.start(CALL, recordHandlers().handlers, never()).catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_CONNECT_FAILED')).toBe(true);
    expect((err as Error).message).toContain('ECONNREFUSED');
  });

  it('sends the configured Origin header, which an allowlisted agent requires', async () => {
    const fake = await startFake([{ agentId: 'agent_pub', allowedOrigins: ['https://pbx.example.com'] }]);
    const session = await makeProvider(fake, agentConfig({ origin: 'https://pbx.example.com/some/path' })).start(
      CALL,
      recordHandlers().handlers,
      never(),
    );
    onTestFinishedClose(session);
    expect(fake.conversations[0]!.headers.origin).toBe('https://pbx.example.com');
    const err = await makeProvider(fake, agentConfig())
      .start(CALL, recordHandlers().handlers, never())
      .catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_AUTH_FAILED')).toBe(true);
  });
});

describe('ElevenLabsProvider: initiation', () => {
  it('sends only configured overrides and the rendered dynamic variables', async () => {
    const fake = await startFake([{ agentId: 'agent_pub', allowedOverrides: { firstMessage: true, language: true, prompt: true, voiceId: true } }]);
    const agent = agentConfig({
      overrides: { firstMessage: 'Hello {{callerName}}, calling about {{topic}}?', language: 'de' },
      dynamicVariables: { account: '{{vars.ACCOUNT}}', lang: '{{query.lang}}', first_arg: '{{arg1}}', tries: 2, vip: true, topic: 'billing' },
    });
    const session = await makeProvider(fake, agent).start(CALL, recordHandlers().handlers, never());
    onTestFinishedClose(session);
    const init = await fake.conversations[0]!.initiation;
    expect(init).toEqual({
      type: 'conversation_initiation_client_data',
      conversation_config_override: { agent: { first_message: 'Hello Alice Smith, calling about {{topic}}?', language: 'de' } },
      dynamic_variables: {
        caller_id: '+15551234567',
        caller_name: 'Alice Smith',
        called_number: '600',
        call_id: CALL.callId,
        asterisk_uniqueid: '1732400000.42',
        account: 'A-17',
        lang: 'en',
        first_arg: 'arg one',
        tries: 2,
        vip: true,
        topic: 'billing',
      },
    });
  });

  it('without overrides, sends no conversation_config_override at all', async () => {
    const fake = await startFake([{ agentId: 'agent_pub' }]);
    const session = await makeProvider(fake, agentConfig()).start(CALL, recordHandlers().handlers, never());
    onTestFinishedClose(session);
    const init = await fake.conversations[0]!.initiation;
    expect(Object.keys(init)).toEqual(['type', 'dynamic_variables']);
  });

  it('reports template values the call lacks as notices', async () => {
    const fake = await startFake([{ agentId: 'agent_pub' }]);
    const rec = recordHandlers();
    const session = await makeProvider(fake, agentConfig({ dynamicVariables: { x: '{{vars.MISSING}}' } })).start(CALL, rec.handlers, never());
    onTestFinishedClose(session);
    expect(rec.notices).toEqual([{ type: 'template', detail: "dynamicVariables.x: {{vars.MISSING}} has no value for this call, rendered as ''" }]);
    expect((await fake.conversations[0]!.initiation).dynamic_variables?.['x']).toBe('');
  });
});

describe('ElevenLabsProvider: start failures', () => {
  it('override not enabled on the agent: AGENT_OVERRIDE_REJECTED with error type, message and close 1008', async () => {
    const fake = await startFake([{ agentId: 'agent_pub' }]);
    const err = await makeProvider(fake, agentConfig({ overrides: { firstMessage: 'Hi' } }))
      .start(CALL, recordHandlers().handlers, never())
      .catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_OVERRIDE_REJECTED')).toBe(true);
    const message = (err as Error).message;
    expect(message).toContain('error_type=override_error');
    expect(message).toContain("Override for field 'first_message' is not allowed by config.");
    expect(message).toContain('close=1008');
    expect(message).toContain('close_reason="Invalid override configuration"');
  });

  it('missing dynamic variable: AGENT_MISSING_VARIABLE naming it', async () => {
    const fake = await startFake([{ agentId: 'agent_pub', firstMessage: 'Hi {{customer_name}}' }]);
    const err = await makeProvider(fake, agentConfig())
      .start(CALL, recordHandlers().handlers, never())
      .catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_MISSING_VARIABLE')).toBe(true);
    expect((err as Error).message).toContain('customer_name');
    expect((err as Error).message).toContain('close=1008');
  });

  it('supplying the variable makes the same agent start', async () => {
    const fake = await startFake([{ agentId: 'agent_pub', firstMessage: 'Hi {{customer_name}}' }]);
    const session = await makeProvider(fake, agentConfig({ dynamicVariables: { customer_name: '{{callerName}}' } })).start(
      CALL,
      recordHandlers().handlers,
      never(),
    );
    onTestFinishedClose(session);
  });

  it('flat quota error + close 1002: AGENT_QUOTA_EXCEEDED', async () => {
    const fake = await startFake([{ agentId: 'agent_pub', startFault: 'quota' }]);
    const err = await makeProvider(fake, agentConfig())
      .start(CALL, recordHandlers().handlers, never())
      .catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_QUOTA_EXCEEDED')).toBe(true);
    expect((err as Error).message).toContain('quota limit');
    expect((err as Error).message).toContain('close=1002');
  });

  it('crash 1011 before metadata: AGENT_CONNECT_FAILED with the error and close code', async () => {
    const fake = await startFake([{ agentId: 'agent_pub', startFault: 'crash' }]);
    const err = await makeProvider(fake, agentConfig())
      .start(CALL, recordHandlers().handlers, never())
      .catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_CONNECT_FAILED')).toBe(true);
    expect((err as Error).message).toContain('error_type=unknown_websocket_crash');
    expect((err as Error).message).toContain('close=1011');
  });

  it('TCP dropped before metadata: AGENT_CONNECT_FAILED with close 1006', async () => {
    const fake = await startFake([{ agentId: 'agent_pub', startFault: 'drop' }]);
    const err = await makeProvider(fake, agentConfig())
      .start(CALL, recordHandlers().handlers, never())
      .catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_CONNECT_FAILED')).toBe(true);
    expect((err as Error).message).toContain('close=1006');
  });

  it('no metadata within connectTimeoutMs: AGENT_CONNECT_TIMEOUT, socket closed 1000', async () => {
    const fake = await startFake([{ agentId: 'agent_pub', startFault: 'never_answer' }]);
    const started = Date.now();
    const err = await makeProvider(fake, agentConfig({}, { connectTimeoutMs: 150 }))
      .start(CALL, recordHandlers().handlers, never())
      .catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_CONNECT_TIMEOUT')).toBe(true);
    expect((err as Error).message).toContain('waiting for conversation_initiation_metadata');
    expect(Date.now() - started).toBeLessThan(1_500);
    const closed = await fake.conversations[0]!.closed;
    expect(closed.code).toBe(1000);
  });

  it('the connect deadline runs on the injected clock', async () => {
    const fake = await startFake([{ agentId: 'agent_pub', startFault: 'never_answer' }]);
    const clock = new ManualClock();
    const pending = makeProvider(fake, agentConfig({ connectTimeoutMs: 3_000 }), { clock })
      .start(CALL, recordHandlers().handlers, never())
      .catch((e: unknown) => e);
    const conversation = await fake.nextConversation();
    await conversation.initiation;
    clock.advance(2_999);
    await new Promise((r) => setTimeout(r, 20));
    clock.advance(1);
    expect(isBridgeError(await pending, 'AGENT_CONNECT_TIMEOUT')).toBe(true);
  });

  it('a hanging signed URL request also ends at the connect deadline', async () => {
    const fake = await startFake([{ agentId: 'agent_priv', private: true }]);
    fake.failSignedUrl('hang');
    const err = await makeProvider(fake, agentConfig({ agentId: 'agent_priv', private: true }, { connectTimeoutMs: 150 }))
      .start(CALL, recordHandlers().handlers, never())
      .catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_CONNECT_TIMEOUT')).toBe(true);
  });

  it('abort while waiting for metadata: rejects at once and closes the socket', async () => {
    const fake = await startFake([{ agentId: 'agent_pub', startFault: 'never_answer' }]);
    const controller = new AbortController();
    const pending = makeProvider(fake, agentConfig())
      .start(CALL, recordHandlers().handlers, controller.signal)
      .catch((e: unknown) => e);
    const conversation = await fake.nextConversation();
    await conversation.initiation;
    controller.abort(new Error('caller hung up'));
    const err = await pending;
    expect(isBridgeError(err, 'AGENT_CONNECT_FAILED')).toBe(true);
    expect((err as Error).message).toContain('caller hung up');
    expect((await conversation.closed).code).toBe(1000);
  });

  it('an AbortSignal.timeout maps to AGENT_CONNECT_TIMEOUT', async () => {
    const fake = await startFake([{ agentId: 'agent_pub', startFault: 'never_answer' }]);
    const err = await makeProvider(fake, agentConfig())
      .start(CALL, recordHandlers().handlers, AbortSignal.timeout(50))
      .catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_CONNECT_TIMEOUT')).toBe(true);
  });

  it('an already aborted signal rejects without connecting', async () => {
    const fake = await startFake([{ agentId: 'agent_pub' }]);
    const err = await makeProvider(fake, agentConfig())
      .start(CALL, recordHandlers().handlers, AbortSignal.abort(new Error('too late')))
      .catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_CONNECT_FAILED')).toBe(true);
    await new Promise((r) => setTimeout(r, 50));
    expect(fake.conversations).toHaveLength(0);
  });

  it('unsupported metadata format: AGENT_UNSUPPORTED_FORMAT, socket closed cleanly', async () => {
    const fake = await startFake([
      {
        agentId: 'agent_pub',
        manual: true,
        script: async (c) => {
          await c.initiation;
          c.sendMetadata({ rawInput: 'pcm_16000', rawOutput: 'opus_48000' });
        },
      },
    ]);
    const err = await makeProvider(fake, agentConfig())
      .start(CALL, recordHandlers().handlers, never())
      .catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_UNSUPPORTED_FORMAT')).toBe(true);
    expect((err as Error).message).toContain('agent_output_audio_format opus_48000');
    expect(await fake.conversations[0]!.closed).toEqual({ code: 1000, reason: 'ai-call: AGENT_UNSUPPORTED_FORMAT' });
  });

  it('a format the call layer cannot convert (isFormatSupported) is refused too', async () => {
    const fake = await startFake([{ agentId: 'agent_pub', agentOutputAudioFormat: 'pcm_22050' }]);
    const err = await makeProvider(fake, agentConfig(), { isFormatSupported: (f) => f.sampleRateHz % 8_000 === 0 })
      .start(CALL, recordHandlers().handlers, never())
      .catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_UNSUPPORTED_FORMAT')).toBe(true);
    expect((err as Error).message).toContain('pcm_22050');
  });

  it('no handler is called after start rejected', async () => {
    const fake = await startFake([{ agentId: 'agent_pub', startFault: 'never_answer' }]);
    const rec = recordHandlers();
    const err = await makeProvider(fake, agentConfig({}, { connectTimeoutMs: 100 }))
      .start(CALL, rec.handlers, never())
      .catch((e: unknown) => e);
    expect(isBridgeError(err, 'AGENT_CONNECT_TIMEOUT')).toBe(true);
    const conversation = fake.conversations[0]!;
    conversation.sendMetadata();
    conversation.speak('late', 100);
    await conversation.closed;
    expect(rec.events).toEqual([]);
  });
});

describe('ElevenLabsProvider: secrets', () => {
  it('never logs the API key, the signed URL or its signature', async () => {
    const fake = await startFake([{ agentId: 'agent_priv', private: true, pingIntervalMs: 20 }]);
    const { logger, text } = captureLogger();
    const provider = makeProvider(fake, agentConfig({ agentId: 'agent_priv', private: true }), { logger });
    const session = await provider.start(CALL, recordHandlers().handlers, never());
    const conversation = fake.conversations[0]!;
    await new Promise((r) => setTimeout(r, 60));
    session.close('caller hung up');
    await conversation.closed;
    // a failing start too
    await makeProvider(fake, agentConfig({ agentId: 'agent_priv', private: true }), { logger, apiKey: 'sk_wrong_key_0001' })
      .start(CALL, recordHandlers().handlers, never())
      .catch(() => undefined);
    await new Promise((r) => setTimeout(r, 20));
    const logs = text();
    const signature = conversation.url.searchParams.get('conversation_signature')!;
    expect(logs).not.toContain(fake.apiKey);
    expect(logs).not.toContain('sk_wrong_key_0001');
    expect(logs).not.toContain(signature);
    expect(logs).not.toContain('conversation_signature');
    expect(logs).toContain('"msg":"agent connection ended"');
    expect(logs).toContain('"closeCode":1000');
    expect(logs).toContain(`"callId":"${CALL.callId}"`);
  });
});

function onTestFinishedClose(session: { close(reason: string): void }): void {
  onTestFinished(() => session.close('test finished'));
}
