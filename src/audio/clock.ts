/**
 * Time as the rest of ai-call sees it. Production uses the monotonic system clock; tests inject a
 * manual clock so pacing, timeouts and expiry are deterministic.
 */
export interface Clock {
  /** Monotonic milliseconds (fractional); only differences are meaningful. */
  now(): number;
  /** Wall-clock milliseconds since the epoch, for records and status output. */
  wallNow(): number;
  setTimer(callback: () => void, delayMs: number): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

export interface TimerHandle {
  /** Keeps the timer from holding the process open (no-op on manual clocks). */
  unref?(): void;
}

export const systemClock: Clock = Object.freeze({
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimer: (callback: () => void, delayMs: number): TimerHandle => setTimeout(callback, Math.max(0, delayMs)),
  clearTimer: (handle: TimerHandle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
});
