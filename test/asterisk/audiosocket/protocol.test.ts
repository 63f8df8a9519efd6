import { describe, expect, it } from 'vitest';
import { isBridgeError } from '../../../src/errors.js';
import {
  Kind,
  HEADER_BYTES,
  encodeAudio,
  encodeAudioInPlace,
  encodeDtmf,
  encodeHangup,
  encodeUuid,
  isAudioKind,
  isDtmfDigit,
  kindForSampleRate,
  sampleRateForKind,
  uuidToBytes,
  uuidToString,
} from '../../../src/asterisk/audiosocket/protocol.js';
import { AUDIOSOCKET_FIXTURES, fixtureUuid, recordedChunks } from './helpers.js';

function expectBadFrame(fn: () => unknown): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(isBridgeError(thrown, 'AUDIOSOCKET_BAD_FRAME'), String(thrown)).toBe(true);
}

describe('Kind table', () => {
  it('has the wire values of protocols.md §1.2', () => {
    expect(Kind).toEqual({
      Hangup: 0x00, Uuid: 0x01, Dtmf: 0x03,
      Slin8: 0x10, Slin12: 0x11, Slin16: 0x12, Slin24: 0x13, Slin32: 0x14, Slin44: 0x15, Slin48: 0x16, Slin96: 0x17, Slin192: 0x18,
      Error: 0xff,
    });
  });

  it.each([
    [0x10, 8_000], [0x11, 12_000], [0x12, 16_000], [0x13, 24_000], [0x14, 32_000],
    [0x15, 44_100], [0x16, 48_000], [0x17, 96_000], [0x18, 192_000],
  ])('kind %i ⇄ %i Hz', (kind, rateHz) => {
    expect(isAudioKind(kind)).toBe(true);
    expect(sampleRateForKind(kind)).toBe(rateHz);
    expect(kindForSampleRate(rateHz)).toBe(kind);
  });

  it.each([0x00, 0x01, 0x02, 0x03, 0x0f, 0x19, 0xff, -1, 16.5, Number.NaN])('%s is not audio', (kind) => {
    expect(isAudioKind(kind)).toBe(false);
    expect(sampleRateForKind(kind)).toBeUndefined();
  });

  it.each([0, 11_025, 22_050, 44_000, 8_001])('%i Hz has no kind', (rateHz) => {
    expect(kindForSampleRate(rateHz)).toBeUndefined();
  });
});

describe('encodeAudio', () => {
  // Every server->asterisk write Asterisk 22 accepted in the recordings, re-encoded byte for byte.
  it.each(AUDIOSOCKET_FIXTURES)('reproduces every recorded server->asterisk write of %s', (name) => {
    const writes = recordedChunks(name, 'server->asterisk');
    expect(writes.length).toBeGreaterThan(10);
    for (const write of writes) {
      const kind = write[0]!;
      const encoded = kind === Kind.Hangup ? encodeHangup() : encodeAudio(kind, write.subarray(3));
      expect(encoded.equals(write)).toBe(true);
    }
  });

  it('builds one buffer: kind, big-endian length, payload (slin16 640 B)', () => {
    const payload = Buffer.alloc(640, 0xab);
    const message = encodeAudio(Kind.Slin16, payload);
    expect(message.length).toBe(643);
    expect(message.subarray(0, 3).toString('hex')).toBe('120280');
    expect(message.subarray(3).equals(payload)).toBe(true);
  });

  it('copies the payload, so the caller may reuse its buffer', () => {
    const payload = Buffer.alloc(320, 1);
    const message = encodeAudio(Kind.Slin8, payload);
    payload.fill(2);
    expect(message[3]).toBe(1);
  });

  it('accepts the largest even payload the length field allows', () => {
    const message = encodeAudio(Kind.Slin48, Buffer.alloc(65_534));
    expect(message.readUInt16BE(1)).toBe(65_534);
  });

  // protocols.md §1.6: each of these hangs up the call in Asterisk, so we refuse to build them.
  it.each([
    ['empty payload', Kind.Slin8, 0],
    ['odd payload', Kind.Slin8, 321],
    ['one byte', Kind.Slin16, 1],
    ['payload over 65535', Kind.Slin8, 65_536],
  ])('throws AUDIOSOCKET_BAD_FRAME for %s', (_what, kind, bytes) => {
    expectBadFrame(() => encodeAudio(kind, Buffer.alloc(bytes)));
  });

  it.each([Kind.Hangup, Kind.Uuid, Kind.Dtmf, Kind.Error, 0x02, 0x0f, 0x19])('throws AUDIOSOCKET_BAD_FRAME for kind %i', (kind) => {
    expectBadFrame(() => encodeAudio(kind, Buffer.alloc(320)));
  });
});

describe('encodeAudioInPlace', () => {
  /** A message buffer with the payload already at offset 3, as a playout frame with headroom is. */
  function withHeadroom(payload: Buffer): Buffer {
    const message = Buffer.alloc(HEADER_BYTES + payload.length, 0xee);
    payload.copy(message, HEADER_BYTES);
    return message;
  }

  it.each(AUDIOSOCKET_FIXTURES)('gives the same bytes as encodeAudio for every recorded server->asterisk write of %s', (name) => {
    for (const write of recordedChunks(name, 'server->asterisk')) {
      const kind = write[0]!;
      if (kind === Kind.Hangup) continue;
      const payload = write.subarray(3);
      expect(encodeAudioInPlace(kind, withHeadroom(payload)).equals(encodeAudio(kind, payload))).toBe(true);
    }
  });

  it('writes only the 3 header bytes and returns the same buffer (no copy)', () => {
    const payload = Buffer.alloc(640, 0xab);
    const message = withHeadroom(payload);
    const encoded = encodeAudioInPlace(Kind.Slin16, message);
    expect(encoded).toBe(message);
    expect(message.subarray(0, 3).toString('hex')).toBe('120280');
    expect(message.subarray(3).equals(payload)).toBe(true);
  });

  it('accepts the largest even payload the length field allows', () => {
    expect(encodeAudioInPlace(Kind.Slin48, Buffer.alloc(HEADER_BYTES + 65_534)).readUInt16BE(1)).toBe(65_534);
  });

  it.each([
    ['no payload', Kind.Slin8, HEADER_BYTES],
    ['shorter than a header', Kind.Slin8, 2],
    ['odd payload', Kind.Slin8, HEADER_BYTES + 321],
    ['payload over 65535', Kind.Slin8, HEADER_BYTES + 65_536],
  ])('throws AUDIOSOCKET_BAD_FRAME for %s, leaving the buffer untouched', (_what, kind, bytes) => {
    const message = Buffer.alloc(bytes, 0xee);
    expectBadFrame(() => encodeAudioInPlace(kind, message));
    expect(message.every((b) => b === 0xee)).toBe(true);
  });

  it.each([Kind.Hangup, Kind.Uuid, Kind.Dtmf, Kind.Error, 0x02, 0x0f, 0x19])('throws AUDIOSOCKET_BAD_FRAME for kind %i', (kind) => {
    expectBadFrame(() => encodeAudioInPlace(kind, Buffer.alloc(HEADER_BYTES + 320)));
  });
});

describe('encodeHangup', () => {
  it('is exactly 00 00 00, a fresh buffer each time', () => {
    const a = encodeHangup();
    expect(a.toString('hex')).toBe('000000');
    a[0] = 9;
    expect(encodeHangup().toString('hex')).toBe('000000');
  });
});

describe('UUIDs', () => {
  it.each(AUDIOSOCKET_FIXTURES)('encodeUuid matches the UUID message Asterisk sent in %s', (name) => {
    const first = recordedChunks(name, 'asterisk->server')[0]!;
    const uuid = fixtureUuid(name);
    expect(encodeUuid(uuid).equals(first.subarray(0, 19))).toBe(true);
    expect(uuidToString(first.subarray(3, 19))).toBe(uuid);
  });

  it('renders lowercase 8-4-4-4-12 and accepts any case back (§1.3)', () => {
    const bytes = Buffer.from('B9ADC2C2A3C84E3BB686C69E111B1980', 'hex');
    expect(uuidToString(bytes)).toBe('b9adc2c2-a3c8-4e3b-b686-c69e111b1980');
    expect(uuidToBytes('B9ADC2C2-A3C8-4E3B-B686-C69E111B1980').equals(bytes)).toBe(true);
    expect(uuidToBytes('b9adc2c2-a3c8-4e3b-b686-c69e111b1980').equals(bytes)).toBe(true);
  });

  it('reads a 16-byte view inside a larger buffer', () => {
    const big = Buffer.concat([Buffer.from([1, 2, 3]), Buffer.alloc(16, 0xff), Buffer.from([4])]);
    expect(uuidToString(big.subarray(3, 19))).toBe('ffffffff-ffff-ffff-ffff-ffffffffffff');
  });

  it.each([
    '',
    'b9adc2c2a3c84e3bb686c69e111b1980',
    'b9adc2c2-a3c8-4e3b-b686-c69e111b198',
    'b9adc2c2-a3c8-4e3b-b686-c69e111b19800',
    'g9adc2c2-a3c8-4e3b-b686-c69e111b1980',
    ' b9adc2c2-a3c8-4e3b-b686-c69e111b1980',
    'b9adc2c2-a3c8-4e3b-b686-c69e111b1980\n',
    '${UUID}',
  ])('uuidToBytes(%j) throws', (text) => {
    expectBadFrame(() => uuidToBytes(text));
    expectBadFrame(() => encodeUuid(text));
  });

  it.each([0, 15, 17])('uuidToString throws on %i bytes', (length) => {
    expectBadFrame(() => uuidToString(Buffer.alloc(length)));
  });
});

describe('encodeDtmf', () => {
  it.each([
    ['1', '03000131'],
    ['2', '03000132'],
    ['#', '03000123'],
    ['*', '0300012a'],
    ['0', '03000130'],
    ['D', '03000144'],
  ])('%s → %s (recorded: SendDTMF(12#) gave 03000131, 03000132, 03000123)', (digit, hex) => {
    expect(encodeDtmf(digit).toString('hex')).toBe(hex);
    expect(isDtmfDigit(digit)).toBe(true);
  });

  it.each(['', 'a', 'E', '12', ' ', 'w', 'f'])('%j is not a digit', (digit) => {
    expect(isDtmfDigit(digit)).toBe(false);
    expectBadFrame(() => encodeDtmf(digit));
  });
});
