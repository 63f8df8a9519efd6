import { describe, expect, it, vi } from 'vitest';
import type { Clock, TimerHandle } from '../../src/audio/clock.js';
import { FrameClock, type FrameListener } from '../../src/audio/frame-clock.js';
import { ManualClock } from '../support/manual-clock.js';

/**
 * A ManualClock whose now() can jump ahead of its timers: `stall(ms)` makes the pending timer fire `ms`
 * late, the way a blocked event loop does.
 */
class StallClock implements Clock {
  readonly inner = new ManualClock();
  #lagMs = 0;
  now(): number {
    return this.inner.now() + this.#lagMs;
  }
  wallNow(): number {
    return this.inner.wallNow() + this.#lagMs;
  }
  setTimer(callback: () => void, delayMs: number): TimerHandle {
    return this.inner.setTimer(callback, delayMs);
  }
  clearTimer(handle: TimerHandle): void {
    this.inner.clearTimer(handle);
  }
  stall(ms: number): void {
    this.#lagMs += ms;
  }
}

function counter(): FrameListener & { count: number; times: number[] } {
  return {
    count: 0,
    times: [],
    onFrame() {
      this.count++;
    },
  };
}

function setup(maxCatchUpFrames = 3): { clock: ManualClock; frames: FrameClock } {
  const clock = new ManualClock();
  return { clock, frames: new FrameClock({ clock, frameMs: 20, maxCatchUpFrames }) };
}

describe('FrameClock timing', () => {
  it('runs no timer without listeners', () => {
    const { clock, frames } = setup();
    expect(clock.pendingTimers).toBe(0);
    clock.advance(1_000);
    expect(frames.stats.ticks).toBe(0);
  });

  it('starts on the first add, anchored at that moment, one frame per 20 ms', () => {
    const { clock, frames } = setup();
    clock.advance(7);
    const at: number[] = [];
    frames.add({ onFrame: () => at.push(clock.now()) });
    clock.advance(19);
    expect(at).toEqual([]);
    clock.advance(1);
    expect(at).toEqual([1_027]);
    clock.advance(100);
    expect(at).toEqual([1_027, 1_047, 1_067, 1_087, 1_107, 1_127]);
  });

  it('delivers exactly advance / 20 frames over a long run (no drift)', () => {
    const { clock, frames } = setup();
    const listener = counter();
    frames.add(listener);
    for (let i = 0; i < 600; i++) clock.advance(i % 2 === 0 ? 7 : 33); // steps that straddle deadlines
    expect(listener.count).toBe((300 * (7 + 33)) / 20);
    expect(frames.stats.lateTicks).toBe(0);
    expect(frames.stats.skippedFrames).toBe(0);
  });

  it('uses one timer for any number of listeners', () => {
    const { clock, frames } = setup();
    const listeners = Array.from({ length: 500 }, counter);
    for (const l of listeners) frames.add(l);
    expect(clock.pendingTimers).toBe(1);
    for (let i = 0; i < 50; i++) {
      clock.advance(20);
      expect(clock.pendingTimers).toBe(1);
    }
    expect(listeners.every((l) => l.count === 50)).toBe(true);
    expect(frames.stats.ticks).toBe(50);
  });

  it('uses absolute deadlines: setTimer gets next − now, not a fixed 20', () => {
    const clock = new StallClock();
    const setTimer = vi.spyOn(clock, 'setTimer');
    const frames = new FrameClock({ clock, frameMs: 20, maxCatchUpFrames: 3 });
    frames.add(counter());
    expect(setTimer).toHaveBeenLastCalledWith(expect.any(Function), 20);
    clock.stall(7); // the next tick fires 7 ms late
    clock.inner.advance(20);
    expect(setTimer).toHaveBeenLastCalledWith(expect.any(Function), 13);
  });

  it('catches up after a stall with at most maxCatchUpFrames per listener, skipping the rest', () => {
    const clock = new StallClock();
    const frames = new FrameClock({ clock, frameMs: 20, maxCatchUpFrames: 3 });
    const a = counter();
    const b = counter();
    frames.add(a);
    frames.add(b);
    clock.inner.advance(20);
    expect(a.count).toBe(1);
    clock.stall(50); // deadlines at +20 (due), +40, +60 have passed when it fires: 3 frames
    clock.inner.advance(20);
    expect([a.count, b.count]).toEqual([4, 4]);
    expect(frames.stats).toMatchObject({ ticks: 2, lateTicks: 1, catchUpFrames: 2, skippedFrames: 0 });
    clock.stall(150); // the re-armed tick (10 ms away) fires 150 ms late: 8 frames due, 3 played, 5 skipped
    clock.inner.advance(10);
    expect([a.count, b.count]).toEqual([7, 7]);
    expect(frames.stats).toMatchObject({ ticks: 3, lateTicks: 2, catchUpFrames: 4, skippedFrames: 5 });
    // Back on the 20 ms grid afterwards: one frame per tick again.
    const ticks = frames.stats.ticks;
    for (let i = 0; i < 10; i++) clock.inner.advance(20);
    expect(a.count).toBe(17);
    expect(frames.stats.ticks - ticks).toBe(10);
    expect(frames.stats.lateTicks).toBe(2);
  });

  it('a tick up to 1 ms early counts as on time', () => {
    const clock = new StallClock();
    const frames = new FrameClock({ clock, frameMs: 20, maxCatchUpFrames: 3 });
    const a = counter();
    frames.add(a);
    clock.stall(-0.6); // fires 0.6 ms before the deadline by now()
    clock.inner.advance(20);
    expect(a.count).toBe(1);
    clock.inner.advance(20.6); // re-armed for the real deadline, 20.6 ms away
    expect(a.count).toBe(2);
    expect(frames.stats.lateTicks).toBe(0);
  });

  it('a tick that is clearly early delivers nothing and re-arms for the deadline', () => {
    const clock = new StallClock();
    const frames = new FrameClock({ clock, frameMs: 20, maxCatchUpFrames: 3 });
    const a = counter();
    frames.add(a);
    clock.stall(-5);
    clock.inner.advance(20);
    expect(a.count).toBe(0);
    expect(clock.inner.pendingTimers).toBe(1);
    clock.inner.advance(5);
    expect(a.count).toBe(1);
  });
});

describe('FrameClock listeners', () => {
  it('stops the timer when the last listener leaves and re-anchors on the next add', () => {
    const { clock, frames } = setup();
    const a = counter();
    frames.add(a);
    clock.advance(50);
    frames.remove(a);
    expect(clock.pendingTimers).toBe(0);
    expect(frames.size).toBe(0);
    clock.advance(1_000);
    expect(a.count).toBe(2);
    frames.add(a);
    clock.advance(15);
    expect(a.count).toBe(2);
    clock.advance(5);
    expect(a.count).toBe(3);
  });

  it('adding the same listener twice registers it once', () => {
    const { clock, frames } = setup();
    const a = counter();
    frames.add(a);
    frames.add(a);
    expect(frames.size).toBe(1);
    clock.advance(20);
    expect(a.count).toBe(1);
  });

  it('a listener may remove itself during onFrame', () => {
    const { clock, frames } = setup();
    let calls = 0;
    const once: FrameListener = {
      onFrame() {
        calls++;
        frames.remove(once);
      },
    };
    const other = counter();
    frames.add(once);
    frames.add(other);
    clock.advance(100);
    expect(calls).toBe(1);
    expect(other.count).toBe(5);
    expect(clock.pendingTimers).toBe(1);
  });

  it('a listener removed by an earlier one in the same tick is not called again, even in a burst', () => {
    const clock = new StallClock();
    const frames = new FrameClock({ clock, frameMs: 20, maxCatchUpFrames: 3 });
    const victim = counter();
    const killer: FrameListener = { onFrame: () => frames.remove(victim) };
    frames.add(killer);
    frames.add(victim);
    clock.stall(45);
    clock.inner.advance(20); // 3 frames due
    expect(victim.count).toBe(0);
  });

  it('a listener added during a tick starts at the next tick', () => {
    const { clock, frames } = setup();
    const late = counter();
    const adder: FrameListener = { onFrame: () => frames.add(late) };
    frames.add(adder);
    clock.advance(20);
    expect(late.count).toBe(0);
    expect(frames.size).toBe(2);
    clock.advance(20);
    expect(late.count).toBe(1);
  });

  it('the last listener removing itself stops the timer; re-adding inside the tick keeps it going', () => {
    const { clock, frames } = setup();
    const quitter: FrameListener = { onFrame: () => frames.remove(quitter) };
    frames.add(quitter);
    clock.advance(20);
    expect(clock.pendingTimers).toBe(0);

    const replacement = counter();
    const swapper: FrameListener = {
      onFrame() {
        frames.remove(swapper);
        frames.add(replacement);
      },
    };
    frames.add(swapper);
    clock.advance(20);
    expect(clock.pendingTimers).toBe(1);
    clock.advance(40);
    expect(replacement.count).toBe(2);
  });

  it('isolates a throwing listener: the others run, onError hears about it, it stays registered', () => {
    const clock = new ManualClock();
    const errors: unknown[] = [];
    const frames = new FrameClock({ clock, frameMs: 20, maxCatchUpFrames: 3, onError: (err) => errors.push(err) });
    const before = counter();
    const after = counter();
    const boom = new Error('boom');
    const bad: FrameListener = {
      onFrame() {
        throw boom;
      },
    };
    frames.add(before);
    frames.add(bad);
    frames.add(after);
    clock.advance(60);
    expect([before.count, after.count]).toEqual([3, 3]);
    expect(errors).toEqual([boom, boom, boom]);
    expect(frames.stats.listenerErrors).toBe(3);
    expect(frames.size).toBe(3);
    expect(clock.pendingTimers).toBe(1);
  });

  it('survives a throwing onError and a missing one', () => {
    const clock = new ManualClock();
    const frames = new FrameClock({
      clock,
      frameMs: 20,
      maxCatchUpFrames: 3,
      onError: () => {
        throw new Error('reporter broke');
      },
    });
    const ok = counter();
    frames.add({
      onFrame() {
        throw new Error('x');
      },
    });
    frames.add(ok);
    clock.advance(40);
    expect(ok.count).toBe(2);

    const quiet = new FrameClock({ clock, frameMs: 20, maxCatchUpFrames: 3 });
    quiet.add({
      onFrame() {
        throw new Error('y');
      },
    });
    expect(() => clock.advance(20)).not.toThrow();
    expect(quiet.stats.listenerErrors).toBe(1);
  });

  it('close() stops everything, is idempotent, and refuses new listeners', () => {
    const { clock, frames } = setup();
    const a = counter();
    frames.add(a);
    clock.advance(20);
    frames.close();
    frames.close();
    expect(clock.pendingTimers).toBe(0);
    expect(frames.size).toBe(0);
    clock.advance(100);
    expect(a.count).toBe(1);
    expect(() => frames.add(a)).toThrow(/closed/);
  });

  it('close() from inside onFrame stops the rest of the tick', () => {
    const { clock, frames } = setup();
    const later = counter();
    frames.add({ onFrame: () => frames.close() });
    frames.add(later);
    clock.advance(20);
    expect(later.count).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('validates its options', () => {
    const clock = new ManualClock();
    expect(() => new FrameClock({ clock, frameMs: 0, maxCatchUpFrames: 3 })).toThrow(RangeError);
    expect(() => new FrameClock({ clock, frameMs: 20, maxCatchUpFrames: 0 })).toThrow(RangeError);
  });
});

describe('FrameClock phases: calls spread over the period, each still on its own 20 ms grid', () => {
  function timed(clock: Clock): FrameListener & { times: number[] } {
    return {
      times: [],
      onFrame() {
        this.times.push(clock.now());
      },
    };
  }

  it('spreads listeners evenly over the phases, one timer, exactly one frame per 20 ms each', () => {
    const clock = new ManualClock();
    const frames = new FrameClock({ clock, frameMs: 20, maxCatchUpFrames: 3, phases: 4 });
    const listeners = Array.from({ length: 10 }, () => timed(clock));
    for (const l of listeners) {
      frames.add(l);
      clock.advance(1); // calls arrive at arbitrary moments
    }
    expect([...frames.phaseSizes].sort()).toEqual([2, 2, 3, 3]);
    for (let i = 0; i < 400; i++) {
      clock.advance(i % 2 === 0 ? 3 : 7);
      expect(clock.pendingTimers).toBe(1);
    }
    for (const l of listeners) {
      const steps = l.times.slice(1).map((t, i) => t - l.times[i]!);
      expect(new Set(steps)).toEqual(new Set([20]));
    }
    // Four distinct slots in the period, 5 ms apart.
    const slots = new Set(listeners.map((l) => l.times[0]! % 20));
    expect([...slots].sort((a, b) => a - b)).toEqual([0, 5, 10, 15]);
    expect(frames.stats.lateTicks).toBe(0);
  });

  it('the first listener is anchored a whole period after it joins; the next ones join the emptiest phase', () => {
    const clock = new ManualClock();
    const frames = new FrameClock({ clock, frameMs: 20, maxCatchUpFrames: 3, phases: 4 });
    const first = timed(clock);
    frames.add(first);
    clock.advance(100);
    expect(first.times).toEqual([1_020, 1_040, 1_060, 1_080, 1_100]);
    const second = timed(clock);
    frames.add(second); // at 1100; emptiest phases are due at 1105, 1110, 1115: it takes the last
    clock.advance(20);
    expect(second.times).toEqual([1_115]);
    frames.remove(first);
    const third = timed(clock);
    frames.add(third); // at 1120: the phase due at 1120 is empty again and its slot has passed
    clock.advance(20);
    expect(third.times[0]).toBeGreaterThan(1_120);
    expect(third.times[0]).toBeLessThanOrEqual(1_140);
    expect(second.times).toEqual([1_115, 1_135]);
  });

  it('after a stall every due phase catches up, earliest first, at most maxCatchUpFrames each', () => {
    const clock = new StallClock();
    const frames = new FrameClock({ clock, frameMs: 20, maxCatchUpFrames: 3, phases: 4 });
    const order: string[] = [];
    const named = (name: string): FrameListener & { count: number } => ({
      count: 0,
      onFrame() {
        this.count++;
        order.push(name);
      },
    });
    const a = named('a');
    const b = named('b');
    frames.add(a); // due +20
    frames.add(b); // due +15
    clock.stall(100); // the first timer (at +15) fires at +115 by now()
    clock.inner.advance(15);
    // b: deadlines 15..115 passed (6 due) → 3 played; a: 20..100 passed (5 due) → 3 played.
    expect(order).toEqual(['b', 'b', 'b', 'a', 'a', 'a']);
    expect(frames.stats).toMatchObject({ ticks: 2, lateTicks: 2, catchUpFrames: 4, skippedFrames: 5 });
    expect(clock.inner.pendingTimers).toBe(1);
  });

  it('a listener added during a tick does not run in that tick even if its phase is due in it', () => {
    const clock = new StallClock();
    const frames = new FrameClock({ clock, frameMs: 20, maxCatchUpFrames: 1, phases: 2 });
    const late = counter();
    const adder: FrameListener = { onFrame: () => frames.add(late) };
    const [first, w, v] = [counter(), counter(), counter()];
    frames.add(first); // phase 1, due +20
    frames.add(adder); // phase 0, due +10
    frames.add(w); // phase 1
    frames.add(v); // phase 0
    frames.remove(w);
    expect(frames.phaseSizes).toEqual([2, 1]);
    clock.stall(15); // the timer for +10 fires at +25: phase 0 runs, then phase 1 (due +20)
    clock.inner.advance(20);
    // The adder put `late` into phase 1 (the emptier one) while phase 1 was still due in that tick.
    expect(first.count).toBe(1);
    expect(late.count).toBe(0);
    expect(frames.phaseSizes).toEqual([2, 2]);
    clock.inner.advance(20);
    expect(late.count).toBe(1);
    expect(first.count).toBe(2);
  });

  it('validates phases', () => {
    const clock = new ManualClock();
    expect(() => new FrameClock({ clock, frameMs: 20, maxCatchUpFrames: 3, phases: 0 })).toThrow(RangeError);
    expect(() => new FrameClock({ clock, frameMs: 20, maxCatchUpFrames: 3, phases: 2.5 })).toThrow(RangeError);
  });
});
