import { connect } from 'node:net';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { FrameClock } from '../../src/audio/frame-clock.js';
import { CallSession } from '../../src/call/session.js';
import { AudioSocketListener, MediaConnection, type MediaHandler, type MediaLink } from '../../src/asterisk/audiosocket/server.js';
import { encodeUuid } from '../../src/asterisk/audiosocket/protocol.js';
import { systemClock } from '../../src/audio/clock.js';
import { AudioSocketParser } from '../../src/asterisk/audiosocket/parser.js';
import { SLIN_16K, SLIN_8K, type AudioFormat } from '../../src/audio/format.js';
import type { AgentHandlers, AgentProvider, AgentSession, CallContext } from '../../src/agent/types.js';
import type { CallEvent } from '../../src/call/events.js';
import { BridgeError } from '../../src/errors.js';
import { detectDtmf } from '../../src/audio/dtmf.js';
import { createConverter, type Converter } from '../../src/audio/convert.js';
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

function setup(
  options: {
    formats?: AgentSession['formats'];
    agentName?: string;
    link?: MediaLink & { frames?: unknown };
    calls?: Partial<(typeof CONFIG)['calls']>;
    createConverter?: (from: AudioFormat, to: AudioFormat) => Converter;
  } = {},
) {
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
    calls: { ...CONFIG.calls, ...options.calls },
    mediaTimeoutMs: 10_000,
    createConverter: options.createConverter,
    clock,
    frameClock,
    logger: silentLogger(),
    emit: (e) => events.push(e),
    onEnded: () => endedCount++,
  });
  const link = new FakeLink();
  const connect = (): MediaHandler => session.attachMedia(new MediaConnection(options.link ?? link, session.callId, '127.0.0.1', 9092));
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

/** A downlink converter that records what it converts, and when (ms on the test clock). */
function watchDownlink(fromHz: number, nowMs: () => number) {
  const conversions: Array<{ atMs: number; bytes: number }> = [];
  const factory = (from: AudioFormat, to: AudioFormat): Converter => {
    const converter = createConverter(from, to);
    if (from.sampleRateHz !== fromHz) return converter;
    return {
      convert: (input) => {
        conversions.push({ atMs: nowMs(), bytes: input.length });
        return converter.convert(input);
      },
      reset: () => converter.reset(),
    };
  };
  return { conversions, factory };
}

/** A session whose 16 kHz → line converter is watched, with its agent started and media not yet connected. */
async function startWatchedDownlink() {
  let clock: ManualClock | undefined;
  const watch = watchDownlink(16_000, () => clock!.now());
  const t = setup({ createConverter: watch.factory });
  clock = t.clock;
  await t.session.startAgent(t.provider, 1000);
  return { t, watch };
}

describe('CallSession: agent audio is converted on the clock, not on arrival', () => {
  it('a 2 s reply that arrives at once costs each tick one frame of conversion, and plays bit-identical audio', async () => {
    const { t, watch } = await startWatchedDownlink();
    t.connect();
    const reply = sine(440, 2000, 16_000);
    // Twenty 100 ms messages in one read, as ElevenLabs sends a reply.
    for (let offset = 0; offset < reply.length; offset += 3_200) t.agent.handlers.onAudio(reply.subarray(offset, offset + 3_200), 2);
    expect(watch.conversions).toEqual([]); // nothing converted on arrival
    const framesBefore = t.link.frames.length;
    t.clock.advance(2_100);
    // Every tick converted exactly one 20 ms frame's worth (640 B of pcm_16000), never more.
    const perTick = new Map<number, number>();
    for (const c of watch.conversions) perTick.set(c.atMs, (perTick.get(c.atMs) ?? 0) + c.bytes);
    expect(perTick.size).toBe(100);
    expect([...perTick.values()].every((bytes) => bytes === 640)).toBe(true);
    // The frames are exactly what converting the whole reply on arrival gave.
    const played = Buffer.concat(t.link.frames.slice(framesBefore).map((f) => f.payload)).subarray(0, 100 * 320);
    expect(played.equals(createConverter(SLIN_16K, SLIN_8K).convert(reply))).toBe(true);
    expect(t.link.nonSilentFrames()).toBe(100);
  });

  it('the greeting that arrived before media waits unconverted, and plays from the first frame', async () => {
    const { t, watch } = await startWatchedDownlink();
    t.agent.handlers.onAudio(sine(440, 600, 16_000), 1);
    t.clock.advance(500);
    expect(watch.conversions).toEqual([]);
    t.connect();
    expect(watch.conversions).toHaveLength(1); // frame 0, at media start
    expect(t.link.frames[0]!.payload.some((b) => b !== 0)).toBe(true);
    t.clock.advance(1_000);
    expect(t.link.nonSilentFrames()).toBe(30);
  });

  it('barge-in drops the audio not converted yet at once: none of it is ever converted or played', async () => {
    const { t, watch } = await startWatchedDownlink();
    t.connect();
    t.agent.handlers.onAudio(sine(440, 2000, 16_000), 3);
    t.clock.advance(100);
    const converted = watch.conversions.length;
    t.agent.handlers.onInterruption(3);
    t.clock.advance(1_000);
    expect(watch.conversions.length).toBe(converted);
    expect(t.link.nonSilentFrames()).toBe(5);
    expect(t.events.find((e) => e.type === 'interruption')).toMatchObject({ eventId: 3, droppedMs: 1900 });
  });

  it('calls.maxBufferedAudioMs bounds queued audio, converted or not: the newest is dropped and counted', async () => {
    const t = setup({ calls: { maxBufferedAudioMs: 1_000 } });
    await t.session.startAgent(t.provider, 1000);
    t.connect();
    t.agent.handlers.onAudio(sine(440, 1_500, 16_000), 2);
    t.clock.advance(2_000);
    expect(t.link.nonSilentFrames()).toBe(50);
    expect(t.session.snapshot().stats.droppedAgentBytes).toBe(16_000); // 500 ms of pcm_16000
  });

  it('send_dtmf tones play after what the agent already said, even if it is not converted yet', async () => {
    const t = setup();
    await t.session.startAgent(t.provider, 1000);
    t.connect();
    t.agent.handlers.onAudio(sine(440, 400, 16_000), 2);
    t.agent.handlers.onToolCall({ toolName: 'send_dtmf', toolCallId: 'd', parameters: { digits: '7' } });
    t.clock.advance(1_000);
    const audio = t.link.audio;
    expect(dominantFrequency(audio.subarray(0, 20 * 320), 8000, { fromHz: 100, toHz: 3800, stepHz: 20 })).toBe(440);
    expect(detectDtmf(audio.subarray(20 * 320), 8000)).toBe('7');
  });
});

/**
 * A MediaLink that keeps every buffer it is given, as Node's socket does while a write is queued,
 * and a copy of each taken at write time: anything that writes into a buffer after handing it over
 * shows up as a difference.
 */
class RetainingLink implements MediaLink {
  closed = false;
  writableLength = 0;
  readonly written: Array<{ buffer: Buffer; copy: Buffer }> = [];
  write(message: Buffer): void {
    this.written.push({ buffer: message, copy: Buffer.from(message) });
  }
  hangup(): void {
    this.closed = true;
  }
  close(): void {
    this.closed = true;
  }
}

describe('CallSession: a frame handed to the socket is never written again (Node queues writes by reference)', () => {
  it('greeting, replies, barge-ins, DTMF, a rate switch and the drain: every written buffer keeps its bytes', async () => {
    const link = new RetainingLink();
    const t = setup({ link });
    await t.session.startAgent(t.provider, 1000);
    t.agent.handlers.onAudio(sine(440, 300, 16_000), 1);
    const media = t.connect();
    for (let round = 0; round < 30; round++) {
      t.agent.handlers.onAudio(sine(300 + round * 10, 330, 16_000), round + 2); // not a whole number of frames
      t.clock.advance(round % 3 === 0 ? 100 : 400);
      if (round % 3 === 0) t.agent.handlers.onInterruption(round + 2);
      if (round % 7 === 0) t.agent.handlers.onToolCall({ toolName: 'send_dtmf', toolCallId: `d${round}`, parameters: { digits: '1' } });
      if (round === 15) media.onAudio(Buffer.alloc(640), 16_000); // Asterisk turns out to carry slin16
      t.clock.advance(60);
    }
    t.agent.handlers.onAudio(sine(440, 500, 16_000), 99);
    t.agent.handlers.onEnd({ kind: 'agent_hangup', detail: 'end_call' });
    t.clock.advance(3_000);
    expect(t.session.outcome?.result).toBe('AGENT_HANGUP');
    expect(link.written.length).toBeGreaterThan(500);
    const changed = link.written.filter((w) => !w.buffer.equals(w.copy));
    expect(changed).toHaveLength(0);
    // Buffers written more than once are the pre-encoded silence messages, one per line format (8 and
    // 16 kHz here), all zero; every other frame is a buffer of its own.
    const writes = new Map<Buffer, number>();
    for (const w of link.written) writes.set(w.buffer, (writes.get(w.buffer) ?? 0) + 1);
    const shared = [...writes].filter(([, count]) => count > 1).map(([buffer]) => buffer);
    expect(shared.map((b) => [b[0], b.length])).toEqual([
      [0x10, 323],
      [0x12, 643],
    ]);
    expect(shared.every((b) => b.subarray(3).every((byte) => byte === 0))).toBe(true);
    expect(t.session.snapshot().stats.silenceFramesOut).toBe(link.written.filter((w) => shared.includes(w.buffer)).length);
  });

  it('over a real socket whose reader stalls (writes queue in Node): Asterisk receives every frame intact, in order', async () => {
    const t = setup({ formats: 'line', calls: { maxDurationS: 3_600 } });
    let connection: MediaConnection | undefined;
    const listener = new AudioSocketListener({
      host: '127.0.0.1',
      port: 0,
      uuidTimeoutMs: 2_000,
      maxPayloadBytes: 65_535,
      logger: silentLogger(),
      clock: systemClock,
      accept: (_uuid, media) => {
        connection = media;
        return t.session.attachMedia(media);
      },
    });
    const { port } = await listener.listen();
    onTestFinished(() => listener.close());
    await t.session.startAgent(t.provider, 1000);
    const asterisk = connect({ host: '127.0.0.1', port });
    onTestFinished(() => void asterisk.destroy());
    const chunks: Buffer[] = [];
    let receivedBytes = 0;
    asterisk.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      receivedBytes += chunk.length;
    });
    await new Promise<void>((resolve) => asterisk.once('connect', () => resolve()));
    asterisk.write(encodeUuid(t.session.callId));
    await vi.waitFor(() => expect(connection).toBeDefined());
    asterisk.pause(); // Asterisk stops reading: the kernel buffers fill, then Node queues our writes

    // Each agent frame carries its own number in every sample, so a frame overwritten while queued,
    // a frame reused or a frame out of order cannot go unnoticed.
    const expected: number[] = [];
    let next = 1;
    let maxQueuedBytes = 0;
    const frameOf = (value: number): Buffer => {
      const frame = Buffer.alloc(320);
      for (let i = 0; i < 160; i++) frame.writeInt16LE(value, i * 2);
      return frame;
    };
    for (let round = 0; round < 600; round++) {
      const reply = Buffer.concat(Array.from({ length: 50 }, (_, i) => frameOf(next + i)));
      t.agent.handlers.onAudio(reply, round + 1);
      const bargeIn = round % 3 === 2;
      const played = bargeIn ? 20 : 50;
      for (let tick = 0; tick < played; tick++) t.clock.advance(20);
      for (let i = 0; i < played; i++) expected.push(next + i);
      if (bargeIn) t.agent.handlers.onInterruption(round + 1);
      for (let tick = 0; tick < 3; tick++) t.clock.advance(20); // silence
      maxQueuedBytes = Math.max(maxQueuedBytes, connection!.writableLength);
      next += 50;
    }
    const framesOut = t.session.snapshot().stats.framesOut;
    // Node held written frames in its queue (by reference) while the session went on producing.
    expect(maxQueuedBytes).toBeGreaterThan(100_000);
    asterisk.resume();
    await vi.waitFor(() => expect(receivedBytes).toBe(framesOut * 323), { timeout: 20_000, interval: 20 });
    const parser = new AudioSocketParser({ maxPayloadBytes: 65_535 });
    const spoken: number[] = [];
    let silence = 0;
    let mixed = 0;
    for (const message of parser.push(Buffer.concat(chunks))) {
      if (message.kind !== 'audio') continue;
      const first = message.payload.readInt16LE(0);
      for (let i = 1; i < 160; i++) {
        if (message.payload.readInt16LE(i * 2) !== first) {
          mixed++;
          break;
        }
      }
      if (first === 0) silence++;
      else spoken.push(first);
    }
    expect(mixed).toBe(0);
    expect(spoken).toEqual(expected);
    expect(silence).toBe(framesOut - expected.length);
  });
});
