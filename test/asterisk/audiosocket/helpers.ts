/** Shared builders for the AudioSocket tests: recorded streams, log capture, a recording handler. */
import { createServer } from 'node:net';
import { createLogger, type Logger } from '../../../src/log.js';
import type { AudioSocketMessage } from '../../../src/asterisk/audiosocket/parser.js';
import { sampleRateForKind } from '../../../src/asterisk/audiosocket/protocol.js';
import type { MediaCloseReason, MediaHandler } from '../../../src/asterisk/audiosocket/server.js';
import { fixtureBytes, loadFixture, type Fixture, type FixtureChunk } from '../../support/fixtures.js';

/** The three recordings that carry AudioSocket traffic (README.md in the fixture folder). */
export const AUDIOSOCKET_FIXTURES = ['audiosocket-app-slin8', 'audiosocket-dial-slin16', 'agi-session-exec-audiosocket'] as const;
export type AudioSocketFixtureName = (typeof AUDIOSOCKET_FIXTURES)[number];

interface RecordedMsg {
  readonly kind: string;
  readonly len: number;
  readonly payloadHex: string;
  readonly uuid?: string;
  readonly digit?: string;
}

const onAudioSocket = (chunk: FixtureChunk): boolean => chunk.conn === 'audiosocket';

/** One direction of a recording's AudioSocket connection: the reads (or writes) as recorded. */
export function recordedChunks(name: AudioSocketFixtureName, dir: 'asterisk->server' | 'server->asterisk'): Buffer[] {
  return fixtureBytes(loadFixture(name), dir, onAudioSocket);
}

/** The same direction as one byte stream. */
export function recordedStream(name: AudioSocketFixtureName, dir: 'asterisk->server' | 'server->asterisk' = 'asterisk->server'): Buffer {
  return Buffer.concat(recordedChunks(name, dir));
}

/** What the parser must yield for a direction, built from the recorder's own decoding (`msgs`). */
export function recordedMessages(
  name: AudioSocketFixtureName,
  dir: 'asterisk->server' | 'server->asterisk' = 'asterisk->server',
): AudioSocketMessage[] {
  const fixture: Fixture = loadFixture(name);
  return fixture.chunks
    .filter((c) => onAudioSocket(c) && c.dir === dir && c.msgs !== undefined)
    .flatMap((c) => (c.msgs as unknown as readonly RecordedMsg[]).map(toMessage));
}

function toMessage(msg: RecordedMsg): AudioSocketMessage {
  const type = Number.parseInt(msg.kind, 16);
  const payload = Buffer.from(msg.payloadHex, 'hex');
  if (type === 0x00) return { kind: 'hangup' };
  if (type === 0x01) return { kind: 'uuid', uuid: msg.uuid! };
  if (type === 0x03) return { kind: 'dtmf', digit: msg.digit! };
  if (type === 0xff) return { kind: 'error', payload };
  return { kind: 'audio', type, sampleRateHz: sampleRateForKind(type)!, payload };
}

export function fixtureUuid(name: AudioSocketFixtureName): string {
  return loadFixture(name)['uuid'] as string;
}

/** A message as a header + payload, for hand-built streams. */
export function frame(kind: number, payload: Buffer | readonly number[] = []): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const header = Buffer.from([kind, body.length >> 8, body.length & 0xff]);
  return Buffer.concat([header, body]);
}

export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly [key: string]: unknown;
}

/** A real pino logger at debug level whose lines land in `lines`, parsed. */
export function captureLogger(): { logger: Logger; lines: LogLine[]; at: (level: 'debug' | 'info' | 'warn' | 'error') => LogLine[] } {
  const lines: LogLine[] = [];
  const logger = createLogger('debug', { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  const LEVELS = { debug: 20, info: 30, warn: 40, error: 50 } as const;
  return { logger, lines, at: (level) => lines.filter((l) => l.level === LEVELS[level]) };
}

/** A MediaHandler that records everything, with a promise for its one onClose. */
export function recordingHandler(): {
  handler: MediaHandler;
  audio: Array<{ payload: Buffer; sampleRateHz: number }>;
  digits: string[];
  closes: MediaCloseReason[];
  closed: Promise<MediaCloseReason>;
} {
  const audio: Array<{ payload: Buffer; sampleRateHz: number }> = [];
  const digits: string[] = [];
  const closes: MediaCloseReason[] = [];
  let resolveClosed: (reason: MediaCloseReason) => void = () => undefined;
  const closed = new Promise<MediaCloseReason>((resolve) => {
    resolveClosed = resolve;
  });
  const handler: MediaHandler = {
    onAudio: (payload, sampleRateHz) => void audio.push({ payload, sampleRateHz }),
    onDtmf: (digit) => void digits.push(digit),
    onClose: (reason) => {
      closes.push(reason);
      resolveClosed(reason);
    },
  };
  return { handler, audio, digits, closes, closed };
}

/** Polls `predicate` on the event loop until it holds (for server-side state the tests cannot await). */
export async function until(predicate: () => boolean, timeoutMs = 2_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** `count` consecutive ports on 127.0.0.1 that were free a moment ago. */
export async function freePortRange(count: number): Promise<{ from: number; to: number }> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const from = 20_000 + Math.floor(Math.random() * 40_000);
    const servers = [];
    let ok = true;
    for (let port = from; port < from + count; port++) {
      const server = createServer();
      const bound = await new Promise<boolean>((resolve) => {
        server.once('error', () => resolve(false));
        server.listen({ host: '127.0.0.1', port }, () => resolve(true));
      });
      if (!bound) {
        ok = false;
        break;
      }
      servers.push(server);
    }
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    if (ok) return { from, to: from + count - 1 };
  }
  throw new Error(`no ${count} consecutive free ports found`);
}
