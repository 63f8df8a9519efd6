/**
 * How one configuration is split across worker processes (pure: no cluster, no sockets).
 *
 *   FastAGI  agi.port            shared by every worker (node:cluster hands out the connections)
 *   AudioSocket worker i listens on the i-th port from audiosocket.port upward, skipping ports the
 *            configuration uses elsewhere (agi, status, bindings): with the defaults, 9092 and 9094.
 *            Its AGI answers hand that port out in AI_AUDIOSOCKET, so Asterisk's media connection
 *            reaches the worker that holds the call. Port 0: the primary picks a free port per worker.
 *   pool     pool.from…pool.to split into N equal, disjoint ranges
 *   bindings static ports shared like the AGI port: any worker can own a bound call
 *   status   served by the primary on status.port, aggregated from the workers; off in workers
 */
import type { Config } from '../config/schema.js';
import { deepFreeze } from '../config/load.js';
import { BridgeError } from '../errors.js';

/** Most workers a primary starts; beyond the core count they only add context switches. */
export const MAX_WORKERS = 64;

/** Throws CONFIG_INVALID when `workers` cannot share this configuration. */
export function checkClusterConfig(config: Config, workers: number): void {
  if (!Number.isInteger(workers) || workers < 1 || workers > MAX_WORKERS) {
    throw new BridgeError('CONFIG_INVALID', `--workers must be an integer from 1 to ${MAX_WORKERS}, got ${workers}`);
  }
  const audiosocket = config.audiosocket;
  if (audiosocket.mode === 'pool') {
    const size = audiosocket.pool.to - audiosocket.pool.from + 1;
    if (size < workers) {
      throw new BridgeError('CONFIG_INVALID', `audiosocket.pool ${audiosocket.pool.from}-${audiosocket.pool.to} has ${size} ports, fewer than ${workers} workers`);
    }
    return;
  }
  const ports = audiosocketPorts(config, workers);
  const last = ports?.[ports.length - 1];
  if (last !== undefined && last > 65_535) {
    throw new BridgeError('CONFIG_INVALID', `audiosocket.port ${audiosocket.port} leaves no room for ${workers} worker ports below 65536`);
  }
}

/**
 * The AudioSocket port of each worker in shared mode: the first `workers` ports from
 * audiosocket.port upward that the configuration does not use for something else. Undefined in
 * pool mode and for port 0 (the primary then picks free ports).
 */
export function audiosocketPorts(config: Config, workers: number): number[] | undefined {
  const audiosocket = config.audiosocket;
  if (audiosocket.mode !== 'shared' || audiosocket.port === 0) return undefined;
  const taken = new Set<number>([config.agi.port, ...audiosocket.bindings.map((binding) => binding.port)]);
  if (config.status.enabled) taken.add(config.status.port);
  const ports: number[] = [];
  for (let port = audiosocket.port; ports.length < workers; port++) if (!taken.has(port)) ports.push(port);
  return ports;
}

/**
 * The configuration worker `index` (0-based) of `workers` runs with; a new, frozen object.
 * `audiosocketPort` overrides the shared-mode port (the primary picks free ports when
 * audiosocket.port is 0: under node:cluster every worker's listen(0) would share ONE random port,
 * and Asterisk's media connection could then land on a worker that does not hold the call).
 */
export function workerConfig(config: Config, index: number, workers: number, audiosocketPort?: number): Config {
  const audiosocket = config.audiosocket;
  let pool = audiosocket.pool;
  if (audiosocket.mode === 'pool') {
    const size = Math.floor((pool.to - pool.from + 1) / workers);
    const from = pool.from + index * size;
    pool = { from, to: from + size - 1 };
  }
  const port = audiosocketPort ?? audiosocketPorts(config, workers)?.[index] ?? audiosocket.port;
  return deepFreeze({
    ...config,
    audiosocket: { ...audiosocket, port, pool },
    status: { ...config.status, enabled: false },
  });
}
