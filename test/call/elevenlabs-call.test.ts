import { describe, expect, it, onTestFinished } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { startServer } from '../../src/main.js';
import { simulateCall, type SimulateOptions } from '../../src/simulate/simulate.js';
import type { CallEvent } from '../../src/call/events.js';
import { FakeElevenLabs, type FakeAgent, type FakeConversation } from '../support/fake-elevenlabs.js';
import { dominantFrequency, sine } from '../support/signal.js';

/**
 * Whole calls: ai-call simulate plays Asterisk (FastAGI + AudioSocket on real sockets), the fake
 * plays ElevenLabs (the AsyncAPI contract on a real WebSocket), ai-call runs in between.
 */
async function setup(agent: Partial<FakeAgent> & { agentId?: string }, agentYaml = '') {
  // Like the real service, the fake pings; a silent agent connection is what the watchdog ends.
  const fake = await FakeElevenLabs.start({ agents: [{ agentId: 'agent_sales', private: true, pingIntervalMs: 500, ...agent }] });
  onTestFinished(() => fake.close());
  const config = parseConfig(
    `agi: { port: 0 }
audiosocket: { port: 0 }
status: { enabled: false }
calls: { drainTimeoutMs: 4000 }
agents:
  sales:
    provider: elevenlabs
    agentId: ${agent.agentId ?? 'agent_sales'}
    connectTimeoutMs: 1500
    silenceTimeoutMs: 1500
    transfers: { operator: "from-internal,100,1" }
${agentYaml}`,
    'test.yaml',
    { ELEVENLABS_BASE_URL: fake.baseUrl, ELEVENLABS_API_KEY: fake.apiKey },
  );
  const events: CallEvent[] = [];
  const server = await startServer(config, { logger: silentLogger(), onEvent: (e) => events.push(e) });
  onTestFinished(() => server.close());
  const call = (options: Partial<SimulateOptions> = {}) =>
    simulateCall({ agiHost: '127.0.0.1', agiPort: server.agi.port, agent: 'sales', mode: 'assign', audio: Buffer.alloc(0), sampleRateHz: 8000, hangupAfterMs: 1500, ...options });
  return { fake, server, events, call };
}

/** The caller audio the fake received, decoded from user_audio_chunk messages. */
function userAudio(conversation: FakeConversation): Buffer {
  return Buffer.concat(
    conversation.received.filter((m) => typeof m.json['user_audio_chunk'] === 'string').map((m) => Buffer.from(m.json['user_audio_chunk'] as string, 'base64')),
  );
}

function nonSilentFrames(pcm: Buffer, frameBytes: number): number[] {
  const indexes: number[] = [];
  for (let i = 0; i * frameBytes < pcm.length; i++) if (pcm.subarray(i * frameBytes, (i + 1) * frameBytes).some((b) => b !== 0)) indexes.push(i);
  return indexes;
}

describe('calls to an ElevenLabs agent', () => {
  it('greets within one frame of media start, sends caller audio at the right pitch, plays the agent at real time', async () => {
    const { fake, call, events } = await setup({ greetingMs: 800, toneHz: 440, turns: [] });
    // A first call warms up the process (JIT, first fetch); the measured call is the second.
    await call({ hangupAfterMs: 100 });
    // The caller speaks only after the greeting (speaking over it would be a barge-in).
    const summary = await call({ audio: Buffer.concat([Buffer.alloc(8000 * 2 * 0.9), sine(1000, 700, 8000)]), hangupAfterMs: 1800 });
    expect(summary.status).toBe('READY');
    // Pre-connected at AGI time: the greeting was buffered before AudioSocket connected.
    // Seen by the caller: frame 0 plus loopback and scheduling on a shared test machine. The
    // server-side greeting event below is the exact measure (one frame).
    expect(summary.firstAudioMs).toBeLessThanOrEqual(40);
    const frames = nonSilentFrames(summary.media!.received, 320);
    // 800 ms greeting = 40 frames, played in one run, at the agent's pitch.
    expect(frames.length).toBeGreaterThanOrEqual(39);
    expect(frames.length).toBeLessThanOrEqual(41);
    expect(frames.at(-1)! - frames[0]!).toBe(frames.length - 1);
    expect(dominantFrequency(summary.media!.received.subarray(0, 12_800), 8000, { fromHz: 100, toHz: 3800, stepHz: 20 })).toBe(440);
    // The caller's 1 kHz tone at 8 kHz reaches the agent as 1 kHz at 16 kHz (pcm_16000).
    const conversation = fake.conversations[1]!;
    await conversation.closed; // everything sent before the close has arrived
    const uplink = userAudio(conversation);
    expect(uplink.length).toBeGreaterThan(16_000 * 2 * 1.6);
    const tone = uplink.subarray(16_000 * 2 * 1.0, 16_000 * 2 * 1.5);
    expect(dominantFrequency(tone, 16_000, { fromHz: 100, toHz: 7900, stepHz: 20 })).toBe(1000);
    // 20 ms uplink chunks: 640 bytes → 856 base64 characters (protocols.md §4.7).
    expect(conversation.userAudio.base64Lengths[0]).toBe(856);
    expect(summary.resultVariables).toMatchObject({ AI_RESULT: 'CALLER_HANGUP', AI_CONVERSATION_ID: conversation.conversationId });
    const greeting = events.filter((e) => e.type === 'greeting' && e.callId === summary.uuid);
    expect(greeting).toHaveLength(1);
    expect((greeting[0] as { msAfterMedia: number }).msAfterMedia).toBeLessThanOrEqual(20);
  });

  it('sends rendered dynamic variables and only the configured overrides', async () => {
    const { fake, call } = await setup(
      { allowedOverrides: { firstMessage: true }, firstMessage: 'Hi {{caller_name}}', turns: [] },
      '    overrides: { firstMessage: "Hello {{callerId}}, lead {{vars.LEAD_ID}}" }\n    channelVariables: [LEAD_ID]\n    dynamicVariables: { lead: "{{vars.LEAD_ID}}", campaign: spring }\n',
    );
    const summary = await call({ callerId: '+15551234567', channelVariables: { LEAD_ID: '4711' }, hangupAfterMs: 200 });
    expect(summary.status).toBe('READY');
    const init = await fake.conversations[0]!.initiation;
    expect(init.conversation_config_override).toEqual({ agent: { first_message: 'Hello +15551234567, lead 4711' } });
    expect(init.dynamic_variables).toMatchObject({ lead: '4711', campaign: 'spring', caller_id: '+15551234567' });
  });

  it('barge-in: agent audio stops within one frame and stale chunks never play', async () => {
    const { fake, call, events } = await setup({ greetingMs: 3000, bargeIn: { staleChunks: 3 }, vad: { speechMs: 60, silenceMs: 300 }, turns: [{ agentResponse: 'ok', replyMs: 200 }] });
    // The caller starts talking 500 ms into a 3 s greeting.
    const audio = Buffer.concat([Buffer.alloc(8000 * 2 * 0.5), sine(1000, 400, 8000)]);
    const summary = await call({ audio, hangupAfterMs: 2500 });
    const interruption = events.find((e) => e.type === 'interruption') as Extract<CallEvent, { type: 'interruption' }> | undefined;
    expect(interruption).toBeDefined();
    expect(fake.conversations[0]!.interruptionsSent).toHaveLength(1);
    expect(interruption!.droppedMs).toBeGreaterThan(1500);
    const frames = nonSilentFrames(summary.media!.received, 320);
    // The greeting ran from frame 0 until the barge-in (about 500-700 ms in), then stopped dead:
    // the 3 s greeting never played out, and the stale chunks were dropped.
    const greetingFrames = frames.filter((i) => i < 100 && frames.includes(i));
    const firstGap = frames.findIndex((f, k) => k > 0 && f !== frames[k - 1]! + 1);
    const greetingRun = firstGap === -1 ? frames.length : firstGap;
    expect(greetingRun).toBeGreaterThan(20);
    expect(greetingRun).toBeLessThan(60);
    expect(greetingFrames.length).toBeLessThan(150);
  });

  it('transfer_call: the agent picks an allowed destination, its last words play, the dialplan gets TRANSFER', async () => {
    const { fake, call } = await setup({ greetingMs: 200, turns: [{ toolCall: { toolName: 'transfer_call', parameters: { destination: 'operator' } }, agentResponse: 'Transferring you now', replyMs: 400 }] });
    const summary = await call({ audio: Buffer.concat([Buffer.alloc(8000 * 2 * 0.3), sine(1000, 300, 8000)]), hangupAfterMs: 5000 });
    expect(fake.conversations[0]!.toolResults).toEqual([expect.objectContaining({ tool_call_id: expect.any(String), is_error: false })]);
    expect(summary.media!.endedBy).toBe('server');
    expect(summary.media!.hangupMessageReceived).toBe(true);
    expect(summary.resultVariables).toMatchObject({ AI_RESULT: 'TRANSFER', AI_TRANSFER_TO: 'from-internal,100,1', AI_ERROR: '' });
    // Greeting (200 ms) and the 400 ms "transferring you" reply both played in full.
    expect(nonSilentFrames(summary.media!.received, 320).length).toBeGreaterThanOrEqual(29);
  });

  it('end_call: the farewell is played to the end before AudioSocket ends, then AGENT_HANGUP', async () => {
    const { call } = await setup({ greetingMs: 200, turns: [{ agentResponse: 'Goodbye', replyMs: 1000, endCall: true }] });
    const summary = await call({ audio: Buffer.concat([Buffer.alloc(8000 * 2 * 0.3), sine(1000, 300, 8000)]), hangupAfterMs: 8000 });
    expect(summary.resultVariables['AI_RESULT']).toBe('AGENT_HANGUP');
    expect(summary.media!.hangupMessageReceived).toBe(true);
    // 200 ms greeting + 1000 ms farewell (+ the fake's farewell tone) all reached the caller.
    expect(nonSilentFrames(summary.media!.received, 320).length).toBeGreaterThanOrEqual(59);
  });

  it('caller DTMF reaches the agent as a contextual update', async () => {
    const { fake, call } = await setup({ greetingMs: 100, turns: [] });
    await call({ dtmf: [{ atMs: 200, digit: '4' }, { atMs: 400, digit: '2' }, { atMs: 600, digit: '#' }], hangupAfterMs: 1200 });
    const update = fake.conversations[0]!.messagesOfType('contextual_update')[0];
    expect(update?.['text']).toContain('42');
  });

  it.each([
    ['quota', 'AGENT_QUOTA_EXCEEDED'],
    ['crash', 'close=1011'],
    ['drop', 'AGENT_CLOSED'],
    ['silence', 'AGENT_SILENT'],
  ] as const)('a mid-call %s ends the call with AGENT_ERROR and the reason in AI_ERROR', async (fault, expected) => {
    const { fake, call } = await setup({ greetingMs: 100, turns: [], script: (c) => void c.initiation.then(() => setTimeout(() => c.fault(fault), 300)) });
    const summary = await call({ hangupAfterMs: 6000 });
    expect(summary.status).toBe('READY');
    expect(summary.media!.endedBy).toBe('server');
    expect(summary.resultVariables['AI_RESULT']).toBe('AGENT_ERROR');
    expect(summary.resultVariables['AI_ERROR']).toContain(expected);
    expect(fake.conversations).toHaveLength(1);
  });

  it.each([
    ['override_error', 'AGENT_OVERRIDE_REJECTED'],
    ['missing_dynamic_variable', 'AGENT_MISSING_VARIABLE'],
    ['never_answer', 'AGENT_CONNECT_TIMEOUT'],
    ['quota', 'AGENT_QUOTA_EXCEEDED'],
  ] as const)('a %s at start answers AGENT_UNAVAILABLE so the dialplan falls back, with the reason', async (fault, expected) => {
    const { call } = await setup({ startFault: fault });
    const summary = await call();
    expect(summary.status).toBe('AGENT_UNAVAILABLE');
    expect(summary.assignVariables['AI_ERROR']).toContain(expected);
    expect(summary.media).toBeUndefined();
  });

  it('a bad API key is refused before any call starts, and the key never reaches AI_ERROR', async () => {
    const fake = await FakeElevenLabs.start({ agents: [{ agentId: 'agent_sales', private: true }] });
    onTestFinished(() => fake.close());
    const config = parseConfig('agi: { port: 0 }\naudiosocket: { port: 0 }\nstatus: { enabled: false }\nagents:\n  sales: { provider: elevenlabs, agentId: agent_sales }\n', 't', {
      ELEVENLABS_BASE_URL: fake.baseUrl,
      ELEVENLABS_API_KEY: 'sk_wrong_key_123456',
    });
    const server = await startServer(config, { logger: silentLogger() });
    onTestFinished(() => server.close());
    const summary = await simulateCall({ agiHost: '127.0.0.1', agiPort: server.agi.port, agent: 'sales', mode: 'assign', audio: Buffer.alloc(0), sampleRateHz: 8000, hangupAfterMs: 100 });
    expect(summary.status).toBe('AGENT_UNAVAILABLE');
    expect(summary.assignVariables['AI_ERROR']).toContain('AGENT_AUTH_FAILED');
    expect(JSON.stringify(summary)).not.toContain('sk_wrong_key_123456');
  });

  it('16 kHz end to end: a pcm_16000 agent on slin16 passes audio through without conversion', async () => {
    const { fake, call } = await setup({ greetingMs: 400, toneHz: 3000, turns: [] }, '    wideband: true\n');
    const summary = await call({ audio: sine(6000, 600, 16_000), sampleRateHz: 16_000, hangupAfterMs: 800 });
    expect(summary.media!.receivedSampleRateHz).toBe(16_000);
    // A 3 kHz agent tone and a 6 kHz caller tone survive only if nothing went through 8 kHz.
    expect(dominantFrequency(summary.media!.received.subarray(0, 12_800), 16_000, { fromHz: 100, toHz: 7900, stepHz: 20 })).toBe(3000);
    const uplink = userAudio(fake.conversations[0]!);
    expect(dominantFrequency(uplink.subarray(0, 12_800), 16_000, { fromHz: 100, toHz: 7900, stepHz: 20 })).toBe(6000);
  });
});
