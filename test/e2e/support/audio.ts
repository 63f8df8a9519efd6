/**
 * Test-time audio for the e2e suites: caller WAVs built from tones and silences, and measurements
 * of what a leg recorded (tone segments, their pitch and length). All PCM is mono s16le.
 */
import { dominantFrequency, rmsDb, silence, sine } from '../../support/signal.js';

/** One piece of a caller script: `ms` of a sine at `hz`, or of silence when hz is undefined. */
export interface AudioPart {
  readonly ms: number;
  readonly hz?: number;
  readonly amplitude?: number;
}

/** Concatenates tone and silence parts into one PCM buffer. */
export function composeAudio(parts: readonly AudioPart[], sampleRateHz = 8_000): Buffer {
  return Buffer.concat(parts.map((p) => (p.hz === undefined ? silence(p.ms, sampleRateHz) : sine(p.hz, p.ms, sampleRateHz, p.amplitude ?? 8_000))));
}

export function durationMs(pcm: Buffer, sampleRateHz: number): number {
  return ((pcm.length >> 1) / sampleRateHz) * 1000;
}

/** A stretch of audio above the level threshold. */
export interface Segment {
  readonly startMs: number;
  readonly endMs: number;
  readonly ms: number;
  /** Dominant frequency over the segment's interior, in Hz (1 Hz resolution). */
  readonly hz: number;
  /** RMS level of the interior, dBFS. */
  readonly levelDb: number;
}

export interface SegmentOptions {
  /** Window length for the level gate and the pitch split. Default 20 ms. */
  readonly windowMs?: number;
  /** Windows louder than this count as sound. Default -40 dBFS (the tones are about -12 dBFS). */
  readonly thresholdDb?: number;
  /** Quieter gaps shorter than this do not split a segment. Default 60 ms. */
  readonly bridgeMs?: number;
  /** Segments shorter than this are dropped (clicks). Default 40 ms. */
  readonly minMs?: number;
  /** Highest pitch looked for. Default 3500 Hz (the 8 kHz line); wideband recordings may go higher. */
  readonly maxHz?: number;
}

/**
 * Finds the sounding stretches of a recording with a windowed level gate, split where the pitch
 * changes (two tones back to back are two segments); each gets its length (window resolution) and
 * dominant frequency.
 */
export function findSegments(pcm: Buffer, sampleRateHz: number, options: SegmentOptions = {}): Segment[] {
  const windowMs = options.windowMs ?? 20;
  const thresholdDb = options.thresholdDb ?? -40;
  const bridgeMs = options.bridgeMs ?? 60;
  const minMs = options.minMs ?? 40;
  const maxHz = Math.min(options.maxHz ?? 3_500, sampleRateHz / 2 - 100);
  const windowBytes = Math.round((sampleRateHz * windowMs) / 1000) * 2;
  const windows: Array<{ loud: boolean; hz: number }> = [];
  for (let offset = 0; offset + windowBytes <= pcm.length; offset += windowBytes) {
    const w = pcm.subarray(offset, offset + windowBytes);
    const loud = rmsDb(w) > thresholdDb;
    windows.push({ loud, hz: loud ? dominantFrequency(w, sampleRateHz, { fromHz: 100, toHz: maxHz, stepHz: 20 }) : 0 });
  }
  const differs = (a: number, b: number): boolean => Math.abs(a - b) > PITCH_SPLIT_HZ;

  const runs: Array<{ start: number; end: number; hz: number }> = [];
  for (let i = 0; i < windows.length; i++) {
    const w = windows[i]!;
    if (!w.loud) continue;
    const last = runs.at(-1);
    const next = windows[i + 1];
    // A new tone starts where the pitch moves and stays moved (one odd window at a boundary does not split).
    const pitchMoved = last !== undefined && differs(w.hz, last.hz) && (next === undefined || !next.loud || differs(next.hz, last.hz));
    if (last && (i - last.end) * windowMs <= bridgeMs && !pitchMoved) last.end = i + 1;
    else runs.push({ start: i, end: i + 1, hz: w.hz });
  }
  return runs
    .filter((r) => (r.end - r.start) * windowMs >= minMs)
    .map((r) => {
      const startMs = r.start * windowMs;
      const endMs = r.end * windowMs;
      const interior = slice(pcm, sampleRateHz, startMs + 20, Math.max(startMs + 40, endMs - 20));
      return { startMs, endMs, ms: endMs - startMs, hz: pitchHz(interior, sampleRateHz, maxHz), levelDb: rmsDb(interior) };
    });
}

/** Windows whose coarse pitch differs by more than this belong to different tones. */
const PITCH_SPLIT_HZ = 80;

/** Dominant frequency in 100..maxHz (default 3500) Hz: a 10 Hz sweep, then 1 Hz around the best. Uses at most 1 s. */
export function pitchHz(pcm: Buffer, sampleRateHz: number, maxHz = 3_500): number {
  const part = pcm.subarray(0, Math.min(pcm.length, sampleRateHz * 2));
  const coarse = dominantFrequency(part, sampleRateHz, { fromHz: 100, toHz: Math.min(maxHz, sampleRateHz / 2 - 100), stepHz: 10 });
  return dominantFrequency(part, sampleRateHz, { fromHz: coarse - 10, toHz: coarse + 10, stepHz: 1 });
}

/** The PCM between two times. */
export function slice(pcm: Buffer, sampleRateHz: number, fromMs: number, toMs: number): Buffer {
  const at = (ms: number): number => Math.max(0, Math.min(pcm.length, Math.round((sampleRateHz * ms) / 1000) * 2));
  return pcm.subarray(at(fromMs), at(toMs));
}

/** A compact description for assertion messages: "440Hz 0-1500ms, 440Hz 2300-3300ms". */
export function describeSegments(segments: readonly Segment[]): string {
  return segments.map((s) => `${s.hz}Hz ${s.startMs}-${s.endMs}ms`).join(', ') || '(silence)';
}
