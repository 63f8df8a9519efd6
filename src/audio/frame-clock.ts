import type { Clock, TimerHandle } from './clock.js';

/**
 * The one process-wide 20 ms clock that paces audio to Asterisk (style.md rule 5, protocols.md §1.7):
 * one timer for every call, never one per call.
 *
 * The frame period is split into `phases` slots (4 in ai-call: a 5 ms tick, each call in one slot).
 * Every call still gets exactly one frame per frameMs on its own absolute deadlines, but a tick writes
 * a quarter of the calls instead of all of them: a FastAGI request, a caller frame bound for the agent
 * or agent audio arriving meanwhile waits for at most a quarter of the frame writes, and the sockets'
 * traffic is spread over the period instead of arriving in one burst.
 *
 *   add(listener) ─► the phase with the fewest listeners (ties: the one due last, so the first clock
 *                    frame comes close to a period after the frame the caller sent on attach)
 *   tick: for each phase whose deadline has passed, earliest first: due = its frames overdue;
 *         onFrame() min(due, maxCatchUpFrames) times per listener of that phase; its deadline
 *         += due × frameMs (absolute deadlines: no drift, late frames are skipped, not replayed);
 *         then setTimer(tick, earliest deadline of a phase with listeners − now)
 *
 * A tick that finds several frames due (the event loop stalled) plays a burst of at most
 * `maxCatchUpFrames` per listener and skips the rest: Asterisk neither buffers nor paces, so a long burst
 * would only overflow the far end (§1.7).
 *
 * Listeners added during a tick start at a later tick; listeners removed during a tick get no further
 * call, even within the same tick. A listener that throws is reported to `onError` and the others still
 * run (it stays registered: its owner decides).
 */
export interface FrameListener {
  onFrame(): void;
}

export interface FrameClockOptions {
  readonly clock: Clock;
  /** Frame period, e.g. 20. */
  readonly frameMs: number;
  /** Most frames delivered per listener in one tick after a stall, e.g. 3. */
  readonly maxCatchUpFrames: number;
  /** Slots per frame period the listeners are spread over (default 1: every listener on one tick). */
  readonly phases?: number;
  /** Called with whatever a listener's onFrame() threw. */
  readonly onError?: (err: unknown, listener: FrameListener) => void;
}

export interface FrameClockStats {
  /** Phase dispatches that delivered at least one frame (phases per period × periods). */
  ticks: number;
  /** Dispatches that found more than one frame due (the event loop was late by a frame or more). */
  lateTicks: number;
  /** Extra frames delivered by late dispatches (bursts), per dispatch, not per listener. */
  catchUpFrames: number;
  /** Frames never delivered because a stall exceeded maxCatchUpFrames, per dispatch. */
  skippedFrames: number;
  /** onFrame() calls that threw. */
  listenerErrors: number;
}

/**
 * Node timers may fire up to about a millisecond before the deadline as measured by performance.now()
 * (libuv rounds its loop time down to whole ms); such a tick counts as on time instead of re-arming a
 * timer for the remaining fraction.
 */
const EARLY_TOLERANCE_MS = 1;

export class FrameClock {
  readonly frameMs: number;
  readonly maxCatchUpFrames: number;
  readonly phases: number;
  readonly stats: FrameClockStats = { ticks: 0, lateTicks: 0, catchUpFrames: 0, skippedFrames: 0, listenerErrors: 0 };

  readonly #clock: Clock;
  readonly #onError: ((err: unknown, listener: FrameListener) => void) | undefined;
  /** The listeners of each phase. */
  readonly #members: Set<FrameListener>[];
  readonly #phaseOf = new Map<FrameListener, number>();
  /** Deadline (clock.now() ms) of each phase's next frame; kept only for phases with listeners. */
  readonly #next: number[];
  /** The listeners a dispatch iterates over, copied at its start (reused array: no per-tick allocation). */
  readonly #snapshot: (FrameListener | undefined)[] = [];
  /** Listeners added during a tick: they join their phase once the tick is over. */
  readonly #joining: FrameListener[] = [];
  #timer: TimerHandle | undefined;
  /** The deadline the armed timer is for. */
  #timerAtMs = 0;
  #ticking = false;
  #closed = false;
  readonly #tick = (): void => this.#onTimer();

  constructor(o: FrameClockOptions) {
    if (!(o.frameMs > 0)) throw new RangeError(`FrameClock: frameMs must be positive, got ${o.frameMs}`);
    if (!Number.isInteger(o.maxCatchUpFrames) || o.maxCatchUpFrames < 1) {
      throw new RangeError(`FrameClock: maxCatchUpFrames must be an integer ≥ 1, got ${o.maxCatchUpFrames}`);
    }
    const phases = o.phases ?? 1;
    if (!Number.isInteger(phases) || phases < 1 || phases > 20) throw new RangeError(`FrameClock: phases must be an integer 1-20, got ${phases}`);
    this.#clock = o.clock;
    this.frameMs = o.frameMs;
    this.maxCatchUpFrames = o.maxCatchUpFrames;
    this.phases = phases;
    this.#onError = o.onError;
    this.#members = Array.from({ length: phases }, () => new Set<FrameListener>());
    this.#next = new Array<number>(phases).fill(0);
  }

  /** Listeners registered. */
  get size(): number {
    return this.#phaseOf.size;
  }

  /** Listeners per phase: how evenly the calls are spread over the period. */
  get phaseSizes(): number[] {
    return this.#members.map((members) => members.size);
  }

  /** Registers `listener` (once; adding it again is a no-op). Its first frame is due at most one period from now. */
  add(listener: FrameListener): void {
    if (this.#closed) throw new Error('FrameClock is closed');
    if (this.#phaseOf.has(listener)) return;
    const now = this.#clock.now();
    if (this.#phaseOf.size === 0) {
      // Anchor every phase afresh, the last one a whole period from now.
      for (let p = 0; p < this.phases; p++) this.#next[p] = now + ((p + 1) * this.frameMs) / this.phases;
    } else {
      // A phase nobody listens to is not ticked; bring its deadline to its next slot after now.
      for (let p = 0; p < this.phases; p++) {
        if (this.#members[p]!.size === 0 && this.#next[p]! <= now) {
          this.#next[p]! += Math.floor((now - this.#next[p]!) / this.frameMs + 1) * this.frameMs;
        }
      }
    }
    let phase = 0;
    for (let p = 1; p < this.phases; p++) {
      const fewer = this.#members[p]!.size - this.#members[phase]!.size;
      if (fewer < 0 || (fewer === 0 && this.#next[p]! > this.#next[phase]!)) phase = p;
    }
    this.#phaseOf.set(listener, phase);
    if (this.#ticking) {
      // Its phase may still be due in this tick; it starts at a later one. The tick arms the timer.
      this.#joining.push(listener);
      return;
    }
    this.#members[phase]!.add(listener);
    if (this.#timer === undefined || this.#next[phase]! < this.#timerAtMs) this.#arm(now);
  }

  /** Unregisters `listener` (no-op if absent). The last one leaving stops the timer. */
  remove(listener: FrameListener): void {
    const phase = this.#phaseOf.get(listener);
    if (phase === undefined) return;
    this.#phaseOf.delete(listener);
    this.#members[phase]!.delete(listener);
    if (this.#phaseOf.size === 0 && this.#timer !== undefined) {
      this.#clock.clearTimer(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Stops the timer and forgets every listener. Idempotent; add() throws afterwards. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#phaseOf.clear();
    for (const members of this.#members) members.clear();
    if (this.#timer !== undefined) {
      this.#clock.clearTimer(this.#timer);
      this.#timer = undefined;
    }
  }

  /** (Re)arms the one timer for the earliest deadline of a phase with listeners. */
  #arm(now: number): void {
    let atMs = Infinity;
    for (let p = 0; p < this.phases; p++) if (this.#members[p]!.size > 0 && this.#next[p]! < atMs) atMs = this.#next[p]!;
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer);
    this.#timer = undefined;
    if (atMs === Infinity) return;
    this.#timerAtMs = atMs;
    this.#timer = this.#clock.setTimer(this.#tick, atMs - now);
  }

  #onTimer(): void {
    this.#timer = undefined;
    if (this.#closed || this.#phaseOf.size === 0) return;
    const now = this.#clock.now();
    this.#ticking = true;
    try {
      // Every phase whose deadline has passed, earliest first (a stall can make several due at once).
      for (;;) {
        let phase = -1;
        for (let p = 0; p < this.phases; p++) {
          if (this.#members[p]!.size === 0 || this.#next[p]! > now + EARLY_TOLERANCE_MS) continue;
          if (phase < 0 || this.#next[p]! < this.#next[phase]!) phase = p;
        }
        if (phase < 0 || this.#closed) break;
        const due = Math.floor((now + EARLY_TOLERANCE_MS - this.#next[phase]!) / this.frameMs) + 1;
        const run = Math.min(due, this.maxCatchUpFrames);
        const stats = this.stats;
        stats.ticks++;
        if (due > 1) {
          stats.lateTicks++;
          stats.catchUpFrames += run - 1;
          stats.skippedFrames += due - run;
        }
        this.#next[phase]! += due * this.frameMs;
        this.#dispatch(phase, run);
      }
    } finally {
      this.#ticking = false;
      for (const listener of this.#joining) {
        const phase = this.#phaseOf.get(listener);
        if (phase !== undefined) this.#members[phase]!.add(listener);
      }
      this.#joining.length = 0;
    }
    if (!this.#closed && this.#phaseOf.size > 0 && this.#timer === undefined) this.#arm(this.#clock.now());
  }

  #dispatch(phase: number, frames: number): void {
    const members = this.#members[phase]!;
    const snapshot = this.#snapshot;
    let length = 0;
    for (const listener of members) snapshot[length++] = listener;
    try {
      for (let frame = 0; frame < frames; frame++) {
        for (let k = 0; k < length; k++) {
          const listener = snapshot[k]!;
          if (!members.has(listener)) continue; // removed earlier in this tick, or closed
          try {
            listener.onFrame();
          } catch (err) {
            this.stats.listenerErrors++;
            this.#report(err, listener);
          }
        }
      }
    } finally {
      // Drop the references so a removed call's listener can be collected.
      snapshot.fill(undefined, 0, length);
    }
  }

  #report(err: unknown, listener: FrameListener): void {
    try {
      this.#onError?.(err, listener);
    } catch {
      // An error reporter that throws must not stop the clock for every other call.
    }
  }
}
