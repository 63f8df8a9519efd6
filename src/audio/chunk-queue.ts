/**
 * Agent audio that has arrived but is not converted yet (protocols.md §4.7 "Downlink"): a FIFO of
 * bytes, each run tagged with the `event_id` of its response, read back in bounded slices.
 *
 *   push(chunk, eventId) ─► copied into one ring buffer ─► take(maxBytes): a view of ≤ maxBytes, oldest first
 *
 * Agent audio arrives faster than real time: a 2 s reply is twenty messages in one read. Queued here
 * and converted one frame's worth per clock tick, it costs every tick a slice instead of blocking the
 * event loop (and every other call's frames) for the whole reply at once.
 *
 * Why a ring, and copies: audio waits here for seconds. Chunks kept by reference would each outlive
 * two young-generation collections and be promoted, a reply's worth of buffers at a time, for every
 * call; the old generation then fills with dead audio and V8 runs a full mark-compact every few
 * hundred milliseconds (measured: one every ~600 ms at 250 calls, steps of up to 12 ms). One ring per
 * call is promoted once and reused; what a push copies from dies young.
 *
 * The ring starts small and doubles on demand (the caller bounds what it pushes); `clear()` keeps it
 * for the next response, `release()` gives it back. Views from `take()` are valid until the next
 * `push()`, `clear()` or `release()`: use them at once.
 */
/** First ring size: 4096 B = 256 ms of pcm_8000. Doubles on demand. */
const INITIAL_BYTES = 4_096;
/** First size of the ring of event-id runs. */
const INITIAL_RUNS = 8;

const EMPTY = Buffer.alloc(0);

export class ChunkQueue {
  #ring: Buffer = EMPTY;
  /** Offset in `#ring` of the oldest byte. */
  #head = 0;
  #bytes = 0;
  /** Runs of one event id: run k ends `#runEnds[k]` bytes after the start of the stream (absolute). */
  #runEnds = new Float64Array(INITIAL_RUNS);
  #runIds = new Float64Array(INITIAL_RUNS);
  #runHead = 0;
  #runCount = 0;
  /** Absolute position (bytes since the start of the stream) of the oldest queued byte. */
  #readPosition = 0;
  #takenEventId = 0;

  /** Bytes queued. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The `eventId` of the bytes the last `take()` returned. */
  get takenEventId(): number {
    return this.#takenEventId;
  }

  /** Bytes the ring holds before it must grow (0 until the first push). */
  get capacityBytes(): number {
    return this.#ring.length;
  }

  /** Appends a copy of `chunk` as audio of response `eventId`. Empty chunks are ignored. */
  push(chunk: Buffer, eventId: number): void {
    const length = chunk.length;
    if (length === 0) return;
    if (this.#bytes + length > this.#ring.length) this.#grow(this.#bytes + length);
    const ring = this.#ring;
    const tail = (this.#head + this.#bytes) % ring.length;
    const first = Math.min(length, ring.length - tail);
    chunk.copy(ring, tail, 0, first);
    if (first < length) chunk.copy(ring, 0, first, length);
    this.#bytes += length;
    const end = this.#readPosition + this.#bytes;
    const runs = this.#runEnds.length;
    if (this.#runCount > 0 && this.#runIds[(this.#runHead + this.#runCount - 1) % runs] === eventId) {
      this.#runEnds[(this.#runHead + this.#runCount - 1) % runs] = end;
      return;
    }
    if (this.#runCount === runs) this.#growRuns();
    const slot = (this.#runHead + this.#runCount) % this.#runEnds.length;
    this.#runEnds[slot] = end;
    this.#runIds[slot] = eventId;
    this.#runCount++;
  }

  /**
   * Removes and returns up to `maxBytes` (≥ 1) of the oldest audio, as a view of the ring that never
   * spans two responses or the ring's wrap; its event id is then `takenEventId`. Returns undefined
   * when the queue is empty. The view is valid until the next push(), clear() or release().
   */
  take(maxBytes: number): Buffer | undefined {
    if (this.#bytes === 0) return undefined;
    const runEnd = this.#runEnds[this.#runHead]!;
    this.#takenEventId = this.#runIds[this.#runHead]!;
    const ring = this.#ring;
    const length = Math.min(Math.max(1, maxBytes), runEnd - this.#readPosition, ring.length - this.#head);
    const view = ring.subarray(this.#head, this.#head + length);
    this.#head = (this.#head + length) % ring.length;
    this.#bytes -= length;
    this.#readPosition += length;
    if (this.#readPosition === runEnd) {
      this.#runHead = (this.#runHead + 1) % this.#runEnds.length;
      this.#runCount--;
    }
    return view;
  }

  /** Drops everything queued (barge-in); keeps the ring for what comes next. Returns the bytes dropped. */
  clear(): number {
    const dropped = this.#bytes;
    this.#readPosition += dropped;
    this.#head = 0;
    this.#bytes = 0;
    this.#runHead = 0;
    this.#runCount = 0;
    return dropped;
  }

  /** Drops everything and gives the ring back (end of call). Returns the bytes dropped. */
  release(): number {
    const dropped = this.clear();
    this.#ring = EMPTY;
    if (this.#runEnds.length > INITIAL_RUNS) {
      this.#runEnds = new Float64Array(INITIAL_RUNS);
      this.#runIds = new Float64Array(INITIAL_RUNS);
    }
    return dropped;
  }

  /** A ring of at least `needed` bytes (doubling), holding the queued bytes from offset 0. */
  #grow(needed: number): void {
    let size = Math.max(INITIAL_BYTES, this.#ring.length);
    while (size < needed) size *= 2;
    const ring = Buffer.allocUnsafeSlow(size);
    const old = this.#ring;
    const first = Math.min(this.#bytes, old.length - this.#head);
    old.copy(ring, 0, this.#head, this.#head + first);
    if (first < this.#bytes) old.copy(ring, first, 0, this.#bytes - first);
    this.#ring = ring;
    this.#head = 0;
  }

  #growRuns(): void {
    const length = this.#runEnds.length * 2;
    const ends = new Float64Array(length);
    const ids = new Float64Array(length);
    for (let k = 0; k < this.#runCount; k++) {
      const from = (this.#runHead + k) % this.#runEnds.length;
      ends[k] = this.#runEnds[from]!;
      ids[k] = this.#runIds[from]!;
    }
    this.#runEnds = ends;
    this.#runIds = ids;
    this.#runHead = 0;
  }
}
