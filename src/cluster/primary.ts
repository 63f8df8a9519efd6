/**
 * `ai-call serve --workers N`: N worker processes (worker.ts), each a whole ai-call server, so calls
 * use every core. The primary carries no call: it forks and restarts workers, routes what arrives at
 * the wrong worker, and serves the status endpoint for all of them.
 *
 *                 ┌────────── FastAGI agi.port, shared (node:cluster round-robin) ──────────┐
 *   Asterisk ──►  worker 0: AudioSocket port+0 ◄── AI_AUDIOSOCKET from worker 0's AGI answers
 *                 worker 1: AudioSocket port+1 ◄── AI_AUDIOSOCKET from worker 1's AGI answers …
 *                 primary: status.port (calls, /healthz, /metrics aggregated, event stream),
 *                          owner map callId → worker (from call.started / call.ended events)
 *
 * Only the result AGI can reach a worker that does not hold the call; that worker asks the primary,
 * which asks the owner (protocol.ts `outcome-request`).
 */
import cluster, { type Worker } from 'node:cluster';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { AggregatorRegistry } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { CallEvent } from '../call/events.js';
import type { CallSnapshot } from '../call/session.js';
import type { Logger } from '../log.js';
import { StatusServer } from '../status/server.js';
import { BridgeError } from '../errors.js';
import { CLUSTER_TAG, isClusterMessage, type OutcomeLookup, type PrimaryMessage, type WorkerHealth, type WorkerMessage } from './protocol.js';
import { checkClusterConfig } from './worker-config.js';
import { missingServerFlags } from '../runtime-flags.js';

/** A worker must be serving within this long of its fork. */
const START_TIMEOUT_MS = 30_000;
/** Answers the primary waits for from a worker (list, metrics, hangup). */
const REQUEST_TIMEOUT_MS = 2_000;
/** A worker that crashes this often within RESTART_WINDOW_MS is not restarted again. */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;
/** The status call list is refreshed from the workers when it is older than this. */
const LIST_MAX_AGE_MS = 1_000;

export interface ClusterOptions {
  readonly config: Config;
  readonly workers: number;
  readonly logger: Logger;
  /** The module workers run; default worker.js next to this file. */
  readonly workerModule?: string;
  /** Delay before a crashed worker is started again; default 1000 ms. */
  readonly restartDelayMs?: number;
}

export interface RunningCluster {
  readonly agi: { host: string; port: number };
  readonly status: { host: string; port: number } | undefined;
  /** Each worker's index, pid and AudioSocket address, as last started. */
  workers(): Array<{ index: number; pid: number | undefined; ready: boolean; audiosocket: { host: string; port: number } | undefined }>;
  /** Tells every worker to drain for graceMs and stop; resolves when all have exited (idempotent). */
  close(graceMs?: number): Promise<void>;
}

interface Slot {
  readonly index: number;
  /** The AudioSocket port this slot's worker listens on (fixed across restarts). */
  readonly audiosocketPort: number | undefined;
  worker: Worker | undefined;
  ready: boolean;
  audiosocket: { host: string; port: number } | undefined;
  liveCalls: number;
  restarts: number[];
}

/** Forks the workers and resolves once every one is serving; rejects (and stops them) otherwise. */
export async function startCluster(options: ClusterOptions): Promise<RunningCluster> {
  const { config, workers } = options;
  checkClusterConfig(config, workers);
  if (!cluster.isPrimary) throw new Error('startCluster() runs in the primary process only');
  const log = options.logger.child({ component: 'cluster' });
  const restartDelayMs = options.restartDelayMs ?? 1_000;
  const fixedPorts = config.audiosocket.mode === 'shared' && config.audiosocket.port === 0 ? await freePorts(config.audiosocket.host, workers) : undefined;
  const slots: Slot[] = Array.from({ length: workers }, (_, index) => ({
    index,
    audiosocketPort: fixedPorts?.[index],
    worker: undefined,
    ready: false,
    audiosocket: undefined,
    liveCalls: 0,
    restarts: [],
  }));
  /** callId → owner slot, and when the call ended (entries live resultTtlMs after that). */
  const owners = new Map<string, { index: number; endedAtMs: number | undefined }>();
  const pending = new Map<number, { resolve: (message: WorkerMessage) => void; timer: NodeJS.Timeout }>();
  let nextRequestId = 1;
  let closing: Promise<void> | undefined;
  let status: StatusServer | undefined;
  let callCache: { atMs: number; calls: CallSnapshot[]; health: WorkerHealth[] } = { atMs: 0, calls: [], health: [] };
  let refreshing: Promise<void> | undefined;
  const startWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];

  // Workers carry the calls: they run with ai-call's V8 flags even if the primary was started without them.
  cluster.setupPrimary({
    exec: options.workerModule ?? fileURLToPath(new URL('./worker.js', import.meta.url)),
    execArgv: [...process.execArgv, ...missingServerFlags()],
  });

  const sendTo = (slot: Slot, message: PrimaryMessage): void => {
    const worker = slot.worker;
    if (worker !== undefined && worker.isConnected()) worker.send(message);
  };

  /** A request to one worker; resolves with its reply or undefined on timeout / exit. */
  const request = (slot: Slot, make: (requestId: number) => PrimaryMessage): Promise<WorkerMessage | undefined> =>
    new Promise((resolve) => {
      const requestId = nextRequestId++;
      const timer = setTimeout(() => {
        pending.delete(requestId);
        resolve(undefined);
      }, REQUEST_TIMEOUT_MS);
      pending.set(requestId, { resolve, timer });
      sendTo(slot, make(requestId));
    });

  const pruneOwners = (): void => {
    const nowMs = performance.now();
    for (const [callId, owner] of owners) {
      if (owner.endedAtMs !== undefined && nowMs - owner.endedAtMs > config.calls.resultTtlMs) owners.delete(callId);
    }
  };

  const onEvent = (slot: Slot, event: CallEvent): void => {
    if (event.type === 'call.started') {
      owners.set(event.callId, { index: slot.index, endedAtMs: undefined });
      slot.liveCalls++;
    } else if (event.type === 'call.ended') {
      const owner = owners.get(event.callId);
      if (owner) owner.endedAtMs = performance.now();
      slot.liveCalls = Math.max(0, slot.liveCalls - 1);
      pruneOwners();
    }
    status?.publish(event);
  };

  /** A worker asks for the outcome of a call it does not hold: relay to the owner and back. */
  const relayOutcome = (from: Slot, requestId: number, callId: string, waitMs: number): void => {
    const owner = owners.get(callId.toLowerCase());
    const ownerSlot = owner !== undefined ? slots[owner.index] : undefined;
    const answer = (found: OutcomeLookup): void => sendTo(from, { tag: CLUSTER_TAG, type: 'outcome-reply', requestId, found });
    if (ownerSlot === undefined || ownerSlot === from || !ownerSlot.ready) {
      answer({ state: 'unknown' });
      return;
    }
    const relayId = nextRequestId++;
    const timer = setTimeout(() => {
      pending.delete(relayId);
      answer({ state: 'unknown' });
    }, waitMs + REQUEST_TIMEOUT_MS);
    pending.set(relayId, {
      resolve: (reply) => answer(reply.type === 'outcome-reply' ? reply.found : { state: 'unknown' }),
      timer,
    });
    sendTo(ownerSlot, { tag: CLUSTER_TAG, type: 'outcome-request', requestId: relayId, callId, waitMs });
  };

  const onWorkerMessage = (slot: Slot, message: WorkerMessage): void => {
    switch (message.type) {
      case 'hello':
        sendTo(slot, { tag: CLUSTER_TAG, type: 'start', index: slot.index, workers, config, audiosocketPort: slot.audiosocketPort });
        return;
      case 'ready':
        slot.ready = true;
        slot.audiosocket = message.audiosocket;
        log.info({ worker: slot.index, pid: slot.worker?.process.pid, audiosocket: message.audiosocket }, 'worker ready');
        if (slots.every((s) => s.ready)) for (const waiter of startWaiters.splice(0)) waiter.resolve();
        return;
      case 'start-failed':
        log.error({ worker: slot.index, error: message.error }, 'worker could not start');
        for (const waiter of startWaiters.splice(0)) waiter.reject(new BridgeError('CONFIG_INVALID', `worker ${slot.index}: ${message.error}`));
        return;
      case 'event':
        onEvent(slot, message.event);
        return;
      case 'outcome-request':
        relayOutcome(slot, message.requestId, message.callId, message.waitMs);
        return;
      case 'outcome-reply':
      case 'list-reply':
      case 'metrics-reply':
      case 'hangup-reply': {
        const entry = pending.get(message.requestId);
        if (!entry) return;
        pending.delete(message.requestId);
        clearTimeout(entry.timer);
        entry.resolve(message);
        return;
      }
    }
  };

  const fork = (slot: Slot): void => {
    const worker = cluster.fork({ AI_CALL_WORKER_INDEX: String(slot.index) });
    slot.worker = worker;
    slot.ready = false;
    worker.on('message', (message: unknown) => {
      if (isClusterMessage(message)) onWorkerMessage(slot, message as WorkerMessage);
    });
    worker.on('exit', (code, signal) => {
      if (slot.worker !== worker) return;
      slot.worker = undefined;
      slot.ready = false;
      slot.liveCalls = 0;
      // Its calls are gone with it; their result AGIs will answer CALL_NOT_FOUND.
      for (const [callId, owner] of owners) if (owner.index === slot.index) owners.delete(callId);
      if (closing !== undefined) return;
      const nowMs = performance.now();
      slot.restarts = slot.restarts.filter((at) => nowMs - at < RESTART_WINDOW_MS);
      if (slot.restarts.length >= MAX_RESTARTS) {
        log.error({ worker: slot.index, code, signal }, `worker exited ${MAX_RESTARTS} times within ${RESTART_WINDOW_MS / 1000} s: not restarting it`);
        return;
      }
      slot.restarts.push(nowMs);
      log.error({ worker: slot.index, code, signal, restartInMs: restartDelayMs }, 'worker exited: its calls were lost; restarting it');
      setTimeout(() => {
        if (closing === undefined) fork(slot);
      }, restartDelayMs).unref();
    });
  };

  const refreshCalls = (): Promise<void> => {
    refreshing ??= (async () => {
      const replies = await Promise.all(slots.map((slot) => (slot.ready ? request(slot, (requestId) => ({ tag: CLUSTER_TAG, type: 'list-request', requestId })) : undefined)));
      const calls: CallSnapshot[] = [];
      const health: WorkerHealth[] = [];
      for (const reply of replies) {
        if (reply?.type !== 'list-reply') continue;
        calls.push(...reply.calls);
        health.push(reply.health);
      }
      callCache = { atMs: performance.now(), calls, health };
    })().finally(() => {
      refreshing = undefined;
    });
    return refreshing;
  };

  const close = (graceMs = 0): Promise<void> => {
    closing ??= (async () => {
      const exits = slots
        .map((slot) => slot.worker)
        .filter((worker): worker is Worker => worker !== undefined)
        .map((worker) => new Promise<void>((resolve) => (worker.isDead() ? resolve() : worker.once('exit', () => resolve()))));
      for (const slot of slots) sendTo(slot, { tag: CLUSTER_TAG, type: 'shutdown', graceMs });
      const deadline = setTimeout(() => {
        for (const slot of slots) slot.worker?.process.kill('SIGKILL');
      }, graceMs + 5_000);
      await Promise.all(exits);
      clearTimeout(deadline);
      for (const entry of pending.values()) clearTimeout(entry.timer);
      pending.clear();
      await status?.close();
      log.info('all workers stopped');
    })();
    return closing;
  };

  for (const slot of slots) fork(slot);
  const started = new Promise<void>((resolve, reject) => {
    startWaiters.push({ resolve, reject });
    setTimeout(() => reject(new BridgeError('CONFIG_INVALID', `workers not ready within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS).unref();
  });
  try {
    await started;
  } catch (err) {
    await close(0);
    throw err;
  }

  let statusAddress: { host: string; port: number } | undefined;
  if (config.status.enabled) {
    status = new StatusServer({
      host: config.status.host,
      port: config.status.port,
      token: config.status.token,
      logger: options.logger,
      source: {
        list: () => {
          if (performance.now() - callCache.atMs > LIST_MAX_AGE_MS) void refreshCalls();
          return callCache.calls;
        },
        get: (callId) => callCache.calls.find((call) => call.callId === callId.toLowerCase()),
        hangup: (callId, reason) => {
          const owner = owners.get(callId.toLowerCase());
          const slot = owner !== undefined && owner.endedAtMs === undefined ? slots[owner.index] : undefined;
          if (!slot) return false;
          void request(slot, (requestId) => ({ tag: CLUSTER_TAG, type: 'hangup-request', requestId, callId, reason }));
          return true;
        },
      },
      health: () => {
        // Per-worker details (frame clock, V8 flags) come with the call list: keep it fresh here too.
        if (performance.now() - callCache.atMs > LIST_MAX_AGE_MS) void refreshCalls();
        return {
          status: closing !== undefined ? 'draining' : slots.every((slot) => slot.ready) ? 'ok' : 'degraded',
          calls: slots.reduce((sum, slot) => sum + slot.liveCalls, 0),
          ami: 'disabled',
          workers: slots.map((slot) => {
            const reported = callCache.health.find((h) => h.index === slot.index);
            return {
              index: slot.index,
              pid: slot.worker?.process.pid,
              ready: slot.ready,
              calls: slot.liveCalls,
              audiosocket: slot.audiosocket,
              frameClock: reported?.frameClock,
              nodeFlagsMissing: reported?.nodeFlagsMissing,
            };
          }),
        };
      },
      metrics: async () => {
        const replies = await Promise.all(slots.map((slot) => (slot.ready ? request(slot, (requestId) => ({ tag: CLUSTER_TAG, type: 'metrics-request', requestId })) : undefined)));
        const perWorker = replies.flatMap((reply) => (reply?.type === 'metrics-reply' ? [reply.metrics] : []));
        const registry = AggregatorRegistry.aggregate(perWorker as Parameters<typeof AggregatorRegistry.aggregate>[0]);
        return { contentType: registry.contentType, body: await registry.metrics() };
      },
    });
    try {
      statusAddress = await status.listen();
    } catch (err) {
      await close(0);
      throw err;
    }
  }

  log.info({ workers, agi: { host: config.agi.host, port: config.agi.port }, status: statusAddress }, 'ai-call cluster is ready');
  return {
    agi: { host: config.agi.host, port: config.agi.port },
    status: statusAddress,
    workers: () => slots.map((slot) => ({ index: slot.index, pid: slot.worker?.process.pid, ready: slot.ready, audiosocket: slot.audiosocket })),
    close,
  };
}

/** `count` distinct free TCP ports on `host`, found by binding port 0 exclusively and letting go. */
async function freePorts(host: string, count: number): Promise<number[]> {
  const ports: number[] = [];
  const servers = [];
  try {
    while (ports.length < count) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host, port: 0, exclusive: true }, () => resolve());
      });
      const address = server.address();
      if (typeof address === 'object' && address !== null) ports.push(address.port);
    }
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }
  return ports;
}

