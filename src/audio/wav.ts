/**
 * Minimal RIFF/WAVE for prompts, recordings and test fixtures: 16-bit integer PCM only, mono out.
 *
 *   "RIFF" size "WAVE" { chunk id (4 B) | size (uint32 LE) | body, padded to an even length }*
 *   "fmt ": format tag (1 = PCM, 0xFFFE = extensible with a PCM sub-format), channels, rate, …, bits
 *   "data": interleaved little-endian samples
 */

const WAVE_FORMAT_PCM = 0x0001; // format tag: integer PCM
const WAVE_FORMAT_EXTENSIBLE = 0xfffe; // format tag: the real one is the first 2 bytes of the sub-format GUID
const RIFF_HEADER_BYTES = 12; // "RIFF" size "WAVE"
const CHUNK_HEADER_BYTES = 8; // id + uint32 size

export interface Wav {
  readonly sampleRateHz: number;
  /** Channels in the file; `pcm` is always mono. */
  readonly channels: number;
  /** Mono s16le samples (stereo is averaged); a new Buffer at an even byte offset (Int16Array-viewable). */
  readonly pcm: Buffer;
}

/**
 * Parses a WAVE file of 16-bit PCM, mono or stereo (downmixed to mono by averaging). Unknown chunks are
 * skipped; a data size larger than the file (a recording cut short, or a streamed 0xFFFFFFFF) is clamped
 * to what is there. Throws an Error naming the problem for anything else.
 */
export function readWav(buf: Buffer): Wav {
  if (buf.length < RIFF_HEADER_BYTES || buf.toString('latin1', 0, 4) !== 'RIFF' || buf.toString('latin1', 8, 12) !== 'WAVE') {
    throw new Error('readWav: not a RIFF/WAVE file');
  }
  let format: { channels: number; sampleRateHz: number; bits: number; blockAlign: number } | undefined;
  let offset = RIFF_HEADER_BYTES;
  while (offset + CHUNK_HEADER_BYTES <= buf.length) {
    const id = buf.toString('latin1', offset, offset + 4);
    const size = buf.readUInt32LE(offset + 4);
    const body = offset + CHUNK_HEADER_BYTES;
    if (id === 'fmt ') {
      if (size < 16 || body + 16 > buf.length) throw new Error(`readWav: "fmt " chunk is too short (${size} bytes)`);
      let tag = buf.readUInt16LE(body);
      if (tag === WAVE_FORMAT_EXTENSIBLE && size >= 40 && body + 26 <= buf.length) tag = buf.readUInt16LE(body + 24);
      const channels = buf.readUInt16LE(body + 2);
      const sampleRateHz = buf.readUInt32LE(body + 4);
      const blockAlign = buf.readUInt16LE(body + 12);
      const bits = buf.readUInt16LE(body + 14);
      if (tag !== WAVE_FORMAT_PCM) throw new Error(`readWav: format tag 0x${tag.toString(16)} is not integer PCM`);
      if (bits !== 16) throw new Error(`readWav: ${bits}-bit samples are not supported (16-bit PCM only)`);
      if (channels !== 1 && channels !== 2) throw new Error(`readWav: ${channels} channels are not supported (mono or stereo only)`);
      if (sampleRateHz === 0) throw new Error('readWav: sample rate is 0');
      if (blockAlign !== channels * 2) throw new Error(`readWav: block align ${blockAlign} does not match ${channels} × 16-bit`);
      format = { channels, sampleRateHz, bits, blockAlign };
    } else if (id === 'data') {
      if (format === undefined) throw new Error('readWav: "data" chunk before "fmt " chunk');
      const available = Math.min(size, buf.length - body);
      const frames = Math.floor(available / format.blockAlign);
      return { sampleRateHz: format.sampleRateHz, channels: format.channels, pcm: toMono(buf, body, frames, format.channels) };
    }
    offset = body + size + (size & 1); // chunks are padded to an even length
  }
  throw new Error(format === undefined ? 'readWav: no "fmt " chunk' : 'readWav: no "data" chunk');
}

function toMono(buf: Buffer, start: number, frames: number, channels: number): Buffer {
  const out = allocAligned(frames * 2);
  if (channels === 1) {
    buf.copy(out, 0, start, start + frames * 2);
    return out;
  }
  for (let i = 0; i < frames; i++) {
    const left = buf.readInt16LE(start + i * 4);
    const right = buf.readInt16LE(start + i * 4 + 2);
    out.writeInt16LE((left + right) >> 1, i * 2); // floor of the mean: stays in range
  }
  return out;
}

/** A new Buffer at an even byte offset, so callers may view it as an Int16Array. */
function allocAligned(bytes: number): Buffer {
  const out = Buffer.allocUnsafe(bytes);
  return (out.byteOffset & 1) === 0 ? out : Buffer.allocUnsafeSlow(bytes);
}

/** A canonical 44-byte-header WAVE file of mono 16-bit PCM. Throws on an odd byte count. */
export function encodeWav(pcm: Buffer, sampleRateHz: number): Buffer {
  if ((pcm.length & 1) === 1) throw new RangeError(`encodeWav: ${pcm.length} bytes is not a whole number of 16-bit samples`);
  if (!Number.isInteger(sampleRateHz) || sampleRateHz <= 0) {
    throw new RangeError(`encodeWav: sampleRateHz must be a positive integer, got ${sampleRateHz}`);
  }
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(36 + pcm.length, 4);
  header.write('WAVE', 8, 'latin1');
  header.write('fmt ', 12, 'latin1');
  header.writeUInt32LE(16, 16); // fmt chunk size
  header.writeUInt16LE(WAVE_FORMAT_PCM, 20);
  header.writeUInt16LE(1, 22); // channels
  header.writeUInt32LE(sampleRateHz, 24);
  header.writeUInt32LE(sampleRateHz * 2, 28); // byte rate
  header.writeUInt16LE(2, 32); // block align
  header.writeUInt16LE(16, 34); // bits per sample
  header.write('data', 36, 'latin1');
  header.writeUInt32LE(pcm.length, 40);
  return Buffer.concat([header, pcm]);
}
