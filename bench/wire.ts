/**
 * Minimal AudioSocket and FastAGI wire helpers for the benchmark's own processes (the floor server
 * and the load generator). Deliberately independent of src/: the instrument must not share the
 * product's codecs, or a codec bug would cancel out of every measurement.
 *
 * AudioSocket (protocols.md §1.1): `kind (1) | length (uint16 BE) | payload`, slin16le payloads.
 */
import { randomUUID } from 'node:crypto';

export const AudioSocketKind = {
  Hangup: 0x00, // out only: `00 00 00` ends the session
  Uuid: 0x01, // in only: first message, 16 raw bytes
  Slin8: 0x10, // both ways: 8 kHz, 320 B per 20 ms
} as const;

export const HEADER_BYTES = 3;
/** 20 ms of slin 8 kHz (protocols.md §1.1). */
export const FRAME_BYTES = 320;
export const FRAME_MS = 20;

/** One complete audio message (header and payload in one buffer, §1.6). */
export function encodeAudioMessage(payload: Buffer, kind: number = AudioSocketKind.Slin8): Buffer {
  const message = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  message[0] = kind;
  message.writeUInt16BE(payload.length, 1);
  payload.copy(message, HEADER_BYTES);
  return message;
}

/** `01 00 10` + the 16 UUID bytes, as Asterisk sends first (§1.3). */
export function encodeUuidMessage(uuid: string): Buffer {
  const message = Buffer.alloc(HEADER_BYTES + 16);
  message[0] = AudioSocketKind.Uuid;
  message.writeUInt16BE(16, 1);
  Buffer.from(uuid.replaceAll('-', ''), 'hex').copy(message, HEADER_BYTES);
  return message;
}

/**
 * Called once per complete message. `chunk[start, start + length)` is the payload; it is only valid
 * during the call (the retained buffer is reused), so copy what must outlive it.
 */
export type MessageCallback = (kind: number, chunk: Buffer, start: number, length: number) => void;

/**
 * Cursor parser over socket chunks that keeps only the one unfinished message between pushes
 * (style.md rule 2): no per-chunk concatenation and no allocation for messages inside one chunk.
 */
export class FrameReader {
  #retained = Buffer.alloc(0);
  #retainedBytes = 0;

  push(chunk: Buffer, onMessage: MessageCallback): void {
    let offset = 0;
    if (this.#retainedBytes > 0) {
      // Complete the header first, then the body, from the front of this chunk.
      if (this.#retainedBytes < HEADER_BYTES) {
        const take = Math.min(HEADER_BYTES - this.#retainedBytes, chunk.length);
        this.#append(chunk, 0, take);
        offset = take;
        if (this.#retainedBytes < HEADER_BYTES) return;
      }
      const total = HEADER_BYTES + this.#retained.readUInt16BE(1);
      const take = Math.min(total - this.#retainedBytes, chunk.length - offset);
      this.#append(chunk, offset, offset + take);
      offset += take;
      if (this.#retainedBytes < total) return;
      this.#retainedBytes = 0;
      onMessage(this.#retained[0]!, this.#retained, HEADER_BYTES, total - HEADER_BYTES);
    }
    const end = chunk.length;
    while (end - offset >= HEADER_BYTES) {
      const length = chunk.readUInt16BE(offset + 1);
      if (end - offset - HEADER_BYTES < length) break;
      onMessage(chunk[offset]!, chunk, offset + HEADER_BYTES, length);
      offset += HEADER_BYTES + length;
    }
    if (offset < end) this.#append(chunk, offset, end);
  }

  #append(chunk: Buffer, start: number, end: number): void {
    const needed = this.#retainedBytes + (end - start);
    if (needed > this.#retained.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, 1024, this.#retained.length * 2));
      this.#retained.copy(grown, 0, 0, this.#retainedBytes);
      this.#retained = grown;
    }
    chunk.copy(this.#retained, this.#retainedBytes, start, end);
    this.#retainedBytes = needed;
  }
}

/** Splits a byte stream into `\n`-terminated lines (FastAGI, protocols.md §2.2–2.3), keeping partial lines. */
export class LineReader {
  #partial = '';

  push(chunk: Buffer): string[] {
    const text = this.#partial + chunk.toString('latin1');
    const lines = text.split('\n');
    this.#partial = lines.pop() ?? '';
    return lines;
  }
}

/** The environment block Asterisk sends on connect (§2.2), for an AGI() with this script. */
export function agiEnvironment(host: string, port: number, script: string, uniqueid: string): string {
  return [
    'agi_network: yes',
    `agi_network_script: ${script}`,
    `agi_request: agi://${host}:${port}/${script}`,
    `agi_channel: Local/bench-${uniqueid}@ai-call-bench;2`,
    'agi_language: en',
    'agi_type: Local',
    `agi_uniqueid: ${uniqueid}`,
    'agi_version: ai-call-bench',
    'agi_callerid: +15550100',
    'agi_calleridname: bench',
    'agi_callingpres: 0',
    'agi_callingani2: 0',
    'agi_callington: 0',
    'agi_callingtns: 0',
    'agi_dnid: 600',
    'agi_rdnis: unknown',
    'agi_context: ai-call-bench',
    'agi_extension: 600',
    'agi_priority: 1',
    'agi_enhanced: 0.0',
    'agi_accountcode: ',
    'agi_threadid: 1',
    '',
    '',
  ].join('\n');
}

/** `SET VARIABLE NAME "value"` → [NAME, value] (the quoting of §2.4 undone); undefined otherwise. */
export function parseSetVariable(line: string): [string, string] | undefined {
  const match = /^SET VARIABLE (\S+) (.*)$/.exec(line);
  if (!match) return undefined;
  let value = match[2]!;
  if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) {
    value = value.slice(1, -1).replace(/\\(.)/g, '$1');
  }
  return [match[1]!, value];
}

/** `SET VARIABLE` with the value quoted as §2.4 requires. */
export function encodeSetVariable(name: string, value: string): string {
  return `SET VARIABLE ${name} "${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"\n`;
}

/** A v4 UUID; the floor issues these as AI_UUID. */
export function newUuid(): string {
  return randomUUID();
}

/** Lowercase 8-4-4-4-12 of 16 raw bytes at `start`. */
export function uuidFromBytes(chunk: Buffer, start: number): string {
  const h = chunk.toString('hex', start, start + 16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** A 20 ms slin 8 kHz frame of a 400 Hz tone: exactly 8 cycles, so consecutive frames join seamlessly. */
export function toneFrame(amplitude = 8_000): Buffer {
  const frame = Buffer.alloc(FRAME_BYTES);
  for (let i = 0; i < FRAME_BYTES / 2; i++) frame.writeInt16LE(Math.round(amplitude * Math.sin((2 * Math.PI * 400 * i) / 8_000)), i * 2);
  return frame;
}
