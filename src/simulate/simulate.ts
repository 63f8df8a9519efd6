import { systemClock, type Clock } from '../audio/clock.js';
import { BridgeError } from '../errors.js';
import { runAgiPeer, runMediaPeer, type MediaPeerResult } from './asterisk-peer.js';

export interface SimulateOptions {
  readonly agiHost: string;
  readonly agiPort: number;
  readonly agent: string;
  /** assign: three dialplan steps (AGI, AudioSocket, result AGI); run: the one-line AGI form. */
  readonly mode: 'assign' | 'run';
  /** Caller audio, s16le mono. */
  readonly audio: Buffer;
  readonly sampleRateHz: 8000 | 16000;
  /** The caller hangs up this long after media starts (unless the server ends the call first). */
  readonly hangupAfterMs: number;
  readonly dtmf?: ReadonlyArray<{ readonly atMs: number; readonly digit: string }>;
  readonly callerId?: string;
  readonly channelVariables?: Readonly<Record<string, string>>;
  readonly clock?: Clock;
}

export interface SimulateSummary {
  readonly status: string;
  readonly uuid: string;
  readonly audiosocket: string;
  readonly assignVariables: Record<string, string>;
  readonly resultVariables: Record<string, string>;
  readonly media: MediaPeerResult | undefined;
  readonly timing: FrameTiming | undefined;
  /** ms from media start to the first frame that is not silence. */
  readonly firstAudioMs: number | undefined;
}

export interface FrameTiming {
  readonly frames: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly gapsOver40Ms: number;
}

/** Acts as Asterisk for one whole call against a running ai-call (see docs/simulate.md). */
export async function simulateCall(options: SimulateOptions): Promise<SimulateSummary> {
  const clock = options.clock ?? systemClock;
  const query = `agent=${encodeURIComponent(options.agent)}`;
  const env: Record<string, string> = options.callerId ? { agi_callerid: options.callerId } : {};
  let media: MediaPeerResult | undefined;

  const playMedia = async (uuid: string, audiosocket: string): Promise<MediaPeerResult> => {
    const { host, port } = splitHostPort(audiosocket);
    media = await runMediaPeer({
      host,
      port,
      uuid,
      audio: options.audio,
      sampleRateHz: options.sampleRateHz,
      hangupAfterMs: options.hangupAfterMs,
      dtmf: options.dtmf ?? [],
      clock,
    });
    return media;
  };

  let assignVariables: Record<string, string>;
  let resultVariables: Record<string, string> = {};
  if (options.mode === 'run') {
    const session = await runAgiPeer({
      host: options.agiHost,
      port: options.agiPort,
      script: `ai-call/run?${query}`,
      env,
      channelVariables: options.channelVariables ?? {},
      onExec: async (app, data) => {
        const target = parseExecTarget(app, data);
        if (!target) return -2;
        await playMedia(target.uuid, target.audiosocket);
        return 0;
      },
    });
    assignVariables = session.variables;
    resultVariables = session.variables;
  } else {
    const assign = await runAgiPeer({
      host: options.agiHost,
      port: options.agiPort,
      script: `ai-call?${query}`,
      env,
      channelVariables: options.channelVariables ?? {},
    });
    assignVariables = assign.variables;
    if (assignVariables['AI_STATUS'] === 'READY') {
      await playMedia(assignVariables['AI_UUID'] ?? '', assignVariables['AI_AUDIOSOCKET'] ?? '');
      const result = await runAgiPeer({
        host: options.agiHost,
        port: options.agiPort,
        script: `ai-call/result?uuid=${encodeURIComponent(assignVariables['AI_UUID'] ?? '')}`,
        env,
      });
      resultVariables = result.variables;
    }
  }

  const finalMedia = media as MediaPeerResult | undefined;
  return {
    status: assignVariables['AI_STATUS'] ?? '',
    uuid: assignVariables['AI_UUID'] ?? '',
    audiosocket: assignVariables['AI_AUDIOSOCKET'] ?? '',
    assignVariables,
    resultVariables,
    media: finalMedia,
    timing: finalMedia ? frameTiming(finalMedia.arrivalsMs) : undefined,
    firstAudioMs: finalMedia ? firstAudioMs(finalMedia) : undefined,
  };
}

/** EXEC AudioSocket "uuid,host:port" or EXEC Dial "AudioSocket/host:port/uuid/c(slin16)". */
function parseExecTarget(app: string, data: string): { uuid: string; audiosocket: string } | undefined {
  if (app.toLowerCase() === 'audiosocket') {
    const [uuid, audiosocket] = data.split(',');
    return uuid && audiosocket ? { uuid, audiosocket } : undefined;
  }
  const dial = /^AudioSocket\/(.+)\/([0-9a-fA-F-]{36})(\/[^,]*)?(,.*)?$/.exec(data);
  if (app.toLowerCase() === 'dial' && dial) return { audiosocket: dial[1]!, uuid: dial[2]! };
  return undefined;
}

export function splitHostPort(value: string): { host: string; port: number } {
  const match = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(value);
  if (!match) throw new BridgeError('INPUT_INVALID', `"${value}" is not host:port`);
  return { host: match[1]!, port: Number(match[2]) };
}

export function frameTiming(arrivalsMs: readonly number[]): FrameTiming {
  const gaps: number[] = [];
  for (let i = 1; i < arrivalsMs.length; i++) gaps.push(arrivalsMs[i]! - arrivalsMs[i - 1]!);
  gaps.sort((a, b) => a - b);
  const pick = (q: number): number => (gaps.length === 0 ? 0 : gaps[Math.min(gaps.length - 1, Math.floor(q * gaps.length))]!);
  return {
    frames: arrivalsMs.length,
    p50Ms: round2(pick(0.5)),
    p99Ms: round2(pick(0.99)),
    maxMs: round2(gaps.length === 0 ? 0 : gaps[gaps.length - 1]!),
    gapsOver40Ms: gaps.filter((g) => g > 40).length,
  };
}

function firstAudioMs(media: MediaPeerResult): number | undefined {
  const frameBytes = (media.receivedSampleRateHz / 50) * 2;
  for (let i = 0; i < media.arrivalsMs.length; i++) {
    const frame = media.received.subarray(i * frameBytes, (i + 1) * frameBytes);
    if (frame.some((byte) => byte !== 0)) return round2(media.arrivalsMs[i]! - media.startedAtMs);
  }
  return undefined;
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}
