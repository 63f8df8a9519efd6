/**
 * AudioSocket vocabulary and encoders (protocols.md §1). Pure: no sockets, no logger, no config.
 *
 * Wire layout (§1.1): `kind (1 byte) | length (uint16 big-endian, payload bytes only) | payload`.
 * Audio is signed 16-bit little-endian mono PCM with no header of its own.
 */
import { BridgeError } from '../../errors.js';

/**
 * Message kinds (§1.2). "in" = Asterisk → bridge, "out" = bridge → Asterisk; audio rates are in Hz
 * with the payload size of one 20 ms frame (`rateHz × 0.02 × 2`, §1.1).
 */
export const Kind = {
  Hangup: 0x00, // out only: `00 00 00` ends the session (§1.6); Asterisk never sends it, it just closes
  Uuid: 0x01, // in only: always first, 16 raw bytes in RFC 4122 order (§1.3); fatal if we send it
  Dtmf: 0x03, // in only: 1 ASCII byte `0-9 * # A-D`, one per digit at DTMF end (§1.5, 22.4+); fatal out
  Slin8: 0x10, // in/out: 8000 Hz, 320 B per 20 ms; the AudioSocket() app always uses this (§1.4)
  Slin12: 0x11, // in/out: 12000 Hz, 480 B per 20 ms (22.7+)
  Slin16: 0x12, // in/out: 16000 Hz, 640 B per 20 ms; Dial(AudioSocket/…/c(slin16)) (§1.4)
  Slin24: 0x13, // in/out: 24000 Hz, 960 B per 20 ms (22.7+)
  Slin32: 0x14, // in/out: 32000 Hz, 1280 B per 20 ms (22.7+)
  Slin44: 0x15, // in/out: 44100 Hz, 1764 B per 20 ms (22.7+)
  Slin48: 0x16, // in/out: 48000 Hz, 1920 B per 20 ms (22.7+)
  Slin96: 0x17, // in/out: 96000 Hz, 3840 B per 20 ms (22.7+)
  Slin192: 0x18, // in/out: 192000 Hz, 7680 B per 20 ms (22.7+)
  Error: 0xff, // in (defined, but no Asterisk 22 code path sends it); fatal if we send it
} as const;

export type KindValue = (typeof Kind)[keyof typeof Kind];

/** Bytes in a message header: kind (1) + big-endian length (2). */
export const HEADER_BYTES = 3;
/** The largest payload the uint16 length field can describe. */
export const MAX_WIRE_PAYLOAD_BYTES = 65_535;
/** A UUID payload is exactly 16 raw bytes (§1.3). */
export const UUID_BYTES = 16;

/** Sample rate per audio kind, indexed by `kind - Kind.Slin8` (§1.2). */
const AUDIO_RATES_HZ: readonly number[] = [8_000, 12_000, 16_000, 24_000, 32_000, 44_100, 48_000, 96_000, 192_000];

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** §1.2: a DTMF payload is one ASCII byte from `0-9 * # A-D`. */
const DTMF_PATTERN = /^[0-9*#A-D]$/;

/** True for the slin kinds `0x10`–`0x18`. */
export function isAudioKind(kind: number): boolean {
  return Number.isInteger(kind) && kind >= Kind.Slin8 && kind <= Kind.Slin192;
}

/** The sample rate of an audio kind (`0x15` = 44100 Hz); undefined for any other kind. */
export function sampleRateForKind(kind: number): number | undefined {
  return isAudioKind(kind) ? AUDIO_RATES_HZ[kind - Kind.Slin8] : undefined;
}

/** The audio kind that carries `sampleRateHz`; undefined when AudioSocket has none. */
export function kindForSampleRate(sampleRateHz: number): number | undefined {
  const index = AUDIO_RATES_HZ.indexOf(sampleRateHz);
  return index === -1 ? undefined : Kind.Slin8 + index;
}

/** True for the digits Asterisk reports in a DTMF message: `0-9 * # A-D` (§1.2). */
export function isDtmfDigit(digit: string): boolean {
  return DTMF_PATTERN.test(digit);
}

/**
 * One complete audio message, header and payload in ONE buffer so the server writes it with a single
 * `socket.write()` (§1.6; §1.8: split headers and a payload > 5 ms late hang up the call).
 * Throws `AUDIOSOCKET_BAD_FRAME` for anything Asterisk would choke on.
 */
export function encodeAudio(kind: number, payload: Buffer): Buffer {
  checkAudio(kind, payload.length);
  const message = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  message[0] = kind;
  message.writeUInt16BE(payload.length, 1);
  payload.copy(message, HEADER_BYTES);
  return message;
}

/**
 * The same message as `encodeAudio`, built without a copy: `message` already holds the payload at
 * offset HEADER_BYTES (e.g. a playout frame allocated with that much headroom), and only the header
 * is written into its first 3 bytes. Returns `message`. Same checks as encodeAudio.
 */
export function encodeAudioInPlace(kind: number, message: Buffer): Buffer {
  const payloadBytes = message.length - HEADER_BYTES;
  checkAudio(kind, payloadBytes < 0 ? 0 : payloadBytes);
  message[0] = kind;
  message[1] = payloadBytes >>> 8;
  message[2] = payloadBytes & 0xff;
  return message;
}

function checkAudio(kind: number, payloadBytes: number): void {
  // §1.6: 0x01, 0x03, 0xFF and unknown kinds sent to Asterisk hang up the call.
  if (!isAudioKind(kind)) {
    throw new BridgeError('AUDIOSOCKET_BAD_FRAME', `kind 0x${hex(kind)} is not an audio kind (0x10-0x18)`);
  }
  // §1.6: audio with length 0 is "Invalid message length" and hangs up the call.
  if (payloadBytes === 0) throw new BridgeError('AUDIOSOCKET_BAD_FRAME', 'audio payload is empty');
  // §1.6: an odd length makes Asterisk drop the last byte, which shifts every later sample.
  if (payloadBytes % 2 !== 0) {
    throw new BridgeError('AUDIOSOCKET_BAD_FRAME', `audio payload has an odd length (${payloadBytes} bytes)`);
  }
  if (payloadBytes > MAX_WIRE_PAYLOAD_BYTES) {
    throw new BridgeError('AUDIOSOCKET_BAD_FRAME', `audio payload of ${payloadBytes} bytes exceeds ${MAX_WIRE_PAYLOAD_BYTES}`);
  }
}

/** `00 00 00`: ends the session; the app returns 0, the driver leg hangs up (§1.6, §1.10). */
export function encodeHangup(): Buffer {
  return Buffer.from([Kind.Hangup, 0x00, 0x00]);
}

/** `01 00 10` + 16 bytes: what Asterisk sends first (§1.3). For simulators and tests. */
export function encodeUuid(uuid: string): Buffer {
  const message = Buffer.allocUnsafe(HEADER_BYTES + UUID_BYTES);
  message[0] = Kind.Uuid;
  message.writeUInt16BE(UUID_BYTES, 1);
  uuidToBytes(uuid).copy(message, HEADER_BYTES);
  return message;
}

/** `03 00 01 <ascii>`: one DTMF digit as Asterisk reports it (§1.5). For simulators and tests. */
export function encodeDtmf(digit: string): Buffer {
  if (!isDtmfDigit(digit)) {
    throw new BridgeError('AUDIOSOCKET_BAD_FRAME', `"${digit}" is not a DTMF digit (0-9 * # A-D)`);
  }
  return Buffer.from([Kind.Dtmf, 0x00, 0x01, digit.charCodeAt(0)]);
}

/** 16 raw bytes → lowercase `8-4-4-4-12`, which gives back the dialplan string (§1.3). */
export function uuidToString(bytes: Uint8Array): string {
  if (bytes.length !== UUID_BYTES) {
    throw new BridgeError('AUDIOSOCKET_BAD_FRAME', `a UUID is ${UUID_BYTES} bytes, got ${bytes.length}`);
  }
  const h = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** `8-4-4-4-12` hex (any case, as `uuid_parse` accepts, §1.3) → 16 raw bytes. */
export function uuidToBytes(uuid: string): Buffer {
  if (!UUID_PATTERN.test(uuid)) {
    throw new BridgeError('AUDIOSOCKET_BAD_FRAME', `"${uuid}" is not a UUID (8-4-4-4-12 hex digits)`);
  }
  return Buffer.from(uuid.replaceAll('-', ''), 'hex');
}

function hex(value: number): string {
  return Number.isInteger(value) ? value.toString(16).padStart(2, '0') : String(value);
}
