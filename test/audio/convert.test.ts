import { describe, expect, it } from 'vitest';
import { createConverter } from '../../src/audio/convert.js';
import { parseAudioFormat, SLIN_16K, SLIN_8K, type AudioFormat } from '../../src/audio/format.js';
import { ulawDecode, ulawEncode } from '../../src/audio/g711.js';
import { Resampler } from '../../src/audio/resample.js';
import { dominantFrequency, goertzelPower, powerDb, sine, toPcm, toSamples } from '../support/signal.js';

const format = (name: string): AudioFormat => {
  const parsed = parseAudioFormat(name);
  if (!parsed) throw new Error(`bad format ${name}`);
  return parsed;
};

/** Asterisk side × agent side, every combination protocols.md §4.7 lists. */
const ASTERISK = ['pcm_8000', 'pcm_16000'];
const AGENT = ['pcm_8000', 'pcm_16000', 'pcm_22050', 'pcm_24000', 'pcm_44100', 'pcm_48000', 'ulaw_8000'];
const PAIRS = ASTERISK.flatMap((a) => AGENT.flatMap((b) => [[a, b] as const, [b, a] as const])).filter(([a, b]) => a !== b);

function bytesPer20Ms(f: AudioFormat): number {
  return (f.sampleRateHz / 50) * (f.encoding === 'pcm' ? 2 : 1);
}

/** One second of a 1 kHz tone in format `f`. */
function tone(f: AudioFormat, ms = 1_000): Buffer {
  const pcm = sine(1_000, ms, f.sampleRateHz, 12_000);
  return f.encoding === 'ulaw' ? ulawEncode(pcm) : pcm;
}

function asPcm(buf: Buffer, f: AudioFormat): Buffer {
  return f.encoding === 'ulaw' ? ulawDecode(buf) : buf;
}

describe('createConverter', () => {
  it('is the identity for equal formats: the same Buffer comes back, odd length and all', () => {
    const c = createConverter(SLIN_8K, format('pcm_8000'));
    const input = Buffer.from([1, 2, 3]);
    expect(c.convert(input)).toBe(input);
    c.reset();
  });

  it('pcm_8000 ↔ ulaw_8000 is plain G.711', () => {
    const pcm = sine(700, 100, 8_000, 20_000);
    expect(createConverter(SLIN_8K, format('ulaw_8000')).convert(pcm).equals(ulawEncode(pcm))).toBe(true);
    const ulaw = ulawEncode(pcm);
    expect(createConverter(format('ulaw_8000'), SLIN_8K).convert(ulaw).equals(ulawDecode(ulaw))).toBe(true);
  });

  it('pcm rate change equals the Resampler on the same samples', () => {
    const pcm = sine(1_000, 200, 16_000);
    const expected = toPcm(new Resampler(16_000, 8_000).process(toSamples(pcm)));
    expect(createConverter(SLIN_16K, SLIN_8K).convert(pcm).equals(expected)).toBe(true);
  });
});

describe.each(PAIRS)('converter %s → %s', (fromName, toName) => {
  const from = format(fromName);
  const to = format(toName);
  const input = tone(from);

  it('20 ms frames give the same bytes as one call, and exactly the expected length', () => {
    const batch = createConverter(from, to).convert(input);
    const c = createConverter(from, to);
    const frame = bytesPer20Ms(from);
    const parts: Buffer[] = [];
    for (let offset = 0; offset < input.length; offset += frame) {
      const out = c.convert(input.subarray(offset, offset + frame));
      // 20 ms in → 20 ms out once the fractional phase lines up (always, for these rates)
      expect(out.length).toBe(bytesPer20Ms(to));
      parts.push(out);
    }
    expect(Buffer.concat(parts).equals(batch)).toBe(true);
  });

  it('keeps a 1 kHz tone at 1 kHz and at its level', () => {
    const out = asPcm(createConverter(from, to).convert(input), to).subarray(2 * Math.round(to.sampleRateHz / 40)); // skip 25 ms
    expect(dominantFrequency(out, to.sampleRateHz, { fromHz: 950, toHz: 1_050, stepHz: 1 })).toBe(1_000);
    const levelDb = powerDb(goertzelPower(out, to.sampleRateHz, 1_000), 12_000 ** 2 / 2);
    expect(Math.abs(levelDb)).toBeLessThan(0.2); // µ-law costs a little, the filter almost nothing
  });

  it('returns new Buffers that later calls never overwrite', () => {
    const c = createConverter(from, to);
    const frame = bytesPer20Ms(from);
    const first = c.convert(input.subarray(0, frame));
    const snapshot = Buffer.from(first);
    for (let k = 1; k < 10; k++) c.convert(input.subarray(k * frame, (k + 1) * frame));
    expect(first.equals(snapshot)).toBe(true);
    expect(first.buffer === input.buffer && first.byteOffset === input.byteOffset).toBe(false);
  });

  it('reset() makes it behave like a new converter', () => {
    const c = createConverter(from, to);
    c.convert(input.subarray(0, 333));
    c.reset();
    expect(c.convert(input).equals(createConverter(from, to).convert(input))).toBe(true);
  });
});

describe('odd-length PCM input', () => {
  const from = SLIN_16K;
  const input = sine(1_000, 40, 16_000); // 1280 bytes
  const expected = createConverter(from, SLIN_8K).convert(input);

  // style.md rule 15: chunk-hostile, every split offset.
  it.each(Array.from({ length: 65 }, (_, k) => k * 20 + (k % 2)))('split at byte %i gives the same output', (split) => {
    const c = createConverter(from, SLIN_8K);
    const out = Buffer.concat([c.convert(input.subarray(0, split)), c.convert(input.subarray(split))]);
    expect(out.equals(expected)).toBe(true);
  });

  it('byte-at-a-time input carries the dangling byte every time', () => {
    const c = createConverter(from, SLIN_8K);
    const parts: Buffer[] = [];
    for (let i = 0; i < input.length; i++) parts.push(c.convert(input.subarray(i, i + 1)));
    expect(Buffer.concat(parts).equals(expected)).toBe(true);
  });

  it('odd byte offsets (a view into a larger Buffer) are read correctly', () => {
    const backing = Buffer.alloc(input.length + 1);
    input.copy(backing, 1);
    expect(createConverter(from, SLIN_8K).convert(backing.subarray(1)).equals(expected)).toBe(true);
  });

  it('pcm → ulaw at the same rate also carries the byte', () => {
    const pcm = sine(500, 20, 8_000);
    const c = createConverter(SLIN_8K, format('ulaw_8000'));
    const out = Buffer.concat([c.convert(pcm.subarray(0, 101)), c.convert(pcm.subarray(101, 201)), c.convert(pcm.subarray(201))]);
    expect(out.equals(ulawEncode(pcm))).toBe(true);
  });

  it('reset() drops a carried byte', () => {
    const c = createConverter(SLIN_8K, format('ulaw_8000'));
    expect(c.convert(Buffer.from([0x34])).length).toBe(0);
    c.reset();
    expect(c.convert(Buffer.from([0x00, 0x00])).equals(Buffer.from([0xff]))).toBe(true);
  });

  it('empty input gives an empty Buffer', () => {
    expect(createConverter(SLIN_16K, SLIN_8K).convert(Buffer.alloc(0)).length).toBe(0);
    expect(createConverter(format('ulaw_8000'), SLIN_16K).convert(Buffer.alloc(0)).length).toBe(0);
  });
});

describe('non-integer ratios over a long stream', () => {
  it.each([
    ['pcm_22050', 'pcm_8000'],
    ['pcm_44100', 'pcm_16000'],
    ['pcm_8000', 'pcm_22050'],
  ])('%s → %s: output bytes track input × ratio exactly (chunks of agent-like sizes)', (fromName, toName) => {
    const from = format(fromName);
    const to = format(toName);
    const c = createConverter(from, to);
    let inSamples = 0;
    let outSamples = 0;
    for (const chunkSamples of [1_234, 37, 4_410, 999, 1, 0, 8_001, 441, 2_205]) {
      outSamples += c.convert(Buffer.alloc(chunkSamples * 2)).length / 2;
      inSamples += chunkSamples;
      expect(outSamples).toBe(Math.ceil((inSamples * to.sampleRateHz) / from.sampleRateHz));
    }
  });
});

describe('converter speed', () => {
  it.each([
    ['pcm_8000', 'pcm_16000'],
    ['pcm_16000', 'pcm_8000'],
    ['pcm_8000', 'ulaw_8000'],
    ['ulaw_8000', 'pcm_8000'],
    ['ulaw_8000', 'pcm_16000'],
    ['pcm_16000', 'ulaw_8000'],
  ])('%s → %s on 20 ms frames', (fromName, toName) => {
    const from = format(fromName);
    const to = format(toName);
    const c = createConverter(from, to);
    const frame = tone(from, 20);
    for (let i = 0; i < 200; i++) c.convert(frame);
    const frames = 3_000;
    const started = performance.now();
    for (let i = 0; i < frames; i++) c.convert(frame);
    const realTime = (frames * 20) / (performance.now() - started);
    console.info(`convert ${fromName} → ${toName}: ${Math.round(realTime)}× real time`);
    expect(realTime).toBeGreaterThan(50);
  });
});
