/**
 * Agent audio that has arrived but is not converted yet (protocols.md §4.7 "Downlink"): a FIFO of
 * chunks, each with the `event_id` of its response, read back in bounded slices.
 *
 *   push(chunk, eventId) ─► [chunk][chunk][chunk] ─► take(maxBytes): a view of ≤ maxBytes of the oldest
 *
 * Agent audio arrives faster than real time: a 2 s reply is twenty messages in one read. Queued here
 * and converted one frame's worth per clock tick, it costs every tick a slice instead of blocking the
 * event loop (and every other call's frames) for the whole reply at once.
 *
 * Chunks are retained, not copied: whoever pushes one hands it over and must not write to it again.
 * `take()` returns views, never spanning two chunks, so it allocates nothing but the view. The ring
 * of slots grows on demand and shrinks back on `clear()`; the caller bounds the bytes it pushes.
 */
/** Slots the ring starts with; it doubles on demand. */
const INITIAL_SLOTS = 16;

export class ChunkQueue {
  /** Ring of chunks: slot `(#head + k) % length` holds the k-th oldest. */
  #chunks: (Buffer | undefined)[] = new Array<Buffer | undefined>(INITIAL_SLOTS).fill(undefined);
  #eventIds = new Float64Array(INITIAL_SLOTS);
  #head = 0;
  #count = 0;
  /** Bytes of the oldest chunk already taken. */
  #headOffset = 0;
  #bytes = 0;
  #takenEventId = 0;

  /** Bytes queued. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The `eventId` of the chunk the last `take()` came from. */
  get takenEventId(): number {
    return this.#takenEventId;
  }

  /** Appends `chunk` (retained, not copied) as audio of response `eventId`. Empty chunks are ignored. */
  push(chunk: Buffer, eventId: number): void {
    if (chunk.length === 0) return;
    if (this.#count === this.#chunks.length) this.#grow();
    const slot = (this.#head + this.#count) % this.#chunks.length;
    this.#chunks[slot] = chunk;
    this.#eventIds[slot] = eventId;
    this.#count++;
    this.#bytes += chunk.length;
  }

  /**
   * Removes and returns up to `maxBytes` (≥ 1) from the front, as a view of the oldest chunk; its
   * event id is then `takenEventId`. Returns undefined when the queue is empty.
   */
  take(maxBytes: number): Buffer | undefined {
    if (this.#count === 0) return undefined;
    const head = this.#head;
    const chunk = this.#chunks[head]!;
    const start = this.#headOffset;
    const end = Math.min(chunk.length, start + Math.max(1, maxBytes));
    this.#takenEventId = this.#eventIds[head]!;
    this.#bytes -= end - start;
    if (end === chunk.length) {
      this.#chunks[head] = undefined;
      this.#head = (head + 1) % this.#chunks.length;
      this.#count--;
      this.#headOffset = 0;
    } else {
      this.#headOffset = end;
    }
    return start === 0 && end === chunk.length ? chunk : chunk.subarray(start, end);
  }

  /** Drops everything queued (barge-in, end of call); returns the bytes dropped. */
  clear(): number {
    const dropped = this.#bytes;
    if (this.#chunks.length > INITIAL_SLOTS) {
      this.#chunks = new Array<Buffer | undefined>(INITIAL_SLOTS).fill(undefined);
      this.#eventIds = new Float64Array(INITIAL_SLOTS);
    } else {
      this.#chunks.fill(undefined);
    }
    this.#head = 0;
    this.#count = 0;
    this.#headOffset = 0;
    this.#bytes = 0;
    return dropped;
  }

  #grow(): void {
    const length = this.#chunks.length * 2;
    const chunks = new Array<Buffer | undefined>(length).fill(undefined);
    const eventIds = new Float64Array(length);
    for (let k = 0; k < this.#count; k++) {
      const from = (this.#head + k) % this.#chunks.length;
      chunks[k] = this.#chunks[from];
      eventIds[k] = this.#eventIds[from]!;
    }
    this.#chunks = chunks;
    this.#eventIds = eventIds;
    this.#head = 0;
  }
}
