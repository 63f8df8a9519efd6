/**
 * Streaming sample-rate conversion by a rational factor L/M with a polyphase windowed-sinc FIR
 * (dependencies.md §4: our own filter, Kaiser window).
 *
 *   input x[j] ──► upsample by L (zero-stuff) ──► low-pass h[m] at L·fromHz ──► keep every M-th ──► y[n]
 *
 * Only the products that survive both steps are computed: output n sits at intermediate index t = n·M,
 * uses phase p = t mod L of the filter and the input samples ending at i = ⌊t/L⌋:
 *
 *   y[n] = L · Σ_k h[p + k·L] · x[i − k],  k = 0 … K−1
 *
 * The filter spans `taps` samples of the lower of the two rates, so its shape (and quality) is the same
 * for every rate pair. Default design (cutoff 0.95 × the lower Nyquist, Kaiser β = 9.5, 32 taps), as
 * asserted in test/audio/resample.test.ts: passband within 0.45 dB up to 0.85 × Nyquist (3.4 kHz at
 * 8 kHz), ≥ 87 dB of attenuation from 1.14 × Nyquist (4.56 kHz at 8 kHz), ≥ 98 dB from 1.25 × Nyquist
 * (5 kHz), −13.5 dB at Nyquist itself; group delay about 2 ms against 8 kHz, 1 ms against 16 kHz.
 * Cost per output sample: 32 × max(1, from / to) multiply-adds. The 48-tap β = 8 prototype in
 * dependencies.md §4 lost 0.9 dB at 3.3 kHz, hence the longer filter.
 *
 * State carried between calls: the last K−1 input samples and the filter phase, so feeding a stream in
 * 20 ms frames gives bit-for-bit the output of one call over the whole stream, and exactly
 * ⌈n·L/M⌉ output samples after n input samples.
 */

/** Filter span in samples of the lower rate (taps per phase when upsampling). */
const DEFAULT_TAPS = 32;
/** Kaiser β: sidelobes about 95 dB down (Kaiser's formula A ≈ β / 0.1102 + 8.7). */
const KAISER_BETA = 9.5;
/** Cutoff (−6 dB point) as a fraction of the lower rate's Nyquist frequency. */
const CUTOFF_RATIO = 0.95;
/** Above this many phases (L) the coefficient table gets large; 8000 → 22050 needs 441. */
const MAX_PHASES = 4_096;

export interface ResamplerOptions {
  /** Filter span in samples of the lower rate; more taps = sharper filter, proportionally more CPU. Default 32. */
  readonly taps?: number;
}

export class Resampler {
  readonly fromHz: number;
  readonly toHz: number;
  /** Interpolation factor L (to / gcd). */
  readonly upFactor: number;
  /** Decimation factor M (from / gcd). */
  readonly downFactor: number;
  /** Input samples each output sample is computed from (K, a multiple of 4). */
  readonly tapsPerPhase: number;
  /** Group delay of the filter, in output samples (may be fractional). */
  readonly delaySamples: number;

  /** Coefficients by phase: `#coefs[p·K + j]` multiplies `#history[i − K + 1 + j]`; scaled by L. */
  readonly #coefs: Float64Array;
  /**
   * 2:1 upsampling only: phase 1 of the filter is phase 0 reversed (the prototype is symmetric), so
   * both outputs of one input position come from the folded pairs x[j] ± x[K−1−j] with these halves:
   * `#evenHalf[j] = (c0[j] + c0[K−1−j]) / 2`, `#oddHalf[j] = (c0[j] − c0[K−1−j]) / 2`.
   */
  readonly #evenHalf: Float64Array | undefined;
  readonly #oddHalf: Float64Array | undefined;
  /** The last K−1 input samples, then room for the current call's input. */
  #history: Float64Array;
  /** Index in `#history` of the input sample the next output ends at (K−1 ≤ #index). */
  #index: number;
  /** Filter phase (0 ≤ #phase < L) of the next output. */
  #phase = 0;

  constructor(fromHz: number, toHz: number, options: ResamplerOptions = {}) {
    if (!Number.isInteger(fromHz) || !Number.isInteger(toHz) || fromHz <= 0 || toHz <= 0) {
      throw new RangeError(`Resampler: rates must be positive integers in Hz, got ${fromHz} → ${toHz}`);
    }
    const taps = options.taps ?? DEFAULT_TAPS;
    if (!Number.isInteger(taps) || taps < 4 || taps > 1_024) {
      throw new RangeError(`Resampler: taps must be an integer in 4…1024, got ${taps}`);
    }
    const divisor = gcd(fromHz, toHz);
    const up = toHz / divisor;
    const down = fromHz / divisor;
    if (up > MAX_PHASES) {
      throw new RangeError(`Resampler: ${fromHz} → ${toHz} Hz needs ${up} filter phases (max ${MAX_PHASES})`);
    }
    this.fromHz = fromHz;
    this.toHz = toHz;
    this.upFactor = up;
    this.downFactor = down;

    const lowerHz = Math.min(fromHz, toHz);
    // Whole groups of 4 so the inner loop can run four accumulators (about 30 % faster in V8).
    const perPhase = Math.ceil((taps * fromHz) / lowerHz / 4) * 4;
    const length = perPhase * up;
    this.tapsPerPhase = perPhase;
    this.delaySamples = (length - 1) / 2 / down;
    this.#coefs = designPolyphase(up, perPhase, (CUTOFF_RATIO * lowerHz) / 2 / (up * fromHz));
    this.#history = new Float64Array(perPhase - 1 + 1_024);
    this.#index = perPhase - 1;
    if (up === 2 && down === 1) {
      const half = perPhase / 2;
      this.#evenHalf = new Float64Array(half);
      this.#oddHalf = new Float64Array(half);
      for (let j = 0; j < half; j++) {
        const p = this.#coefs[j]!;
        const q = this.#coefs[perPhase - 1 - j]!;
        this.#evenHalf[j] = (p + q) / 2;
        this.#oddHalf[j] = (p - q) / 2;
      }
    }
  }

  /** Exactly how many samples the next `process()` of `inputSamples` samples will return. */
  outputLength(inputSamples: number): number {
    const end = this.tapsPerPhase - 1 + inputSamples; // first history index with no sample
    const remaining = (end - this.#index) * this.upFactor - this.#phase; // intermediate steps left
    return remaining <= 0 ? 0 : Math.ceil(remaining / this.downFactor);
  }

  /** Converts the next chunk of the stream; the result is a new array the caller owns. */
  process(input: Int16Array): Int16Array {
    const output = new Int16Array(this.outputLength(input.length));
    this.processInto(input, output);
    return output;
  }

  /**
   * Converts the next chunk into `output` from index `outputStart`, without allocating; returns the
   * number of samples written (`outputLength(input.length)`). Throws if `output` is too short.
   */
  processInto(input: Int16Array, output: Int16Array, outputStart = 0): number {
    const count = this.outputLength(input.length);
    if (outputStart + count > output.length) {
      throw new RangeError(`Resampler: output has room for ${output.length - outputStart} samples, needs ${count}`);
    }
    const keep = this.tapsPerPhase - 1;
    const end = keep + input.length;
    if (end > this.#history.length) {
      const grown = new Float64Array(Math.max(end, this.#history.length * 2));
      grown.set(this.#history.subarray(0, keep));
      this.#history = grown;
    }
    const history = this.#history;
    for (let j = 0; j < input.length; j++) history[keep + j] = input[j]!;

    const coefs = this.#coefs;
    const perPhase = this.tapsPerPhase;
    const up = this.upFactor;
    const downWhole = Math.floor(this.downFactor / up); // whole input samples per output
    const downFraction = this.downFactor - downWhole * up; // remaining phase steps per output
    let index = this.#index;
    let phase = this.#phase;
    const evenHalf = this.#evenHalf;
    const oddHalf = this.#oddHalf;
    const half = perPhase >> 1;
    for (let n = 0; n < count; ) {
      const base = index - keep;
      if (evenHalf !== undefined && oddHalf !== undefined && phase === 0 && n + 1 < count) {
        // 2:1 up: both phases at once from folded pairs (2 multiplies per tap pair instead of 4).
        let even0 = 0;
        let even1 = 0;
        let odd0 = 0;
        let odd1 = 0;
        for (let j = 0; j < half; j += 2) {
          const a0 = history[base + j]!;
          const b0 = history[base + perPhase - 1 - j]!;
          const a1 = history[base + j + 1]!;
          const b1 = history[base + perPhase - 2 - j]!;
          even0 += evenHalf[j]! * (a0 + b0);
          odd0 += oddHalf[j]! * (a0 - b0);
          even1 += evenHalf[j + 1]! * (a1 + b1);
          odd1 += oddHalf[j + 1]! * (a1 - b1);
        }
        const even = even0 + even1;
        const odd = odd0 + odd1;
        output[outputStart + n] = clip(even + odd);
        output[outputStart + n + 1] = clip(even - odd);
        n += 2;
        index++;
        continue;
      }
      let acc: number;
      if (up === 1) {
        // Decimation: one phase, symmetric: fold x[j] + x[K−1−j] (half the multiplies).
        let acc0 = 0;
        let acc1 = 0;
        for (let j = 0; j < half; j += 2) {
          acc0 += coefs[j]! * (history[base + j]! + history[base + perPhase - 1 - j]!);
          acc1 += coefs[j + 1]! * (history[base + j + 1]! + history[base + perPhase - 2 - j]!);
        }
        acc = acc0 + acc1;
      } else {
        const offset = phase * perPhase;
        let acc0 = 0;
        let acc1 = 0;
        let acc2 = 0;
        let acc3 = 0;
        for (let j = 0; j < perPhase; j += 4) {
          acc0 += coefs[offset + j]! * history[base + j]!;
          acc1 += coefs[offset + j + 1]! * history[base + j + 1]!;
          acc2 += coefs[offset + j + 2]! * history[base + j + 2]!;
          acc3 += coefs[offset + j + 3]! * history[base + j + 3]!;
        }
        acc = acc0 + acc1 + (acc2 + acc3);
      }
      output[outputStart + n] = clip(acc);
      n++;
      index += downWhole;
      phase += downFraction;
      if (phase >= up) {
        phase -= up;
        index++;
      }
    }
    // Keep the last K−1 samples for the next call and rebase the index onto them.
    history.copyWithin(0, input.length, end);
    this.#index = index - input.length;
    this.#phase = phase;
    return count;
  }

  /**
   * The filter's gain at `freqHz` relative to DC, in dB (analysis aid for tests and tuning). Frequencies
   * are those of the upsampled stream (0 … L·fromHz / 2); what matters is the band up to the lower
   * Nyquist (kept) and everything from `fromHz − f` and `toHz − f` up (images and aliases, removed).
   */
  responseDb(freqHz: number): number {
    const up = this.upFactor;
    const perPhase = this.tapsPerPhase;
    const length = up * perPhase;
    const omega = (2 * Math.PI * freqHz) / (up * this.fromHz);
    // The prototype is symmetric about its centre c, so H(ω) = e^{−jωc} · Σ h[m]·cos(ω(m − c)): a real
    // sum, with cos stepped by the Chebyshev recurrence cos(θ + ω) = 2·cos ω·cos θ − cos(θ − ω).
    const centre = (length - 1) / 2;
    const twoCos = 2 * Math.cos(omega);
    let previous = Math.cos(omega * (-1 - centre));
    let current = Math.cos(omega * -centre);
    let sum = 0;
    let dc = 0;
    for (let m = 0; m < length; m++) {
      const h = this.#coefs[(m % up) * perPhase + (perPhase - 1 - Math.floor(m / up))]!;
      sum += h * current;
      dc += h;
      const next = twoCos * current - previous;
      previous = current;
      current = next;
    }
    return 20 * Math.log10(Math.abs(sum) / Math.abs(dc));
  }

  /** Forgets the stream: history back to silence, phase back to 0. */
  reset(): void {
    this.#history.fill(0);
    this.#index = this.tapsPerPhase - 1;
    this.#phase = 0;
  }
}

function clip(acc: number): number {
  return acc >= 32_767 ? 32_767 : acc <= -32_768 ? -32_768 : Math.round(acc);
}

function gcd(a: number, b: number): number {
  let x = a;
  let y = b;
  while (y !== 0) [x, y] = [y, x % y];
  return x;
}

/** Modified Bessel function of the first kind, order 0 (power series), for the Kaiser window. */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const quarterSquare = (x * x) / 4;
  for (let k = 1; k < 200; k++) {
    term *= quarterSquare / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

/**
 * Kaiser-windowed sinc low-pass of length L·K at the intermediate rate, cut off at `cutoff` cycles per
 * intermediate sample, normalised to a DC gain of L (the zero-stuffing loss), laid out by phase in the
 * order `processInto` walks the history.
 */
function designPolyphase(up: number, perPhase: number, cutoff: number): Float64Array {
  const length = up * perPhase;
  const centre = (length - 1) / 2;
  const prototype = new Float64Array(length);
  const windowScale = 1 / besselI0(KAISER_BETA);
  let sum = 0;
  for (let m = 0; m < length; m++) {
    const x = m - centre;
    const sinc = x === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * x) / (Math.PI * x);
    const r = centre === 0 ? 0 : x / centre;
    const window = besselI0(KAISER_BETA * Math.sqrt(Math.max(0, 1 - r * r))) * windowScale;
    prototype[m] = sinc * window;
    sum += prototype[m]!;
  }
  const gain = up / sum;
  const coefs = new Float64Array(length);
  for (let phase = 0; phase < up; phase++) {
    for (let j = 0; j < perPhase; j++) {
      // history[i − K + 1 + j] is x[i − k] with k = K − 1 − j.
      coefs[phase * perPhase + j] = prototype[phase + (perPhase - 1 - j) * up]! * gain;
    }
  }
  return coefs;
}
