import type { Logger } from './log.js';
import { describeError } from './errors.js';

/**
 * SIGTERM or SIGINT (systemd stop, Ctrl-C) stop new calls, give live ones `graceMs`, then close
 * everything and exit; a second signal during the drain is ignored. Used by serve, single or workers.
 */
export function closeOnSignals(server: { close(graceMs: number): Promise<void> }, graceMs: number, logger: Logger): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, graceMs }, 'shutting down: no new calls, live calls may finish');
    server.close(graceMs).then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error({ err: describeError(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
