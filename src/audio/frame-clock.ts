import type { Clock, TimerHandle } from './clock.js';

/**
 * The one process-wide 20 ms clock that paces audio to Asterisk (style.md rule 5, protocols.md §1.7):
 * one timer for every call, never one per call.
 *
 *   add(first) ─► next = now + frameMs ─► setTimer(tick, next − now)
 *   tick: due = frames whose deadline has passed; onFrame() min(due, maxCatchUpFrames) times per
 *         listener; next += due × frameMs (absolute deadlines: no drift, late frames are skipped, not
 *         replayed); setTimer(tick, next − now) while anyone listens
 *
 * A tick that finds several frames due (the event loop stalled) plays a burst of at most
 * `maxCatchUpFrames` per listener and skips the rest: Asterisk neither buffers nor paces, so a long burst
 * would only overflow the far end (§1.7).
 *
 * Listeners added during a tick start at the next tick; listeners removed during a tick get no further
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
  /** Called with whatever a listener's onFrame() threw. */
  readonly onError?: (err: unknown, listener: FrameListener) => void;
}

export interface FrameClockStats {
  /** Timer callbacks that delivered at least one frame. */
  ticks: number;
  /** Ticks that found more than one frame due (the event loop was late by a frame or more). */
  lateTicks: number;
  /** Extra frames delivered by late ticks (bursts), per tick, not per listener. */
  catchUpFrames: number;
  /** Frames never delivered because a stall exceeded maxCatchUpFrames. */
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
  readonly stats: FrameClockStats = { ticks: 0, lateTicks: 0, catchUpFrames: 0, skippedFrames: 0, listenerErrors: 0 };

  readonly #clock: Clock;
  readonly #onError: ((err: unknown, listener: FrameListener) => void) | undefined;
  readonly #listeners = new Set<FrameListener>();
  /** The listeners a tick iterates over, copied at its start (reused array: no per-tick allocation). */
  readonly #snapshot: (FrameListener | undefined)[] = [];
  #timer: TimerHandle | undefined;
  /** Deadline (clock.now() ms) of the next frame. */
  #next = 0;
  #ticking = false;
  #closed = false;
  readonly #tick = (): void => this.#onTimer();

  constructor(o: FrameClockOptions) {
    if (!(o.frameMs > 0)) throw new RangeError(`FrameClock: frameMs must be positive, got ${o.frameMs}`);
    if (!Number.isInteger(o.maxCatchUpFrames) || o.maxCatchUpFrames < 1) {
      throw new RangeError(`FrameClock: maxCatchUpFrames must be an integer ≥ 1, got ${o.maxCatchUpFrames}`);
    }
    this.#clock = o.clock;
    this.frameMs = o.frameMs;
    this.maxCatchUpFrames = o.maxCatchUpFrames;
    this.#onError = o.onError;
  }

  /** Listeners registered. */
  get size(): number {
    return this.#listeners.size;
  }

  /** Registers `listener` (once; adding it again is a no-op). The first listener starts the clock. */
  add(listener: FrameListener): void {
    if (this.#closed) throw new Error('FrameClock is closed');
    if (this.#listeners.has(listener)) return;
    this.#listeners.add(listener);
    if (this.#listeners.size === 1 && !this.#ticking && this.#timer === undefined) {
      const now = this.#clock.now();
      this.#next = now + this.frameMs;
      this.#arm(now);
    }
  }

  /** Unregisters `listener` (no-op if absent). The last one leaving stops the timer. */
  remove(listener: FrameListener): void {
    if (!this.#listeners.delete(listener)) return;
    if (this.#listeners.size === 0 && this.#timer !== undefined) {
      this.#clock.clearTimer(this.#timer);
      this.#timer = undefined;
    }
  }

  /** Stops the timer and forgets every listener. Idempotent; add() throws afterwards. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    if (this.#timer !== undefined) {
      this.#clock.clearTimer(this.#timer);
      this.#timer = undefined;
    }
  }

  #arm(now: number): void {
    this.#timer = this.#clock.setTimer(this.#tick, this.#next - now);
  }

  #onTimer(): void {
    this.#timer = undefined;
    if (this.#closed || this.#listeners.size === 0) return;
    const now = this.#clock.now();
    const due = Math.floor((now + EARLY_TOLERANCE_MS - this.#next) / this.frameMs) + 1;
    if (due >= 1) {
      const run = Math.min(due, this.maxCatchUpFrames);
      const stats = this.stats;
      stats.ticks++;
      if (due > 1) {
        stats.lateTicks++;
        stats.catchUpFrames += run - 1;
        stats.skippedFrames += due - run;
      }
      this.#next += due * this.frameMs;
      this.#dispatch(run);
    }
    if (!this.#closed && this.#listeners.size > 0 && this.#timer === undefined) this.#arm(this.#clock.now());
  }

  #dispatch(frames: number): void {
    const snapshot = this.#snapshot;
    let length = 0;
    for (const listener of this.#listeners) snapshot[length++] = listener;
    this.#ticking = true;
    try {
      for (let frame = 0; frame < frames; frame++) {
        for (let k = 0; k < length; k++) {
          const listener = snapshot[k]!;
          if (!this.#listeners.has(listener)) continue; // removed earlier in this tick, or closed
          try {
            listener.onFrame();
          } catch (err) {
            this.stats.listenerErrors++;
            this.#report(err, listener);
          }
        }
      }
    } finally {
      this.#ticking = false;
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
