/**
 * The queue between agent audio and the 20 ms clock (protocols.md §4.7 "Downlink", §4.9).
 *
 *   enqueue(chunk, eventId) ─► [partial frame] ─► ring of whole frames ─► shift() once per tick
 *
 * Agent audio arrives faster than real time and in any size; it is re-framed here into exact
 * `frameBytes` frames, carrying the remainder to the next chunk. Each frame remembers the `event_id` of
 * the response it belongs to, so a barge-in can drop exactly the interrupted responses.
 *
 * Bounds (style.md rule 4): capacity is `maxBufferedBytes` rounded down to whole frames, counting the
 * partial frame. Overflow policy: the newest bytes beyond capacity are dropped (the audio already queued
 * keeps playing in order) and counted in `droppedBytes`.
 *
 * Frames are fresh Buffers owned by whoever `shift()`s them: the queue never writes to one again, so
 * they may sit in a socket's write queue safely. Enqueued chunks are copied, never retained.
 *
 * With `headroomBytes` (e.g. 3, AudioSocket's header), every frame is allocated that much longer and
 * its audio starts at offset `headroomBytes`: the transport writes its header into the headroom and
 * sends the frame as is, with no second allocation or copy (audiosocket/protocol.ts
 * `encodeAudioInPlace`). The headroom's content is unspecified until then.
 */
/** Slots the ring starts with (1.28 s of 20 ms frames); it doubles on demand up to the capacity. */
const INITIAL_FRAMES = 64;

export class PlayoutBuffer {
  /** Bytes per frame, e.g. 320 = 20 ms of slin 8 kHz (protocols.md §1.1). */
  readonly frameBytes: number;
  /** Most bytes held at once (whole frames plus the partial one); a multiple of `frameBytes`. */
  readonly capacityBytes: number;
  /** Bytes in front of the audio of every frame `shift()` returns (0: the frame is just audio). */
  readonly headroomBytes: number;

  /** Ring of whole frames: slot `(#head + k) % capacity` holds the k-th oldest. */
  #frames: (Buffer | undefined)[];
  #eventIds: Float64Array;
  readonly #capacityFrames: number;
  #head = 0;
  #count = 0;
  /** The frame being filled, `#partialBytes` of it written so far. */
  #partial: Buffer | undefined;
  #partialBytes = 0;
  #partialEventId = 0;
  #droppedBytes = 0;

  constructor(o: { frameBytes: number; maxBufferedBytes: number; headroomBytes?: number }) {
    if (!Number.isInteger(o.frameBytes) || o.frameBytes <= 0) {
      throw new RangeError(`PlayoutBuffer: frameBytes must be a positive integer, got ${o.frameBytes}`);
    }
    const headroomBytes = o.headroomBytes ?? 0;
    if (!Number.isInteger(headroomBytes) || headroomBytes < 0) {
      throw new RangeError(`PlayoutBuffer: headroomBytes must be an integer ≥ 0, got ${headroomBytes}`);
    }
    this.headroomBytes = headroomBytes;
    const capacityFrames = Math.floor(o.maxBufferedBytes / o.frameBytes);
    if (!(capacityFrames >= 1)) {
      throw new RangeError(
        `PlayoutBuffer: maxBufferedBytes must hold at least one frame (${o.frameBytes} B), got ${o.maxBufferedBytes}`,
      );
    }
    this.frameBytes = o.frameBytes;
    this.capacityBytes = capacityFrames * o.frameBytes;
    // Allocated small and grown on demand: most calls never queue more than a few seconds, and a
    // ring sized for maxBufferedAudioMs (6000 slots for 120 s) would cost ~96 KB per call up front.
    this.#capacityFrames = capacityFrames;
    const initial = Math.min(capacityFrames, INITIAL_FRAMES);
    this.#frames = new Array<Buffer | undefined>(initial).fill(undefined);
    this.#eventIds = new Float64Array(initial);
  }

  /** Bytes waiting to be played, including the partial frame. */
  get bufferedBytes(): number {
    return this.#count * this.frameBytes + this.#partialBytes;
  }

  /** Whole frames ready for `shift()`. */
  get frames(): number {
    return this.#count;
  }

  /** Bytes refused by `enqueue()` because the buffer was full, since construction. */
  get droppedBytes(): number {
    return this.#droppedBytes;
  }

  /**
   * Appends `chunk` (copied) as audio of response `eventId`; returns how many bytes were accepted, the
   * rest being dropped as overflow. A frame that straddles two responses takes the newer `eventId`.
   */
  enqueue(chunk: Buffer, eventId: number): number {
    const accepted = Math.min(chunk.length, this.capacityBytes - this.bufferedBytes);
    this.#droppedBytes += chunk.length - accepted;
    const frameBytes = this.frameBytes;
    const headroom = this.headroomBytes;
    let offset = 0;
    while (offset < accepted) {
      if (this.#partial === undefined) {
        this.#partial = Buffer.allocUnsafe(headroom + frameBytes);
        this.#partialBytes = 0;
      }
      const n = Math.min(accepted - offset, frameBytes - this.#partialBytes);
      chunk.copy(this.#partial, headroom + this.#partialBytes, offset, offset + n);
      this.#partialBytes += n;
      this.#partialEventId = eventId;
      offset += n;
      if (this.#partialBytes === frameBytes) {
        this.#push(this.#partial, eventId);
        this.#partial = undefined;
        this.#partialBytes = 0;
      }
    }
    return accepted;
  }

  /**
   * The oldest whole frame (`headroomBytes + frameBytes` long, its audio at `headroomBytes`), or
   * undefined when none is queued (play silence then).
   */
  shift(): Buffer | undefined {
    if (this.#count === 0) return undefined;
    const frame = this.#frames[this.#head];
    this.#frames[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#frames.length;
    this.#count--;
    return frame;
  }

  /**
   * Takes the partial frame, padded with silence (zero bytes) to a whole frame: the tail of a response
   * at end of speech. Call it once `shift()` returns undefined, since it does not wait for queued frames.
   */
  flushPartial(): Buffer | undefined {
    const partial = this.#partial;
    if (partial === undefined || this.#partialBytes === 0) return undefined;
    partial.fill(0, this.headroomBytes + this.#partialBytes);
    this.#partial = undefined;
    this.#partialBytes = 0;
    return partial;
  }

  /**
   * Pads the partial frame with silence and queues it behind the whole frames (keeping order), for a
   * response that has ended while frames are still queued. Returns false when there was nothing to pad.
   */
  sealPartial(): boolean {
    const partial = this.#partial;
    if (partial === undefined || this.#partialBytes === 0) return false;
    partial.fill(0, this.headroomBytes + this.#partialBytes);
    this.#partial = undefined;
    this.#partialBytes = 0;
    this.#push(partial, this.#partialEventId);
    return true;
  }

  /** Drops everything queued, partial frame included (barge-in, protocols.md §4.9); returns the bytes dropped. */
  clear(): number {
    const dropped = this.bufferedBytes;
    for (let k = 0; k < this.#count; k++) this.#frames[(this.#head + k) % this.#frames.length] = undefined;
    this.#head = 0;
    this.#count = 0;
    this.#partial = undefined;
    this.#partialBytes = 0;
    if (this.#frames.length > INITIAL_FRAMES) {
      // Give a long response's memory back (barge-in, end of call).
      this.#frames = new Array<Buffer | undefined>(INITIAL_FRAMES).fill(undefined);
      this.#eventIds = new Float64Array(INITIAL_FRAMES);
    }
    return dropped;
  }

  /**
   * Drops every queued frame (and the partial one) whose `eventId` is ≤ `eventId`, keeping the order
   * of the rest: the `event_id` drop rule of protocols.md §4.9. Returns the bytes dropped.
   */
  dropThrough(eventId: number): number {
    const capacity = this.#frames.length;
    let kept = 0;
    let dropped = 0;
    for (let k = 0; k < this.#count; k++) {
      const from = (this.#head + k) % capacity;
      const frame = this.#frames[from];
      const frameEventId = this.#eventIds[from]!;
      this.#frames[from] = undefined;
      if (frameEventId <= eventId) {
        dropped += this.frameBytes;
        continue;
      }
      const to = (this.#head + kept) % capacity;
      this.#frames[to] = frame;
      this.#eventIds[to] = frameEventId;
      kept++;
    }
    this.#count = kept;
    if (this.#partialBytes > 0 && this.#partialEventId <= eventId) {
      dropped += this.#partialBytes;
      this.#partial = undefined;
      this.#partialBytes = 0;
    }
    return dropped;
  }

  /** Doubles the ring (never beyond the capacity, which enqueue() already enforces), oldest first. */
  #grow(): void {
    const length = Math.min(this.#capacityFrames, this.#frames.length * 2);
    const frames = new Array<Buffer | undefined>(length).fill(undefined);
    const eventIds = new Float64Array(length);
    for (let k = 0; k < this.#count; k++) {
      const from = (this.#head + k) % this.#frames.length;
      frames[k] = this.#frames[from];
      eventIds[k] = this.#eventIds[from]!;
    }
    this.#frames = frames;
    this.#eventIds = eventIds;
    this.#head = 0;
  }

  #push(frame: Buffer, eventId: number): void {
    // Cannot overflow: enqueue() admits at most capacityBytes − bufferedBytes, and a sealed partial
    // frame already counted towards bufferedBytes as at least one byte of a whole frame.
    if (this.#count === this.#frames.length) this.#grow();
    const slot = (this.#head + this.#count) % this.#frames.length;
    this.#frames[slot] = frame;
    this.#eventIds[slot] = eventId;
    this.#count++;
  }
}
