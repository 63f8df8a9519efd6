/**
 * A cluster worker: one whole ai-call server (startServer) on its share of the configuration
 * (worker-config.ts), started by the primary with node:cluster. Everything a call needs stays in
 * this process; the primary only routes what arrives at the wrong worker and gathers status.
 *
 *   hello ──► primary ──start{index, config}──► startServer(workerConfig) ──ready──► primary
 *   call events ──event──► primary (owner map for result AGIs, status stream)
 *   result AGI for a call held elsewhere ──outcome-request──► primary ──► owner ──► back
 *   list / metrics / hangup requests ◄──► registry, Metrics
 *   shutdown{graceMs} or primary gone ──► server.close(graceMs) ──► exit
 *
 * This module is the worker's entry point (cluster.setupPrimary({ exec })): it runs on import.
 */
import cluster from 'node:cluster';
import type { Config } from '../config/schema.js';
import type { CallEvent } from '../call/events.js';
import type { CallRegistry } from '../call/registry.js';
import { deepFreeze } from '../config/load.js';
import { createLogger, type Logger } from '../log.js';
import { startServer, type RunningServer } from '../main.js';
import { describeError } from '../errors.js';
import { CLUSTER_TAG, isClusterMessage, type OutcomeLookup, type PrimaryMessage, type WorkerMessage } from './protocol.js';
import { workerConfig } from './worker-config.js';
import { missingServerFlags } from '../runtime-flags.js';

/** An owner lookup through the primary gets this long beyond the owner's own wait. */
const REMOTE_GRACE_MS = 1_000;

if (cluster.isWorker) runWorker();

function runWorker(): void {
  let server: RunningServer | undefined;
  let logger: Logger | undefined;
  let workerIndex = -1;
  let streamEvents = true;
  let exiting = false;
  let nextRequestId = 1;
  const pending = new Map<number, { resolve: (found: OutcomeLookup) => void; timer: NodeJS.Timeout }>();

  const send = (message: WorkerMessage): void => {
    if (process.connected) process.send?.(message);
  };

  const exit = (graceMs: number): void => {
    if (exiting) return;
    exiting = true;
    const closing = server ? server.close(graceMs) : Promise.resolve();
    closing.then(
      () => process.exit(0),
      (err: unknown) => {
        logger?.error({ err: describeError(err) }, 'worker shutdown failed');
        process.exit(1);
      },
    );
  };

  const askPrimary = (callId: string, waitMs: number): Promise<OutcomeLookup> =>
    new Promise((resolve) => {
      const requestId = nextRequestId++;
      const timer = setTimeout(() => {
        pending.delete(requestId);
        resolve({ state: 'unknown' });
      }, waitMs + REMOTE_GRACE_MS);
      pending.set(requestId, { resolve, timer });
      send({ tag: CLUSTER_TAG, type: 'outcome-request', requestId, callId, waitMs });
    });

  const onEvent = (event: CallEvent): void => {
    // The primary needs start and end for its owner map; the rest only feeds status clients.
    if (streamEvents || event.type === 'call.started' || event.type === 'call.ended') send({ tag: CLUSTER_TAG, type: 'event', event });
  };

  const start = async (index: number, workers: number, config: Config, audiosocketPort: number | undefined): Promise<void> => {
    workerIndex = index;
    logger = createLogger(config.log.level).child({ worker: index });
    try {
      // The result AGI may reach any worker (the FastAGI port is shared); the owner answers it.
      const remoteOutcome = async (callId: string, waitMs: number) => {
        const found = await askPrimary(callId, waitMs);
        return found.state === 'ended' ? found.outcome : found.state === 'running' ? ('running' as const) : undefined;
      };
      server = await startServer(workerConfig(deepFreeze(config), index, workers, audiosocketPort), { logger, onEvent, remoteOutcome });
    } catch (err) {
      send({ tag: CLUSTER_TAG, type: 'start-failed', index, error: describeError(err) });
      process.exit(1);
    }
    send({ tag: CLUSTER_TAG, type: 'ready', index, audiosocket: server.audiosocket });
  };

  const onMessage = (message: PrimaryMessage): void => {
    switch (message.type) {
      case 'start':
        void start(message.index, message.workers, message.config, message.audiosocketPort);
        return;
      case 'outcome-request': {
        const { requestId, callId, waitMs } = message;
        lookupOutcome(server?.registry, callId, waitMs).then(
          (found) => send({ tag: CLUSTER_TAG, type: 'outcome-reply', requestId, found }),
          () => send({ tag: CLUSTER_TAG, type: 'outcome-reply', requestId, found: { state: 'unknown' } }),
        );
        return;
      }
      case 'outcome-reply': {
        const entry = pending.get(message.requestId);
        if (!entry) return;
        pending.delete(message.requestId);
        clearTimeout(entry.timer);
        entry.resolve(message.found);
        return;
      }
      case 'list-request': {
        const registry = server?.registry;
        const frameClock = server?.frameClock;
        send({
          tag: CLUSTER_TAG,
          type: 'list-reply',
          requestId: message.requestId,
          calls: registry?.list() ?? [],
          health: { index: workerIndex, pid: process.pid, calls: registry?.liveCount ?? 0, frameClock: frameClock ? { listeners: frameClock.size, ...frameClock.stats } : {}, nodeFlagsMissing: missingServerFlags() },
        });
        return;
      }
      case 'metrics-request': {
        const requestId = message.requestId;
        (server?.metrics.registry.getMetricsAsJSON() ?? Promise.resolve([])).then(
          (list) => send({ tag: CLUSTER_TAG, type: 'metrics-reply', requestId, metrics: list }),
          () => send({ tag: CLUSTER_TAG, type: 'metrics-reply', requestId, metrics: [] }),
        );
        return;
      }
      case 'hangup-request':
        send({ tag: CLUSTER_TAG, type: 'hangup-reply', requestId: message.requestId, found: server?.registry.hangup(message.callId, message.reason) ?? false });
        return;
      case 'stream-events':
        streamEvents = message.enabled;
        return;
      case 'shutdown':
        exit(message.graceMs);
        return;
    }
  };

  process.on('message', (message: unknown) => {
    if (isClusterMessage(message)) onMessage(message as PrimaryMessage);
  });
  // The primary coordinates shutdown (a terminal's Ctrl-C or systemd's SIGTERM reach every process
  // of the group at once); a worker only stops on its own when the primary is gone.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => undefined);
  process.on('disconnect', () => exit(0));
  send({ tag: CLUSTER_TAG, type: 'hello' });
}

async function lookupOutcome(registry: CallRegistry | undefined, callId: string, waitMs: number): Promise<OutcomeLookup> {
  if (!registry || !registry.knows(callId)) return { state: 'unknown' };
  const outcome = await registry.outcome(callId, waitMs);
  return outcome ? { state: 'ended', outcome } : { state: 'running' };
}

