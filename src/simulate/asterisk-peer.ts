/**
 * The Asterisk side of a call, played by ai-call itself: a FastAGI client that answers commands
 * the way res_agi does, and an AudioSocket client that streams caller audio on a 20 ms clock.
 * `ai-call simulate` and the end-to-end tests drive whole calls with it, no phone needed.
 */
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { AgiLineReader } from '../asterisk/agi/parser.js';
import { parseAgiArgs } from '../asterisk/agi/parse-args.js';
import { AudioSocketParser } from '../asterisk/audiosocket/parser.js';
import { encodeAudio, encodeDtmf, encodeUuid, kindForSampleRate } from '../asterisk/audiosocket/protocol.js';
import type { Clock } from '../audio/clock.js';
import { BridgeError } from '../errors.js';

export interface AgiPeerOptions {
  readonly host: string;
  readonly port: number;
  /** Path and query after host:port/, e.g. "ai-call?agent=echo". */
  readonly script: string;
  readonly args?: readonly string[];
  /** agi_* values to present; sensible Local-channel defaults fill the rest. */
  readonly env?: Readonly<Record<string, string>>;
  /** Channel variables GET VARIABLE can read. */
  readonly channelVariables?: Readonly<Record<string, string>>;
  /** Runs EXEC <app> <options>; resolves with the app's result code. */
  readonly onExec?: (app: string, options: string) => Promise<number>;
  readonly timeoutMs?: number;
}

export interface AgiPeerResult {
  /** Variables the server set with SET VARIABLE, in order. */
  readonly variables: Record<string, string>;
  readonly commands: string[];
}

/** Runs one FastAGI session as Asterisk would, until the server closes it. */
export async function runAgiPeer(options: AgiPeerOptions): Promise<AgiPeerResult> {
  const socket = connect({ host: options.host, port: options.port });
  const variables: Record<string, string> = {};
  const commands: string[] = [];
  const channelVariables: Record<string, string> = { ...options.channelVariables };
  const timeoutMs = options.timeoutMs ?? 120_000;
  await once(socket, 'connect');
  const env: Record<string, string> = {
    agi_network: 'yes',
    agi_network_script: options.script,
    agi_request: `agi://${options.host}:${options.port}/${options.script}`,
    agi_channel: 'Local/simulate@ai-call-sim-00000001;2',
    agi_language: 'en',
    agi_type: 'Local',
    agi_uniqueid: `${Math.floor(Date.now() / 1000)}.${Math.floor(Math.random() * 1000)}`,
    agi_version: 'ai-call-simulate',
    agi_callerid: '+15550100',
    agi_calleridname: 'ai-call simulate',
    agi_callingpres: '0',
    agi_callingani2: '0',
    agi_callington: '0',
    agi_callingtns: '0',
    agi_dnid: 'unknown',
    agi_rdnis: 'unknown',
    agi_context: 'ai-call-sim',
    agi_extension: 's',
    agi_priority: '1',
    agi_enhanced: '0.0',
    agi_accountcode: '',
    agi_threadid: '1',
    ...options.env,
  };
  (options.args ?? []).forEach((arg, i) => (env[`agi_arg_${i + 1}`] = arg));
  socket.write(`${Object.entries(env).map(([k, v]) => `${k}: ${v}`).join('\n')}\n\n`);

  const reader = new AgiLineReader({ maxLineBytes: 8192 });
  const done = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new BridgeError('AGI_COMMAND_TIMEOUT', `FastAGI session did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    let queue = Promise.resolve();
    socket.on('data', (chunk: Buffer) => {
      for (const line of reader.push(chunk)) {
        queue = queue.then(() => answer(line)).catch((err: unknown) => {
          socket.destroy();
          reject(err instanceof Error ? err : new Error(String(err)));
        });
      }
    });
    socket.on('end', () => {
      // Asterisk's end-of-script notice after the server's FIN (fixtures: agi-session-assign).
      if (!socket.destroyed) socket.end('HANGUP\n');
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      void queue.then(() => resolve());
    });
  });

  async function answer(line: string): Promise<void> {
    commands.push(line);
    const words = parseAgiArgs(line);
    const verb = words.slice(0, 3).join(' ').toUpperCase();
    let reply: string;
    if (verb.startsWith('SET VARIABLE') && words.length === 4) {
      variables[words[2]!] = words[3]!;
      channelVariables[words[2]!] = words[3]!;
      reply = '200 result=1';
    } else if (verb.startsWith('SET VARIABLE')) {
      reply = '520-Invalid command syntax.  Proper usage follows:\nUsage: SET VARIABLE <variablename> <value>\n520 End of proper usage.';
    } else if (verb === 'GET FULL VARIABLE') {
      const name = /^\$\{(.+)\}$/.exec(words[3] ?? '')?.[1] ?? '';
      const value = channelVariables[name];
      reply = value === undefined ? '200 result=0' : `200 result=1 (${value})`;
    } else if (verb.startsWith('GET VARIABLE')) {
      const value = channelVariables[words[2] ?? ''];
      reply = value === undefined ? '200 result=0' : `200 result=1 (${value})`;
    } else if (verb.startsWith('ANSWER')) {
      reply = '200 result=0';
    } else if (verb.startsWith('EXEC')) {
      const result = options.onExec ? await options.onExec(words[1] ?? '', words[2] ?? '') : -2;
      reply = `200 result=${result}`;
    } else if (verb.startsWith('VERBOSE')) {
      reply = '200 result=1';
    } else if (verb.startsWith('NOOP')) {
      reply = '200 result=0';
    } else {
      reply = '510 Invalid or unknown command';
    }
    if (!socket.destroyed && socket.writable) socket.write(`${reply}\n`);
  }

  await done;
  return { variables, commands };
}

export interface MediaPeerOptions {
  readonly host: string;
  readonly port: number;
  readonly uuid: string;
  /** Caller audio (s16le mono) at sampleRateHz: sent in 20 ms frames. */
  readonly audio: Buffer;
  readonly sampleRateHz: number;
  /** After the audio, keep sending silence (as a live phone line does) until this many ms from start. */
  readonly hangupAfterMs: number;
  readonly dtmf?: ReadonlyArray<{ readonly atMs: number; readonly digit: string }>;
  readonly clock: Clock;
}

export interface MediaPeerResult {
  readonly endedBy: 'caller' | 'server';
  /** Everything received, concatenated, at the rate of the frames received. */
  readonly received: Buffer;
  readonly receivedSampleRateHz: number;
  readonly framesSent: number;
  readonly framesReceived: number;
  /** Arrival times (clock ms) of each received audio frame. */
  readonly arrivalsMs: number[];
  /** Clock ms when the connection opened. */
  readonly startedAtMs: number;
  readonly hangupMessageReceived: boolean;
}

/** Plays the AudioSocket side of a call: UUID first, then caller frames on an absolute 20 ms clock. */
export async function runMediaPeer(options: MediaPeerOptions): Promise<MediaPeerResult> {
  const { clock } = options;
  const socket: Socket = connect({ host: options.host, port: options.port, noDelay: true });
  await once(socket, 'connect');
  const startedAtMs = clock.now();
  const kind = kindForSampleRate(options.sampleRateHz);
  if (kind === undefined) throw new BridgeError('INPUT_INVALID', `AudioSocket has no kind for ${options.sampleRateHz} Hz`);
  socket.write(encodeUuid(options.uuid));

  const frameBytes = (options.sampleRateHz / 50) * 2;
  const silence = Buffer.alloc(frameBytes);
  const dtmf = [...(options.dtmf ?? [])].sort((a, b) => a.atMs - b.atMs);
  const parser = new AudioSocketParser({ maxPayloadBytes: 65_535 });
  const received: Buffer[] = [];
  const arrivalsMs: number[] = [];
  let receivedSampleRateHz = options.sampleRateHz;
  let framesSent = 0;
  let hangupMessageReceived = false;
  let ended: 'caller' | 'server' | undefined;
  let timer: ReturnType<Clock['setTimer']> | undefined;

  return new Promise<MediaPeerResult>((resolve, reject) => {
    const finish = (by: 'caller' | 'server'): void => {
      if (ended) return;
      ended = by;
      if (timer) clock.clearTimer(timer);
      if (by === 'caller') socket.end();
      resolve({
        endedBy: by,
        received: Buffer.concat(received),
        receivedSampleRateHz,
        framesSent,
        framesReceived: arrivalsMs.length,
        arrivalsMs,
        startedAtMs,
        hangupMessageReceived,
      });
    };
    socket.on('data', (chunk: Buffer) => {
      let messages;
      try {
        messages = parser.push(chunk);
      } catch (err) {
        socket.destroy();
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      for (const message of messages) {
        if (message.kind === 'audio') {
          received.push(message.payload);
          receivedSampleRateHz = message.sampleRateHz;
          arrivalsMs.push(clock.now());
        } else if (message.kind === 'hangup') {
          hangupMessageReceived = true;
          finish('server');
        } else {
          // protocols.md §1.6: Asterisk hangs up on anything but audio and 00 00 00.
          socket.destroy();
          reject(new BridgeError('AUDIOSOCKET_BAD_FRAME', `server sent kind ${message.kind}, which makes Asterisk hang up`));
          return;
        }
      }
    });
    socket.on('end', () => finish('server'));
    socket.on('error', (err) => {
      if (!ended) reject(err);
    });
    socket.on('close', () => finish('server'));

    // Absolute deadlines: frame n leaves at start + 20·n ms, whatever the timer jitter.
    let next = startedAtMs;
    const tick = (): void => {
      if (ended || socket.destroyed) return;
      const elapsedMs = clock.now() - startedAtMs;
      while (dtmf.length > 0 && dtmf[0]!.atMs <= elapsedMs) socket.write(encodeDtmf(dtmf.shift()!.digit));
      if (elapsedMs >= options.hangupAfterMs) {
        finish('caller');
        return;
      }
      const offset = framesSent * frameBytes;
      let frame = offset < options.audio.length ? options.audio.subarray(offset, offset + frameBytes) : silence;
      if (frame.length < frameBytes) frame = Buffer.concat([frame, silence.subarray(frame.length)]);
      socket.write(encodeAudio(kind, frame));
      framesSent++;
      next += 20;
      timer = clock.setTimer(tick, next - clock.now());
    };
    tick();
  });
}
