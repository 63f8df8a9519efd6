import { describe, expect, it } from 'vitest';
import { Resampler } from '../../src/audio/resample.js';
import { dominantFrequency, goertzelPower, powerDb, rmsDb, sinadDb, sine, toSamples } from '../support/signal.js';

/** Every rate pair ai-call may need (protocols.md §4.7), both ways. */
const PAIRS: ReadonlyArray<readonly [number, number]> = [
  [8_000, 16_000],
  [8_000, 24_000],
  [8_000, 48_000],
  [16_000, 24_000],
  [16_000, 48_000],
  [8_000, 22_050],
  [8_000, 44_100],
  [16_000, 22_050],
  [16_000, 44_100],
].flatMap(([a, b]) => [[a!, b!] as const, [b!, a!] as const]);

const pairName = ([from, to]: readonly [number, number]): string => `${from} → ${to}`;

/** A small deterministic PRNG (mulberry32) for chunk sizes. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function concat(parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A test signal with content across the band: two tones plus a little deterministic noise. */
function program(rateHz: number, ms: number): Int16Array {
  const a = toSamples(sine(440, ms, rateHz, 9_000));
  const b = toSamples(sine(Math.min(3_100, rateHz / 3), ms, rateHz, 6_000));
  const next = random(7);
  return a.map((x, i) => x + b[i]! + Math.round((next() - 0.5) * 2_000));
}

/** Index of the first sample where `a` and `b` differ, −1 if identical (fast for long arrays). */
function firstDifference(a: Int16Array, b: Int16Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  const x = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const y = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (x.equals(y)) return -1;
  return a.findIndex((v, i) => v !== b[i]);
}

/** Samples that the filter's start-up transient touches, in output samples (generous). */
const settle = (r: Resampler): number => Math.ceil(2 * r.delaySamples) + 8;

/** The lower rate's Nyquist frequency. */
const lowerNyquist = ([from, to]: readonly [number, number]): number => Math.min(from, to) / 2;

describe('Resampler construction', () => {
  it('reduces the ratio: 44100 → 8000 is ×80 / 441, 16000 → 24000 is ×3 / 2', () => {
    const a = new Resampler(44_100, 8_000);
    expect([a.upFactor, a.downFactor]).toEqual([80, 441]);
    const b = new Resampler(16_000, 24_000);
    expect([b.upFactor, b.downFactor]).toEqual([3, 2]);
  });

  it('reports its group delay: 32 taps at 8 ↔ 16 kHz is about 2 ms', () => {
    const up = new Resampler(8_000, 16_000);
    expect(up.tapsPerPhase).toBe(32);
    expect(up.delaySamples).toBeCloseTo(31.5, 6); // (2·32 − 1) / 2 output samples at 16 kHz = 1.97 ms
    const down = new Resampler(16_000, 8_000);
    expect(down.delaySamples).toBeCloseTo(15.75, 6); // 1.97 ms at 8 kHz
  });

  it.each([
    [0, 8_000],
    [8_000, -1],
    [8_000.5, 16_000],
    [Number.NaN, 8_000],
  ])('rejects rates %s → %s', (from, to) => {
    expect(() => new Resampler(from, to)).toThrow(RangeError);
  });

  it('rejects silly tap counts and ratios with too many phases', () => {
    expect(() => new Resampler(8_000, 16_000, { taps: 2 })).toThrow(RangeError);
    expect(() => new Resampler(8_000, 16_000, { taps: 4.5 })).toThrow(RangeError);
    expect(() => new Resampler(8_000, 8_191)).toThrow(/phases/);
  });

  it('processInto refuses an output array that is too short', () => {
    const r = new Resampler(8_000, 16_000);
    expect(() => r.processInto(new Int16Array(160), new Int16Array(319))).toThrow(RangeError);
  });
});

describe.each(PAIRS)('Resampler %i → %i Hz', (from, to) => {
  const pair = [from, to] as const;
  const input = program(from, 1_000);

  it('streaming in 20 ms frames gives bit-for-bit the output of one call', () => {
    const batch = new Resampler(from, to).process(input);
    const streaming = new Resampler(from, to);
    const frame = from / 50; // 20 ms (441 samples at 22.05 kHz, 882 at 44.1 kHz)
    const parts: Int16Array[] = [];
    for (let offset = 0; offset < input.length; offset += frame) parts.push(streaming.process(input.subarray(offset, offset + frame)));
    expect(firstDifference(concat(parts), batch)).toBe(-1);
  });

  it('random chunk sizes (including 0 and 1 sample) give the same output too', () => {
    const batch = new Resampler(from, to).process(input);
    const streaming = new Resampler(from, to);
    const next = random(from + to);
    const parts: Int16Array[] = [];
    for (let offset = 0; offset < input.length; ) {
      const size = Math.min(input.length - offset, Math.floor(next() * 3) === 0 ? Math.floor(next() * 2) : Math.floor(next() * 700));
      parts.push(streaming.process(input.subarray(offset, offset + size)));
      offset += size;
    }
    expect(firstDifference(concat(parts), batch)).toBe(-1);
  });

  it('emits exactly ⌈n·to/from⌉ samples after n input samples, whatever the chunking', () => {
    const r = new Resampler(from, to);
    const next = random(to);
    let fed = 0;
    let produced = 0;
    for (let i = 0; i < 200; i++) {
      const size = Math.floor(next() * 500);
      const expected = r.outputLength(size);
      const out = r.process(new Int16Array(size));
      expect(out.length).toBe(expected);
      fed += size;
      produced += out.length;
      expect(produced).toBe(Math.ceil((fed * to) / from));
    }
  });

  it('passband: flat within ±0.5 dB up to 0.85 × the lower Nyquist (3.4 kHz for 8 kHz), by design', () => {
    const r = new Resampler(from, to);
    const edge = 0.85 * lowerNyquist(pair);
    let worst = 0;
    for (let f = 0; f <= edge; f += edge / 200) worst = Math.max(worst, Math.abs(r.responseDb(f)));
    expect(worst).toBeLessThan(0.5);
  });

  it('stopband: at least 80 dB from 1.14 × the lower Nyquist (4.56 kHz for 8 kHz), by design', () => {
    const r = new Resampler(from, to);
    const start = 1.14 * lowerNyquist(pair);
    // Everything up to half the upsampled rate can alias on decimation; the sidelobes only fall beyond
    // a few times the higher rate, so sweep that far (the whole band for the small ratios).
    const end = Math.min((r.upFactor * from) / 2, 2 * Math.max(from, to));
    const step = Math.max(5, (end - start) / 1_500);
    let worst = -Infinity;
    for (let f = start; f <= end; f += step) worst = Math.max(worst, r.responseDb(f));
    expect(worst).toBeLessThan(-80);
  });

  it('passband measured: tones from 300 Hz to 0.85 × the lower Nyquist keep their level within ±1 dB', () => {
    for (const f of [300, 1_000, 2_000, 0.7 * lowerNyquist(pair), 0.85 * lowerNyquist(pair)]) {
      const r = new Resampler(from, to);
      const x = toSamples(sine(f, 500, from, 20_000));
      const y = r.process(x).subarray(settle(r));
      const gainDb = powerDb(goertzelPower(y, to, f), goertzelPower(x, from, f));
      expect.soft(Math.abs(gainDb), `${f} Hz`).toBeLessThan(1);
    }
  });

  it('a 1 kHz tone stays at 1 kHz, clean (SINAD ≥ 60 dB)', () => {
    const r = new Resampler(from, to);
    const y = r.process(toSamples(sine(1_000, 500, from, 16_000))).subarray(settle(r));
    expect(dominantFrequency(y, to, { fromHz: 950, toHz: 1_050, stepHz: 1 })).toBe(1_000);
    expect(sinadDb(y, to, 1_000)).toBeGreaterThan(60);
  });
});

describe('Resampler: images and aliases measured on real signals', () => {
  /** Where a tone at `f` Hz can land after conversion: images k·from ± f folded at the output rate. */
  function foldedImages(f: number, from: number, to: number): number[] {
    const out = new Set<number>();
    const maxImage = (from * to) / 2; // generous: well past the last image that survives
    for (let k = 1; k * from - f <= maxImage && k < 200; k++) {
      for (const image of [k * from - f, k * from + f]) {
        const folded = Math.abs(image - Math.round(image / to) * to);
        if (Math.abs(folded - f) > 50 && folded > 50 && folded < to / 2 - 50) out.add(folded);
      }
    }
    return [...out];
  }

  it('8 kHz → 16 kHz: the 7 kHz image of a 1 kHz tone is ≥ 80 dB down', () => {
    const r = new Resampler(8_000, 16_000);
    const y = r.process(toSamples(sine(1_000, 1_000, 8_000, 30_000))).subarray(settle(r));
    const imageDb = powerDb(goertzelPower(y, 16_000, 7_000), goertzelPower(y, 16_000, 1_000));
    expect(imageDb).toBeLessThan(-80);
  });

  it.each(PAIRS.filter(([from, to]) => to > from))('%i → %i Hz: every image of a 1 kHz or 3 kHz tone is ≥ 80 dB down', (from, to) => {
    for (const f of [1_000, 3_000]) {
      const r = new Resampler(from, to);
      const y = r.process(toSamples(sine(f, 1_000, from, 30_000))).subarray(settle(r));
      const tone = goertzelPower(y, to, f);
      for (const image of foldedImages(f, from, to)) {
        expect.soft(powerDb(goertzelPower(y, to, image), tone), `${f} Hz → image ${image} Hz`).toBeLessThan(-80);
      }
    }
  });

  it('16 kHz → 8 kHz: a 5 kHz tone (would alias to 3 kHz) is attenuated ≥ 80 dB', () => {
    const r = new Resampler(16_000, 8_000);
    const x = toSamples(sine(5_000, 1_000, 16_000, 30_000));
    const y = r.process(x).subarray(settle(r));
    expect(powerDb(goertzelPower(y, 8_000, 3_000), goertzelPower(x, 16_000, 5_000))).toBeLessThan(-80);
    expect(rmsDb(y) - rmsDb(x)).toBeLessThan(-80);
  });

  it.each(PAIRS.filter(([from, to]) => to < from))('%i → %i Hz: tones across the stopband are attenuated ≥ 80 dB', (from, to) => {
    const start = 1.15 * (to / 2);
    const end = from / 2 - 100;
    const step = (end - start) / 12;
    for (let f = start; f <= end + 1; f += step) {
      const r = new Resampler(from, to);
      const x = toSamples(sine(f, 500, from, 30_000));
      const y = r.process(x).subarray(settle(r));
      const alias = Math.abs(f - Math.round(f / to) * to);
      const attenuation = powerDb(goertzelPower(y, to, alias), goertzelPower(x, from, f));
      expect.soft(attenuation, `${Math.round(f)} Hz → alias ${Math.round(alias)} Hz`).toBeLessThan(-80);
      expect.soft(rmsDb(y) - rmsDb(x), `${Math.round(f)} Hz broadband`).toBeLessThan(-80);
    }
  });
});

describe('Resampler: pitch through round trips', () => {
  it.each([
    [[8_000, 16_000, 8_000]],
    [[16_000, 24_000, 8_000]],
    [[8_000, 48_000, 8_000]],
    [[16_000, 48_000, 16_000]],
    [[8_000, 22_050, 8_000]],
    [[44_100, 16_000, 8_000]],
    [[16_000, 8_000, 24_000, 16_000]],
  ])('1 kHz stays 1 kHz through %j', (chain) => {
    let signal = toSamples(sine(1_000, 1_000, chain[0]!, 12_000));
    for (let k = 0; k + 1 < chain.length; k++) {
      const r = new Resampler(chain[k]!, chain[k + 1]!);
      signal = r.process(signal).subarray(settle(r));
    }
    const rate = chain[chain.length - 1]!;
    expect(dominantFrequency(signal, rate, { fromHz: 900, toHz: 1_100, stepHz: 1 })).toBe(1_000);
    // Level kept within 0.1 dB: 1 kHz is deep in every passband.
    expect(Math.abs(powerDb(goertzelPower(signal, rate, 1_000), 12_000 ** 2 / 2))).toBeLessThan(0.1);
  });
});

describe('Resampler state', () => {
  it('an impulse comes out delaySamples later', () => {
    for (const [from, to] of [[8_000, 16_000], [16_000, 8_000], [8_000, 48_000], [24_000, 16_000]] as const) {
      const r = new Resampler(from, to);
      const x = new Int16Array(from / 10);
      x[from / 50] = 30_000; // at 20 ms
      const y = r.process(x);
      let peak = 0;
      for (let i = 1; i < y.length; i++) if (Math.abs(y[i]!) > Math.abs(y[peak]!)) peak = i;
      expect(Math.abs(peak - (to / 50 + r.delaySamples))).toBeLessThanOrEqual(0.5);
    }
  });

  it('reset() forgets history and phase: the next call matches a fresh resampler', () => {
    const x = program(16_000, 200);
    const r = new Resampler(16_000, 24_000);
    r.process(x.subarray(0, 333));
    r.reset();
    expect(firstDifference(r.process(x), new Resampler(16_000, 24_000).process(x))).toBe(-1);
  });

  it('process() returns a new array each call; processInto() fills the caller’s', () => {
    const r = new Resampler(8_000, 16_000);
    const frame = toSamples(sine(1_000, 20, 8_000));
    const first = r.process(frame);
    const copy = first.slice();
    r.process(frame);
    expect(first).toEqual(copy);
    const out = new Int16Array(400).fill(7);
    expect(r.processInto(frame, out, 40)).toBe(320);
    expect(out[39]).toBe(7);
    expect(out[360]).toBe(7);
  });

  it('clips instead of wrapping on full-scale square waves (Gibbs overshoot)', () => {
    const x = new Int16Array(8_000).map((_, i) => (Math.floor(i / 20) % 2 === 0 ? 32_767 : -32_768));
    const y = new Resampler(8_000, 16_000).process(x);
    // A wrapped sample would flip sign in the middle of a half-period.
    for (let i = 100; i < y.length - 100; i++) {
      const expectedSign = Math.floor((i - 31.5) / 40) % 2 === 0 ? 1 : -1;
      const mid = ((i - 31.5) % 40 + 40) % 40;
      if (mid > 8 && mid < 32) expect.soft(Math.sign(y[i]!)).toBe(expectedSign);
    }
  });

  it('more taps sharpen the filter', () => {
    const normal = new Resampler(16_000, 8_000);
    const long = new Resampler(16_000, 8_000, { taps: 64 });
    expect(long.tapsPerPhase).toBe(128);
    expect(long.responseDb(4_300)).toBeLessThan(normal.responseDb(4_300) - 20);
  });
});

describe('Resampler speed (20 ms frames, one core)', () => {
  it.each([
    [8_000, 16_000],
    [16_000, 8_000],
    [8_000, 48_000],
    [44_100, 16_000],
  ])('%i → %i Hz runs far faster than real time', (from, to) => {
    const r = new Resampler(from, to);
    const frame = toSamples(sine(1_000, 20, from));
    const out = new Int16Array(r.outputLength(frame.length) + 1);
    for (let i = 0; i < 200; i++) r.processInto(frame, out); // warm up
    const frames = 3_000; // 60 s of audio
    const started = performance.now();
    for (let i = 0; i < frames; i++) r.processInto(frame, out);
    const elapsedMs = performance.now() - started;
    const realTime = (frames * 20) / elapsedMs;
    console.info(`resample ${from} → ${to}: ${Math.round(realTime)}× real time`);
    expect(realTime).toBeGreaterThan(50); // loose: CI machines vary; measured 600–1900× on a dev core
  });
});
