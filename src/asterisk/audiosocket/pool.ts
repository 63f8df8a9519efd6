/**
 * Per-call AudioSocket ports (architecture.md: the optional "pool" mode). Each call gets its own
 * listener on a free port of `from..to`; that listener accepts only the call's UUID, and stops
 * listening once the call's connection has arrived. The registry releases the port when the call ends
 * or when Asterisk never connects (the UUID's expiry is the registry's job, protocols.md §1.10).
 */
import type { Clock } from '../../audio/clock.js';
import { BridgeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { uuidToBytes } from './protocol.js';
import { AudioSocketListener, type MediaConnection, type MediaHandler } from './server.js';

export interface AudioSocketPoolOptions {
  host: string;
  /** First port of the range, inclusive. */
  from: number;
  /** Last port of the range, inclusive. */
  to: number;
  uuidTimeoutMs: number;
  maxPayloadBytes: number;
  logger: Logger;
  clock: Clock;
  accept: (uuid: string, connection: MediaConnection) => MediaHandler | undefined;
}

interface PoolSlot {
  readonly uuid: string;
  readonly listener: AudioSocketListener;
  /** Settles when the bind attempt does; release() waits for it before closing. */
  readonly bound: Promise<unknown>;
  released: Promise<void> | undefined;
}

export class AudioSocketPool {
  readonly #options: AudioSocketPoolOptions;
  readonly #logger: Logger;
  readonly #slots = new Map<number, PoolSlot>();
  /** Where the next search starts: rotating spreads reuse, so a stale retry rarely meets a new call. */
  #nextPort: number;
  #closing: Promise<void> | undefined;

  constructor(options: AudioSocketPoolOptions) {
    const { from, to } = options;
    if (!Number.isInteger(from) || !Number.isInteger(to) || from < 1 || to > 65_535 || from > to) {
      throw new RangeError(`the AudioSocket pool needs 1 <= from <= to <= 65535, got ${from}..${to}`);
    }
    this.#options = options;
    this.#logger = options.logger.child({ component: 'audiosocket-pool' });
    this.#nextPort = from;
  }

  /** Ports allocated and not yet released. */
  get inUse(): number {
    return this.#slots.size;
  }

  /** Ports in the range. */
  get size(): number {
    return this.#options.to - this.#options.from + 1;
  }

  /**
   * Opens a listener for `uuid` on a free port and returns the port. Ports another process holds are
   * skipped. Rejects `AUDIOSOCKET_POOL_EXHAUSTED` when no port is left (or the pool is closed).
   */
  async allocate(uuid: string): Promise<number> {
    const expected = uuidToBytes(uuid); // validates; compared as bytes, so case does not matter (§1.3)
    for (let tried = 0; tried < this.size; tried++) {
      if (this.#closing) break;
      const port = this.#takeNextPort();
      if (this.#slots.has(port)) continue;
      const listener = new AudioSocketListener({
        host: this.#options.host,
        port,
        uuidTimeoutMs: this.#options.uuidTimeoutMs,
        maxPayloadBytes: this.#options.maxPayloadBytes,
        logger: this.#options.logger,
        clock: this.#options.clock,
        acceptOnce: true,
        accept: (presented, connection) => this.#accept(port, expected, presented, connection),
      });
      const bound = listener.listen();
      // Reserved before the await, so concurrent allocations never race for the same port.
      const slot: PoolSlot = { uuid, listener, bound: bound.catch(() => undefined), released: undefined };
      this.#slots.set(port, slot);
      try {
        await bound;
      } catch (err) {
        if (this.#slots.get(port) === slot) this.#slots.delete(port);
        if (!isPortTaken(err)) throw err;
        this.#logger.debug({ port, err }, 'AudioSocket pool port unavailable; trying the next');
        continue;
      }
      if (slot.released || this.#closing) {
        await this.release(port); // close() ran while binding
        break;
      }
      this.#logger.debug({ port, uuid }, 'AudioSocket pool port allocated');
      return port;
    }
    throw new BridgeError(
      'AUDIOSOCKET_POOL_EXHAUSTED',
      this.#closing
        ? 'the AudioSocket pool is closed'
        : `no free AudioSocket port in ${this.#options.from}-${this.#options.to} (${this.inUse} in use)`,
    );
  }

  /** Closes the port's listener and any connection on it; safe at any time, idempotent. */
  async release(port: number): Promise<void> {
    const slot = this.#slots.get(port);
    if (!slot) return;
    slot.released ??= this.#closeSlot(port, slot);
    return slot.released;
  }

  /** Releases every port; later allocations reject. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= Promise.all([...this.#slots.keys()].map((port) => this.release(port))).then(() => undefined);
    return this.#closing;
  }

  async #closeSlot(port: number, slot: PoolSlot): Promise<void> {
    await slot.bound;
    await slot.listener.close();
    if (this.#slots.get(port) === slot) this.#slots.delete(port);
    this.#logger.debug({ port, uuid: slot.uuid }, 'AudioSocket pool port released');
  }

  #takeNextPort(): number {
    const port = this.#nextPort;
    this.#nextPort = port >= this.#options.to ? this.#options.from : port + 1;
    return port;
  }

  #accept(port: number, expected: Buffer, presented: string, connection: MediaConnection): MediaHandler | undefined {
    const slot = this.#slots.get(port);
    if (!slot || slot.released || !uuidToBytes(presented).equals(expected)) {
      // The listener logs the refusal (AUDIOSOCKET_UNKNOWN_UUID); add which call the port belongs to.
      this.#logger.debug({ port, presented, expected: slot?.uuid }, 'AudioSocket pool port got a different UUID');
      return undefined;
    }
    return this.#options.accept(presented, connection);
  }
}

/** Bind errors that mean "try the next port" rather than "the pool is broken". */
function isPortTaken(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EADDRINUSE' || code === 'EACCES';
}
