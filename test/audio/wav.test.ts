import { describe, expect, it } from 'vitest';
import { encodeWav, readWav } from '../../src/audio/wav.js';
import { sine } from '../support/signal.js';

/** A WAVE file from parts: fmt fields and extra chunks, for the cases encodeWav does not write. */
function buildWav(o: {
  tag?: number;
  channels?: number;
  rate?: number;
  bits?: number;
  blockAlign?: number;
  fmtExtra?: Buffer;
  before?: Array<[string, Buffer]>;
  data?: Buffer;
  dataSize?: number;
  omitFmt?: boolean;
  omitData?: boolean;
}): Buffer {
  const channels = o.channels ?? 1;
  const bits = o.bits ?? 16;
  const rate = o.rate ?? 8_000;
  const chunk = (id: string, body: Buffer, size = body.length): Buffer => {
    const header = Buffer.alloc(8);
    header.write(id, 0, 'latin1');
    header.writeUInt32LE(size, 4);
    return Buffer.concat([header, body, body.length % 2 === 1 ? Buffer.alloc(1) : Buffer.alloc(0)]);
  };
  const fmt = Buffer.alloc(16);
  fmt.writeUInt16LE(o.tag ?? 1, 0);
  fmt.writeUInt16LE(channels, 2);
  fmt.writeUInt32LE(rate, 4);
  fmt.writeUInt32LE((rate * channels * bits) / 8, 8);
  fmt.writeUInt16LE(o.blockAlign ?? (channels * bits) / 8, 12);
  fmt.writeUInt16LE(bits, 14);
  const parts = [
    ...(o.before ?? []).map(([id, body]) => chunk(id, body)),
    o.omitFmt ? Buffer.alloc(0) : chunk('fmt ', Buffer.concat([fmt, o.fmtExtra ?? Buffer.alloc(0)])),
    o.omitData ? Buffer.alloc(0) : chunk('data', o.data ?? Buffer.alloc(0), o.dataSize),
  ];
  const body = Buffer.concat([Buffer.from('WAVE', 'latin1'), ...parts]);
  const riff = Buffer.alloc(8);
  riff.write('RIFF', 0, 'latin1');
  riff.writeUInt32LE(body.length, 4);
  return Buffer.concat([riff, body]);
}

describe('encodeWav / readWav', () => {
  it('round trips mono 16-bit PCM at 8 and 16 kHz', () => {
    for (const rate of [8_000, 16_000]) {
      const pcm = sine(440, 100, rate);
      const wav = encodeWav(pcm, rate);
      expect(wav.length).toBe(44 + pcm.length);
      expect(wav.toString('latin1', 0, 4)).toBe('RIFF');
      expect(wav.readUInt32LE(4)).toBe(36 + pcm.length);
      const parsed = readWav(wav);
      expect(parsed).toEqual({ sampleRateHz: rate, channels: 1, pcm });
    }
  });

  it('writes the canonical header bytes', () => {
    const wav = encodeWav(Buffer.from([1, 0, 2, 0]), 8_000);
    expect(wav.toString('hex')).toBe(
      '52494646' + '28000000' + '57415645' + '666d7420' + '10000000' + '0100' + '0100' + '401f0000' + '803e0000' + '0200' + '1000' +
        '64617461' + '04000000' + '01000200',
    );
  });

  it('encodeWav rejects half samples and bad rates', () => {
    expect(() => encodeWav(Buffer.alloc(3), 8_000)).toThrow(RangeError);
    expect(() => encodeWav(Buffer.alloc(2), 0)).toThrow(RangeError);
  });

  it('returns a copy, not a view of the file', () => {
    const wav = encodeWav(Buffer.from([1, 0, 2, 0]), 8_000);
    const { pcm } = readWav(wav);
    wav.fill(0);
    expect([...pcm]).toEqual([1, 0, 2, 0]);
  });
});

describe('readWav', () => {
  it('downmixes stereo to mono by averaging', () => {
    const data = Buffer.alloc(12);
    [1_000, 3_000, -32_768, -32_768, 32_767, -32_768].forEach((v, i) => data.writeInt16LE(v, i * 2));
    const parsed = readWav(buildWav({ channels: 2, data }));
    expect(parsed.channels).toBe(2);
    expect(parsed.pcm.length).toBe(6);
    expect([0, 1, 2].map((i) => parsed.pcm.readInt16LE(i * 2))).toEqual([2_000, -32_768, -1]);
  });

  it('skips unknown chunks, including odd-sized ones with their pad byte', () => {
    const data = Buffer.from([5, 0, 6, 0]);
    const wav = buildWav({ before: [['LIST', Buffer.from('abc')], ['fact', Buffer.alloc(4)]], data });
    expect(readWav(wav).pcm.equals(data)).toBe(true);
  });

  it('accepts WAVE_FORMAT_EXTENSIBLE with a PCM sub-format', () => {
    const extra = Buffer.alloc(24);
    extra.writeUInt16LE(22, 0); // cbSize
    extra.writeUInt16LE(16, 2); // valid bits
    extra.writeUInt32LE(4, 4); // channel mask
    extra.writeUInt16LE(1, 8); // sub-format GUID starts with the PCM tag
    const wav = buildWav({ tag: 0xfffe, fmtExtra: extra, rate: 16_000, data: Buffer.from([1, 0]) });
    expect(readWav(wav)).toMatchObject({ sampleRateHz: 16_000, channels: 1 });
  });

  it('clamps a data size larger than the file (truncated or streamed recordings)', () => {
    // Cut mid-sample: the half sample at the end is dropped too.
    const wav = buildWav({ data: Buffer.from([1, 0, 2, 0, 3, 0]), dataSize: 0xffffffff }).subarray(0, -1);
    expect([...readWav(wav).pcm]).toEqual([1, 0, 2, 0]);
  });

  it.each([
    ['not RIFF', Buffer.from('RIFX0000WAVE'), /not a RIFF\/WAVE/],
    ['too short', Buffer.from('RIFF'), /not a RIFF\/WAVE/],
    ['8-bit', buildWav({ bits: 8, data: Buffer.alloc(2) }), /8-bit/],
    ['24-bit', buildWav({ bits: 24, data: Buffer.alloc(6) }), /24-bit/],
    ['IEEE float', buildWav({ tag: 3, bits: 32, data: Buffer.alloc(4) }), /format tag 0x3/],
    ['A-law', buildWav({ tag: 6, bits: 8, data: Buffer.alloc(4) }), /format tag 0x6/],
    ['3 channels', buildWav({ channels: 3, data: Buffer.alloc(6) }), /3 channels/],
    ['bad block align', buildWav({ blockAlign: 3, data: Buffer.alloc(6) }), /block align/],
    ['no fmt', buildWav({ omitFmt: true, data: Buffer.alloc(2) }), /"data" chunk before "fmt "/],
    ['no data', buildWav({ omitData: true }), /no "data" chunk/],
    ['nothing', Buffer.from('RIFF\x04\x00\x00\x00WAVE', 'latin1'), /no "fmt " chunk/],
  ])('throws a clear Error: %s', (_name, wav, message) => {
    expect(() => readWav(wav)).toThrow(message);
  });
});
