import { describe, expect, it } from 'vitest';
import { BridgeError, isBridgeError } from '../../../src/errors.js';
import { AudioSocketParser, type AudioSocketMessage } from '../../../src/asterisk/audiosocket/parser.js';
import { Kind, encodeDtmf, encodeHangup, encodeUuid } from '../../../src/asterisk/audiosocket/protocol.js';
import { randomSplits, splitAt } from '../../support/fixtures.js';
import { AUDIOSOCKET_FIXTURES, fixtureUuid, frame, recordedChunks, recordedMessages, recordedStream } from './helpers.js';

const MAX = 16_384; // the config default (config/schema.ts)

/** A compact, exact rendering of messages: deep-equal on Buffers is too slow for thousands of splits. */
function digest(messages: readonly AudioSocketMessage[]): string {
  return messages
    .map((m) => {
      switch (m.kind) {
        case 'audio':
          return `audio/${m.type}/${m.sampleRateHz}/${m.payload.toString('hex')}`;
        case 'error':
          return `error/${m.payload.toString('hex')}`;
        case 'uuid':
          return `uuid/${m.uuid}`;
        case 'dtmf':
          return `dtmf/${m.digit}`;
        case 'hangup':
          return 'hangup';
      }
    })
    .join('\n');
}

function parseAll(pieces: readonly Buffer[], maxPayloadBytes = MAX): AudioSocketMessage[] {
  const parser = new AudioSocketParser({ maxPayloadBytes });
  const out = pieces.flatMap((piece) => parser.push(piece));
  expect(parser.bufferedBytes).toBe(0);
  return out;
}

/**
 * Runs `pieces` through a fresh parser and returns the error that ended the stream: thrown, or
 * recorded in `failure` when valid messages came before the bad bytes in the same push.
 */
function parseError(pieces: readonly Buffer[], maxPayloadBytes = MAX): BridgeError {
  const parser = new AudioSocketParser({ maxPayloadBytes });
  try {
    for (const piece of pieces) {
      parser.push(piece);
      if (parser.failure) return parser.failure;
    }
  } catch (err) {
    expect(err).toBeInstanceOf(BridgeError);
    return err as BridgeError;
  }
  throw new Error('expected the parser to fail');
}

const UUID = 'b9adc2c2-a3c8-4e3b-b686-c69e111b1980';

/** A small stream with every kind Asterisk may send and then some: the every-offset table below. */
const MIXED = Buffer.concat([
  encodeUuid(UUID),
  frame(Kind.Slin8, Buffer.alloc(8, 0x11)),
  encodeDtmf('#'),
  frame(Kind.Slin16, Buffer.alloc(6, 0x22)),
  frame(Kind.Error, [0x04]),
  frame(Kind.Slin8, Buffer.alloc(3, 0x33)), // odd length: a µ-law leg mislabelled 0x10 (§1.4)
  frame(Kind.Slin192, []), // empty audio: parsed, the server skips it
  encodeHangup(),
]);
const MIXED_MESSAGES: AudioSocketMessage[] = [
  { kind: 'uuid', uuid: UUID },
  { kind: 'audio', type: 0x10, sampleRateHz: 8_000, payload: Buffer.alloc(8, 0x11) },
  { kind: 'dtmf', digit: '#' },
  { kind: 'audio', type: 0x12, sampleRateHz: 16_000, payload: Buffer.alloc(6, 0x22) },
  { kind: 'error', payload: Buffer.from([0x04]) },
  { kind: 'audio', type: 0x10, sampleRateHz: 8_000, payload: Buffer.alloc(3, 0x33) },
  { kind: 'audio', type: 0x18, sampleRateHz: 192_000, payload: Buffer.alloc(0) },
  { kind: 'hangup' },
];

describe('AudioSocketParser: a hand-built stream of every message shape', () => {
  it('parses it in one chunk (many messages in one chunk)', () => {
    expect(parseAll([MIXED])).toEqual(MIXED_MESSAGES);
  });

  it.each(Array.from({ length: MIXED.length + 1 }, (_, offset) => offset))('split at offset %i', (offset) => {
    expect(parseAll(splitAt(MIXED, [offset]))).toEqual(MIXED_MESSAGES);
  });

  it('parses it one byte at a time', () => {
    expect(parseAll(randomSplits(MIXED, 1, 1))).toEqual(MIXED_MESSAGES);
  });

  it('ignores empty chunks anywhere', () => {
    const parser = new AudioSocketParser({ maxPayloadBytes: MAX });
    const out: AudioSocketMessage[] = [];
    for (const piece of splitAt(MIXED, [1, 2, 20, 25])) {
      out.push(...parser.push(Buffer.alloc(0)), ...parser.push(piece));
    }
    expect(out).toEqual(MIXED_MESSAGES);
  });
});

describe.each(AUDIOSOCKET_FIXTURES)('AudioSocketParser: recorded %s (Asterisk 22)', (name) => {
  const stream = recordedStream(name);
  const expected = recordedMessages(name);

  const expectedDigest = digest(expected);

  it('yields the recorder\'s messages with the recorded chunking', () => {
    expect(expected.length).toBeGreaterThan(10);
    expect(expected[0]).toEqual({ kind: 'uuid', uuid: fixtureUuid(name) });
    expect(parseAll(recordedChunks(name, 'asterisk->server'))).toEqual(expected);
  });

  it(`yields the same at every single split offset (0..${stream.length})`, () => {
    for (let offset = 0; offset <= stream.length; offset++) {
      const got = digest(parseAll(splitAt(stream, [offset])));
      if (got !== expectedDigest) expect.fail(`offset ${offset}: messages differ`);
    }
  });

  it('yields the same around every message boundary split twice (header and body split)', () => {
    const boundaries: number[] = [];
    let offset = 0;
    while (offset < stream.length) {
      boundaries.push(offset);
      offset += 3 + stream.readUInt16BE(offset + 1);
    }
    for (const boundary of boundaries) {
      for (const a of [1, 2, 3, 4]) {
        const got = digest(parseAll(splitAt(stream, [boundary + a, boundary + a + 1, boundary + 200])));
        if (got !== expectedDigest) expect.fail(`boundary ${boundary}+${a}: messages differ`);
      }
    }
  });

  it.each([
    [1, 1],
    [2, 2],
    [3, 7],
    [7, 64],
    [42, 400],
    [1_000, 2_000],
  ])('yields the same with random splits (seed %i, pieces of 1..%i bytes)', (seed, maxPieceBytes) => {
    expect(digest(parseAll(randomSplits(stream, seed, maxPieceBytes)))).toBe(expectedDigest);
  });
});

describe('AudioSocketParser: what the recordings teach (fixture README)', () => {
  it('handles the coalesced first read: UUID + first audio frame in one 342-byte read', () => {
    const first = recordedChunks('audiosocket-app-slin8', 'asterisk->server')[0]!;
    expect(first.length).toBe(342);
    const messages = parseAll([first]);
    expect(messages.map((m) => m.kind)).toEqual(['uuid', 'audio']);
    expect(messages[0]).toEqual({ kind: 'uuid', uuid: 'b9adc2c2-a3c8-4e3b-b686-c69e111b1980' });
    const audio = messages[1] as Extract<AudioSocketMessage, { kind: 'audio' }>;
    expect(audio.type).toBe(Kind.Slin8);
    expect(audio.sampleRateHz).toBe(8_000);
    expect(audio.payload.length).toBe(320);
  });

  it('accepts the short final frame (276 B) and reports DTMF 1, 2, # from SendDTMF(12#)', () => {
    const messages = parseAll(recordedChunks('audiosocket-app-slin8', 'asterisk->server'));
    const audio = messages.filter((m) => m.kind === 'audio');
    expect(audio.at(-1)?.payload.length).toBe(276);
    expect(audio.slice(0, -1).every((m) => m.payload.length === 320)).toBe(true);
    expect(messages.filter((m) => m.kind === 'dtmf').map((m) => m.digit)).toEqual(['1', '2', '#']);
    expect(messages.slice(-3).map((m) => m.kind)).toEqual(['dtmf', 'dtmf', 'dtmf']);
  });

  it('reads each DTMF message on its own 4-byte read', () => {
    expect(parseAll([Buffer.from('03000131', 'hex')])).toEqual([{ kind: 'dtmf', digit: '1' }]);
    expect(parseAll([Buffer.from('03000132', 'hex')])).toEqual([{ kind: 'dtmf', digit: '2' }]);
    expect(parseAll([Buffer.from('03000123', 'hex')])).toEqual([{ kind: 'dtmf', digit: '#' }]);
  });

  it('parses the c(slin16) driver: UUID alone, then 640-byte 0x12 frames, the last one 552 B', () => {
    const chunks = recordedChunks('audiosocket-dial-slin16', 'asterisk->server');
    expect(chunks[0]!.length).toBe(19);
    const messages = parseAll(chunks);
    expect(messages[0]).toEqual({ kind: 'uuid', uuid: '8b2ae519-b437-4b65-aba6-98564ab3c654' });
    const audio = messages.slice(1) as Array<Extract<AudioSocketMessage, { kind: 'audio' }>>;
    expect(audio.every((m) => m.kind === 'audio' && m.type === Kind.Slin16 && m.sampleRateHz === 16_000)).toBe(true);
    // The README calls the first frame all zeros; the recorder's own allZero says it ends in -1 samples.
    expect(audio[0]!.payload.subarray(0, 32).equals(Buffer.alloc(32))).toBe(true);
    expect(audio.slice(0, -1).every((m) => m.payload.length === 640)).toBe(true);
    expect(audio.at(-1)!.payload.length).toBe(552);
  });
});

describe('AudioSocketParser: every kind byte', () => {
  const VALID: Record<number, { payload: number[]; message: AudioSocketMessage }> = {
    0x00: { payload: [], message: { kind: 'hangup' } },
    0x01: { payload: Array.from({ length: 16 }, (_, i) => i), message: { kind: 'uuid', uuid: '00010203-0405-0607-0809-0a0b0c0d0e0f' } },
    0x03: { payload: [0x2a], message: { kind: 'dtmf', digit: '*' } },
    0xff: { payload: [0x02], message: { kind: 'error', payload: Buffer.from([0x02]) } },
  };
  const RATES = [8_000, 12_000, 16_000, 24_000, 32_000, 44_100, 48_000, 96_000, 192_000];

  it.each(Array.from({ length: 256 }, (_, kind) => kind))('kind %i', (kind) => {
    const known = VALID[kind];
    const audioRate = kind >= 0x10 && kind <= 0x18 ? RATES[kind - 0x10] : undefined;
    if (known) {
      expect(parseAll([frame(kind, known.payload)])).toEqual([known.message]);
    } else if (audioRate !== undefined) {
      const payload = Buffer.from([1, 2, 3, 4]);
      expect(parseAll([frame(kind, payload)])).toEqual([{ kind: 'audio', type: kind, sampleRateHz: audioRate, payload }]);
    } else {
      const err = parseError([frame(kind, [0, 0])]);
      expect(err.code).toBe('AUDIOSOCKET_BAD_FRAME');
      expect(err.message).toContain(`unknown kind 0x${kind.toString(16).padStart(2, '0')}`);
    }
  });
});

describe('AudioSocketParser: malformed frames throw AUDIOSOCKET_BAD_FRAME', () => {
  it.each([
    ['unknown kind 0x05', [frame(0x05, [1])], 'unknown kind 0x05'],
    ['unknown kind 0x02 (the Go library\'s DTMF, not Asterisk\'s)', [frame(0x02, [1, 0x31, 0, 0, 0, 0])], 'unknown kind 0x02'],
    ['unknown kind 0x19 (past slin192)', [frame(0x19, [])], 'unknown kind 0x19'],
    ['UUID of 15 bytes', [frame(Kind.Uuid, Buffer.alloc(15))], 'expected 16'],
    ['UUID of 17 bytes', [frame(Kind.Uuid, Buffer.alloc(17))], 'expected 16'],
    ['UUID of 0 bytes', [frame(Kind.Uuid, [])], 'expected 16'],
    ['DTMF of 0 bytes', [frame(Kind.Dtmf, [])], 'expected 1'],
    ['DTMF of 2 bytes', [frame(Kind.Dtmf, [0x31, 0x32])], 'expected 1'],
    ['DTMF lowercase a', [frame(Kind.Dtmf, [0x61])], 'not one of'],
    ['DTMF NUL byte', [frame(Kind.Dtmf, [0x00])], 'not one of'],
    ['DTMF E', [frame(Kind.Dtmf, [0x45])], 'not one of'],
    ['hangup with a payload', [frame(Kind.Hangup, [0])], 'hangup (0x00) with a 1-byte payload'],
    ['text instead of AudioSocket (an HTTP probe)', [Buffer.from('GET / HTTP/1.1\r\n\r\n')], 'unknown kind 0x47'],
  ])('%s', (_what, pieces, message) => {
    const err = parseError(pieces);
    expect(err.code).toBe('AUDIOSOCKET_BAD_FRAME');
    expect(err.message).toContain(message);
  });

  it('rejects an oversize length as soon as the header arrives, before buffering the body', () => {
    const parser = new AudioSocketParser({ maxPayloadBytes: 640 });
    expect(parser.push(frame(Kind.Slin16, Buffer.alloc(640)))).toHaveLength(1); // the limit itself is fine
    expect(parser.push(Buffer.from([Kind.Slin16, 0x02]))).toEqual([]);
    expect(() => parser.push(Buffer.from([0x81]))).toThrow(/641 payload bytes, more than maxPayloadBytes 640/);
    expect(parser.bufferedBytes).toBe(0);
  });

  it('rejects a 65535-byte length against the default limit with only the header present', () => {
    const err = parseError([Buffer.from([Kind.Slin8, 0xff, 0xff])]);
    expect(isBridgeError(err, 'AUDIOSOCKET_BAD_FRAME')).toBe(true);
    expect(err.message).toContain('65535');
  });

  it('finds a bad kind whose header is split across pushes', () => {
    const bad = Buffer.concat([encodeUuid(UUID), frame(0x05, [1, 2])]);
    for (let offset = 1; offset < bad.length; offset++) {
      expect(parseError(splitAt(bad, [offset])).code, `offset ${offset}`).toBe('AUDIOSOCKET_BAD_FRAME');
    }
  });

  it('finds a bad DTMF digit whose byte arrives in a later push', () => {
    expect(parseError([Buffer.from([Kind.Dtmf, 0, 1]), Buffer.from([0x7a])]).message).toContain('0x7a');
  });

  it('delivers the valid messages before garbage in the same chunk, then fails', () => {
    const parser = new AudioSocketParser({ maxPayloadBytes: MAX });
    const messages = parser.push(Buffer.concat([encodeUuid(UUID), frame(Kind.Slin8, new Array(320).fill(0)), Buffer.from([0x42, 0xff, 0xff])]));
    expect(messages.map((m) => m.kind)).toEqual(['uuid', 'audio']);
    expect(parser.failure?.code).toBe('AUDIOSOCKET_BAD_FRAME');
    expect(() => parser.push(Buffer.alloc(3))).toThrow(parser.failure!);
  });

  it('stays failed: every later push throws the same error', () => {
    const parser = new AudioSocketParser({ maxPayloadBytes: MAX });
    let first: unknown;
    try {
      parser.push(frame(0x05, []));
    } catch (err) {
      first = err;
    }
    expect(isBridgeError(first, 'AUDIOSOCKET_BAD_FRAME')).toBe(true);
    expect(() => parser.push(encodeHangup())).toThrow(first as Error);
  });

  it.each([0, 15, 65_536, 1.5, Number.NaN])('refuses maxPayloadBytes %s', (max) => {
    expect(() => new AudioSocketParser({ maxPayloadBytes: max })).toThrow(RangeError);
  });
});

describe('AudioSocketParser: buffers and payload lifetime', () => {
  it('reports the bytes of an unfinished message', () => {
    const parser = new AudioSocketParser({ maxPayloadBytes: MAX });
    const message = frame(Kind.Slin8, Buffer.alloc(320, 7));
    expect(parser.push(message.subarray(0, 2))).toEqual([]);
    expect(parser.bufferedBytes).toBe(2);
    expect(parser.push(message.subarray(2, 100))).toEqual([]);
    expect(parser.bufferedBytes).toBe(100);
    const [audio] = parser.push(Buffer.concat([message.subarray(100), message.subarray(0, 5)]));
    expect(audio).toMatchObject({ kind: 'audio', payload: Buffer.alloc(320, 7) });
    expect(parser.bufferedBytes).toBe(5);
  });

  it('hands out zero-copy views for messages inside one chunk, and never writes to pushed chunks', () => {
    const chunk = Buffer.concat([frame(Kind.Slin8, Buffer.alloc(320, 1)), frame(Kind.Slin8, Buffer.alloc(320, 2)), Buffer.from([Kind.Slin8, 0x01])]);
    const before = Buffer.from(chunk);
    const parser = new AudioSocketParser({ maxPayloadBytes: MAX });
    const messages = parser.push(chunk) as Array<Extract<AudioSocketMessage, { kind: 'audio' }>>;
    expect(messages).toHaveLength(2);
    expect(messages[0]!.payload.buffer).toBe(chunk.buffer); // no per-frame allocation
    parser.push(Buffer.concat([Buffer.from([0x40]), Buffer.alloc(320, 3), frame(Kind.Slin8, Buffer.alloc(10, 4)).subarray(0, 7)]));
    expect(chunk.equals(before)).toBe(true);
  });

  it('keeps every payload intact after later pushes reuse the retained buffer', () => {
    // Frames of distinct fill values, chunked so that almost every frame spans two pushes.
    const frames = Array.from({ length: 40 }, (_, i) => frame(Kind.Slin16, Buffer.alloc(640, i)));
    const stream = Buffer.concat(frames);
    const parser = new AudioSocketParser({ maxPayloadBytes: MAX });
    const payloads: Buffer[] = [];
    for (const piece of randomSplits(stream, 99, 500)) {
      for (const message of parser.push(piece)) if (message.kind === 'audio') payloads.push(message.payload);
    }
    expect(payloads).toHaveLength(40);
    payloads.forEach((payload, i) => expect(payload.equals(Buffer.alloc(640, i)), `frame ${i}`).toBe(true));
  });

  it('grows the retained buffer for a large spanning message and stays correct afterwards', () => {
    const big = frame(Kind.Slin48, Buffer.alloc(16_000, 0x5a));
    const small = frame(Kind.Slin8, Buffer.alloc(320, 0x01));
    const stream = Buffer.concat([small, big, small, big, small]);
    const got = parseAll(randomSplits(stream, 5, 3_000));
    expect(got.map((m) => (m.kind === 'audio' ? m.payload.length : -1))).toEqual([320, 16_000, 320, 16_000, 320]);
    expect((got[1] as Extract<AudioSocketMessage, { kind: 'audio' }>).payload.every((b) => b === 0x5a)).toBe(true);
  });
});
