/**
 * G.711 µ-law (ITU-T G.711 §3, the North American / Japanese companding law) to and from signed 16-bit
 * little-endian PCM. Encoding is a lookup in a 64 KiB table built once from the reference algorithm
 * (Sun / CCITT `linear2ulaw`: bias 0x84, clip 32635), so it is bit-exact with `alawmulaw` and with
 * Asterisk's own `AST_LIN2MU`; a test checks all 65,536 inputs and all 256 codes.
 *
 * The Buffer functions read and write bytes explicitly, so they accept odd byte offsets and do not depend
 * on the host's byte order.
 */

const BIAS = 0x84; // 132: added before the segment search so that segment 0 starts at 0
const CLIP = 32_635; // largest magnitude that still fits in segment 7 after the bias

/** Index: the 16-bit sample's bit pattern (`sample & 0xffff`); value: its µ-law code. */
const ENCODE_TABLE: Uint8Array = buildEncodeTable();
/** Index: µ-law code; value: the linear sample it stands for. */
const DECODE_TABLE: Int16Array = buildDecodeTable();

function encodeSampleReference(input: number): number {
  let sample = input;
  const sign = (sample >> 8) & 0x80;
  if (sign !== 0) sample = -sample;
  sample += BIAS;
  if (sample > CLIP) sample = CLIP;
  let exponent = 7;
  for (let mask = 0x4000; (sample & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (sample >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

function decodeSampleReference(code: number): number {
  const inverted = ~code & 0xff;
  const exponent = (inverted >> 4) & 0x07;
  const mantissa = inverted & 0x0f;
  const magnitude = ((mantissa << 3) + BIAS) << exponent;
  return inverted & 0x80 ? BIAS - magnitude : magnitude - BIAS;
}

function buildEncodeTable(): Uint8Array {
  const table = new Uint8Array(65_536);
  for (let bits = 0; bits < 65_536; bits++) table[bits] = encodeSampleReference((bits << 16) >> 16);
  return table;
}

function buildDecodeTable(): Int16Array {
  const table = new Int16Array(256);
  for (let code = 0; code < 256; code++) table[code] = decodeSampleReference(code);
  return table;
}

/** One sample to its µ-law code. */
export function ulawEncodeSample(sample: number): number {
  return ENCODE_TABLE[sample & 0xffff]!;
}

/** One µ-law code to its linear sample (−32124…32124). */
export function ulawDecodeSample(code: number): number {
  return DECODE_TABLE[code & 0xff]!;
}

/**
 * s16le PCM to µ-law, one byte per sample. A trailing odd byte (half a sample) is ignored.
 * The result is a new Buffer.
 */
export function ulawEncode(pcm: Buffer): Buffer {
  const samples = pcm.length >> 1;
  const out = Buffer.allocUnsafe(samples);
  const table = ENCODE_TABLE;
  for (let i = 0, j = 0; i < samples; i++, j += 2) out[i] = table[pcm[j]! | (pcm[j + 1]! << 8)]!;
  return out;
}

/** µ-law to s16le PCM, two bytes per code. The result is a new Buffer. */
export function ulawDecode(ulaw: Buffer): Buffer {
  const out = Buffer.allocUnsafe(ulaw.length * 2);
  const table = DECODE_TABLE;
  for (let i = 0, j = 0; i < ulaw.length; i++, j += 2) {
    const sample = table[ulaw[i]!]!;
    out[j] = sample & 0xff;
    out[j + 1] = (sample >> 8) & 0xff;
  }
  return out;
}

/** Encodes `count` samples of `src` from `srcStart` into `dst` from `dstStart` (no allocation). */
export function ulawEncodeSamples(src: Int16Array, srcStart: number, count: number, dst: Uint8Array, dstStart: number): void {
  const table = ENCODE_TABLE;
  for (let i = 0; i < count; i++) dst[dstStart + i] = table[src[srcStart + i]! & 0xffff]!;
}

/** Decodes `count` codes of `src` from `srcStart` into `dst` from `dstStart` (no allocation). */
export function ulawDecodeSamples(src: Uint8Array, srcStart: number, count: number, dst: Int16Array, dstStart: number): void {
  const table = DECODE_TABLE;
  for (let i = 0; i < count; i++) dst[dstStart + i] = table[src[srcStart + i]!]!;
}
