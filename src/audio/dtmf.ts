/**
 * DTMF tones (ITU-T Q.23 frequency pairs): generation for the "send DTMF" client tool and a Goertzel
 * detector for tests and the simulator. PCM is mono s16le.
 */

/** Low-group (row) frequencies in Hz, ITU-T Q.23. */
export const DTMF_ROWS_HZ = [697, 770, 852, 941] as const;
/** High-group (column) frequencies in Hz, ITU-T Q.23. */
export const DTMF_COLUMNS_HZ = [1209, 1336, 1477, 1633] as const;

/** The keypad: `DTMF_KEYPAD[row][column]`. */
const DTMF_KEYPAD = ['123A', '456B', '789C', '*0#D'] as const;

/** Each digit's [row Hz, column Hz] pair. */
export const DTMF_TONES: Readonly<Record<string, readonly [rowHz: number, columnHz: number]>> = Object.freeze(
  Object.fromEntries(
    DTMF_KEYPAD.flatMap((keys, row) =>
      [...keys].map((key, column) => [key, Object.freeze([DTMF_ROWS_HZ[row]!, DTMF_COLUMNS_HZ[column]!] as const)]),
    ),
  ),
);

export interface DtmfToneOptions {
  readonly sampleRateHz: number;
  /** Tone length per digit; default 100 ms (Q.24 asks receivers to accept ≥ 40 ms). */
  readonly toneMs?: number;
  /** Silence after each digit; default 60 ms (Q.24 minimum pause 40 ms). */
  readonly gapMs?: number;
  /** Peak amplitude of each of the two tones; default 8000 (the pair peaks at 16000). At most 16383. */
  readonly amplitude?: number;
}

/**
 * The tones for `digits` (`0-9 * # A-D`), each followed by `gapMs` of silence, as s16le PCM.
 * Throws a RangeError on any other character.
 */
export function generateDtmf(digits: string, o: DtmfToneOptions): Buffer {
  const toneMs = o.toneMs ?? 100;
  const gapMs = o.gapMs ?? 60;
  const amplitude = o.amplitude ?? 8_000;
  if (!Number.isInteger(o.sampleRateHz) || o.sampleRateHz < 4_000) {
    throw new RangeError(`generateDtmf: sampleRateHz must be an integer ≥ 4000, got ${o.sampleRateHz}`);
  }
  if (!(toneMs >= 0) || !(gapMs >= 0)) throw new RangeError(`generateDtmf: toneMs and gapMs must be ≥ 0`);
  if (!(amplitude >= 0 && amplitude <= 16_383)) {
    throw new RangeError(`generateDtmf: amplitude must be in 0…16383, got ${amplitude}`);
  }
  const pairs = [...digits].map((digit) => {
    const pair = DTMF_TONES[digit];
    if (pair === undefined) throw new RangeError(`generateDtmf: ${JSON.stringify(digit)} is not a DTMF digit (0-9 * # A-D)`);
    return pair;
  });
  const toneSamples = Math.round((o.sampleRateHz * toneMs) / 1000);
  const gapSamples = Math.round((o.sampleRateHz * gapMs) / 1000);
  const out = Buffer.alloc(pairs.length * (toneSamples + gapSamples) * 2); // zeroed: the gaps
  let offset = 0;
  for (const [rowHz, columnHz] of pairs) {
    const rowStep = (2 * Math.PI * rowHz) / o.sampleRateHz;
    const columnStep = (2 * Math.PI * columnHz) / o.sampleRateHz;
    for (let i = 0; i < toneSamples; i++) {
      out.writeInt16LE(Math.round(amplitude * (Math.sin(rowStep * i) + Math.sin(columnStep * i))), offset);
      offset += 2;
    }
    offset += gapSamples * 2;
  }
  return out;
}

/** Analysis window: 25.6 ms (205 samples at 8 kHz, the classic choice: ~39 Hz bins separate the rows). */
const WINDOW_MS = 25.6;
/** Windows overlap by half, so a 40 ms tone or pause fully covers at least one window. */
const HOP_FRACTION = 0.5;
/** Quieter windows (mean square below −50 dBFS) are silence. */
const MIN_MEAN_SQUARE = (32_768 * 10 ** (-50 / 20)) ** 2;
/** Share of the window's energy the row and column tones must hold together. */
const MIN_PAIR_SHARE = 0.6;
/** Largest level difference between the two tones (twist), in dB. */
const MAX_TWIST_DB = 8;
/** The strongest row (column) must beat the runner-up by this factor (6 dB). */
const MIN_DOMINANCE = 4;
/** Consecutive windows that must agree before a digit counts (about 38 ms at a 12.8 ms hop). */
const MIN_WINDOWS = 2;

/**
 * The digits found in `pcm` (mono s16le), in order. A digit is reported once per tone burst: it must
 * hold for two consecutive half-overlapping 25.6 ms windows, and a new burst starts after a window
 * without it (a pause or another digit).
 */
export function detectDtmf(pcm: Buffer, sampleRateHz: number): string {
  const total = pcm.length >> 1;
  const windowSamples = Math.max(16, Math.round((sampleRateHz * WINDOW_MS) / 1000));
  const hop = Math.max(1, Math.round(windowSamples * HOP_FRACTION));
  const samples = new Float64Array(windowSamples);
  const rowCoeffs = DTMF_ROWS_HZ.map((f) => 2 * Math.cos((2 * Math.PI * f) / sampleRateHz));
  const columnCoeffs = DTMF_COLUMNS_HZ.map((f) => 2 * Math.cos((2 * Math.PI * f) / sampleRateHz));
  let result = '';
  let current = ''; // digit of the current run ('' for none)
  let run = 0;
  let reported = false;
  for (let start = 0; start + windowSamples <= total; start += hop) {
    let energy = 0;
    for (let i = 0; i < windowSamples; i++) {
      const sample = pcm.readInt16LE((start + i) * 2);
      samples[i] = sample;
      energy += sample * sample;
    }
    const digit = energy / windowSamples < MIN_MEAN_SQUARE ? '' : classify(samples, energy, rowCoeffs, columnCoeffs);
    if (digit !== current) {
      current = digit;
      run = 0;
      reported = false;
    }
    if (digit === '') continue;
    run++;
    if (!reported && run >= MIN_WINDOWS) {
      result += digit;
      reported = true;
    }
  }
  return result;
}

/** The digit whose tone pair dominates the window, or ''. */
function classify(samples: Float64Array, energy: number, rowCoeffs: number[], columnCoeffs: number[]): string {
  // Share of the window's energy at each frequency: 2·|X(f)|² / (N · Σx²) is 1 for a lone sine.
  const scale = 2 / (samples.length * energy);
  const row = strongest(samples, rowCoeffs, scale);
  const column = strongest(samples, columnCoeffs, scale);
  if (row.share + column.share < MIN_PAIR_SHARE) return '';
  if (row.share < row.runnerUp * MIN_DOMINANCE || column.share < column.runnerUp * MIN_DOMINANCE) return '';
  if (Math.abs(10 * Math.log10(row.share / column.share)) > MAX_TWIST_DB) return '';
  return DTMF_KEYPAD[row.index]![column.index]!;
}

function strongest(samples: Float64Array, coeffs: number[], scale: number): { index: number; share: number; runnerUp: number } {
  let index = 0;
  let share = -1;
  let runnerUp = 0;
  for (let k = 0; k < coeffs.length; k++) {
    const power = goertzelSquaredMagnitude(samples, coeffs[k]!) * scale;
    if (power > share) {
      runnerUp = Math.max(runnerUp, share);
      share = power;
      index = k;
    } else if (power > runnerUp) {
      runnerUp = power;
    }
  }
  return { index, share, runnerUp };
}

/** |X(f)|² by the Goertzel recurrence, with coeff = 2·cos(2πf/fs). */
function goertzelSquaredMagnitude(samples: Float64Array, coeff: number): number {
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < samples.length; i++) {
    const s0 = samples[i]! + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return s1 * s1 + s2 * s2 - coeff * s1 * s2;
}
