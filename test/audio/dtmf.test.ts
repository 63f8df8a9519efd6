import { describe, expect, it } from 'vitest';
import { createConverter } from '../../src/audio/convert.js';
import { detectDtmf, DTMF_TONES, generateDtmf } from '../../src/audio/dtmf.js';
import { parseAudioFormat, SLIN_16K, SLIN_8K } from '../../src/audio/format.js';
import { ulawDecode, ulawEncode } from '../../src/audio/g711.js';
import { dominantFrequency, goertzelPower, powerDb, silence, sine } from '../support/signal.js';

const ALL = '0123456789*#ABCD';

describe('generateDtmf', () => {
  it('uses the Q.23 pairs', () => {
    expect(DTMF_TONES['1']).toEqual([697, 1209]);
    expect(DTMF_TONES['5']).toEqual([770, 1336]);
    expect(DTMF_TONES['9']).toEqual([852, 1477]);
    expect(DTMF_TONES['0']).toEqual([941, 1336]);
    expect(DTMF_TONES['*']).toEqual([941, 1209]);
    expect(DTMF_TONES['#']).toEqual([941, 1477]);
    expect(DTMF_TONES['D']).toEqual([941, 1633]);
    expect(Object.keys(DTMF_TONES).sort().join('')).toBe([...ALL].sort().join(''));
  });

  it('lays out tone then gap per digit: 100 ms + 60 ms by default', () => {
    const pcm = generateDtmf('12', { sampleRateHz: 8_000 });
    expect(pcm.length).toBe(2 * (800 + 480) * 2);
    expect(pcm.subarray(800 * 2, 1_280 * 2).equals(Buffer.alloc(480 * 2))).toBe(true); // the gap
    const tone = pcm.subarray(0, 800 * 2);
    expect(dominantFrequency(tone, 8_000, { fromHz: 600, toHz: 1_000, stepHz: 1 })).toBe(697);
    expect(dominantFrequency(tone, 8_000, { fromHz: 1_100, toHz: 1_700, stepHz: 1 })).toBe(1_209);
    // Both tones at the requested amplitude: A²/2 each.
    expect(Math.abs(powerDb(goertzelPower(tone, 8_000, 697), 8_000 ** 2 / 2))).toBeLessThan(0.2);
    expect(Math.abs(powerDb(goertzelPower(tone, 8_000, 1_209), 8_000 ** 2 / 2))).toBeLessThan(0.2);
  });

  it('honours toneMs, gapMs, amplitude and the sample rate', () => {
    const pcm = generateDtmf('#', { sampleRateHz: 16_000, toneMs: 50, gapMs: 0, amplitude: 3_000 });
    expect(pcm.length).toBe(800 * 2);
    let peak = 0;
    for (let i = 0; i < pcm.length; i += 2) peak = Math.max(peak, Math.abs(pcm.readInt16LE(i)));
    expect(peak).toBeLessThanOrEqual(6_000);
    expect(peak).toBeGreaterThan(5_000);
  });

  it.each(['E', 'a', '1x', ' ', '+'])('throws on %j', (digits) => {
    expect(() => generateDtmf(digits, { sampleRateHz: 8_000 })).toThrow(RangeError);
  });

  it('rejects an amplitude that could clip and a silly rate', () => {
    expect(() => generateDtmf('1', { sampleRateHz: 8_000, amplitude: 20_000 })).toThrow(RangeError);
    expect(() => generateDtmf('1', { sampleRateHz: 100 })).toThrow(RangeError);
  });

  it('an empty string is empty audio', () => {
    expect(generateDtmf('', { sampleRateHz: 8_000 }).length).toBe(0);
  });
});

describe('detectDtmf', () => {
  it.each([8_000, 16_000])('round trip of every digit at %i Hz', (sampleRateHz) => {
    expect(detectDtmf(generateDtmf(ALL, { sampleRateHz }), sampleRateHz)).toBe(ALL);
  });

  it.each([8_000, 16_000])('repeated digits count separately at %i Hz (the gap splits them)', (sampleRateHz) => {
    expect(detectDtmf(generateDtmf('1122##', { sampleRateHz }), sampleRateHz)).toBe('1122##');
  });

  it('Q.24 minimum timing: 40 ms tones with 40 ms pauses', () => {
    const pcm = generateDtmf('159D', { sampleRateHz: 8_000, toneMs: 40, gapMs: 40 });
    expect(detectDtmf(pcm, 8_000)).toBe('159D');
  });

  it('survives µ-law, a quiet level and leading silence', () => {
    const pcm = Buffer.concat([silence(300, 8_000), generateDtmf('2580', { sampleRateHz: 8_000, amplitude: 800 })]);
    expect(detectDtmf(ulawDecode(ulawEncode(pcm)), 8_000)).toBe('2580');
  });

  it('survives resampling (generated at 16 kHz, detected at 8 kHz, and back)', () => {
    const at16 = generateDtmf('*73#', { sampleRateHz: 16_000 });
    const at8 = createConverter(SLIN_16K, SLIN_8K).convert(at16);
    expect(detectDtmf(at8, 8_000)).toBe('*73#');
    const ulaw = createConverter(SLIN_16K, parseAudioFormat('ulaw_8000')!).convert(at16);
    expect(detectDtmf(createConverter(parseAudioFormat('ulaw_8000')!, SLIN_16K).convert(ulaw), 16_000)).toBe('*73#');
  });

  it('finds nothing in silence, single tones, speech-band tones or noise', () => {
    expect(detectDtmf(silence(500, 8_000), 8_000)).toBe('');
    expect(detectDtmf(sine(697, 500, 8_000), 8_000)).toBe('');
    expect(detectDtmf(sine(1_000, 500, 8_000), 8_000)).toBe('');
    const noise = Buffer.alloc(8_000 * 2);
    let seed = 1;
    for (let i = 0; i < 8_000; i++) {
      seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff;
      noise.writeInt16LE((seed % 20_000) - 10_000, i * 2);
    }
    expect(detectDtmf(noise, 8_000)).toBe('');
  });

  it('tolerates a tone pair with 6 dB twist and background noise', () => {
    const rate = 8_000;
    const low = sine(852, 100, rate, 6_000);
    const high = sine(1_477, 100, rate, 3_000); // 6 dB weaker
    const pcm = Buffer.alloc(low.length);
    let seed = 7;
    for (let i = 0; i < pcm.length; i += 2) {
      seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff;
      pcm.writeInt16LE(low.readInt16LE(i) + high.readInt16LE(i) + ((seed % 600) - 300), i);
    }
    expect(detectDtmf(pcm, rate)).toBe('9');
  });

  it('input shorter than one analysis window finds nothing', () => {
    expect(detectDtmf(generateDtmf('1', { sampleRateHz: 8_000, toneMs: 10, gapMs: 0 }), 8_000)).toBe('');
  });
});
