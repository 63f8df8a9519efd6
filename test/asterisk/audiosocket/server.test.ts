import { Socket, connect, createServer, type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { HEADER_BYTES, Kind, encodeAudio, encodeAudioInPlace, encodeUuid } from '../../../src/asterisk/audiosocket/protocol.js';
import {
  AudioSocketListener,
  MediaConnection,
  type AudioSocketListenerOptions,
  type MediaLink,
} from '../../../src/asterisk/audiosocket/server.js';
import { FakeAudioSocketClient } from '../../support/fake-audiosocket-client.js';
import { ManualClock } from '../../support/manual-clock.js';
import { captureLogger, fixtureUuid, frame, recordedChunks, recordedMessages, recordingHandler, until } from './helpers.js';

const UUID_A = '0f8fad5b-d9cb-469f-a165-70867728950e';
const UUID_B = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
const UUID_TIMEOUT_MS = 2_000;

afterEach(() => {
  vi.restoreAllMocks();
});

interface Harness {
  readonly listener: AudioSocketListener;
  readonly port: number;
  readonly clock: ManualClock;
  readonly log: ReturnType<typeof captureLogger>;
  /** Every accept() call, in order. */
  readonly accepted: Array<{ uuid: string; connection: MediaConnection }>;
  /** One recording handler per UUID that accept() admits. */
  readonly handlers: Map<string, ReturnType<typeof recordingHandler>>;
  connectClient(uuid?: string): Promise<FakeAudioSocketClient>;
}

/**
 * A listener on 127.0.0.1:0 that admits `known` UUIDs with a recording handler, closed when the test
 * finishes, along with every fake Asterisk it connected.
 */
async function startListener(
  known: readonly string[] = [UUID_A, UUID_B],
  overrides: Partial<AudioSocketListenerOptions> = {},
): Promise<Harness> {
  const clock = new ManualClock();
  const log = captureLogger();
  const accepted: Harness['accepted'] = [];
  const handlers: Harness['handlers'] = new Map();
  const listener = new AudioSocketListener({
    host: '127.0.0.1',
    port: 0,
    uuidTimeoutMs: UUID_TIMEOUT_MS,
    maxPayloadBytes: 16_384,
    logger: log.logger,
    clock,
    accept: (uuid, connection) => {
      accepted.push({ uuid, connection });
      if (!known.includes(uuid)) return undefined;
      const recording = recordingHandler();
      handlers.set(uuid, recording);
      return recording.handler;
    },
    ...overrides,
  });
  const clients: FakeAudioSocketClient[] = [];
  onTestFinished(async () => {
    for (const client of clients) client.destroy();
    await listener.close();
  });
  const address = await listener.listen();
  expect(address.port).toBe(listener.port);
  const port = listener.port;
  return {
    listener,
    port,
    clock,
    log,
    accepted,
    handlers,
    async connectClient(uuid?: string) {
      const client = uuid ? await FakeAudioSocketClient.open({ port, uuid }) : await FakeAudioSocketClient.connect({ port });
      clients.push(client);
      return client;
    },
  };
}

/** Waits until accept() has admitted `uuid`, and returns its connection and recording handler. */
async function acceptedCall(h: Harness, uuid: string): Promise<{ connection: MediaConnection; rec: ReturnType<typeof recordingHandler> }> {
  await until(() => h.handlers.has(uuid), 2_000, `accept(${uuid})`);
  const connection = h.accepted.find((a) => a.uuid === uuid)!.connection;
  return { connection, rec: h.handlers.get(uuid)! };
}

describe('AudioSocketListener: accepting a call', () => {
  it('hands the UUID and a live MediaConnection to accept(), then audio, DTMF and EOF to the handler', async () => {
    const h = await startListener();
    const asterisk = await h.connectClient(UUID_A);
    const { connection, rec } = await acceptedCall(h, UUID_A);

    expect(connection.uuid).toBe(UUID_A);
    expect(connection.remoteAddress).toBe('127.0.0.1');
    expect(connection.localPort).toBe(h.port);
    expect(connection.closed).toBe(false);
    expect(connection.writableLength).toBe(0);
    expect(h.listener.connections).toBe(1);
    expect(h.clock.pendingTimers).toBe(0); // the UUID deadline is cleared

    const tone = Buffer.alloc(320, 0x42);
    asterisk.sendAudio(Kind.Slin8, tone);
    asterisk.sendDtmf('1');
    asterisk.sendAudio(Kind.Slin16, Buffer.alloc(640, 1));
    asterisk.sendDtmf('#');
    await until(() => rec.digits.length === 2);
    expect(rec.audio.map((a) => [a.payload.length, a.sampleRateHz])).toEqual([[320, 8_000], [640, 16_000]]);
    expect(rec.audio[0]!.payload.equals(tone)).toBe(true);
    expect(rec.digits).toEqual(['1', '#']);

    asterisk.end(); // §1.5: Asterisk hangs up by closing, never with 0x00
    expect(await rec.closed).toBe('eof');
    await until(() => h.listener.connections === 0);
    expect(rec.closes).toEqual(['eof']);
    expect(connection.closed).toBe(true);
    expect(connection.sendAudio(Kind.Slin8, tone)).toBe(false);
  });

  it('dispatches the UUID and the first audio frame that share one read (the recorded 342-byte read)', async () => {
    const h = await startListener([fixtureUuid('audiosocket-app-slin8')]);
    const first = recordedChunks('audiosocket-app-slin8', 'asterisk->server')[0]!;
    expect(first.length).toBe(342);
    const asterisk = await h.connectClient();
    asterisk.sendRaw(first);
    const { rec } = await acceptedCall(h, fixtureUuid('audiosocket-app-slin8'));
    await until(() => rec.audio.length === 1);
    expect(rec.audio[0]!.payload.length).toBe(320);
  });

  it.each(['audiosocket-app-slin8', 'audiosocket-dial-slin16', 'agi-session-exec-audiosocket'] as const)(
    'replays the recorded Asterisk side of %s and sees every message, then EOF',
    async (name) => {
      const uuid = fixtureUuid(name);
      const h = await startListener([uuid]);
      const asterisk = await h.connectClient();
      await asterisk.sendPieces(recordedChunks(name, 'asterisk->server'), 0);
      const expected = recordedMessages(name);
      const audio = expected.filter((m) => m.kind === 'audio');
      const digits = expected.filter((m) => m.kind === 'dtmf').map((m) => m.digit);
      const { rec } = await acceptedCall(h, uuid);
      await until(() => rec.audio.length === audio.length && rec.digits.length === digits.length);
      expect(rec.audio.map((a) => a.payload.toString('hex'))).toEqual(audio.map((m) => m.payload.toString('hex')));
      expect(rec.audio.map((a) => a.sampleRateHz)).toEqual(audio.map((m) => m.sampleRateHz));
      expect(rec.digits).toEqual(digits);
      asterisk.end();
      expect(await rec.closed).toBe('eof');
    },
  );

  it('lets accept() send at once: the connection is live inside accept()', async () => {
    const h = await startListener([], {
      accept: (_uuid, connection) => {
        connection.sendAudio(Kind.Slin8, Buffer.alloc(320)); // §1.7: silence from the moment the UUID arrives
        return recordingHandler().handler;
      },
    });
    const asterisk = await h.connectClient(UUID_A);
    const [message] = await asterisk.waitForMessages(1);
    expect(message!.bytes.equals(encodeAudio(Kind.Slin8, Buffer.alloc(320)))).toBe(true);
  });

  it('calls setNoDelay(true) on every socket (§1.6)', async () => {
    const setNoDelay = vi.spyOn(Socket.prototype, 'setNoDelay');
    const h = await startListener();
    await h.connectClient(UUID_A);
    await acceptedCall(h, UUID_A);
    const serverSide = setNoDelay.mock.contexts.filter((s) => (s as Socket).localPort === h.port);
    expect(serverSide).toHaveLength(1);
    expect(setNoDelay.mock.calls[setNoDelay.mock.contexts.indexOf(serverSide[0])]).toEqual([true]);
  });
});

describe('AudioSocketListener: connections that never become calls', () => {
  it('refuses an unknown UUID: logs AUDIOSOCKET_UNKNOWN_UUID with uuid and remote, and destroys the socket', async () => {
    const h = await startListener([UUID_A]);
    const stranger = await h.connectClient(UUID_B);
    await stranger.waitForClose();
    expect(h.accepted.map((a) => a.uuid)).toEqual([UUID_B]);
    expect(h.handlers.size).toBe(0);
    const [line] = h.log.at('warn').filter((l) => l['code'] === 'AUDIOSOCKET_UNKNOWN_UUID');
    expect(line).toMatchObject({ uuid: UUID_B, remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/) });
    await until(() => h.listener.connections === 0);
  });

  it('closes a connection that sends no UUID within uuidTimeoutMs, logging AUDIOSOCKET_NO_UUID', async () => {
    const h = await startListener();
    const silent = await h.connectClient();
    await until(() => h.listener.connections === 1 && h.clock.pendingTimers === 1);
    h.clock.advance(UUID_TIMEOUT_MS - 1);
    await sleep(20);
    expect(silent.closed).toBe(false);
    h.clock.advance(1);
    await silent.waitForClose();
    expect(h.accepted).toEqual([]);
    const [line] = h.log.at('warn');
    expect(line).toMatchObject({ code: 'AUDIOSOCKET_NO_UUID', uuidTimeoutMs: UUID_TIMEOUT_MS, remote: expect.stringContaining('127.0.0.1') });
    await until(() => h.listener.connections === 0);
  });

  it('tolerates a connection that closes before its UUID (unanswered channel, §1.3): debug only', async () => {
    const h = await startListener();
    const early = await h.connectClient();
    await until(() => h.listener.connections === 1);
    early.end();
    await early.waitForClose();
    await until(() => h.listener.connections === 0);
    expect(h.clock.pendingTimers).toBe(0);
    expect(h.accepted).toEqual([]);
    expect(h.log.at('warn')).toEqual([]);
    expect(h.log.at('error')).toEqual([]);
    expect(h.log.at('debug').some((l) => /before sending a UUID/.test(l.msg))).toBe(true);
  });

  it('closes a connection whose first message is not a UUID', async () => {
    const h = await startListener();
    const rude = await h.connectClient();
    rude.sendSilence(Kind.Slin8);
    await rude.waitForClose();
    expect(h.accepted).toEqual([]);
    expect(h.log.at('warn')[0]).toMatchObject({ code: 'AUDIOSOCKET_NO_UUID', first: 'audio' });
  });

  it('closes a connection that sends garbage before its UUID, logging AUDIOSOCKET_BAD_FRAME', async () => {
    const h = await startListener();
    const probe = await h.connectClient();
    probe.sendRaw(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    await probe.waitForClose();
    expect(h.accepted).toEqual([]);
    expect(h.log.at('warn')[0]).toMatchObject({ code: 'AUDIOSOCKET_BAD_FRAME' });
  });

  it('refuses when accept() throws, and logs it', async () => {
    const h = await startListener([], {
      accept: () => {
        throw new Error('registry bug');
      },
    });
    const asterisk = await h.connectClient(UUID_A);
    await asterisk.waitForClose();
    expect(h.log.at('error')[0]).toMatchObject({ uuid: UUID_A, err: expect.objectContaining({ message: 'registry bug' }) });
  });
});

describe('AudioSocketListener: malformed frames end only their own connection', () => {
  it.each([
    ['unknown kind 0x05', frame(0x05, [1, 2])],
    ['oversize length', Buffer.from([Kind.Slin8, 0xff, 0xfe])],
    ['a second UUID', encodeUuid(UUID_B)],
    ['a DTMF byte outside 0-9*#A-D', frame(Kind.Dtmf, [0x78])],
  ])('%s: onClose(bad-frame), logged with uuid and remote; the other call keeps working', async (_what, garbage) => {
    const h = await startListener();
    const bad = await h.connectClient(UUID_A);
    const good = await h.connectClient(UUID_B);
    const a = await acceptedCall(h, UUID_A);
    const b = await acceptedCall(h, UUID_B);

    bad.sendRaw(garbage);
    expect(await a.rec.closed).toBe('bad-frame');
    await bad.waitForClose();
    const [line] = h.log.at('warn').filter((l) => l['code'] === 'AUDIOSOCKET_BAD_FRAME');
    expect(line).toMatchObject({ uuid: UUID_A, remote: expect.stringContaining('127.0.0.1'), err: expect.objectContaining({ code: 'AUDIOSOCKET_BAD_FRAME' }) });

    good.sendAudio(Kind.Slin8, Buffer.alloc(320, 9));
    good.sendDtmf('5');
    await until(() => b.rec.digits.length === 1);
    expect(b.rec.audio).toHaveLength(1);
    expect(b.connection.sendAudio(Kind.Slin8, Buffer.alloc(320, 3))).toBe(true);
    const [echo] = await good.waitForMessages(1);
    expect(echo!.payload.equals(Buffer.alloc(320, 3))).toBe(true);
    expect(b.rec.closes).toEqual([]);
    expect(a.rec.closes).toEqual(['bad-frame']);
    expect(h.listener.connections).toBe(1);
  });

  it('a peer 0x00 hangup ends the call like EOF', async () => {
    const h = await startListener();
    const asterisk = await h.connectClient(UUID_A);
    const { rec } = await acceptedCall(h, UUID_A);
    asterisk.sendHangup();
    expect(await rec.closed).toBe('eof');
    await asterisk.waitForClose();
  });

  it('an RST from Asterisk closes with onClose(error)', async () => {
    const h = await startListener();
    const asterisk = await h.connectClient(UUID_A);
    const { rec } = await acceptedCall(h, UUID_A);
    asterisk.reset();
    expect(await rec.closed).toBe('error');
    expect(rec.closes).toEqual(['error']);
  });

  it('a throwing handler closes its connection with onClose(error) instead of crashing the process', async () => {
    const h = await startListener([], {
      accept: () => ({
        onAudio: () => {
          throw new Error('handler bug');
        },
        onDtmf: () => undefined,
        onClose: (reason) => closes.push(reason),
      }),
    });
    const closes: string[] = [];
    const asterisk = await h.connectClient(UUID_A);
    asterisk.sendSilence();
    await asterisk.waitForClose();
    await until(() => closes.length === 1);
    expect(closes).toEqual(['error']);
    expect(h.log.at('error')[0]).toMatchObject({ callback: 'onAudio' });
  });
});

describe('MediaConnection: sending to Asterisk', () => {
  it('writes each sendAudio as exactly one socket.write of encodeAudio(kind, payload) (§1.6)', async () => {
    const h = await startListener();
    const asterisk = await h.connectClient(UUID_A);
    const { connection } = await acceptedCall(h, UUID_A);
    const write = vi.spyOn(Socket.prototype, 'write');
    const serverWrites = (): Buffer[] =>
      write.mock.contexts.flatMap((socket, i) => ((socket as Socket).localPort === h.port ? [write.mock.calls[i]![0] as Buffer] : []));

    const frames = [
      [Kind.Slin8, Buffer.alloc(320, 1)],
      [Kind.Slin16, Buffer.alloc(640, 2)],
      [Kind.Slin44, Buffer.alloc(1_764, 3)],
      [Kind.Slin8, Buffer.alloc(2, 4)],
    ] as const;
    for (const [kind, payload] of frames) {
      const before = serverWrites().length;
      expect(connection.sendAudio(kind, payload)).toBe(true);
      expect(serverWrites().length - before).toBe(1);
      expect(serverWrites().at(-1)!.equals(encodeAudio(kind, payload))).toBe(true);
    }
    const received = await asterisk.waitForMessages(frames.length);
    expect(received.map((m) => [m.kind, m.payload.length])).toEqual(frames.map(([kind, payload]) => [kind, payload.length]));
    expect(received.every((m) => !m.spannedReads)).toBe(true); // whole messages on the wire
  });

  it('sendAudioMessage writes an encoded message as is: one socket.write of that very buffer, no copy (§1.6)', async () => {
    const h = await startListener();
    const asterisk = await h.connectClient(UUID_A);
    const { connection } = await acceptedCall(h, UUID_A);
    const write = vi.spyOn(Socket.prototype, 'write');
    const serverWrites = (): unknown[] =>
      write.mock.contexts.flatMap((socket, i) => ((socket as Socket).localPort === h.port ? [write.mock.calls[i]![0]] : []));
    const silence = encodeAudio(Kind.Slin8, Buffer.alloc(320));
    const frame = Buffer.alloc(HEADER_BYTES + 320, 5);
    const messages = [silence, encodeAudioInPlace(Kind.Slin8, frame), silence, silence];
    for (const message of messages) expect(connection.sendAudioMessage(message)).toBe(true);
    // The very buffers (a shared silence message may go out any number of times).
    expect(serverWrites()).toEqual(messages);
    expect(serverWrites().every((buffer, i) => buffer === messages[i])).toBe(true);
    const received = await asterisk.waitForMessages(messages.length);
    expect(received.map((m) => m.payload.every((b) => b === 0))).toEqual([true, false, true, true]);
    expect(received.every((m) => m.kind === Kind.Slin8 && m.payload.length === 320 && !m.spannedReads)).toBe(true);
    connection.hangup();
    expect(connection.sendAudioMessage(silence)).toBe(false);
  });

  it('refuses payloads Asterisk would hang up on, writing nothing (§1.6)', async () => {
    const h = await startListener();
    const asterisk = await h.connectClient(UUID_A);
    const { connection } = await acceptedCall(h, UUID_A);
    expect(() => connection.sendAudio(Kind.Slin8, Buffer.alloc(0))).toThrow(expect.objectContaining({ code: 'AUDIOSOCKET_BAD_FRAME' }));
    expect(() => connection.sendAudio(Kind.Slin8, Buffer.alloc(321))).toThrow(expect.objectContaining({ code: 'AUDIOSOCKET_BAD_FRAME' }));
    expect(() => connection.sendAudio(Kind.Dtmf, Buffer.alloc(2))).toThrow(expect.objectContaining({ code: 'AUDIOSOCKET_BAD_FRAME' }));
    connection.sendAudio(Kind.Slin8, Buffer.alloc(320));
    await asterisk.waitForMessages(1);
    expect(asterisk.receivedBytes().length).toBe(323);
  });

  it('hangup() sends exactly 00 00 00, then Asterisk sees EOF; onClose(local); idempotent', async () => {
    const h = await startListener();
    const asterisk = await h.connectClient(UUID_A);
    const { connection, rec } = await acceptedCall(h, UUID_A);
    connection.hangup();
    connection.hangup();
    expect(connection.closed).toBe(true);
    expect(connection.sendAudio(Kind.Slin8, Buffer.alloc(320))).toBe(false);
    await asterisk.waitForEnd();
    expect(asterisk.receivedBytes().toString('hex')).toBe('000000');
    expect(asterisk.received.map((m) => m.kind)).toEqual([Kind.Hangup]);
    expect(await rec.closed).toBe('local');
    await asterisk.waitForClose();
    expect(rec.closes).toEqual(['local']);
    expect(h.clock.pendingTimers).toBe(0);
  });

  it('hangup() after audio: the audio, then 00 00 00, then EOF, in order', async () => {
    const h = await startListener();
    const asterisk = await h.connectClient(UUID_A);
    const { connection } = await acceptedCall(h, UUID_A);
    connection.sendAudio(Kind.Slin8, Buffer.alloc(320, 7));
    connection.hangup();
    await asterisk.waitForEnd();
    expect(asterisk.received.map((m) => m.kind)).toEqual([Kind.Slin8, Kind.Hangup]);
  });

  it('hangup() destroys the socket if Asterisk does not close within hangupTimeoutMs', async () => {
    const h = await startListener(undefined, { hangupTimeoutMs: 500 });
    // A peer that keeps its half open after our FIN (Asterisk closes in < 1 ms; this one never does).
    const stubborn = connect({ host: '127.0.0.1', port: h.port, allowHalfOpen: true });
    onTestFinished(() => void stubborn.destroy());
    stubborn.on('error', () => undefined);
    let ended = false;
    stubborn.on('end', () => (ended = true));
    stubborn.on('data', () => undefined);
    stubborn.write(encodeUuid(UUID_A));
    const { connection, rec } = await acceptedCall(h, UUID_A);
    connection.hangup();
    await until(() => ended);
    await sleep(50);
    expect(rec.closes).toEqual([]);
    expect(h.listener.connections).toBe(1);
    h.clock.advance(499);
    await sleep(20);
    expect(rec.closes).toEqual([]);
    h.clock.advance(1);
    expect(await rec.closed).toBe('local');
    expect(h.listener.connections).toBe(0);
  });

  it('hangup() inside accept() (a call that already ended) still hangs up and reports onClose once', async () => {
    const rec = recordingHandler();
    const h = await startListener([], {
      accept: (_uuid, connection) => {
        connection.hangup();
        return rec.handler;
      },
    });
    const asterisk = await h.connectClient(UUID_A);
    await asterisk.waitForEnd();
    expect(asterisk.receivedBytes().toString('hex')).toBe('000000');
    expect(await rec.closed).toBe('local');
    await sleep(20);
    expect(rec.closes).toEqual(['local']);
  });

  it('close() destroys at once; onClose(local) once; idempotent, also after hangup()', async () => {
    const h = await startListener();
    const asterisk = await h.connectClient(UUID_A);
    const { connection, rec } = await acceptedCall(h, UUID_A);
    connection.close();
    connection.close();
    connection.hangup();
    expect(connection.closed).toBe(true);
    expect(await rec.closed).toBe('local');
    await asterisk.waitForClose();
    expect(asterisk.receivedBytes().length).toBe(0);
    expect(rec.closes).toEqual(['local']);
  });

  it('works over a fake MediaLink, for tests of code built on it', () => {
    const writes: Buffer[] = [];
    let closed = false;
    const link: MediaLink = {
      get closed() {
        return closed;
      },
      writableLength: 0,
      write: (message) => void writes.push(message),
      hangup: () => (closed = true),
      close: () => (closed = true),
    };
    const connection = new MediaConnection(link, UUID_A, '10.0.0.1', 9092);
    expect(connection.sendAudio(Kind.Slin8, Buffer.alloc(320))).toBe(true);
    connection.hangup();
    expect(connection.sendAudio(Kind.Slin8, Buffer.alloc(320))).toBe(false);
    expect(writes).toHaveLength(1);
    expect(writes[0]!.equals(encodeAudio(Kind.Slin8, Buffer.alloc(320)))).toBe(true);
  });
});

describe('AudioSocketListener: lifecycle', () => {
  it('close() destroys every connection, calls onClose(local) on calls, stops listening; idempotent', async () => {
    const h = await startListener();
    const call = await h.connectClient(UUID_A);
    const pending = await h.connectClient();
    const { rec } = await acceptedCall(h, UUID_A);
    await until(() => h.listener.connections === 2);
    const first = h.listener.close();
    expect(h.listener.close()).toBe(first);
    await first;
    expect(rec.closes).toEqual(['local']);
    expect(h.listener.connections).toBe(0);
    await Promise.all([call.waitForClose(), pending.waitForClose()]);
    await expect(FakeAudioSocketClient.connect({ port: h.port })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    expect(h.clock.pendingTimers).toBe(0);
  });

  it('close() before listen() resolves; listen() after close() rejects', async () => {
    const listener = new AudioSocketListener({
      host: '127.0.0.1', port: 0, uuidTimeoutMs: 100, maxPayloadBytes: 1_000, logger: captureLogger().logger, clock: new ManualClock(),
      accept: () => undefined,
    });
    await listener.close();
    await expect(listener.listen()).rejects.toThrow(/closed/);
  });

  it('close() while listen() is binding leaves nothing listening', async () => {
    const listener = new AudioSocketListener({
      host: '127.0.0.1', port: 0, uuidTimeoutMs: 100, maxPayloadBytes: 1_000, logger: captureLogger().logger, clock: new ManualClock(),
      accept: () => undefined,
    });
    const listening = listener.listen();
    await listener.close();
    await expect(listening).rejects.toThrow(/closed while binding/);
  });

  it('listen() rejects with EADDRINUSE when the port is taken', async () => {
    const h = await startListener();
    const second = new AudioSocketListener({
      host: '127.0.0.1', port: h.port, uuidTimeoutMs: 100, maxPayloadBytes: 1_000, logger: captureLogger().logger, clock: new ManualClock(),
      accept: () => undefined,
    });
    await expect(second.listen()).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await second.close();
  });

  it('acceptOnce stops listening after the first accepted call, and the call carries on', async () => {
    const h = await startListener(undefined, { acceptOnce: true });
    const refused = await h.connectClient(UUID_B.replace('7', '8')); // refused: the port keeps listening
    await refused.waitForClose();
    const asterisk = await h.connectClient(UUID_A);
    const { connection, rec } = await acceptedCall(h, UUID_A);
    await expect(FakeAudioSocketClient.connect({ port: h.port })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    asterisk.sendDtmf('9');
    await until(() => rec.digits.length === 1);
    expect(connection.sendAudio(Kind.Slin8, Buffer.alloc(320))).toBe(true);
    await asterisk.waitForMessages(1);
    await h.listener.close();
    expect(rec.closes).toEqual(['local']);
  });
});

describe('FakeAudioSocketClient', () => {
  it('frames what a server sends, timestamps it, and flags a message that spanned two reads', async () => {
    const server = createServer((socket) => {
      const message = encodeAudio(Kind.Slin8, Buffer.alloc(320, 5));
      socket.write(Buffer.concat([encodeAudio(Kind.Slin8, Buffer.alloc(320, 4)), message.subarray(0, 2)]));
      setTimeout(() => socket.end(message.subarray(2)), 30);
    });
    await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port: 0 }, resolve));
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const client = await FakeAudioSocketClient.connect({ port: (server.address() as AddressInfo).port });
    await client.waitForEnd();
    expect(client.chunks.length).toBeGreaterThanOrEqual(2);
    expect(client.received.map((m) => [m.kind, m.payload[0], m.spannedReads])).toEqual([
      [Kind.Slin8, 4, false],
      [Kind.Slin8, 5, true],
    ]);
    expect(client.received[1]!.atMs).toBeGreaterThan(client.received[0]!.atMs);
    expect(client.partialBytes).toBe(0);
    await client.waitForClose();
  });
});
