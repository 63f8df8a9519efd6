/**
 * Measurements shared by the scenarios, each returning numbers for the assertion and a one-line
 * summary for the test output.
 */
import { expect } from 'vitest';
import type { FakeConversation } from '../../support/fake-elevenlabs.js';
import type { CallEvent } from '../../../src/call/events.js';
import { describeSegments, findSegments, type Segment } from './audio.js';
import type { PlacedCall } from './stack.js';

export interface ToneExpectation {
  readonly hz: number;
  readonly ms: number;
  /** Allowed start window in the recording, ms. */
  readonly startMs?: readonly [number, number];
  /** Allowed length error, ms (default 40: two frames). */
  readonly msTolerance?: number;
  /** Allowed pitch error, Hz (default 3). */
  readonly hzTolerance?: number;
}

/**
 * Asserts the recording holds exactly these tones, in order. `slackMs` widens the length and start
 * windows for audio Asterisk's audiohook dropped from the recording (heardReport().slackMs).
 */
export function expectTones(label: string, segments: readonly Segment[], expected: readonly ToneExpectation[], slackMs = 0): void {
  const summary = `${label}: ${describeSegments(segments)}${slackMs > 0 ? ` (recording slack ${slackMs} ms)` : ''}`;
  expect(segments.length, summary).toBe(expected.length);
  expected.forEach((want, i) => {
    const got = segments[i]!;
    expect(Math.abs(got.hz - want.hz), `${summary} — segment ${i + 1} pitch`).toBeLessThanOrEqual(want.hzTolerance ?? 3);
    // A resync only ever removes audio: the tone can be shorter by the slack, never longer.
    expect(got.ms - want.ms, `${summary} — segment ${i + 1} length`).toBeLessThanOrEqual(want.msTolerance ?? 40);
    expect(want.ms - got.ms, `${summary} — segment ${i + 1} length`).toBeLessThanOrEqual((want.msTolerance ?? 40) + slackMs);
    if (want.startMs) {
      expect(got.startMs, `${summary} — segment ${i + 1} start`).toBeGreaterThanOrEqual(want.startMs[0] - slackMs);
      expect(got.startMs, `${summary} — segment ${i + 1} start`).toBeLessThanOrEqual(want.startMs[1]);
    }
  });
}

/**
 * What the phone heard, as tone segments, plus how much audio it got over how much time, ai-call's
 * longest gap between two frames sent, and the recording's shortfall.
 *
 * MixMonitor keeps its two directions in step: when one runs more than 100 ms ahead of the other
 * (scheduling jitter on a loaded box), Asterisk flushes what both have queued (main/audiohook.c
 * AST_AUDIOHOOK_SYNC_TOLERANCE), and the recording loses up to ~100 ms. That loss shows as the
 * recording being shorter than the time the phone was up; `slackMs` is that shortfall, and tone
 * lengths may fall short by it (never run long).
 */
export function heardReport(call: PlacedCall): { segments: Segment[]; heardMs: number; slackMs: number; maxOutGapMs: number; line: string } {
  const segments = findSegments(call.heard.pcm, call.heard.sampleRateHz);
  const heardMs = (call.heard.pcm.length / 2 / call.heard.sampleRateHz) * 1000;
  const maxOutGapMs = ended(call.events).stats.maxOutGapMs;
  const slackMs = Math.max(0, Math.round(call.phoneMediaMs - heardMs));
  return {
    segments,
    heardMs,
    slackMs,
    maxOutGapMs,
    line: `heard [${describeSegments(segments)}], ${Math.round(heardMs)} ms of audio over ${Math.round(call.phoneMediaMs)} ms of media, longest gap between frames sent ${maxOutGapMs.toFixed(1)} ms`,
  };
}

/**
 * ai-call's pacing: the longest gap between two frames it sent stays under 100 ms, the jitter at
 * which Asterisk's audiohooks start to drop audio (a 20 ms clock with a 3-frame catch-up normally
 * stays within 20-60 ms, depending on the box).
 */
export function expectPacing(report: { maxOutGapMs: number }): void {
  expect(report.maxOutGapMs, 'longest gap between frames ai-call sent, ms').toBeLessThan(100);
}

/**
 * Real time: ai-call sends one 20 ms frame per 20 ms from media start (silence when the agent is
 * quiet), so the phone's recording is as long as the media lasted. Faster pacing makes it longer,
 * gaps make it shorter. 150 ms covers the MixMonitor start/stop skew and one recording resync.
 */
export function expectRealTime(call: PlacedCall, report: { heardMs: number }, toleranceMs = 150): void {
  const line = `heard ${Math.round(report.heardMs)} ms over ${Math.round(call.phoneMediaMs)} ms of media`;
  expect(Math.abs(report.heardMs - call.phoneMediaMs), line).toBeLessThanOrEqual(toleranceMs);
}

/** The caller audio the fake agent received, decoded (pcm at the agent's input rate). */
export function userAudio(conversation: FakeConversation): Buffer {
  return Buffer.concat(
    conversation.received.flatMap((m) => (typeof m.json['user_audio_chunk'] === 'string' ? [Buffer.from(m.json['user_audio_chunk'], 'base64')] : [])),
  );
}

export function ended(events: readonly CallEvent[]): Extract<CallEvent, { type: 'call.ended' }> {
  const event = events.find((e): e is Extract<CallEvent, { type: 'call.ended' }> => e.type === 'call.ended');
  if (!event) throw new Error('the call has no call.ended event');
  return event;
}

export function eventsOfType<T extends CallEvent['type']>(events: readonly CallEvent[], type: T): Array<Extract<CallEvent, { type: T }>> {
  return events.filter((e): e is Extract<CallEvent, { type: T }> => e.type === type);
}
