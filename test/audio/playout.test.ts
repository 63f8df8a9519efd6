import { describe, expect, it } from 'vitest';
import { PlayoutBuffer } from '../../src/audio/playout.js';

const FRAME = 320; // 20 ms of slin 8 kHz

/** `bytes` bytes counting up from `start` (mod 256), so re-framing errors show. */
function ramp(bytes: number, start = 0): Buffer {
  const out = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) out[i] = (start + i) & 0xff;
  return out;
}

function drain(buffer: PlayoutBuffer): Buffer[] {
  const frames: Buffer[] = [];
  for (let frame = buffer.shift(); frame; frame = buffer.shift()) frames.push(frame);
  return frames;
}

describe('PlayoutBuffer framing', () => {
  it('re-frames arbitrary chunks into exact frames, carrying the remainder', () => {
    const b = new PlayoutBuffer({ frameBytes: FRAME, maxBufferedBytes: 10 * FRAME });
    const stream = ramp(1_000);
    expect(b.enqueue(stream.subarray(0, 100), 1)).toBe(100);
    expect(b.frames).toBe(0);
    expect(b.shift()).toBeUndefined();
    expect(b.enqueue(stream.subarray(100, 700), 1)).toBe(600);
    expect(b.frames).toBe(2);
    expect(b.bufferedBytes).toBe(700);
    expect(b.enqueue(stream.subarray(700), 1)).toBe(300);
    const frames = drain(b);
    expect(frames.map((f) => f.length)).toEqual([FRAME, FRAME, FRAME]);
    expect(Buffer.concat(frames).equals(stream.subarray(0, 960))).toBe(true);
    expect(b.bufferedBytes).toBe(40);
  });

  // style.md rule 15: every split offset of a two-chunk stream gives the same frames.
  it.each(Array.from({ length: 33 }, (_, k) => k * 30))('split at %i', (split) => {
    const b = new PlayoutBuffer({ frameBytes: FRAME, maxBufferedBytes: 10 * FRAME });
    const stream = ramp(3 * FRAME);
    b.enqueue(stream.subarray(0, split), 1);
    b.enqueue(stream.subarray(split), 1);
    expect(Buffer.concat(drain(b)).equals(stream)).toBe(true);
  });

  it('many frames in one chunk', () => {
    const b = new PlayoutBuffer({ frameBytes: 160, maxBufferedBytes: 100 * 160 });
    b.enqueue(ramp(50 * 160 + 7), 3);
    expect(b.frames).toBe(50);
    expect(b.bufferedBytes).toBe(50 * 160 + 7);
  });

  it('copies chunks and hands out frames nobody writes to again', () => {
    const b = new PlayoutBuffer({ frameBytes: FRAME, maxBufferedBytes: 4 * FRAME });
    const chunk = ramp(FRAME);
    b.enqueue(chunk, 1);
    chunk.fill(0xee); // the caller reuses its buffer
    const frame = b.shift()!;
    expect(frame.equals(ramp(FRAME))).toBe(true);
    const copy = Buffer.from(frame);
    for (let i = 0; i < 20; i++) {
      b.enqueue(ramp(FRAME, i), 2);
      b.shift();
    }
    expect(frame.equals(copy)).toBe(true);
  });

  it('ring wraps around many times in order', () => {
    const b = new PlayoutBuffer({ frameBytes: 4, maxBufferedBytes: 12 });
    const played: number[] = [];
    for (let i = 0; i < 100; i++) {
      b.enqueue(Buffer.from([i, i, i, i]), i);
      if (i % 3 !== 0) played.push(b.shift()![0]!);
    }
    played.push(...drain(b).map((f) => f[0]!));
    expect(played).toEqual([...played].sort((x, y) => x - y));
    expect(played.length).toBe(b.droppedBytes === 0 ? 100 : 100 - b.droppedBytes / 4);
  });
});

describe('PlayoutBuffer bounds', () => {
  it('capacity is maxBufferedBytes rounded down to whole frames', () => {
    expect(new PlayoutBuffer({ frameBytes: FRAME, maxBufferedBytes: 1_000 }).capacityBytes).toBe(960);
    expect(() => new PlayoutBuffer({ frameBytes: FRAME, maxBufferedBytes: 319 })).toThrow(RangeError);
    expect(() => new PlayoutBuffer({ frameBytes: 0, maxBufferedBytes: 1_000 })).toThrow(RangeError);
  });

  it('overflow drops the newest bytes, counts them, and keeps what was queued', () => {
    const b = new PlayoutBuffer({ frameBytes: FRAME, maxBufferedBytes: 3 * FRAME });
    expect(b.enqueue(ramp(2 * FRAME + 100), 1)).toBe(2 * FRAME + 100);
    expect(b.enqueue(ramp(500, 100), 1)).toBe(FRAME - 100);
    expect(b.droppedBytes).toBe(500 - (FRAME - 100));
    expect(b.bufferedBytes).toBe(3 * FRAME);
    expect(b.enqueue(ramp(10), 1)).toBe(0);
    expect(b.droppedBytes).toBe(500 - (FRAME - 100) + 10);
    // Playing a frame frees exactly one frame of room.
    b.shift();
    expect(b.enqueue(ramp(1_000), 2)).toBe(FRAME);
    expect(b.frames).toBe(3);
  });
});

describe('PlayoutBuffer end of speech', () => {
  it('flushPartial pads the remainder with zeros to a whole frame', () => {
    const b = new PlayoutBuffer({ frameBytes: FRAME, maxBufferedBytes: 4 * FRAME });
    b.enqueue(Buffer.alloc(FRAME + 10, 0x55), 1);
    expect(b.shift()!.length).toBe(FRAME);
    expect(b.shift()).toBeUndefined();
    const tail = b.flushPartial()!;
    expect(tail.length).toBe(FRAME);
    expect(tail.subarray(0, 10).equals(Buffer.alloc(10, 0x55))).toBe(true);
    expect(tail.subarray(10).equals(Buffer.alloc(FRAME - 10))).toBe(true);
    expect(b.bufferedBytes).toBe(0);
    expect(b.flushPartial()).toBeUndefined();
  });

  it('sealPartial queues the padded remainder behind the whole frames', () => {
    const b = new PlayoutBuffer({ frameBytes: 4, maxBufferedBytes: 16 });
    b.enqueue(Buffer.from([1, 1, 1, 1, 2, 2]), 7);
    expect(b.sealPartial()).toBe(true);
    expect(b.sealPartial()).toBe(false);
    expect(drain(b)).toEqual([Buffer.from([1, 1, 1, 1]), Buffer.from([2, 2, 0, 0])]);
  });

  it('a sealed partial at full capacity still fits (it already counted)', () => {
    const b = new PlayoutBuffer({ frameBytes: 4, maxBufferedBytes: 8 });
    b.enqueue(Buffer.alloc(7, 1), 1);
    expect(b.sealPartial()).toBe(true);
    expect(b.frames).toBe(2);
    expect(b.bufferedBytes).toBe(8);
  });
});

describe('PlayoutBuffer barge-in (protocols.md §4.9)', () => {
  it('clear() drops everything including the partial frame and returns the bytes', () => {
    const b = new PlayoutBuffer({ frameBytes: FRAME, maxBufferedBytes: 10 * FRAME });
    b.enqueue(ramp(3 * FRAME + 50), 4);
    expect(b.clear()).toBe(3 * FRAME + 50);
    expect(b.frames).toBe(0);
    expect(b.bufferedBytes).toBe(0);
    expect(b.shift()).toBeUndefined();
    expect(b.flushPartial()).toBeUndefined();
    expect(b.droppedBytes).toBe(0); // overflow counter only
    // Fresh audio after the flush frames from zero again.
    b.enqueue(ramp(FRAME), 5);
    expect(b.shift()!.equals(ramp(FRAME))).toBe(true);
  });

  it('dropThrough(N) drops frames of responses ≤ N and keeps later ones in order', () => {
    const b = new PlayoutBuffer({ frameBytes: 4, maxBufferedBytes: 64 });
    b.enqueue(Buffer.alloc(8, 1), 1); // two frames of response 1
    b.enqueue(Buffer.alloc(4, 2), 2); // one of response 2
    b.enqueue(Buffer.alloc(8, 3), 3); // two of response 3
    b.enqueue(Buffer.alloc(2, 3), 3); // partial of response 3
    expect(b.dropThrough(2)).toBe(12);
    expect(b.frames).toBe(2);
    expect(b.bufferedBytes).toBe(10);
    expect(b.dropThrough(3)).toBe(10);
    expect(b.bufferedBytes).toBe(0);
  });

  it('dropThrough keeps order after the ring has wrapped', () => {
    const b = new PlayoutBuffer({ frameBytes: 1, maxBufferedBytes: 5 });
    b.enqueue(Buffer.from([1, 2, 3]), 1);
    b.shift();
    b.shift();
    b.shift(); // head is now at slot 3
    b.enqueue(Buffer.from([10, 11]), 5);
    b.enqueue(Buffer.from([20]), 6);
    b.enqueue(Buffer.from([12]), 5);
    expect(b.dropThrough(5)).toBe(3);
    b.enqueue(Buffer.from([30, 31]), 7);
    expect(drain(b).map((f) => f[0])).toEqual([20, 30, 31]);
  });

  it('a frame straddling two responses takes the newer id', () => {
    const b = new PlayoutBuffer({ frameBytes: 4, maxBufferedBytes: 64 });
    b.enqueue(Buffer.alloc(6, 1), 1);
    b.enqueue(Buffer.alloc(2, 2), 2);
    expect(b.dropThrough(1)).toBe(4);
    expect(drain(b)).toEqual([Buffer.from([1, 1, 2, 2])]);
  });

  it('dropThrough below every queued id drops nothing', () => {
    const b = new PlayoutBuffer({ frameBytes: 4, maxBufferedBytes: 64 });
    b.enqueue(Buffer.alloc(10), 9);
    expect(b.dropThrough(8)).toBe(0);
    expect(b.bufferedBytes).toBe(10);
  });
});

describe('PlayoutBuffer headroom (frames that leave as AudioSocket messages without a copy)', () => {
  const HEADROOM = 3;

  it('puts every frame\'s audio after headroomBytes, framed exactly as without headroom', () => {
    const plain = new PlayoutBuffer({ frameBytes: FRAME, maxBufferedBytes: 10 * FRAME });
    const roomy = new PlayoutBuffer({ frameBytes: FRAME, maxBufferedBytes: 10 * FRAME, headroomBytes: HEADROOM });
    expect(roomy.headroomBytes).toBe(HEADROOM);
    const stream = ramp(3 * FRAME + 50);
    for (const [from, to] of [[0, 100], [100, 700], [700, 3 * FRAME + 50]] as const) {
      plain.enqueue(stream.subarray(from, to), 1);
      roomy.enqueue(stream.subarray(from, to), 1);
    }
    // Capacity and counts are in audio bytes: the headroom is not audio.
    expect(roomy.bufferedBytes).toBe(plain.bufferedBytes);
    expect(roomy.frames).toBe(3);
    const frames = drain(roomy);
    expect(frames.map((f) => f.length)).toEqual([HEADROOM + FRAME, HEADROOM + FRAME, HEADROOM + FRAME]);
    expect(Buffer.concat(frames.map((f) => f.subarray(HEADROOM))).equals(Buffer.concat(drain(plain)))).toBe(true);
  });

  it.each(Array.from({ length: 11 }, (_, k) => k * 64))('split at %i', (split) => {
    const b = new PlayoutBuffer({ frameBytes: FRAME, maxBufferedBytes: 10 * FRAME, headroomBytes: HEADROOM });
    const stream = ramp(2 * FRAME);
    b.enqueue(stream.subarray(0, split), 1);
    b.enqueue(stream.subarray(split), 1);
    expect(Buffer.concat(drain(b).map((f) => f.subarray(HEADROOM))).equals(stream)).toBe(true);
  });

  it('pads the partial frame with silence after the headroom (flushPartial, sealPartial)', () => {
    const b = new PlayoutBuffer({ frameBytes: 8, maxBufferedBytes: 64, headroomBytes: HEADROOM });
    b.enqueue(Buffer.from([1, 2, 3]), 1);
    const flushed = b.flushPartial()!;
    expect(flushed.length).toBe(HEADROOM + 8);
    expect([...flushed.subarray(HEADROOM)]).toEqual([1, 2, 3, 0, 0, 0, 0, 0]);
    b.enqueue(Buffer.from([9, 9, 9, 9, 9, 9, 9, 9, 4, 5]), 2);
    expect(b.sealPartial()).toBe(true);
    expect(drain(b).map((f) => [...f.subarray(HEADROOM)])).toEqual([
      [9, 9, 9, 9, 9, 9, 9, 9],
      [4, 5, 0, 0, 0, 0, 0, 0],
    ]);
  });

  it('never writes to a frame once shifted, headroom included (the transport owns it)', () => {
    const b = new PlayoutBuffer({ frameBytes: FRAME, maxBufferedBytes: 4 * FRAME, headroomBytes: HEADROOM });
    b.enqueue(ramp(FRAME), 1);
    const frame = b.shift()!;
    frame.fill(0x55, 0, HEADROOM); // the transport writes its header
    const copy = Buffer.from(frame);
    for (let i = 0; i < 20; i++) {
      b.enqueue(ramp(FRAME + 7, i), i + 2);
      b.sealPartial();
      b.dropThrough(i);
      drain(b);
      b.clear();
    }
    expect(frame.equals(copy)).toBe(true);
  });

  it('refuses a negative or fractional headroom', () => {
    expect(() => new PlayoutBuffer({ frameBytes: FRAME, maxBufferedBytes: FRAME, headroomBytes: -1 })).toThrow(RangeError);
    expect(() => new PlayoutBuffer({ frameBytes: FRAME, maxBufferedBytes: FRAME, headroomBytes: 1.5 })).toThrow(RangeError);
  });
});
