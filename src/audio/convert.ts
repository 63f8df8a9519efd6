import { sameFormat, type AudioFormat } from './format.js';
import { ulawDecodeSamples, ulawEncodeSamples } from './g711.js';
import { Resampler, type ResamplerOptions } from './resample.js';

/**
 * Streaming conversion between two mono formats (protocols.md §4.7):
 *
 *   bytes ─► decode (s16le view, or µ-law table) ─► Resampler (if the rates differ) ─► encode ─► new Buffer
 *
 * Stateful: the resampler's history and, for PCM input, a dangling odd byte are carried to the next
 * call, so a stream may arrive in any chunking. Every returned Buffer is new and owned by the caller
 * (except for the identity converter, which returns its input); scratch arrays are reused across calls.
 */
export interface Converter {
  /** Converts the next chunk of the stream. May return an empty Buffer (e.g. for a 1-byte PCM chunk). */
  convert(input: Buffer): Buffer;
  /** Forgets the stream state (carried byte, filter history), e.g. after a barge-in flush. */
  reset(): void;
}

const EMPTY = Buffer.alloc(0);
const EMPTY_SAMPLES = new Int16Array(0);

/** Typed-array views below read and write s16le straight from Buffers, which needs a little-endian CPU. */
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * A converter from `from` to `to`. Equal formats give an identity converter that returns each input
 * as is. Any pair of positive integer rates works; ai-call uses 8000, 16000, 22050, 24000, 44100 and
 * 48000 Hz (`options.taps` tunes the resampler, see resample.ts).
 */
export function createConverter(from: AudioFormat, to: AudioFormat, options: ResamplerOptions = {}): Converter {
  if (sameFormat(from, to)) return IDENTITY;
  if (!LITTLE_ENDIAN_HOST) throw new Error('audio conversion needs a little-endian host');
  return new StreamConverter(from, to, options);
}

const IDENTITY: Converter = Object.freeze({
  convert: (input: Buffer): Buffer => input,
  reset: (): void => {},
});

class StreamConverter implements Converter {
  readonly #inputUlaw: boolean;
  readonly #outputUlaw: boolean;
  readonly #resampler: Resampler | undefined;
  /** Decoded input when it cannot be viewed in place (µ-law, odd offset, carried byte). */
  #inScratch = new Int16Array(0);
  /** Resampled samples waiting to be µ-law encoded. */
  #outScratch = new Int16Array(0);
  /** A PCM input byte (the low half of a sample) left over from the previous chunk, or −1. */
  #carry = -1;

  constructor(from: AudioFormat, to: AudioFormat, options: ResamplerOptions) {
    this.#inputUlaw = from.encoding === 'ulaw';
    this.#outputUlaw = to.encoding === 'ulaw';
    this.#resampler =
      from.sampleRateHz === to.sampleRateHz ? undefined : new Resampler(from.sampleRateHz, to.sampleRateHz, options);
  }

  convert(input: Buffer): Buffer {
    const samples = this.#decode(input);
    if (samples.length === 0) return EMPTY;
    const resampler = this.#resampler;
    if (this.#outputUlaw) {
      let source = samples;
      if (resampler) {
        const count = resampler.outputLength(samples.length);
        if (this.#outScratch.length < count) this.#outScratch = new Int16Array(growTo(count));
        resampler.processInto(samples, this.#outScratch);
        source = this.#outScratch.subarray(0, count);
      }
      if (source.length === 0) return EMPTY;
      const out = Buffer.allocUnsafe(source.length);
      ulawEncodeSamples(source, 0, source.length, out, 0);
      return out;
    }
    const count = resampler ? resampler.outputLength(samples.length) : samples.length;
    if (count === 0) {
      resampler?.processInto(samples, EMPTY_SAMPLES); // still feeds the history
      return EMPTY;
    }
    const out = allocPcm(count);
    const view = new Int16Array(out.buffer, out.byteOffset, count);
    if (resampler) resampler.processInto(samples, view);
    else view.set(samples); // µ-law → PCM at the same rate: #decode already did the work
    return out;
  }

  reset(): void {
    this.#carry = -1;
    this.#resampler?.reset();
  }

  /** The input's samples: a view of `input` when possible, else decoded into the reused scratch. */
  #decode(input: Buffer): Int16Array {
    if (this.#inputUlaw) {
      const scratch = this.#scratch(input.length);
      ulawDecodeSamples(input, 0, input.length, scratch, 0);
      return scratch.subarray(0, input.length);
    }
    if (this.#carry < 0 && (input.byteOffset & 1) === 0) {
      const count = input.length >> 1;
      if ((input.length & 1) === 1) this.#carry = input[input.length - 1]!;
      return new Int16Array(input.buffer, input.byteOffset, count);
    }
    // A carried byte or an odd offset: assemble samples byte by byte (s16le).
    let offset = 0;
    let lowByte = this.#carry;
    const count = (input.length + (lowByte < 0 ? 0 : 1)) >> 1;
    const scratch = this.#scratch(count);
    let n = 0;
    if (lowByte >= 0 && input.length > 0) {
      scratch[n++] = ((lowByte | (input[0]! << 8)) << 16) >> 16;
      offset = 1;
      lowByte = -1;
    }
    for (; offset + 1 < input.length; offset += 2) {
      scratch[n++] = ((input[offset]! | (input[offset + 1]! << 8)) << 16) >> 16;
    }
    this.#carry = offset < input.length ? input[offset]! : lowByte;
    return scratch.subarray(0, n);
  }

  #scratch(samples: number): Int16Array {
    if (this.#inScratch.length < samples) this.#inScratch = new Int16Array(growTo(samples));
    return this.#inScratch;
  }
}

/** Scratch sizes grow in powers of two so a stream of varying chunks settles after a few calls. */
function growTo(samples: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(samples, 256)));
}

/** A new Buffer for `samples` s16le samples, 2-byte aligned so an Int16Array can view it. */
function allocPcm(samples: number): Buffer {
  const out = Buffer.allocUnsafe(samples * 2);
  // Pool slices are 8-byte aligned in Node 20; fall back to a fresh allocation if that ever changes.
  return (out.byteOffset & 1) === 0 ? out : Buffer.allocUnsafeSlow(samples * 2);
}
