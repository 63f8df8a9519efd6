/**
 * Statistics for the benchmark: a constant-time latency histogram and the estimator used for
 * downlink latency, which can only be observed through the 20 ms frame clock.
 */

/** Summary of one distribution, in milliseconds. `count` 0 means nothing was observed. */
export interface Distribution {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
}

export const EMPTY_DISTRIBUTION: Distribution = Object.freeze({ count: 0, p50: 0, p99: 0, p999: 0, max: 0, mean: 0 });

/**
 * Histogram of millisecond values with fixed 10 µs buckets up to `rangeMs`; larger values are kept
 * exactly (they are rare: gaps, stalls). record() is O(1) and allocation-free, so 50 000 frames a
 * second can be recorded from the hot path.
 */
export class LatencyHistogram {
  static readonly RESOLUTION_MS = 0.01;
  readonly #counts: Uint32Array;
  readonly #rangeMs: number;
  /** Values ≥ rangeMs, exact (bounded: beyond MAX_OVERFLOW only the count and max are kept). */
  #overflow: number[] = [];
  #overflowDropped = 0;
  #count = 0;
  #sum = 0;
  #max = 0;

  static readonly MAX_OVERFLOW = 100_000;

  constructor(rangeMs = 250) {
    this.#rangeMs = rangeMs;
    this.#counts = new Uint32Array(Math.ceil(rangeMs / LatencyHistogram.RESOLUTION_MS));
  }

  get count(): number {
    return this.#count;
  }

  get max(): number {
    return this.#max;
  }

  record(ms: number): void {
    const value = ms < 0 ? 0 : ms;
    this.#count++;
    this.#sum += value;
    if (value > this.#max) this.#max = value;
    if (value < this.#rangeMs) {
      this.#counts[Math.floor(value / LatencyHistogram.RESOLUTION_MS)]!++;
    } else if (this.#overflow.length < LatencyHistogram.MAX_OVERFLOW) {
      this.#overflow.push(value);
    } else {
      this.#overflowDropped++;
    }
  }

  /** Number of recorded values strictly above `ms`. */
  countAbove(ms: number): number {
    let n = 0;
    const first = Math.floor(ms / LatencyHistogram.RESOLUTION_MS) + 1;
    for (let i = first; i < this.#counts.length; i++) n += this.#counts[i]!;
    for (const v of this.#overflow) if (v > ms) n++;
    return n + this.#overflowDropped;
  }

  /** The value at quantile q (0…1): upper edge of the bucket that holds it, or the exact overflow value. */
  quantile(q: number): number {
    if (this.#count === 0) return 0;
    const rank = Math.min(this.#count, Math.max(1, Math.ceil(q * this.#count)));
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) return Math.min(this.#max, (i + 1) * LatencyHistogram.RESOLUTION_MS);
    }
    const overflow = [...this.#overflow].sort((a, b) => a - b);
    const index = rank - seen - 1;
    return overflow[Math.min(index, overflow.length - 1)] ?? this.#max;
  }

  summary(): Distribution {
    if (this.#count === 0) return EMPTY_DISTRIBUTION;
    return {
      count: this.#count,
      p50: round3(this.quantile(0.5)),
      p99: round3(this.quantile(0.99)),
      p999: round3(this.quantile(0.999)),
      max: round3(this.#max),
      mean: round3(this.#sum / this.#count),
    };
  }

  reset(): void {
    this.#counts.fill(0);
    this.#overflow = [];
    this.#overflowDropped = 0;
    this.#count = 0;
    this.#sum = 0;
    this.#max = 0;
  }
}

/**
 * One agent audio burst seen through the paced downlink: the fake sent it `waitMs` before the
 * first 20 ms slot that followed (as predicted from the call's own frame cadence), and it either
 * went out in that slot (`made`) or slipped to a later one.
 */
export interface SlotSample {
  readonly waitMs: number;
  readonly made: boolean;
}

export interface SlotLatencyEstimate {
  readonly samples: number;
  /** Share of bursts that went out in the first slot after they were sent. */
  readonly nextSlotRate: number;
  /** Estimated added latency quantiles (ms); `undefined` when the data cannot bound them. */
  readonly p50: number | undefined;
  readonly p99: number | undefined;
  /** True when p99 is an upper bound at the resolution of the samples (no slip was seen near it). */
  readonly p99IsBound: boolean;
}

/**
 * Agent audio can only leave on the 20 ms clock, so the bridge's own delay δ is never seen
 * directly: a burst sent w ms before the next slot makes that slot iff δ ≤ w. With w spread
 * uniformly over the slot, P(made | w) = F(w), the distribution function of δ ("current status"
 * data). Its maximum-likelihood estimate is the isotonic regression of `made` on w (pool adjacent
 * violators); the q-quantile is the smallest w whose estimate reaches q.
 */
export function estimateSlotLatency(samples: readonly SlotSample[]): SlotLatencyEstimate {
  if (samples.length === 0) return { samples: 0, nextSlotRate: 0, p50: undefined, p99: undefined, p99IsBound: false };
  const sorted = [...samples].sort((a, b) => a.waitMs - b.waitMs);
  // Pool adjacent violators: blocks of (sum, weight, first index), merged while non-monotone.
  const sums: number[] = [];
  const weights: number[] = [];
  const starts: number[] = [];
  for (let i = 0; i < sorted.length; i++) {
    sums.push(sorted[i]!.made ? 1 : 0);
    weights.push(1);
    starts.push(i);
    while (sums.length > 1 && sums[sums.length - 2]! / weights[weights.length - 2]! > sums[sums.length - 1]! / weights[weights.length - 1]!) {
      const s = sums.pop()!;
      const w = weights.pop()!;
      starts.pop();
      sums[sums.length - 1] = sums[sums.length - 1]! + s;
      weights[weights.length - 1] = weights[weights.length - 1]! + w;
    }
  }
  const quantile = (q: number): number | undefined => {
    for (let b = 0; b < sums.length; b++) {
      if (sums[b]! / weights[b]! >= q) return round3(sorted[starts[b]!]!.waitMs);
    }
    return undefined;
  };
  const made = samples.filter((s) => s.made).length;
  const p99 = quantile(0.99);
  return {
    samples: samples.length,
    nextSlotRate: round3(made / samples.length),
    p50: quantile(0.5),
    p99,
    p99IsBound: p99 !== undefined && p99 === round3(sorted[0]!.waitMs),
  };
}

export function round3(value: number): number {
  return Math.round(value * 1000) / 1000;
}
