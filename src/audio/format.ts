import type { AudioFormatName } from '../config/schema.js';

/** A mono audio stream's encoding: `pcm` is signed 16-bit little-endian, `ulaw` is G.711 µ-law. */
export interface AudioFormat {
  readonly encoding: 'pcm' | 'ulaw';
  readonly sampleRateHz: number;
}

export const SLIN_8K: AudioFormat = Object.freeze({ encoding: 'pcm', sampleRateHz: 8_000 });
export const SLIN_16K: AudioFormat = Object.freeze({ encoding: 'pcm', sampleRateHz: 16_000 });

/** Parses ElevenLabs' format names (`pcm_16000`, `ulaw_8000`); undefined for anything else. */
export function parseAudioFormat(name: string): AudioFormat | undefined {
  const match = /^(pcm|ulaw)_(\d{4,6})$/.exec(name);
  if (!match) return undefined;
  const encoding = match[1] as 'pcm' | 'ulaw';
  const sampleRateHz = Number(match[2]);
  if (encoding === 'ulaw' && sampleRateHz !== 8_000) return undefined;
  if (encoding === 'pcm' && ![8_000, 16_000, 22_050, 24_000, 44_100, 48_000].includes(sampleRateHz)) return undefined;
  return Object.freeze({ encoding, sampleRateHz });
}

export function audioFormatName(format: AudioFormat): AudioFormatName {
  return `${format.encoding}_${format.sampleRateHz}` as AudioFormatName;
}

export function bytesPerSample(format: AudioFormat): number {
  return format.encoding === 'pcm' ? 2 : 1;
}

/** Bytes in `durationMs` of audio; e.g. 20 ms of slin 8 kHz = 320 (protocols.md §1.1). */
export function bytesForMs(format: AudioFormat, durationMs: number): number {
  return Math.round((format.sampleRateHz * durationMs) / 1000) * bytesPerSample(format);
}

export function msForBytes(format: AudioFormat, bytes: number): number {
  return (bytes / bytesPerSample(format) / format.sampleRateHz) * 1000;
}

export function sameFormat(a: AudioFormat, b: AudioFormat): boolean {
  return a.encoding === b.encoding && a.sampleRateHz === b.sampleRateHz;
}
