import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { FrameClock } from '../../src/audio/frame-clock.js';
import { CallSession } from '../../src/call/session.js';
import { MediaConnection, type MediaHandler, type MediaLink } from '../../src/asterisk/audiosocket/server.js';
import { AudioSocketParser } from '../../src/asterisk/audiosocket/parser.js';
import { SLIN_16K, SLIN_8K, type AudioFormat } from '../../src/audio/format.js';
import type { AgentHandlers, AgentProvider, AgentSession, CallContext } from '../../src/agent/types.js';
import type { CallEvent } from '../../src/call/events.js';
import { BridgeError } from '../../src/errors.js';
import { detectDtmf } from '../../src/audio/dtmf.js';
import { ManualClock } from '../support/manual-clock.js';
import { dominantFrequency, sine } from '../support/signal.js';

const CONFIG = parseConfig(
  `agents:
  bot:
    provider: elevenlabs
    agentId: a1
    transfers: { operator: "from-internal,100,1", sales: { context: sales-q, exten: s } }
    dtmf: { mode: user_message, interDigitTimeoutMs: 1000, terminator: "#" }
calls: { drainTimeoutMs: 5000, maxDurationS: 60 }
`,
  'test.yaml',
  {},
);

/** A scripted agent: the test drives its handlers and sees what the session sent it. */
class ScriptedAgent implements AgentSession {
  readonly sentAudio: Buffer[] = [];
  readonly texts: Array<{ kind: string; text: string }> = [];
  readonly toolResults: Array<{ id: string; result: string; isError: boolean }> = [];
  readonly lineFormats: AudioFormat[] = [];
  closedWith: string | undefined;
  handlers!: AgentHandlers;
  readonly formats: AgentSession['formats'];
  readonly conversationId = 'conv_1';
  constructor(formats: AgentSession['formats']) {
    this.formats = formats;
  }
  startMedia(lineFormat: AudioFormat): void {
    this.lineFormats.push(lineFormat);
  }
  sendAudio(chunk: Buffer): void {
    this.sentAudio.push(Buffer.from(chunk));
  }
  sendText(kind: 'user_message' | 'contextual_update', text: string): void {
    this.texts.push({ kind, text });
  }
  sendToolResult(id: string, result: string, isError: boolean): void {
    this.toolResults.push({ id, result, isError });
  }
  close(reason: string): void {
    this.closedWith ??= reason;
  }
}

/** A MediaLink that decodes what the session writes, like Asterisk would. */
class FakeLink implements MediaLink {
  closed = false;
  hungUp = false;
  writableLength = 0;
  readonly parser = new AudioSocketParser({ maxPayloadBytes: 65_535 });
  readonly frames: Array<{ kind: number; payload: Buffer }> = [];
  write(message: Buffer): void {
    for (const m of this.parser.push(message)) if (m.kind === 'audio') this.frames.push({ kind: m.type, payload: m.payload });
  }
  hangup(): void {
    this.hungUp = true;
    this.closed = true;
  }
  close(): void {
    this.closed = true;
  }
  get audio(): Buffer {
    return Buffer.concat(this.frames.map((f) => f.payload));
  }
  nonSilentFrames(): number {
    return this.frames.filter((f) => f.payload.some((b) => b !== 0)).length;
  }
}

function setup(options: { formats?: AgentSession['formats']; agentName?: string } = {}) {
  const clock = new ManualClock();
  const frameClock = new FrameClock({ clock, frameMs: 20, maxCatchUpFrames: 3 });
  const events: CallEvent[] = [];
  const agent = new ScriptedAgent(options.formats ?? { input: SLIN_16K, output: SLIN_16K });
  const provider: AgentProvider = {
    async start(_ctx: CallContext, handlers: AgentHandlers) {
      agent.handlers = handlers;
      return agent;
    },
  };
  let endedCount = 0;
  const agentName = options.agentName ?? 'bot';
  const session = new CallSession({
    callId: '1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b',
    agentName,
    agentConfig: CONFIG.agents[agentName]!,
    context: { callId: '1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b', agentName, args: [], query: {}, vars: {} },
    source: 'agi',
    calls: CONFIG.calls,
    mediaTimeoutMs: 10_000,
    clock,
    frameClock,
    logger: silentLogger(),
    emit: (e) => events.push(e),
    onEnded: () => endedCount++,
  });
  const link = new FakeLink();
  const connect = (): MediaHandler => session.attachMedia(new MediaConnection(link, session.callId, '127.0.0.1', 9092));
  return { clock, frameClock, events, agent, provider, session, link, connect, ended: () => endedCount };
}

describe('CallSession', () => {
  it('plays the greeting buffered before media from the first frame, converted to the line rate, then silence', async () => {
    const t = setup();
    await t.session.startAgent(t.provider, 1000);
    t.agent.handlers.onAudio(sine(440, 100, 16_000), 1);
    const media = t.connect();
    media.onAudio(Buffer.alloc(320), 8000);
    t.clock.advance(200);
    // Frame 0 leaves at media start, then one per 20 ms tick.
    expect(t.link.frames).toHaveLength(11);
    expect(t.link.frames.every((f) => f.kind === 0x10 && f.payload.length === 320)).toBe(true);
    // 100 ms of greeting = 5 frames, starting with the first frame after media start.
    expect(t.link.frames[0]!.payload.some((b) => b !== 0)).toBe(true);
    expect(t.link.nonSilentFrames()).toBe(5);
    expect(dominantFrequency(t.link.audio.subarray(320, 1280), 8000, { fromHz: 100, toHz: 3800, stepHz: 20 })).toBe(440);
    expect(t.events.find((e) => e.type === 'greeting')).toMatchObject({ msAfterMedia: 0 });
    expect(t.agent.lineFormats).toEqual([SLIN_8K]);
  });

  it('sends the caller audio to the agent in its input format, and feeds silence while Asterisk sends none', async () => {
    const t = setup();
    await t.session.startAgent(t.provider, 1000);
    const media = t.connect();
    media.onAudio(sine(1000, 20, 8000), 8000);
    expect(t.agent.sentAudio[0]!.length).toBe(640);
    t.clock.advance(300);
    // protocols.md §4.7: no input for 60 s ends the agent session; Asterisk sends nothing when the line is idle.
    expect(t.agent.sentAudio.length).toBeGreaterThan(5);
    expect(t.agent.sentAudio.slice(1).every((c) => c.length === 640 && c.every((b) => b === 0))).toBe(true);
  });

  it('barge-in flushes unplayed audio at once and drops stale chunks of the interrupted response', async () => {
    const t = setup();
    await t.session.startAgent(t.provider, 1000);
    t.connect();
    t.agent.handlers.onAudio(sine(440, 2000, 16_000), 3);
    t.clock.advance(100);
    const before = t.link.nonSilentFrames();
    expect(before).toBe(5);
    t.agent.handlers.onInterruption(3);
    t.agent.handlers.onAudio(sine(440, 500, 16_000), 3); // late chunk of the interrupted response
    t.clock.advance(100);
    expect(t.link.nonSilentFrames()).toBe(before);
    const interruption = t.events.find((e) => e.type === 'interruption');
    expect(interruption).toMatchObject({ eventId: 3 });
    expect((interruption as { droppedMs: number }).droppedMs).toBeGreaterThanOrEqual(1880);
    t.agent.handlers.onAudio(sine(440, 100, 16_000), 4); // the next response plays
    t.clock.advance(100);
    expect(t.link.nonSilentFrames()).toBe(before + 5);
  });

  it('transfer_call to an allowed destination plays out the last words, hangs up the AudioSocket and reports TRANSFER', async () => {
    const t = setup();
    await t.session.startAgent(t.provider, 1000);
    t.connect();
    t.agent.handlers.onToolCall({ toolName: 'transfer_call', toolCallId: 'tc1', parameters: { destination: 'operator' } });
    expect(t.agent.toolResults).toEqual([{ id: 'tc1', result: expect.stringContaining('operator'), isError: false }]);
    t.clock.advance(700); // the agent takes a while to start its post-tool speech
    t.agent.handlers.onAudio(sine(440, 300, 16_000), 2); // "transferring you now"
    t.clock.advance(200);
    expect(t.session.state).toBe('draining');
    expect(t.link.hungUp).toBe(false);
    // It ends calls.postToolQuietMs (1 s) after the last chunk arrived, once the queue is empty.
    t.clock.advance(700);
    expect(t.link.hungUp).toBe(false);
    t.clock.advance(120);
    expect(t.link.nonSilentFrames()).toBe(15);
    expect(t.link.hungUp).toBe(true);
    expect(t.session.outcome).toMatchObject({ result: 'TRANSFER', transferTo: 'from-internal,100,1', conversationId: 'conv_1' });
    expect(t.agent.closedWith).toBeDefined();
    expect(t.ended()).toBe(1);
    expect(t.frameClock.size).toBe(0);
  });

  it('refuses a transfer destination that is not in the allowlist, and unknown tools, with is_error', async () => {
    const t = setup();
    await t.session.startAgent(t.provider, 1000);
    t.connect();
    t.agent.handlers.onToolCall({ toolName: 'transfer_call', toolCallId: 'x', parameters: { destination: 'PJSIP/attacker' } });
    t.agent.handlers.onToolCall({ toolName: 'delete_everything', toolCallId: 'y', parameters: {} });
    expect(t.agent.toolResults).toEqual([
      { id: 'x', result: expect.stringContaining('Allowed destinations: operator, sales'), isError: true },
      { id: 'y', result: expect.stringContaining('Unknown tool'), isError: true },
    ]);
    expect(t.session.state).toBe('live');
  });

  it('send_dtmf plays in-band tones at the line rate; hangup_call drains then reports AGENT_HANGUP', async () => {
    const t = setup();
    await t.session.startAgent(t.provider, 1000);
    t.connect();
    t.agent.handlers.onToolCall({ toolName: 'send_dtmf', toolCallId: 'd', parameters: { digits: '42#' } });
    t.agent.handlers.onToolCall({ toolName: 'send_dtmf', toolCallId: 'bad', parameters: { digits: '4;Dial' } });
    t.clock.advance(1000);
    expect(detectDtmf(t.link.audio, 8000)).toBe('42#');
    expect(t.agent.toolResults.map((r) => r.isError)).toEqual([false, true]);
    t.agent.handlers.onToolCall({ toolName: 'hangup_call', toolCallId: 'h', parameters: {} });
    t.clock.advance(1000);
    expect(t.session.outcome?.result).toBe('AGENT_HANGUP');
    expect(t.link.hungUp).toBe(true);
  });

  it('collects caller digits until # or the inter-digit timeout and sends them to the agent', async () => {
    const t = setup();
    await t.session.startAgent(t.provider, 1000);
    const media = t.connect();
    media.onDtmf('1');
    media.onDtmf('2');
    media.onDtmf('#');
    expect(t.agent.texts).toEqual([{ kind: 'user_message', text: expect.stringContaining('12') }]);
    media.onDtmf('9');
    t.clock.advance(999);
    expect(t.agent.texts).toHaveLength(1);
    t.clock.advance(1);
    expect(t.agent.texts[1]).toEqual({ kind: 'user_message', text: expect.stringContaining('digits: 9') });
  });

  it('the agent ending the call (end_call) drains buffered audio before the hang-up', async () => {
    const t = setup();
    await t.session.startAgent(t.provider, 1000);
    t.connect();
    t.agent.handlers.onAudio(sine(440, 1000, 16_000), 5);
    t.agent.handlers.onEnd({ kind: 'agent_hangup', detail: 'end_call' });
    t.clock.advance(980);
    expect(t.link.hungUp).toBe(false);
    t.clock.advance(500);
    expect(t.link.nonSilentFrames()).toBe(50);
    expect(t.link.hungUp).toBe(true);
    expect(t.session.outcome?.result).toBe('AGENT_HANGUP');
  });

  it('an agent failure ends the call at once with AGENT_ERROR and the reason', async () => {
    const t = setup();
    await t.session.startAgent(t.provider, 1000);
    t.connect();
    t.agent.handlers.onEnd({ kind: 'error', error: new BridgeError('AGENT_QUOTA_EXCEEDED', 'quota limit reached (close 1002)'), closeCode: 1002 });
    expect(t.link.hungUp).toBe(true);
    expect(t.session.outcome).toMatchObject({ result: 'AGENT_ERROR', error: 'AGENT_QUOTA_EXCEEDED: quota limit reached (close 1002)' });
  });

  it('a channel redirected over AMI is recorded as COMPLETED when Asterisk then closes the socket', async () => {
    const t = setup();
    await t.session.startAgent(t.provider, 1000);
    const media = t.connect();
    t.session.expectRedirect('from-internal,100,1');
    media.onClose('eof');
    expect(t.session.outcome).toMatchObject({ result: 'COMPLETED', error: '' });
    expect(t.events.find((e) => e.type === 'call.ended')).toBeDefined();
  });

  it('caller hang-up releases everything: clock slot, agent, media', async () => {
    const t = setup();
    await t.session.startAgent(t.provider, 1000);
    const media = t.connect();
    t.clock.advance(100);
    media.onClose('eof');
    expect(t.session.outcome?.result).toBe('CALLER_HANGUP');
    expect(t.agent.closedWith).toBeDefined();
    expect(t.frameClock.size).toBe(0);
    expect(t.clock.pendingTimers).toBe(0);
    expect(t.link.hungUp).toBe(false);
    expect(t.ended()).toBe(1);
  });

  it('times out when Asterisk never connects, and a late connection is hung up so the dialplan continues', async () => {
    const t = setup();
    await t.session.startAgent(t.provider, 1000);
    t.clock.advance(10_000);
    expect(t.session.outcome).toMatchObject({ result: 'TIMEOUT', error: expect.stringContaining('CALL_TIMEOUT') });
    t.connect();
    expect(t.link.hungUp).toBe(true);
  });

  it('an agent that never gets ready ends the call with AGENT_ERROR and the start rejects', async () => {
    const t = setup();
    const never: AgentProvider = { start: () => new Promise(() => {}) };
    const start = t.session.startAgent(never, 3000);
    t.clock.advance(3000);
    await expect(start).rejects.toMatchObject({ code: 'AGENT_CONNECT_TIMEOUT' });
    expect(t.session.outcome?.result).toBe('AGENT_ERROR');
  });

  it('follows Asterisk to 16 kHz when the first frame is slin16, without losing the greeting', async () => {
    const t = setup();
    await t.session.startAgent(t.provider, 1000);
    t.agent.handlers.onAudio(sine(1000, 200, 16_000), 1);
    const media = t.connect();
    t.clock.advance(20);
    media.onAudio(Buffer.alloc(640), 16_000);
    t.clock.advance(400);
    const wide = t.link.frames.filter((f) => f.kind === 0x12);
    expect(wide.length).toBeGreaterThan(15);
    expect(wide.every((f) => f.payload.length === 640)).toBe(true);
    expect(t.link.nonSilentFrames()).toBeGreaterThanOrEqual(10);
    expect(t.agent.lineFormats).toEqual([SLIN_8K, SLIN_16K]);
  });

  it('ends at calls.maxDurationS with TIMEOUT', async () => {
    const t = setup();
    await t.session.startAgent(t.provider, 1000);
    t.connect();
    t.clock.advance(60_020);
    expect(t.session.outcome?.result).toBe('TIMEOUT');
    expect(t.session.outcome?.durationS).toBe(60);
  });
});
