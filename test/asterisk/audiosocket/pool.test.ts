import { createServer, type Server } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { isBridgeError } from '../../../src/errors.js';
import { Kind } from '../../../src/asterisk/audiosocket/protocol.js';
import { AudioSocketPool, type AudioSocketPoolOptions } from '../../../src/asterisk/audiosocket/pool.js';
import type { MediaConnection } from '../../../src/asterisk/audiosocket/server.js';
import { FakeAudioSocketClient } from '../../support/fake-audiosocket-client.js';
import { ManualClock } from '../../support/manual-clock.js';
import { captureLogger, freePortRange, recordingHandler, until } from './helpers.js';

const UUID_A = '0f8fad5b-d9cb-469f-a165-70867728950e';
const UUID_B = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
const UUID_C = 'a3bb189e-8bf9-3888-9912-ace4e6543002';

interface PoolHarness {
  readonly pool: AudioSocketPool;
  readonly from: number;
  readonly to: number;
  readonly log: ReturnType<typeof captureLogger>;
  readonly accepted: Array<{ uuid: string; connection: MediaConnection; rec: ReturnType<typeof recordingHandler> }>;
  connectClient(port: number, uuid?: string): Promise<FakeAudioSocketClient>;
}

async function startPool(size: number, overrides: Partial<AudioSocketPoolOptions> = {}): Promise<PoolHarness> {
  const { from, to } = await freePortRange(size);
  const log = captureLogger();
  const accepted: PoolHarness['accepted'] = [];
  const pool = new AudioSocketPool({
    host: '127.0.0.1',
    from,
    to,
    uuidTimeoutMs: 2_000,
    maxPayloadBytes: 16_384,
    logger: log.logger,
    clock: new ManualClock(),
    accept: (uuid, connection) => {
      const rec = recordingHandler();
      accepted.push({ uuid, connection, rec });
      return rec.handler;
    },
    ...overrides,
  });
  const clients: FakeAudioSocketClient[] = [];
  onTestFinished(async () => {
    for (const client of clients) client.destroy();
    await pool.close();
  });
  return {
    pool,
    from,
    to,
    log,
    accepted,
    async connectClient(port, uuid) {
      const client = uuid ? await FakeAudioSocketClient.open({ port, uuid }) : await FakeAudioSocketClient.connect({ port });
      clients.push(client);
      return client;
    },
  };
}

async function expectRefused(port: number): Promise<void> {
  await expect(FakeAudioSocketClient.connect({ port })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
}

async function occupy(port: number): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen({ host: '127.0.0.1', port }, resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return server;
}

describe('AudioSocketPool', () => {
  it('allocates a port in range whose listener accepts that call\'s UUID, then stops listening', async () => {
    const h = await startPool(3);
    expect(h.pool.size).toBe(3);
    expect(h.pool.inUse).toBe(0);
    const port = await h.pool.allocate(UUID_A);
    expect(port).toBeGreaterThanOrEqual(h.from);
    expect(port).toBeLessThanOrEqual(h.to);
    expect(h.pool.inUse).toBe(1);

    const asterisk = await h.connectClient(port, UUID_A);
    await until(() => h.accepted.length === 1);
    const [{ uuid, connection, rec }] = h.accepted as [PoolHarness['accepted'][number]];
    expect(uuid).toBe(UUID_A);
    expect(connection.localPort).toBe(port);
    await expectRefused(port); // one call per port: nobody else may even connect

    asterisk.sendAudio(Kind.Slin8, Buffer.alloc(320, 1));
    await until(() => rec.audio.length === 1);
    connection.sendAudio(Kind.Slin8, Buffer.alloc(320, 2));
    await asterisk.waitForMessages(1);
    expect(h.pool.inUse).toBe(1); // the registry releases, not the pool
  });

  it('refuses a different UUID on an allocated port (logged AUDIOSOCKET_UNKNOWN_UUID), and still takes the right one', async () => {
    const h = await startPool(2);
    const portA = await h.pool.allocate(UUID_A);
    const portB = await h.pool.allocate(UUID_B);
    expect(portA).not.toBe(portB);

    const wrong = await h.connectClient(portA, UUID_B); // B is live, but on its own port
    await wrong.waitForClose();
    expect(h.accepted).toEqual([]);
    expect(h.log.at('warn').find((l) => l['code'] === 'AUDIOSOCKET_UNKNOWN_UUID')).toMatchObject({ uuid: UUID_B });

    await h.connectClient(portA, UUID_A);
    await until(() => h.accepted.length === 1);
    expect(h.accepted[0]!.uuid).toBe(UUID_A);
  });

  it('compares UUIDs case-insensitively (§1.3): allocated uppercase, Asterisk presents lowercase', async () => {
    const h = await startPool(1);
    const port = await h.pool.allocate(UUID_A.toUpperCase());
    await h.connectClient(port, UUID_A);
    await until(() => h.accepted.length === 1);
    expect(h.accepted[0]!.uuid).toBe(UUID_A);
  });

  it('rejects AUDIOSOCKET_POOL_EXHAUSTED when every port is in use', async () => {
    const h = await startPool(2);
    await h.pool.allocate(UUID_A);
    await h.pool.allocate(UUID_B);
    expect(h.pool.inUse).toBe(2);
    const err: unknown = await h.pool.allocate(UUID_C).catch((e: unknown) => e);
    expect(isBridgeError(err, 'AUDIOSOCKET_POOL_EXHAUSTED')).toBe(true);
    expect(h.pool.inUse).toBe(2);
  });

  it('hands out distinct ports to concurrent allocations', async () => {
    const h = await startPool(3);
    const ports = await Promise.all([h.pool.allocate(UUID_A), h.pool.allocate(UUID_B), h.pool.allocate(UUID_C)]);
    expect(new Set(ports).size).toBe(3);
  });

  it('release() closes the port and its connection (onClose local); the port is reused; idempotent', async () => {
    const h = await startPool(1);
    const port = await h.pool.allocate(UUID_A);
    const asterisk = await h.connectClient(port, UUID_A);
    await until(() => h.accepted.length === 1);

    const released = h.pool.release(port);
    await h.pool.release(port);
    await released;
    expect(h.pool.inUse).toBe(0);
    expect(await h.accepted[0]!.rec.closed).toBe('local');
    await asterisk.waitForClose();
    await expectRefused(port);
    await h.pool.release(port); // again: no-op
    await h.pool.release(1); // unknown port: no-op

    expect(await h.pool.allocate(UUID_B)).toBe(port);
    await h.connectClient(port, UUID_B);
    await until(() => h.accepted.length === 2);
    expect(h.accepted[1]!.uuid).toBe(UUID_B);
  });

  it('release() works before Asterisk ever connects (the registry\'s expiry)', async () => {
    const h = await startPool(1);
    const port = await h.pool.allocate(UUID_A);
    const early = await h.connectClient(port); // connected, no UUID yet
    await h.pool.release(port);
    await early.waitForClose();
    await expectRefused(port);
    expect(h.pool.inUse).toBe(0);
  });

  it('skips a port in the range that another process holds (EADDRINUSE)', async () => {
    const h = await startPool(3);
    await occupy(h.from);
    const ports = [await h.pool.allocate(UUID_A), await h.pool.allocate(UUID_B)];
    expect(ports.sort((a, b) => a - b)).toEqual([h.from + 1, h.from + 2]);
    const err: unknown = await h.pool.allocate(UUID_C).catch((e: unknown) => e);
    expect(isBridgeError(err, 'AUDIOSOCKET_POOL_EXHAUSTED')).toBe(true);
    expect(h.pool.inUse).toBe(2);
  });

  it('close() releases everything; later allocations reject', async () => {
    const h = await startPool(2);
    const port = await h.pool.allocate(UUID_A);
    await h.connectClient(port, UUID_A);
    await until(() => h.accepted.length === 1);
    await h.pool.close();
    expect(h.pool.inUse).toBe(0);
    expect(h.accepted[0]!.rec.closes).toEqual(['local']);
    await expectRefused(port);
    const err: unknown = await h.pool.allocate(UUID_B).catch((e: unknown) => e);
    expect(isBridgeError(err, 'AUDIOSOCKET_POOL_EXHAUSTED')).toBe(true);
  });

  it('validates its range and the UUID', async () => {
    const base = { host: '127.0.0.1', uuidTimeoutMs: 100, maxPayloadBytes: 1_000, logger: captureLogger().logger, clock: new ManualClock(), accept: () => undefined };
    expect(() => new AudioSocketPool({ ...base, from: 9_200, to: 9_100 })).toThrow(RangeError);
    expect(() => new AudioSocketPool({ ...base, from: 0, to: 10 })).toThrow(RangeError);
    expect(() => new AudioSocketPool({ ...base, from: 65_000, to: 65_536 })).toThrow(RangeError);
    const pool = new AudioSocketPool({ ...base, from: 9_100, to: 9_100 });
    const err: unknown = await pool.allocate('not-a-uuid').catch((e: unknown) => e);
    expect(isBridgeError(err, 'AUDIOSOCKET_BAD_FRAME')).toBe(true);
    expect(pool.inUse).toBe(0);
  });
});
