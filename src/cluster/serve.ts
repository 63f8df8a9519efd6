/**
 * What `ai-call serve --workers N` runs in the primary: start the cluster, then drain on SIGTERM or
 * SIGINT exactly as the single-process `serve` does (live calls get graceMs, then everything stops).
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { closeOnSignals } from '../shutdown.js';
import { startCluster, type RunningCluster } from './primary.js';

export interface ServeClusterOptions {
  readonly config: Config;
  readonly workers: number;
  readonly graceMs: number;
  readonly logger: Logger;
}

export async function serveCluster(options: ServeClusterOptions): Promise<RunningCluster> {
  const { logger, graceMs } = options;
  const running = await startCluster({ config: options.config, workers: options.workers, logger });
  closeOnSignals(running, graceMs, logger);
  return running;
}
