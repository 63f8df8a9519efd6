/**
 * Plays Asterisk for many calls at once, cheaply: a FastAGI client per call set-up, and one
 * AudioSocket client per call whose 20 ms frames ALL leave from one shared absolute-deadline clock
 * (not a timer per call, protocols.md §1.7). The ideas are those of src/simulate/asterisk-peer.ts;
 * the code is the benchmark's own so that the instrument shares nothing with what it measures.
 *
 *   ramp: AGI ai-call?agent=NAME ─► AI_STATUS/AI_UUID/AI_AUDIOSOCKET ─► AudioSocket connect + UUID
 *   tick (every 5 ms, absolute deadlines): the caller frame of every live call in this sub-slot (each
 *         call owns one of 4, so it sends every 20 ms, and the calls are spread over the 20 ms as real
 *         channels are), per the caller pattern below; every 20 ms the lean fake's pings
 *   receive: frame timing per call; with the fake, uplink/downlink/barge-in probes
 *   hang-up: close every AudioSocket (EOF, as Asterisk does), then AGI ai-call/result?uuid=…
 *
 * Caller pattern (period 4 s, each call starts at a random point of it):
 *   0–400 ms speech · 400–1500 silence (the agent answers with 2 s) · 1500–1700 speech over the
 *   answer (barge-in; the agent answers again with 0.6 s) · 1700–4000 silence.
 */
import { connect, type Socket } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { CallProbe } from './fake-elevenlabs-lean.js';
import type { HangupResult, ProbeOptions, ProbeResult, RampOptions, RampResult, Scenario, WindowResult } from './protocol.js';
import { LatencyHistogram, estimateSlotLatency, type SlotSample } from './stats.js';
import {
  AudioSocketKind,
  FRAME_BYTES,
  FRAME_MS,
  FrameReader,
  LineReader,
  agiEnvironment,
  encodeAudioMessage,
  encodeUuidMessage,
  parseSetVariable,
  toneFrame,
} from './wire.js';

const PATTERN_FRAMES = 200;
const SPEECH: ReadonlyArray<readonly [number, number]> = [
  [0, 20],
  [75, 85],
];
const ONSETS = new Set(SPEECH.map(([from]) => from));
const IS_SPEECH: readonly boolean[] = Array.from({ length: PATTERN_FRAMES }, (_, i) => SPEECH.some(([from, to]) => i >= from && i < to));
/** Shared, never mutated: one Buffer written to every socket. */
const TONE_MESSAGE = encodeAudioMessage(toneFrame());
const SILENCE_MESSAGE = encodeAudioMessage(Buffer.alloc(FRAME_BYTES));
const ZERO_FRAME = Buffer.alloc(FRAME_BYTES);
/** After a stall, at most this many frames in one burst (as Asterisk's own sources would). */
const MAX_CATCH_UP_FRAMES = 3;
/**
 * The one clock ticks every FRAME_MS / SUB_SLOTS and each call owns one sub-slot, so every call still
 * sends exactly every 20 ms but the calls' frames are spread over the 20 ms as real channels' are
 * (each follows its own RTP stream), instead of reaching the server as one burst of N frames.
 */
const SUB_SLOTS = 4;
const SUB_TICK_MS = FRAME_MS / SUB_SLOTS;
const AGI_TIMEOUT_MS = 20_000;
const RESULT_CONCURRENCY = 100;
/** No result AGI starts after this long: a wedged server must not hold the run (counted as "not asked"). */
const RESULT_PHASE_MS = 30_000;

export interface FrameSink {
  /** Runs on every tick, after the caller frames (the fake's pings). */
  onTick?(nowMs: number): void;
}

/**
 * The one clock of the load generator (style.md rule 5: `next += periodMs`), ticking every
 * SUB_TICK_MS; onTick gets the sub-slot (0…SUB_SLOTS−1) whose calls send now.
 */
class SharedTicker {
  readonly tickLate = new LatencyHistogram(250);
  readonly tickBusy = new LatencyHistogram(250);
  /** Ticks that fired more than LATE_TICK_MS late: when (performance.now()) and by how much. */
  lateTicks: Array<{ atMs: number; lateMs: number }> = [];
  skippedFrames = 0;
  #next = 0;
  /** Sub-ticks since start: the sub-slot is #count % SUB_SLOTS. */
  #count = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #onTick: (subSlot: number, nowMs: number) => void;

  constructor(onTick: (subSlot: number, nowMs: number) => void) {
    this.#onTick = onTick;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    this.#next = performance.now() + SUB_TICK_MS;
    this.#timer = setTimeout(this.#tick, SUB_TICK_MS);
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  readonly #tick = (): void => {
    const now = performance.now();
    const due = Math.floor((now + 0.5 - this.#next) / SUB_TICK_MS) + 1;
    if (due >= 1) {
      this.tickLate.record(now - this.#next);
      if (now - this.#next > LATE_TICK_MS && this.lateTicks.length < MAX_GAPS_KEPT) this.lateTicks.push({ atMs: now, lateMs: now - this.#next });
      // Every overdue sub-tick runs (each is a different set of calls), up to a burst of
      // MAX_CATCH_UP_FRAMES frames per call; beyond that the sub-ticks are skipped.
      const run = Math.min(due, MAX_CATCH_UP_FRAMES * SUB_SLOTS);
      this.skippedFrames += Math.floor((due - run) / SUB_SLOTS);
      this.#count += due - run;
      for (let k = 0; k < run; k++) this.#onTick(this.#count++ % SUB_SLOTS, now);
      this.#next += due * SUB_TICK_MS;
      this.tickBusy.record(performance.now() - now);
    }
    this.#timer = setTimeout(this.#tick, Math.max(0, this.#next - performance.now()));
  };
}

/** What one measurement window collects. */
class Window {
  readonly startMs = performance.now();
  readonly interFrame = new LatencyHistogram(250);
  readonly uplink = new LatencyHistogram(250);
  readonly downlinkRaw = new LatencyHistogram(250);
  readonly slotSamples: SlotSample[] = [];
  readonly bargeFlush = new LatencyHistogram(250);
  bargeIns = 0;
  staleFramesMax = 0;
  overOneFrame = 0;
  endedByServer = 0;
  framesReceived = 0;
  /** When each gap over 40 ms ended (ms since the window start) and how long it was; bounded. */
  readonly gaps: Array<{ atMs: number; gapMs: number }> = [];
}

/** Gaps within this long of each other are one stall (a process-wide pause hits every call at once). */
const STALL_CLUSTER_MS = 10;
const MAX_GAPS_KEPT = 10_000;
/**
 * A load generator tick this late means the instrument itself was held back (its own work or the
 * machine): a stall during which that happened is the load generator's, not the server's.
 */
const LATE_TICK_MS = 10;

interface AgiOutcome {
  readonly variables: Record<string, string>;
  /** ms from connect() to the AI_STATUS line; undefined if none came. */
  readonly statusMs: number | undefined;
  /** performance.now() when the AI_STATUS line arrived. */
  readonly statusAtMs: number | undefined;
}

/** One FastAGI session as res_agi runs it (protocols.md §2): env block, answer each command, HANGUP after our FIN. */
export function runAgi(host: string, port: number, script: string, uniqueid: string): Promise<AgiOutcome> {
  return new Promise((resolve, reject) => {
    const startedMs = performance.now();
    const socket = connect({ host, port, noDelay: true });
    const variables: Record<string, string> = {};
    let statusMs: number | undefined;
    let statusAtMs: number | undefined;
    const lines = new LineReader();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('AGI timeout'));
    }, AGI_TIMEOUT_MS);
    socket.on('connect', () => socket.write(agiEnvironment(host, port, script, uniqueid)));
    socket.on('data', (chunk: Buffer) => {
      for (const line of lines.push(chunk)) {
        const set = parseSetVariable(line);
        if (set) {
          variables[set[0]] = set[1];
          if (set[0] === 'AI_STATUS' && statusMs === undefined) {
            statusAtMs = performance.now();
            statusMs = statusAtMs - startedMs;
          }
          socket.write('200 result=1\n');
        } else if (line.startsWith('GET VARIABLE') || line.startsWith('GET FULL VARIABLE')) {
          socket.write('200 result=0\n');
        } else if (line.startsWith('VERBOSE')) {
          socket.write('200 result=1\n');
        } else if (line !== '') {
          socket.write('510 Invalid or unknown command\n');
        }
      }
    });
    // Asterisk's end-of-script notice after the server's FIN (protocols.md §2.6).
    socket.on('end', () => {
      if (!socket.destroyed) socket.end('HANGUP\n');
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ variables, statusMs, statusAtMs });
    });
  });
}

class EmulatedCall implements CallProbe {
  readonly index: number;
  readonly patternOffset: number;
  readonly #emulator: AsteriskEmulator;
  state: 'agi' | 'media' | 'ended' = 'agi';
  uuid = '';
  socket: Socket | undefined;
  sent = 0;
  #reader = new FrameReader();
  #onsetSentAtMs: number | undefined;
  #lastArrivalMs = -1;
  // measurement window
  windowFirstMs = -1;
  windowLastMs = -1;
  windowFrames = 0;
  #downlink: { sentAtMs: number; slotAtMs: number; inWindow: boolean } | undefined;
  #barge: { atMs: number; stale: number; lastStaleAtMs: number; inWindow: boolean } | undefined;

  constructor(index: number, emulator: AsteriskEmulator) {
    this.index = index;
    this.#emulator = emulator;
    this.patternOffset = Math.floor(Math.random() * PATTERN_FRAMES);
  }

  /** The frame to send now; marks utterance onsets for the uplink probe. */
  nextMessage(): Buffer {
    const position = (this.sent + this.patternOffset) % PATTERN_FRAMES;
    this.sent++;
    if (ONSETS.has(position)) this.#onsetSentAtMs = performance.now();
    return IS_SPEECH[position] ? TONE_MESSAGE : SILENCE_MESSAGE;
  }

  readonly onData = (chunk: Buffer): void => {
    this.#reader.push(chunk, this.#onMessage);
  };

  readonly #onMessage = (kind: number, data: Buffer, start: number, length: number): void => {
    if (kind === AudioSocketKind.Hangup) {
      this.#emulator.onServerEnded(this);
      return;
    }
    if (kind < 0x10 || kind > 0x18) return;
    const now = performance.now();
    const window = this.#emulator.window;
    if (window !== undefined) {
      // Only intervals that lie wholly inside the window.
      if (this.windowLastMs >= 0) {
        const gapMs = now - this.windowLastMs;
        window.interFrame.record(gapMs);
        if (gapMs > 40 && window.gaps.length < MAX_GAPS_KEPT) window.gaps.push({ atMs: now - window.startMs, gapMs });
      }
      window.framesReceived++;
      if (this.windowFirstMs < 0) this.windowFirstMs = now;
      this.windowLastMs = now;
      this.windowFrames++;
    }
    if (this.#emulator.scenario === 'elevenlabs') {
      const silent = length === FRAME_BYTES && ZERO_FRAME.compare(data, start, start + length) === 0;
      if (!silent) this.#onAgentFrame(now, window);
    }
    this.#lastArrivalMs = now;
  };

  #onAgentFrame(now: number, window: Window | undefined): void {
    const downlink = this.#downlink;
    if (downlink !== undefined) {
      this.#downlink = undefined;
      if (downlink.inWindow && window !== undefined && downlink.slotAtMs > 0) {
        window.downlinkRaw.record(now - downlink.sentAtMs);
        // Half a frame of tolerance for arrival jitter around the predicted slot.
        window.slotSamples.push({ waitMs: downlink.slotAtMs - downlink.sentAtMs, made: now < downlink.slotAtMs + FRAME_MS / 2 });
      }
      return;
    }
    const barge = this.#barge;
    if (barge !== undefined) {
      barge.stale++;
      barge.lastStaleAtMs = now;
    }
  }

  // ── CallProbe (called by the lean fake, same process, same clock) ─────────────────────────────

  takeOnsetSentAt(): number | undefined {
    const at = this.#onsetSentAtMs;
    this.#onsetSentAtMs = undefined;
    return at;
  }

  agentAudioSent(atMs: number): void {
    this.finishBargeIn();
    if (this.state !== 'media') return;
    // The first slot at or after atMs, from this call's own cadence of arrivals.
    let slotAtMs = 0;
    if (this.#lastArrivalMs >= 0) slotAtMs = this.#lastArrivalMs + Math.max(1, Math.ceil((atMs - this.#lastArrivalMs) / FRAME_MS)) * FRAME_MS;
    this.#downlink = { sentAtMs: atMs, slotAtMs, inWindow: this.#emulator.window !== undefined };
  }

  interruptionSent(atMs: number): void {
    this.finishBargeIn();
    this.#downlink = undefined;
    this.#barge = { atMs, stale: 0, lastStaleAtMs: atMs, inWindow: this.#emulator.window !== undefined };
  }

  /** Closes the current barge-in observation (the next reply started, or the window ends). */
  finishBargeIn(): void {
    const barge = this.#barge;
    this.#barge = undefined;
    const window = this.#emulator.window;
    if (barge === undefined || !barge.inWindow || window === undefined) return;
    window.bargeIns++;
    window.bargeFlush.record(barge.stale > 0 ? barge.lastStaleAtMs - barge.atMs : 0);
    if (barge.stale > window.staleFramesMax) window.staleFramesMax = barge.stale;
    if (barge.stale > 1) window.overOneFrame++;
  }

  resetWindow(): void {
    this.windowFirstMs = -1;
    this.windowLastMs = -1;
    this.windowFrames = 0;
  }
}

export class AsteriskEmulator {
  scenario: Scenario = 'echo';
  window: Window | undefined;
  readonly #ticker: SharedTicker;
  readonly #sink: FrameSink;
  #calls: EmulatedCall[] = [];
  /** #calls by sub-slot (call index % SUB_SLOTS). */
  #slots: EmulatedCall[][] = [];
  readonly #byUuid = new Map<string, EmulatedCall>();
  /** performance.now() at which the fake agent of each call (by AI_UUID) was ready, until its AI_STATUS arrives. */
  readonly #agentReadyAtMs = new Map<string, number>();
  /** Calls waiting for the ramp to start them, in order. */
  #toStart: EmulatedCall[] = [];
  #startsPerTick = 1;
  #startCall: ((call: EmulatedCall) => void) | undefined;
  #step = 0;
  /** The load generator's own event-loop delay: how much of any latency it measures is its own. */
  readonly #loopDelay = monitorEventLoopDelay({ resolution: 1 });

  constructor(sink: FrameSink) {
    this.#sink = sink;
    this.#ticker = new SharedTicker((subSlot, nowMs) => this.#onTick(subSlot, nowMs));
  }

  /** For the fake: its conversation for call `uuid` became ready (metadata sent) at `atMs`. */
  agentReady(uuid: string, atMs: number): void {
    this.#agentReadyAtMs.set(uuid, atMs);
  }

  /** For the fake: the call that received `uuid` as AI_UUID. */
  lookupCall(uuid: string): EmulatedCall | undefined {
    return this.#byUuid.get(uuid);
  }

  onServerEnded(call: EmulatedCall): void {
    if (call.state !== 'media') return;
    call.state = 'ended';
    if (this.window !== undefined) this.window.endedByServer++;
    call.socket?.destroy();
  }

  #onTick(subSlot: number, nowMs: number): void {
    if (subSlot === 0) {
      // Ramp: start this frame's share of calls (spreads AGI load evenly over rampMs).
      if (this.#toStart.length > 0 && this.#startCall !== undefined) {
        for (const call of this.#toStart.splice(0, this.#startsPerTick)) this.#startCall(call);
      }
      this.#sink.onTick?.(nowMs);
    }
    for (const call of this.#slots[subSlot] ?? []) {
      if (call.state === 'media' && call.socket !== undefined) call.socket.write(call.nextMessage());
    }
  }

  /** Starts `calls` calls spread over rampMs; resolves once each is streaming or has failed. */
  async ramp(options: RampOptions): Promise<RampResult> {
    this.scenario = options.scenario;
    this.#step++;
    const startedMs = performance.now();
    const agiToStatus = new LatencyHistogram(30_000);
    const agentReadyToStatus = new LatencyHistogram(30_000);
    this.#agentReadyAtMs.clear();
    const failures: Record<string, number> = {};
    let live = 0;
    const fail = (reason: string): void => {
      failures[reason] = (failures[reason] ?? 0) + 1;
    };
    const settled: Promise<void>[] = [];
    this.#calls = Array.from({ length: options.calls }, (_, i) => new EmulatedCall(i, this));
    this.#slots = Array.from({ length: SUB_SLOTS }, (_, slot) => this.#calls.filter((call) => call.index % SUB_SLOTS === slot));
    this.#toStart = [...this.#calls];
    this.#startsPerTick = Math.max(1, Math.ceil(options.calls / Math.max(1, options.rampMs / FRAME_MS)));
    this.#startCall = (call) => {
      settled.push(
        this.#startOne(call, options)
          .then(({ statusMs, afterAgentReadyMs }) => {
            if (statusMs !== undefined) agiToStatus.record(statusMs);
            if (afterAgentReadyMs !== undefined) agentReadyToStatus.record(afterAgentReadyMs);
            live++;
          })
          .catch((err: unknown) => {
            call.state = 'ended';
            fail(err instanceof Error ? err.message.slice(0, 120) : String(err));
          }),
      );
    };
    this.#ticker.start();
    while (this.#toStart.length > 0) await sleep(FRAME_MS);
    await Promise.all(settled);
    this.#startCall = undefined;
    return {
      requested: options.calls,
      live,
      failed: options.calls - live,
      failures,
      agiToStatus: agiToStatus.summary(),
      agentReadyToStatus: agentReadyToStatus.summary(),
      rampMs: Math.round(performance.now() - startedMs),
    };
  }

  /**
   * `probes` single calls, one every intervalMs, while the step's calls stream: each runs the assign
   * AGI, then at once its result AGI, which ends the call before media (as a caller who hangs up).
   */
  async probe(options: ProbeOptions): Promise<ProbeResult> {
    const agiToStatus = new LatencyHistogram(30_000);
    const agentReadyToStatus = new LatencyHistogram(30_000);
    let failed = 0;
    const one = async (index: number): Promise<void> => {
      try {
        const agi = await runAgi(options.agiHost, options.agiPort, `ai-call?agent=${options.agent}`, `${this.#step}.p${index}`);
        const uuid = (agi.variables['AI_UUID'] ?? '').toLowerCase();
        if (agi.variables['AI_STATUS'] !== 'READY' || agi.statusMs === undefined || uuid === '') {
          failed++;
          return;
        }
        agiToStatus.record(agi.statusMs);
        const afterAgentReadyMs = this.#takeAfterAgentReady(uuid, agi.statusAtMs);
        if (afterAgentReadyMs !== undefined) agentReadyToStatus.record(afterAgentReadyMs);
        await runAgi(options.agiHost, options.agiPort, `ai-call/result?uuid=${uuid}`, `${this.#step}.p${index}.r`);
      } catch {
        failed++;
      }
    };
    const running: Promise<void>[] = [];
    for (let i = 0; i < options.probes; i++) {
      running.push(one(i));
      await sleep(options.intervalMs);
    }
    await Promise.all(running);
    return { probes: options.probes, failed, agiToStatus: agiToStatus.summary(), agentReadyToStatus: agentReadyToStatus.summary() };
  }

  /** ms from the fake agent of call `uuid` being ready to its AI_STATUS line; forgets the call. */
  #takeAfterAgentReady(uuid: string, statusAtMs: number | undefined): number | undefined {
    const readyAtMs = this.#agentReadyAtMs.get(uuid);
    this.#agentReadyAtMs.delete(uuid);
    return readyAtMs !== undefined && statusAtMs !== undefined ? statusAtMs - readyAtMs : undefined;
  }

  async #startOne(call: EmulatedCall, options: RampOptions): Promise<{ statusMs: number | undefined; afterAgentReadyMs: number | undefined }> {
    const agi = await runAgi(options.agiHost, options.agiPort, `ai-call?agent=${options.agent}`, `${this.#step}.${call.index}`);
    const status = agi.variables['AI_STATUS'];
    if (status !== 'READY') throw new Error(`AI_STATUS=${status ?? '(none)'} ${agi.variables['AI_ERROR'] ?? ''}`.trim());
    const uuid = agi.variables['AI_UUID'] ?? '';
    const target = /^(.+):(\d+)$/.exec(agi.variables['AI_AUDIOSOCKET'] ?? '');
    if (!target || uuid === '') throw new Error('AI_UUID or AI_AUDIOSOCKET missing');
    call.uuid = uuid.toLowerCase();
    const afterAgentReadyMs = this.#takeAfterAgentReady(call.uuid, agi.statusAtMs);
    this.#byUuid.set(call.uuid, call);
    const socket = connect({ host: target[1]!.replace(/^\[|\]$/g, ''), port: Number(target[2]), noDelay: true });
    call.socket = socket;
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.on('data', call.onData);
    socket.on('error', () => socket.destroy());
    socket.on('end', () => this.onServerEnded(call));
    socket.on('close', () => this.onServerEnded(call));
    // UUID first, then frames from the next tick on (§1.3; §1.7: audio flows from the start).
    socket.write(encodeUuidMessage(uuid));
    call.state = 'media';
    return { statusMs: agi.statusMs, afterAgentReadyMs };
  }

  measureStart(): void {
    for (const call of this.#calls) call.resetWindow();
    this.#ticker.tickLate.reset();
    this.#ticker.tickBusy.reset();
    this.#ticker.lateTicks = [];
    this.#ticker.skippedFrames = 0;
    this.#loopDelay.enable();
    this.#loopDelay.reset();
    this.window = new Window();
  }

  measureStop(fake: Readonly<Record<string, number>> | undefined): WindowResult {
    const window = this.window ?? new Window();
    this.#loopDelay.disable();
    for (const call of this.#calls) call.finishBargeIn();
    this.window = undefined;
    let framesLost = 0;
    let calls = 0;
    for (const call of this.#calls) {
      if (call.windowFrames === 0) continue;
      calls++;
      const slots = Math.round((call.windowLastMs - call.windowFirstMs) / FRAME_MS) + 1;
      framesLost += Math.max(0, slots - call.windowFrames);
    }
    return {
      durationMs: Math.round(performance.now() - window.startMs),
      calls,
      endedByServer: window.endedByServer,
      interFrame: window.interFrame.summary(),
      gapsOver40Ms: window.interFrame.countAbove(40),
      framesReceived: window.framesReceived,
      framesLost,
      uplink: window.uplink.summary(),
      downlinkRaw: window.downlinkRaw.summary(),
      downlinkAdded: estimateSlotLatency(window.slotSamples),
      ...attributeGaps(window.gaps, this.#ticker.lateTicks.map((t) => ({ atMs: t.atMs - window.startMs, lateMs: t.lateMs }))),
      bargeIn: { count: window.bargeIns, flushMs: window.bargeFlush.summary(), staleFramesMax: window.staleFramesMax, overOneFrame: window.overOneFrame },
      loadgen: {
        tickLateMs: this.#ticker.tickLate.summary(),
        tickBusyMs: this.#ticker.tickBusy.summary(),
        skippedFrames: this.#ticker.skippedFrames,
        loopDelayMs: {
          p50: Math.round(this.#loopDelay.percentile(50) / 1e4) / 100,
          p99: Math.round(this.#loopDelay.percentile(99) / 1e4) / 100,
          max: Math.round(this.#loopDelay.max / 1e4) / 100,
        },
      },
      fake,
    };
  }

  /** Uplink latency sample from the fake; counted only inside a window. */
  recordUplink(ms: number): void {
    this.window?.uplink.record(ms);
  }

  /** Caller hangs up every call (EOF on AudioSocket), then asks each outcome with the result AGI. */
  async hangup(agiHost: string, agiPort: number): Promise<HangupResult> {
    const startedMs = performance.now();
    const calls = this.#calls.filter((call) => call.uuid !== '');
    for (const call of this.#calls) {
      if (call.state === 'media') call.state = 'ended';
      call.socket?.end();
    }
    const results: Record<string, number> = {};
    let next = 0;
    const deadlineMs = startedMs + RESULT_PHASE_MS;
    const worker = async (): Promise<void> => {
      while (next < calls.length) {
        const call = calls[next++]!;
        if (performance.now() > deadlineMs) {
          results['(not asked: result phase over time)'] = (results['(not asked: result phase over time)'] ?? 0) + 1;
          continue;
        }
        let result: string;
        try {
          const agi = await runAgi(agiHost, agiPort, `ai-call/result?uuid=${call.uuid}`, `${this.#step}.${call.index}.r`);
          result = agi.variables['AI_RESULT'] ?? '(none)';
        } catch (err) {
          result = `error: ${err instanceof Error ? err.message : String(err)}`;
        }
        results[result] = (results[result] ?? 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: RESULT_CONCURRENCY }, () => worker()));
    for (const call of this.#calls) call.socket?.destroy();
    this.#ticker.stop();
    this.#calls = [];
    this.#slots = [];
    this.#byUuid.clear();
    return { calls: calls.length, resultsOk: results['CALLER_HANGUP'] ?? 0, results, durationMs: Math.round(performance.now() - startedMs) };
  }
}

/**
 * Groups gaps that ended within STALL_CLUSTER_MS of each other into stalls, and blames each stall on
 * the load generator when one of its ticks was more than LATE_TICK_MS late while it lasted.
 */
function attributeGaps(
  gaps: ReadonlyArray<{ atMs: number; gapMs: number }>,
  lateTicks: ReadonlyArray<{ atMs: number; lateMs: number }>,
): Pick<WindowResult, 'stalls' | 'serverGapsOver40Ms'> {
  const sorted = [...gaps].sort((a, b) => a.atMs - b.atMs);
  const stalls: Array<{ atMs: number; calls: number; maxGapMs: number; cause: 'server' | 'loadgen' }> = [];
  let lastAt = -Infinity;
  for (const gap of sorted) {
    const last = stalls[stalls.length - 1];
    if (last && gap.atMs - lastAt <= STALL_CLUSTER_MS) {
      last.calls++;
      last.maxGapMs = Math.max(last.maxGapMs, Math.round(gap.gapMs * 10) / 10);
    } else {
      stalls.push({ atMs: Math.round(gap.atMs), calls: 1, maxGapMs: Math.round(gap.gapMs * 10) / 10, cause: 'server' });
    }
    lastAt = gap.atMs;
  }
  let serverGaps = 0;
  for (const stall of stalls) {
    const from = stall.atMs - stall.maxGapMs - 5;
    const to = stall.atMs + STALL_CLUSTER_MS + 5;
    if (lateTicks.some((tick) => tick.atMs >= from && tick.atMs <= to + tick.lateMs)) stall.cause = 'loadgen';
    else serverGaps += stall.calls;
  }
  return { stalls: stalls.sort((a, b) => b.calls - a.calls).slice(0, 20), serverGapsOver40Ms: serverGaps };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
