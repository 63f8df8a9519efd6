/**
 * A fake Asterisk AudioSocket peer for tests (protocols.md §1): Asterisk is the TCP *client*. It
 * connects, sends its UUID, streams audio / DTMF, records every message the server sends back with a
 * timestamp, and ends the connection the ways Asterisk does (FIN, RST) or does not (garbage bytes).
 *
 * The receive side frames bytes itself, without validating kinds, so a test can see exactly what the
 * server put on the wire (even a kind Asterisk would hang up on) and whether each read held whole
 * messages.
 *
 *   const asterisk = await FakeAudioSocketClient.connect({ port });
 *   asterisk.sendUuid(uuid);
 *   asterisk.sendSilence(Kind.Slin8);
 *   await asterisk.waitForMessages(1);
 */
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeAudio, encodeDtmf, encodeHangup, encodeUuid, Kind, sampleRateForKind } from '../../src/asterisk/audiosocket/protocol.js';

/** One message the server sent, as framed on the wire. */
export interface ReceivedMessage {
  /** `now()` when the read that completed this message arrived. */
  readonly atMs: number;
  readonly kind: number;
  readonly payload: Buffer;
  /** Header + payload, exactly as received. */
  readonly bytes: Buffer;
  /** True when the message arrived in more than one TCP read. */
  readonly spannedReads: boolean;
}

/** One TCP read. */
export interface ReceivedChunk {
  readonly atMs: number;
  readonly bytes: Buffer;
}

export interface FakeAudioSocketClientOptions {
  readonly port: number;
  readonly host?: string;
  /** Asterisk sets TCP_NODELAY (§1.1); default true. */
  readonly noDelay?: boolean;
  /** Clock for timestamps; default performance.now(). */
  readonly now?: () => number;
}

const DEFAULT_WAIT_MS = 2_000;

export class FakeAudioSocketClient {
  readonly socket: Socket;
  /** Every message the server sent, in order. */
  readonly received: ReceivedMessage[] = [];
  /** Every TCP read, in order. */
  readonly chunks: ReceivedChunk[] = [];
  readonly #now: () => number;
  readonly #waiters = new Set<() => void>();
  #pending: Buffer = Buffer.alloc(0);
  #endedAtMs: number | undefined;
  #closedAtMs: number | undefined;
  #error: Error | undefined;

  private constructor(socket: Socket, now: () => number) {
    this.socket = socket;
    this.#now = now;
    socket.on('data', this.#onSocketData);
    socket.on('end', this.#onSocketEnd);
    socket.on('error', this.#onSocketError);
    socket.on('close', this.#onSocketClose);
  }

  /** Opens the TCP connection (and nothing else: call sendUuid next, as Asterisk does ~1 ms later). */
  static connect(options: FakeAudioSocketClientOptions): Promise<FakeAudioSocketClient> {
    const now = options.now ?? (() => performance.now());
    return new Promise((resolve, reject) => {
      const socket = connect({ host: options.host ?? '127.0.0.1', port: options.port });
      socket.setNoDelay(options.noDelay ?? true);
      const onConnectError = (err: Error): void => reject(err);
      socket.once('error', onConnectError);
      socket.once('connect', () => {
        socket.off('error', onConnectError);
        resolve(new FakeAudioSocketClient(socket, now));
      });
    });
  }

  /** connect() + sendUuid(): what Asterisk's AudioSocket() app and channel driver do first (§1.3). */
  static async open(options: FakeAudioSocketClientOptions & { readonly uuid: string }): Promise<FakeAudioSocketClient> {
    const client = await FakeAudioSocketClient.connect(options);
    client.sendUuid(options.uuid);
    return client;
  }

  // ── sending (each call is one socket.write, like Asterisk's whole-message writes) ──────────────

  sendUuid(uuid: string): void {
    this.sendRaw(encodeUuid(uuid));
  }

  /** One audio message of `kind` (0x10 = slin 8 kHz, 0x12 = slin 16 kHz …). */
  sendAudio(kind: number, payload: Buffer): void {
    this.sendRaw(encodeAudio(kind, payload));
  }

  /** `durationMs` of all-zero audio of `kind` as one message (default 20 ms: 320 B at 8 kHz). */
  sendSilence(kind: number = Kind.Slin8, durationMs = 20): Buffer {
    const rateHz = sampleRateForKind(kind);
    if (rateHz === undefined) throw new Error(`kind 0x${kind.toString(16)} is not audio`);
    const payload = Buffer.alloc(Math.round((rateHz * durationMs) / 1000) * 2);
    this.sendAudio(kind, payload);
    return payload;
  }

  /** `03 00 01 <digit>`, as Asterisk sends at DTMF end (§1.5). */
  sendDtmf(digit: string): void {
    this.sendRaw(encodeDtmf(digit));
  }

  /** `00 00 00`: Asterisk never sends it (it just closes), but a peer might. */
  sendHangup(): void {
    this.sendRaw(encodeHangup());
  }

  /** Any bytes, with one write: garbage, split messages, recorded fixture chunks. */
  sendRaw(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Writes each piece separately, waiting `gapMs` between them, so they tend to arrive as separate reads. */
  async sendPieces(pieces: readonly Buffer[], gapMs = 1): Promise<void> {
    for (const [i, piece] of pieces.entries()) {
      if (i > 0) await sleep(gapMs);
      this.sendRaw(piece);
    }
  }

  // ── ending ─────────────────────────────────────────────────────────────────────────────────────

  /** Sends FIN: what Asterisk does when the call ends (§1.5). The server sees EOF. */
  end(): void {
    this.socket.end();
  }

  /** Sends RST: the server sees ECONNRESET (Asterisk closing with unread data pending, §1.5). */
  reset(): void {
    this.socket.resetAndDestroy();
  }

  /** Closes without waiting for anything. */
  destroy(): void {
    this.socket.destroy();
  }

  // ── observing ──────────────────────────────────────────────────────────────────────────────────

  /** True once the server's FIN arrived. */
  get ended(): boolean {
    return this.#endedAtMs !== undefined;
  }

  /** True once the socket is fully closed. */
  get closed(): boolean {
    return this.#closedAtMs !== undefined;
  }

  get endedAtMs(): number | undefined {
    return this.#endedAtMs;
  }

  /** The socket error (ECONNRESET …), if any. */
  get error(): Error | undefined {
    return this.#error;
  }

  /** Bytes of a message the server started but has not finished. */
  get partialBytes(): number {
    return this.#pending.length;
  }

  /** All bytes the server sent, concatenated. */
  receivedBytes(): Buffer {
    return Buffer.concat(this.chunks.map((c) => c.bytes));
  }

  /** Resolves once `predicate()` holds; rejects after `timeoutMs`, or when the socket closes first. */
  waitFor(predicate: () => boolean, timeoutMs = DEFAULT_WAIT_MS, what = 'condition'): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (predicate()) finish();
        else if (this.closed) finish(new Error(`connection closed while waiting for ${what}`));
      };
      const timer = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        if (err) reject(err);
        else resolve();
      };
      this.#waiters.add(check);
    });
  }

  /** Resolves with the first `count` messages once that many have arrived. */
  async waitForMessages(count: number, timeoutMs = DEFAULT_WAIT_MS): Promise<ReceivedMessage[]> {
    await this.waitFor(() => this.received.length >= count, timeoutMs, `${count} message(s)`);
    return this.received.slice(0, count);
  }

  /** Resolves once the server's FIN arrived. */
  waitForEnd(timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    return this.waitFor(() => this.ended, timeoutMs, 'EOF from the server');
  }

  /** Resolves once the socket is fully closed (by either side). */
  waitForClose(timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for the connection to close`));
      }, timeoutMs);
      const check = (): void => {
        if (!this.closed) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve();
      };
      this.#waiters.add(check);
    });
  }

  // ── socket events ──────────────────────────────────────────────────────────────────────────────

  #onSocketData = (chunk: Buffer): void => {
    const atMs = this.#now();
    this.chunks.push({ atMs, bytes: chunk });
    // Test-side framing: clarity over speed, so one concat per read is fine here.
    const carried = this.#pending.length; // bytes of a message begun in earlier reads
    this.#pending = carried === 0 ? chunk : Buffer.concat([this.#pending, chunk]);
    let offset = 0;
    while (this.#pending.length - offset >= 3) {
      const length = this.#pending.readUInt16BE(offset + 1);
      if (this.#pending.length - offset < 3 + length) break;
      const bytes = Buffer.from(this.#pending.subarray(offset, offset + 3 + length));
      this.received.push({
        atMs,
        kind: bytes[0]!,
        payload: bytes.subarray(3),
        bytes,
        spannedReads: offset < carried,
      });
      offset += 3 + length;
    }
    this.#pending = this.#pending.subarray(offset);
    this.#notify();
  };

  #onSocketEnd = (): void => {
    this.#endedAtMs = this.#now();
    this.#notify();
  };

  #onSocketError = (err: Error): void => {
    this.#error = err;
    this.#notify();
  };

  #onSocketClose = (): void => {
    this.#closedAtMs = this.#now();
    this.#notify();
  };

  #notify(): void {
    for (const waiter of [...this.#waiters]) waiter();
  }
}
