import { pino, type Logger } from 'pino';

/** One pino line, parsed. */
export interface LogRecord {
  readonly level: number;
  readonly msg: string;
  readonly [key: string]: unknown;
}

/** pino's numeric levels, for assertions. */
export const LOG_LEVEL = { debug: 20, info: 30, warn: 40, error: 50 } as const;

/** A real pino logger (debug and up) whose lines land in `records`, so tests can assert on logs. */
export function captureLogs(): {
  logger: Logger;
  records: LogRecord[];
  find: (msg: string | RegExp) => LogRecord[];
} {
  const records: LogRecord[] = [];
  const logger = pino(
    { level: 'debug' },
    {
      write(line: string): void {
        records.push(JSON.parse(line) as LogRecord);
      },
    },
  );
  const find = (msg: string | RegExp): LogRecord[] =>
    records.filter((record) => (typeof msg === 'string' ? record.msg === msg : msg.test(record.msg)));
  return { logger, records, find };
}
