import { pino, type Logger, type LevelWithSilent, type DestinationStream } from 'pino';

export type { Logger };

/** Paths pino blanks out wherever they occur, so no key, secret or token reaches a log line. */
export const REDACT_PATHS = [
  'apiKey', '*.apiKey', 'secret', '*.secret', 'token', '*.token', 'xi-api-key', '*.xi-api-key',
  'headers.authorization', 'headers["xi-api-key"]', 'signedUrl', '*.signedUrl',
];

export function createLogger(level: LevelWithSilent, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { app: 'ai-call' },
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}

/** A logger that discards everything, for tests and tools that do not log. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
