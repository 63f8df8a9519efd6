import { describe, expect, it } from 'vitest';
import { ChunkQueue } from '../../src/audio/chunk-queue.js';

/** `bytes` bytes counting up from `start` (mod 256). */
function ramp(bytes: number, start = 0): Buffer {
  const out = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) out[i] = (start + i) & 0xff;
  return out;
}

/** Everything left, in slices of at most `maxBytes`, with the event id of each slice. */
function takeAll(queue: ChunkQueue, maxBytes: number): Array<{ bytes: Buffer; eventId: number }> {
  const out: Array<{ bytes: Buffer; eventId: number }> = [];
  for (let slice = queue.take(maxBytes); slice; slice = queue.take(maxBytes)) out.push({ bytes: slice, eventId: queue.takenEventId });
  return out;
}

describe('ChunkQueue', () => {
  it('gives back the stream in order, in slices of at most maxBytes that never span two responses', () => {
    const q = new ChunkQueue();
    const stream = ramp(1_000);
    q.push(stream.subarray(0, 500), 1);
    q.push(stream.subarray(500, 700), 1); // same response: one run
    q.push(stream.subarray(700, 1_000), 2);
    expect(q.bytes).toBe(1_000);
    const slices = takeAll(q, 320);
    expect(slices.map((s) => s.bytes.length)).toEqual([320, 320, 60, 300]);
    expect(slices.map((s) => s.eventId)).toEqual([1, 1, 1, 2]);
    expect(Buffer.concat(slices.map((s) => s.bytes)).equals(stream)).toBe(true);
    expect(q.bytes).toBe(0);
    expect(q.take(320)).toBeUndefined();
  });

  it('copies what it is given: the caller may reuse its buffer at once', () => {
    const q = new ChunkQueue();
    const chunk = ramp(320);
    q.push(chunk, 1);
    chunk.fill(0xee);
    expect(q.take(320)!.equals(ramp(320))).toBe(true);
  });

  it('reuses one ring: wrap-around keeps the order, a slice never crosses the wrap', () => {
    const q = new ChunkQueue();
    q.push(ramp(3_000), 1);
    takeAll(q, 1_000);
    const capacity = q.capacityBytes;
    expect(capacity).toBe(4_096);
    // 3000 bytes taken: the next 2000 wrap around the end of the 4096-byte ring.
    const stream = ramp(2_000, 77);
    q.push(stream, 2);
    const slices = takeAll(q, 4_096);
    expect(slices.map((s) => s.bytes.length)).toEqual([1_096, 904]);
    expect(Buffer.concat(slices.map((s) => s.bytes)).equals(stream)).toBe(true);
    expect(q.capacityBytes).toBe(capacity); // no new allocation
  });

  it('grows by doubling while bytes are queued across the wrap, keeping order and event ids', () => {
    const q = new ChunkQueue();
    q.push(ramp(3_000), 1);
    q.take(2_500);
    q.push(ramp(3_000, 11), 2); // wraps
    q.push(ramp(5_000, 22), 3); // needs 8500 bytes: grows to 16384
    expect(q.capacityBytes).toBe(16_384);
    const slices = takeAll(q, 100_000);
    expect(slices.map((s) => [s.eventId, s.bytes.length])).toEqual([
      [1, 500],
      [2, 3_000],
      [3, 5_000],
    ]);
    expect(slices[0]!.bytes.equals(ramp(3_000).subarray(2_500))).toBe(true);
    expect(slices[1]!.bytes.equals(ramp(3_000, 11))).toBe(true);
    expect(slices[2]!.bytes.equals(ramp(5_000, 22))).toBe(true);
  });

  it('ignores empty chunks and takes at least one byte', () => {
    const q = new ChunkQueue();
    q.push(Buffer.alloc(0), 1);
    expect(q.bytes).toBe(0);
    expect(q.take(10)).toBeUndefined();
    q.push(ramp(3), 4);
    expect(q.take(0)!.length).toBe(1);
    expect(q.bytes).toBe(2);
  });

  // style.md rule 15: every split of a stream over chunks gives the same bytes back.
  it.each(Array.from({ length: 17 }, (_, k) => k * 40))('split at %i', (split) => {
    const q = new ChunkQueue();
    const stream = ramp(640);
    q.push(stream.subarray(0, split), 1);
    q.push(stream.subarray(split), 1);
    expect(Buffer.concat(takeAll(q, 160).map((s) => s.bytes)).equals(stream)).toBe(true);
  });

  it('keeps many alternating responses apart (the run ring grows), and clear() keeps the ring', () => {
    const q = new ChunkQueue();
    for (let i = 0; i < 10; i++) q.push(Buffer.from([i]), i);
    for (let i = 0; i < 8; i++) q.take(1); // run head at slot 8
    for (let i = 10; i < 60; i++) q.push(Buffer.from([i]), i);
    const slices = takeAll(q, 10);
    expect(slices.map((s) => s.bytes[0])).toEqual(Array.from({ length: 52 }, (_, k) => k + 8));
    expect(slices.map((s) => s.eventId)).toEqual(Array.from({ length: 52 }, (_, k) => k + 8));
    for (let i = 0; i < 40; i++) q.push(ramp(5, i), i);
    const capacity = q.capacityBytes;
    expect(q.clear()).toBe(200);
    expect(q.bytes).toBe(0);
    expect(q.take(5)).toBeUndefined();
    expect(q.capacityBytes).toBe(capacity);
    q.push(ramp(4), 9);
    expect(takeAll(q, 4)).toEqual([{ bytes: ramp(4), eventId: 9 }]);
  });

  it('release() drops everything and gives the ring back', () => {
    const q = new ChunkQueue();
    q.push(ramp(10_000), 1);
    expect(q.release()).toBe(10_000);
    expect(q.capacityBytes).toBe(0);
    expect(q.take(1)).toBeUndefined();
    q.push(ramp(3), 2);
    expect(takeAll(q, 8)).toEqual([{ bytes: ramp(3), eventId: 2 }]);
  });

  it('clear() in the middle of a response forgets it', () => {
    const q = new ChunkQueue();
    q.push(ramp(10), 1);
    q.take(3);
    expect(q.clear()).toBe(7);
    q.push(ramp(4, 100), 2);
    expect([...q.take(10)!]).toEqual([100, 101, 102, 103]);
  });
});
