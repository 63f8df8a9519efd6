/**
 * The floor: the least a bridge can do for the same calls, as the reference every ai-call number is
 * compared with (same machine, same run, same load generator). Not part of the product.
 *
 *   FastAGI: read the environment block, SET VARIABLE AI_STATUS / AI_UUID / AI_AUDIOSOCKET (the
 *            result script gets AI_RESULT), then close.
 *   AudioSocket: UUID, then every caller frame is queued and played back on ONE shared 20 ms
 *            absolute-deadline clock; silence when nothing is queued.
 *
 * Usage: node dist/bench/floor.js --host 127.0.0.1 --agi-port P --audiosocket-port Q
 */
import { createServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import {
  AudioSocketKind,
  FRAME_BYTES,
  FRAME_MS,
  FrameReader,
  LineReader,
  encodeAudioMessage,
  encodeSetVariable,
  newUuid,
  uuidFromBytes,
} from './wire.js';

/** A burst of at most this many frames after an event-loop stall (protocols.md §1.7), as ai-call does. */
const MAX_CATCH_UP_FRAMES = 3;
/** Caller audio kept for playback; older frames are dropped beyond it. */
const MAX_QUEUED_FRAMES = 10;
const SILENCE_MESSAGE = encodeAudioMessage(Buffer.alloc(FRAME_BYTES));

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    'agi-port': { type: 'string' },
    'audiosocket-port': { type: 'string' },
  },
});
const host = values.host ?? '127.0.0.1';
const agiPort = Number(values['agi-port']);
const audiosocketPort = Number(values['audiosocket-port']);
if (!Number.isInteger(agiPort) || !Number.isInteger(audiosocketPort)) {
  process.stderr.write('floor: --agi-port and --audiosocket-port are required\n');
  process.exit(2);
}

/** UUIDs issued over AGI and not yet connected. */
const issued = new Set<string>();

interface FloorCall {
  readonly socket: Socket;
  readonly queue: Buffer[];
}
const live = new Set<FloorCall>();

// ── FastAGI ───────────────────────────────────────────────────────────────────────────────────

createServer({ noDelay: true }, (socket) => {
  socket.on('error', () => socket.destroy());
  const lines = new LineReader();
  let script: string | undefined;
  let commands: string[] | undefined;
  socket.on('data', (chunk: Buffer) => {
    for (const line of lines.push(chunk)) {
      if (commands === undefined) {
        if (line.startsWith('agi_network_script: ')) script = line.slice('agi_network_script: '.length);
        if (line !== '') continue;
        // End of the environment block: answer with the variables, one command in flight at a time.
        if (script?.startsWith('ai-call/result')) {
          commands = [encodeSetVariable('AI_RESULT', 'CALLER_HANGUP')];
        } else {
          const uuid = newUuid();
          issued.add(uuid);
          commands = [encodeSetVariable('AI_STATUS', 'READY'), encodeSetVariable('AI_UUID', uuid), encodeSetVariable('AI_AUDIOSOCKET', `${host}:${audiosocketPort}`)];
        }
        socket.write(commands.shift()!);
      } else if (line.startsWith('200')) {
        const next = commands.shift();
        if (next === undefined) socket.end();
        else socket.write(next);
      }
      // Anything else (HANGUP notices) needs no answer.
    }
  });
}).listen(agiPort, host);

// ── AudioSocket ───────────────────────────────────────────────────────────────────────────────

createServer({ noDelay: true }, (socket) => {
  const reader = new FrameReader();
  let call: FloorCall | undefined;
  const end = (): void => {
    if (call) live.delete(call);
    socket.destroy();
  };
  socket.on('error', end);
  socket.on('close', end);
  socket.on('end', end);
  socket.on('data', (chunk: Buffer) => {
    reader.push(chunk, (kind, data, start, length) => {
      if (call === undefined) {
        const uuid = kind === AudioSocketKind.Uuid && length === 16 ? uuidFromBytes(data, start) : '';
        if (!issued.delete(uuid)) {
          end();
          return;
        }
        call = { socket, queue: [] };
        live.add(call);
        startClock();
        return;
      }
      if (kind !== AudioSocketKind.Slin8 || length === 0) return;
      if (call.queue.length >= MAX_QUEUED_FRAMES) call.queue.shift();
      const message = Buffer.allocUnsafe(3 + length);
      message[0] = kind;
      message.writeUInt16BE(length, 1);
      data.copy(message, 3, start, start + length);
      call.queue.push(message);
    });
  });
}).listen(audiosocketPort, host);

// ── the one 20 ms clock ───────────────────────────────────────────────────────────────────────

let timer: NodeJS.Timeout | undefined;
let next = 0;

function startClock(): void {
  if (timer !== undefined) return;
  next = performance.now() + FRAME_MS;
  timer = setTimeout(tick, FRAME_MS);
}

function tick(): void {
  timer = undefined;
  const now = performance.now();
  // Absolute deadlines; 1 ms early counts as on time (libuv rounds its loop clock down).
  const due = Math.floor((now + 1 - next) / FRAME_MS) + 1;
  if (due >= 1) {
    next += due * FRAME_MS;
    const frames = Math.min(due, MAX_CATCH_UP_FRAMES);
    for (let f = 0; f < frames; f++) {
      for (const call of live) call.socket.write(call.queue.shift() ?? SILENCE_MESSAGE);
    }
  }
  if (live.size > 0) timer = setTimeout(tick, Math.max(0, next - performance.now()));
}

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
