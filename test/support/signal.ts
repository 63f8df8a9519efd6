/**
 * Test signals and measurements for the audio layer. All PCM is mono s16le; Buffers are read
 * byte-explicitly, so odd offsets are fine.
 */

type Pcm = Buffer | Int16Array;

/** A sine tone as s16le PCM, starting at phase 0. */
export function sine(freqHz: number, ms: number, sampleRateHz: number, amplitude = 8_000): Buffer {
  const samples = Math.round((sampleRateHz * ms) / 1000);
  const out = Buffer.alloc(samples * 2);
  const step = (2 * Math.PI * freqHz) / sampleRateHz;
  for (let i = 0; i < samples; i++) out.writeInt16LE(Math.round(amplitude * Math.sin(step * i)), i * 2);
  return out;
}

/** `ms` of digital silence as s16le PCM. */
export function silence(ms: number, sampleRateHz: number): Buffer {
  return Buffer.alloc(Math.round((sampleRateHz * ms) / 1000) * 2);
}

/** The samples of `pcm` as an Int16Array (a copy for Buffers). */
export function toSamples(pcm: Pcm): Int16Array {
  if (pcm instanceof Int16Array) return pcm;
  const out = new Int16Array(pcm.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = pcm.readInt16LE(i * 2);
  return out;
}

/** Int16 samples to s16le PCM. */
export function toPcm(samples: Int16Array): Buffer {
  const out = Buffer.alloc(samples.length * 2);
  for (let i = 0; i < samples.length; i++) out.writeInt16LE(samples[i]!, i * 2);
  return out;
}

/**
 * Power of the `freqHz` component by the Goertzel algorithm, scaled so that a sine of amplitude A gives
 * A²/2 (comparable with a mean square; take 10·log10 of ratios for dB). Uses the exact frequency
 * (non-integer bin). The default Hann window keeps a strong tone from leaking into a weak one far
 * away (a rectangular window leaks about −85 dB at 7 kHz from a 1 kHz tone over one second, which would
 * hide the filter's real stopband); `window: 'none'` gives the plain rectangular sum.
 */
export function goertzelPower(
  pcm: Pcm,
  sampleRateHz: number,
  freqHz: number,
  o: { window?: 'hann' | 'none' } = {},
): number {
  const samples = toSamples(pcm);
  const n = samples.length;
  if (n === 0) return 0;
  const hann = (o.window ?? 'hann') === 'hann';
  const omega = (2 * Math.PI * freqHz) / sampleRateHz;
  const coeff = 2 * Math.cos(omega);
  let s1 = 0;
  let s2 = 0;
  let gain = 0;
  for (let i = 0; i < n; i++) {
    const w = hann ? 0.5 - 0.5 * Math.cos((2 * Math.PI * (i + 0.5)) / n) : 1;
    gain += w;
    const s0 = samples[i]! * w + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const re = s1 - s2 * Math.cos(omega);
  const im = s2 * Math.sin(omega);
  return (2 * (re * re + im * im)) / (gain * gain);
}

/** The frequency with the most Goertzel power among fromHz, fromHz + stepHz, … ≤ toHz. */
export function dominantFrequency(
  pcm: Pcm,
  sampleRateHz: number,
  o: { fromHz: number; toHz: number; stepHz: number },
): number {
  const samples = toSamples(pcm);
  let best = o.fromHz;
  let bestPower = -1;
  for (let f = o.fromHz; f <= o.toHz + 1e-9; f += o.stepHz) {
    const power = goertzelPower(samples, sampleRateHz, f);
    if (power > bestPower) {
      bestPower = power;
      best = f;
    }
  }
  return best;
}

/** RMS level in dB relative to full scale (32768); −Infinity for digital silence. */
export function rmsDb(pcm: Pcm): number {
  const samples = toSamples(pcm);
  if (samples.length === 0) return -Infinity;
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i]! * samples[i]!;
  return 10 * Math.log10(sum / samples.length / 32_768 ** 2);
}

/** 10·log10(a / b) for two powers. */
export function powerDb(a: number, b: number): number {
  return 10 * Math.log10(a / b);
}

/** Cuts `pcm` into chunks of `chunkBytes` (the last may be shorter). */
export function chunks(pcm: Buffer, chunkBytes: number): Buffer[] {
  const out: Buffer[] = [];
  for (let offset = 0; offset < pcm.length; offset += chunkBytes) out.push(pcm.subarray(offset, offset + chunkBytes));
  return out;
}

/**
 * Signal to noise-and-distortion ratio (dB) of a sine at `freqHz`: fits a·sin + b·cos + c by least
 * squares and compares the fit's power with the residual's. Skip filter transients before calling.
 */
export function sinadDb(pcm: Pcm, sampleRateHz: number, freqHz: number): number {
  const samples = toSamples(pcm);
  const n = samples.length;
  const omega = (2 * Math.PI * freqHz) / sampleRateHz;
  // Normal equations for [sin, cos, 1].
  const m = [0, 0, 0, 0, 0, 0, 0, 0, 0];
  const v = [0, 0, 0];
  for (let i = 0; i < n; i++) {
    const basis = [Math.sin(omega * i), Math.cos(omega * i), 1];
    for (let r = 0; r < 3; r++) {
      v[r]! += basis[r]! * samples[i]!;
      for (let c = 0; c < 3; c++) m[r * 3 + c]! += basis[r]! * basis[c]!;
    }
  }
  const [a, b, c] = solve3(m, v);
  let signal = 0;
  let residual = 0;
  for (let i = 0; i < n; i++) {
    const fit = a * Math.sin(omega * i) + b * Math.cos(omega * i);
    signal += fit * fit;
    const e = samples[i]! - fit - c;
    residual += e * e;
  }
  return 10 * Math.log10(signal / residual);
}

function solve3(m: number[], v: number[]): [number, number, number] {
  const a = m.map((x) => x);
  const b = v.map((x) => x);
  for (let col = 0; col < 3; col++) {
    let pivot = col;
    for (let r = col + 1; r < 3; r++) if (Math.abs(a[r * 3 + col]!) > Math.abs(a[pivot * 3 + col]!)) pivot = r;
    for (let c = 0; c < 3; c++) [a[col * 3 + c], a[pivot * 3 + c]] = [a[pivot * 3 + c]!, a[col * 3 + c]!];
    [b[col], b[pivot]] = [b[pivot]!, b[col]!];
    for (let r = 0; r < 3; r++) {
      if (r === col) continue;
      const f = a[r * 3 + col]! / a[col * 3 + col]!;
      for (let c = 0; c < 3; c++) a[r * 3 + c]! -= f * a[col * 3 + c]!;
      b[r]! -= f * b[col]!;
    }
  }
  return [b[0]! / a[0]!, b[1]! / a[4]!, b[2]! / a[8]!];
}
