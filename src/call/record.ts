import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import type { CallEvent } from './events.js';
import { describeError } from '../errors.js';

/**
 * Per-call JSON Lines records: every event of a call (timings, transcript, tools, outcome) in
 * `<dir>/<YYYY-MM-DD>/<callId>.jsonl`, one object per line, written as it happens.
 */
export class CallRecorder {
  readonly #dir: string;
  readonly #log: Logger;
  readonly #open = new Map<string, WriteStream>();

  constructor(options: { dir: string; logger: Logger }) {
    this.#dir = options.dir;
    this.#log = options.logger.child({ component: 'record' });
  }

  write(event: CallEvent): void {
    let stream = this.#open.get(event.callId);
    if (!stream) {
      if (event.type !== 'call.started') return;
      const day = new Date(event.at).toISOString().slice(0, 10);
      const dir = join(this.#dir, day);
      try {
        mkdirSync(dir, { recursive: true });
      } catch (err) {
        this.#log.warn({ err: describeError(err), dir }, 'cannot create call record directory');
        return;
      }
      stream = createWriteStream(join(dir, `${event.callId}.jsonl`), { flags: 'a' });
      stream.on('error', (err) => this.#log.warn({ err: describeError(err), callId: event.callId }, 'call record write failed'));
      this.#open.set(event.callId, stream);
    }
    stream.write(`${JSON.stringify(event)}\n`);
    if (event.type === 'call.ended') {
      this.#open.delete(event.callId);
      stream.end();
    }
  }

  async close(): Promise<void> {
    const streams = [...this.#open.values()];
    this.#open.clear();
    await Promise.all(streams.map((s) => new Promise<void>((resolve) => s.end(resolve))));
  }
}
