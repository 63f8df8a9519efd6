import type { Clock, TimerHandle } from '../../src/audio/clock.js';

/** A clock that moves only when a test says so; timers fire in deadline order. */
export class ManualClock implements Clock {
  #nowMs: number;
  #wallStartMs: number;
  #timers = new Map<number, { at: number; callback: () => void }>();
  #nextId = 1;

  constructor(startMs = 1_000, wallStartMs = Date.UTC(2026, 10, 24)) {
    this.#nowMs = startMs;
    this.#wallStartMs = wallStartMs - startMs;
  }

  now(): number {
    return this.#nowMs;
  }

  wallNow(): number {
    return this.#wallStartMs + this.#nowMs;
  }

  setTimer(callback: () => void, delayMs: number): TimerHandle {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.#nowMs + Math.max(0, delayMs), callback });
    return { id } as TimerHandle;
  }

  clearTimer(handle: TimerHandle): void {
    this.#timers.delete((handle as { id: number }).id);
  }

  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** Moves time forward, firing every timer that falls due, each at its own deadline. */
  advance(ms: number): void {
    const target = this.#nowMs + ms;
    for (;;) {
      let nextId = -1;
      let nextAt = Infinity;
      for (const [id, timer] of this.#timers) {
        if (timer.at <= target && timer.at < nextAt) {
          nextAt = timer.at;
          nextId = id;
        }
      }
      if (nextId === -1) break;
      const timer = this.#timers.get(nextId)!;
      this.#timers.delete(nextId);
      this.#nowMs = Math.max(this.#nowMs, timer.at);
      timer.callback();
    }
    this.#nowMs = target;
  }
}
