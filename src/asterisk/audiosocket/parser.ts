/**
 * AudioSocket stream parser (protocols.md §1.1–§1.5): TCP chunks in, typed messages out. Pure: it never
 * touches a socket, a logger or a timer.
 *
 * Chunk boundaries mean nothing (§1.5; the recorded first read held the UUID *and* an audio frame), so
 * the parser runs a cursor over each chunk and keeps only the one unfinished message between pushes:
 *
 *   push(chunk) ─► finish the retained partial message with just the bytes it still needs
 *               ─► cursor over the rest of the chunk: header here? body here? emit, advance
 *               ─► copy the unfinished tail (< one message) to the front of the retained buffer
 *
 * No chunk is ever concatenated or copied whole. Payloads of messages that lie inside one chunk are
 * zero-copy views of that chunk, which the parser never writes to (callers must not reuse a pushed
 * chunk, and Node's sockets never do). A message that spans chunks is assembled in the retained buffer,
 * and its payload is copied out, because that buffer is reused by the next partial message.
 */
import { BridgeError } from '../../errors.js';
import {
  HEADER_BYTES,
  Kind,
  MAX_WIRE_PAYLOAD_BYTES,
  UUID_BYTES,
  isDtmfDigit,
  sampleRateForKind,
  uuidToString,
} from './protocol.js';

export type AudioSocketMessage =
  | { kind: 'hangup' }
  | { kind: 'uuid'; uuid: string }
  | { kind: 'dtmf'; digit: string }
  | { kind: 'audio'; type: number /* 0x10..0x18 */; sampleRateHz: number; payload: Buffer }
  | { kind: 'error'; payload: Buffer };

export interface AudioSocketParserOptions {
  /** Largest payload accepted, checked as soon as a header arrives, so nothing oversize is buffered. */
  readonly maxPayloadBytes: number;
}

/** First size of the retained buffer: a header plus a 20 ms slin 48 kHz frame. Grows on demand. */
const INITIAL_RETAINED_BYTES = 2_048;

export class AudioSocketParser {
  readonly #maxPayloadBytes: number;
  /** Holds the unfinished message, always from offset 0 (compacted on every push). */
  #retained: Buffer = Buffer.alloc(0);
  /** Bytes of the unfinished message held in `#retained`. */
  #retainedBytes = 0;
  /** Sticky: after a malformed frame the stream cannot be re-synchronised. */
  #failure: BridgeError | undefined;

  constructor(options: AudioSocketParserOptions) {
    const max = options.maxPayloadBytes;
    if (!Number.isInteger(max) || max < UUID_BYTES || max > MAX_WIRE_PAYLOAD_BYTES) {
      throw new RangeError(`maxPayloadBytes must be an integer from ${UUID_BYTES} to ${MAX_WIRE_PAYLOAD_BYTES}, got ${max}`);
    }
    this.#maxPayloadBytes = max;
  }

  /** Bytes held back as the start of a message that has not fully arrived. */
  get bufferedBytes(): number {
    return this.#retainedBytes;
  }

  /**
   * Parses as many whole messages as the bytes so far allow. On a malformed message the valid
   * messages before it in the same chunk are still returned and `failure` is set; a push that finds
   * nothing valid before the bad bytes throws `AUDIOSOCKET_BAD_FRAME`. After a failure every push
   * throws it, since a byte stream cannot be re-synchronised.
   */
  push(chunk: Buffer): AudioSocketMessage[] {
    if (this.#failure) throw this.#failure;
    const messages: AudioSocketMessage[] = [];
    try {
      this.#parse(chunk, messages);
      return messages;
    } catch (err) {
      if (!(err instanceof BridgeError)) throw err;
      this.#failure = err;
      this.#retainedBytes = 0;
      // The UUID and audio before the garbage are real: their owner must see them (and then the failure).
      if (messages.length > 0) return messages;
      throw err;
    }
  }

  /** The malformed-frame error that ended this stream, if any. */
  get failure(): BridgeError | undefined {
    return this.#failure;
  }

  #parse(chunk: Buffer, messages: AudioSocketMessage[]): void {
    let offset = 0;
    if (this.#retainedBytes > 0) {
      offset = this.#finishRetained(chunk, messages);
      if (this.#retainedBytes > 0) return; // the whole chunk went into the partial message
    }
    const end = chunk.length;
    while (end - offset >= HEADER_BYTES) {
      const type = chunk[offset]!;
      const length = chunk.readUInt16BE(offset + 1);
      this.#checkHeader(type, length); // before the body arrives: never wait for an oversize payload
      const bodyStart = offset + HEADER_BYTES;
      if (end - bodyStart < length) break;
      messages.push(this.#decode(type, chunk.subarray(bodyStart, bodyStart + length), false));
      offset = bodyStart + length;
    }
    if (offset < end) this.#retain(chunk, offset, end);
  }

  /** Completes the retained message from the front of `chunk`; returns how many chunk bytes it used. */
  #finishRetained(chunk: Buffer, messages: AudioSocketMessage[]): number {
    let used = 0;
    if (this.#retainedBytes < HEADER_BYTES) {
      used = Math.min(HEADER_BYTES - this.#retainedBytes, chunk.length);
      this.#append(chunk, 0, used);
      if (this.#retainedBytes < HEADER_BYTES) return used;
      this.#checkHeader(this.#retained[0]!, this.#retained.readUInt16BE(1));
    }
    const type = this.#retained[0]!;
    const total = HEADER_BYTES + this.#retained.readUInt16BE(1);
    const take = Math.min(total - this.#retainedBytes, chunk.length - used);
    this.#append(chunk, used, used + take);
    used += take;
    if (this.#retainedBytes === total) {
      // The retained buffer is reused for the next partial message, so the payload is copied out.
      messages.push(this.#decode(type, this.#retained.subarray(HEADER_BYTES, total), true));
      this.#retainedBytes = 0;
    }
    return used;
  }

  #retain(chunk: Buffer, start: number, end: number): void {
    this.#retainedBytes = 0;
    this.#append(chunk, start, end);
  }

  #append(chunk: Buffer, start: number, end: number): void {
    const needed = this.#retainedBytes + (end - start);
    if (needed > this.#retained.length) {
      // Bounded: a header is checked against maxPayloadBytes before its body is retained.
      const grown = Buffer.allocUnsafeSlow(Math.max(needed, INITIAL_RETAINED_BYTES, this.#retained.length * 2));
      this.#retained.copy(grown, 0, 0, this.#retainedBytes);
      this.#retained = grown;
    }
    chunk.copy(this.#retained, this.#retainedBytes, start, end);
    this.#retainedBytes = needed;
  }

  #checkHeader(type: number, length: number): void {
    switch (type) {
      case Kind.Hangup:
        // The documented hangup is exactly `00 00 00` (§1.2); a payload means we lost framing.
        if (length !== 0) throw badFrame(`hangup (0x00) with a ${length}-byte payload`);
        return;
      case Kind.Uuid:
        if (length !== UUID_BYTES) throw badFrame(`UUID (0x01) payload is ${length} bytes, expected ${UUID_BYTES}`);
        return;
      case Kind.Dtmf:
        if (length !== 1) throw badFrame(`DTMF (0x03) payload is ${length} bytes, expected 1`);
        return;
      default:
        if (type !== Kind.Error && sampleRateForKind(type) === undefined) throw badFrame(`unknown kind 0x${hex(type)}`);
        // Any audio length is accepted: frames come as the source made them, short last frames
        // included (§1.5), and a µ-law leg mislabelled 0x10 can even give odd lengths (§1.4).
        if (length > this.#maxPayloadBytes) {
          throw badFrame(`kind 0x${hex(type)} announces ${length} payload bytes, more than maxPayloadBytes ${this.#maxPayloadBytes}`);
        }
    }
  }

  #decode(type: number, body: Buffer, copy: boolean): AudioSocketMessage {
    switch (type) {
      case Kind.Hangup:
        return { kind: 'hangup' };
      case Kind.Uuid:
        return { kind: 'uuid', uuid: uuidToString(body) };
      case Kind.Dtmf: {
        const digit = String.fromCharCode(body[0]!);
        if (!isDtmfDigit(digit)) throw badFrame(`DTMF (0x03) byte 0x${hex(body[0]!)} is not one of 0-9 * # A-D`);
        return { kind: 'dtmf', digit };
      }
      case Kind.Error:
        return { kind: 'error', payload: copy ? Buffer.from(body) : body };
      default:
        return {
          kind: 'audio',
          type,
          sampleRateHz: sampleRateForKind(type)!,
          payload: copy ? Buffer.from(body) : body,
        };
    }
  }
}

function badFrame(message: string): BridgeError {
  return new BridgeError('AUDIOSOCKET_BAD_FRAME', message);
}

function hex(value: number): string {
  return value.toString(16).padStart(2, '0');
}
