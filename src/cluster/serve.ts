/**
 * What `ai-call serve --workers N` runs in the primary: start the cluster, then drain on SIGTERM or
 * SIGINT exactly as the single-process `serve` does (live calls get graceMs, then everything stops).
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import { describeError } from '../errors.js';
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
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, graceMs }, 'shutting down: no new calls, live calls may finish');
    running.close(graceMs).then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err: describeError(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  return running;
}
