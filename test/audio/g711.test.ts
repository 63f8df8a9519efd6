import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import {
  ulawDecode,
  ulawDecodeSample,
  ulawDecodeSamples,
  ulawEncode,
  ulawEncodeSample,
  ulawEncodeSamples,
} from '../../src/audio/g711.js';
import { sinadDb, sine, toSamples } from '../support/signal.js';

// alawmulaw ships a UMD build as "main"; require() gives its CommonJS exports reliably.
const { mulaw } = createRequire(import.meta.url)('alawmulaw') as {
  mulaw: { encodeSample(sample: number): number; decodeSample(code: number): number };
};

describe('µ-law tables', () => {
  it('encode bit-exactly like alawmulaw (the G.711 reference) over all 65,536 inputs', () => {
    let mismatches = 0;
    for (let s = -32_768; s <= 32_767; s++) if (ulawEncodeSample(s) !== (mulaw.encodeSample(s) & 0xff)) mismatches++;
    expect(mismatches).toBe(0);
  });

  it('decode bit-exactly like alawmulaw over all 256 codes', () => {
    // alawmulaw gives −0 for code 0x7F; both mean silence.
    for (let code = 0; code < 256; code++) expect(ulawDecodeSample(code)).toBe(mulaw.decodeSample(code) + 0);
  });

  it('known codes: 0 → 0xFF, full scale → 0x80 / 0x00, 0xFF and 0x7F decode to 0', () => {
    expect(ulawEncodeSample(0)).toBe(0xff);
    expect(ulawEncodeSample(32_767)).toBe(0x80);
    expect(ulawEncodeSample(-32_768)).toBe(0x00);
    expect(ulawDecodeSample(0xff)).toBe(0);
    expect(ulawDecodeSample(0x7f)).toBe(0);
    expect(ulawDecodeSample(0x80)).toBe(32_124);
    expect(ulawDecodeSample(0x00)).toBe(-32_124);
  });

  it('round trip stays within half a quantisation step (G.711 error), clipping beyond ±32124', () => {
    let signFlips = 0;
    for (let s = -32_768; s <= 32_767; s++) {
      const error = Math.abs(ulawDecodeSample(ulawEncodeSample(s)) - s);
      const magnitude = Math.abs(s);
      // Segment e holds |s| + 132 in [2^(e+7), 2^(e+8)) with steps of 2^(e+3): half a step ≤ (|s| + 132) / 32.
      const bound = magnitude > 32_124 ? magnitude - 32_124 + 512 : (magnitude + 132) / 32;
      expect.soft(error).toBeLessThanOrEqual(bound);
      if (s !== 0 && Math.sign(ulawDecodeSample(ulawEncodeSample(s))) === -Math.sign(s)) signFlips++;
    }
    expect(signFlips).toBe(0);
  });

  it('decodes every code back to itself when re-encoded', () => {
    for (let code = 0; code < 256; code++) {
      const back = ulawEncodeSample(ulawDecodeSample(code));
      // 0x7F (−0) re-encodes as 0xFF (+0); every other code is a fixed point.
      expect(back).toBe(code === 0x7f ? 0xff : code);
    }
  });
});

describe('ulawEncode / ulawDecode (Buffers)', () => {
  it('a 1 kHz tone keeps ≥ 35 dB SINAD through encode → decode', () => {
    const tone = sine(1_000, 200, 8_000, 16_000);
    const decoded = ulawDecode(ulawEncode(tone));
    expect(decoded.length).toBe(tone.length);
    expect(sinadDb(decoded, 8_000, 1_000)).toBeGreaterThan(35);
  });

  it('produces 1 byte per sample and 2 bytes per code', () => {
    expect(ulawEncode(Buffer.alloc(320)).length).toBe(160);
    expect(ulawDecode(Buffer.alloc(160)).length).toBe(320);
    expect(ulawEncode(Buffer.alloc(320)).equals(Buffer.alloc(160, 0xff))).toBe(true);
  });

  it('ignores a trailing odd byte and accepts odd byte offsets', () => {
    const pcm = sine(440, 20, 8_000);
    const expected = ulawEncode(pcm);
    const shifted = Buffer.alloc(pcm.length + 2);
    pcm.copy(shifted, 1);
    expect(ulawEncode(shifted.subarray(1, 1 + pcm.length)).equals(expected)).toBe(true);
    expect(ulawEncode(Buffer.concat([pcm, Buffer.from([0x12])])).equals(expected)).toBe(true);
  });

  it('Buffer and sample-array forms agree', () => {
    const pcm = sine(1_234, 20, 8_000, 20_000);
    const samples = toSamples(pcm);
    const codes = new Uint8Array(samples.length);
    ulawEncodeSamples(samples, 0, samples.length, codes, 0);
    expect(Buffer.from(codes).equals(ulawEncode(pcm))).toBe(true);
    const decoded = new Int16Array(codes.length);
    ulawDecodeSamples(codes, 0, codes.length, decoded, 0);
    expect(Buffer.from(decoded.buffer).equals(ulawDecode(Buffer.from(codes)))).toBe(true);
  });
});
