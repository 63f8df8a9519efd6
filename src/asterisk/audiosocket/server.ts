/**
 * AudioSocket TCP server (protocols.md §1): Asterisk connects, sends its UUID, then streams audio and
 * DTMF; we stream audio back. This file only wires socket → parser → handler; the codecs are pure
 * (parser.ts, protocol.ts) and the call logic lives with whoever implements `accept`.
 *
 *   TCP accept ─► awaiting-uuid ─(0x01 within uuidTimeoutMs)─► accept(uuid, connection)
 *                    │                                              │ handler        │ undefined
 *                    │ timeout / EOF / first message not a UUID     ▼                ▼
 *                    └──────────────────────────────► destroy    media ──────────► destroy
 *   media: audio → onAudio, dtmf → onDtmf; EOF or peer 0x00 → 'eof'; socket error → 'error';
 *          malformed frame → 'bad-frame'; our hangup()/close() → 'local'. onClose fires once, on 'close'.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Clock, TimerHandle } from '../../audio/clock.js';
import { BridgeError, isBridgeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { AudioSocketParser, type AudioSocketMessage } from './parser.js';
import { encodeAudio, encodeHangup } from './protocol.js';

export type MediaCloseReason = 'eof' | 'error' | 'local' | 'bad-frame';

/** What the owner of a call does with one accepted AudioSocket connection. Called synchronously. */
export interface MediaHandler {
  /** One message's payload as Asterisk sent it: slin16le, any length (§1.5); valid after the call. */
  onAudio(payload: Buffer, sampleRateHz: number): void;
  onDtmf(digit: string): void;
  /** Exactly once, after the socket has closed. */
  onClose(reason: MediaCloseReason): void;
}

/**
 * What a MediaConnection drives. The listener implements it over a socket; tests of code built on
 * MediaConnection may implement it with a fake.
 */
export interface MediaLink {
  readonly closed: boolean;
  readonly writableLength: number;
  /** Writes one whole message with one `socket.write()`. */
  write(message: Buffer): void;
  hangup(): void;
  close(): void;
}

/** The media side of one call, as handed to `accept`. */
export class MediaConnection {
  readonly uuid: string;
  readonly remoteAddress: string;
  readonly localPort: number;
  readonly #link: MediaLink;

  /** Built by AudioSocketListener; tests may pass their own MediaLink. */
  constructor(link: MediaLink, uuid: string, remoteAddress: string, localPort: number) {
    this.#link = link;
    this.uuid = uuid;
    this.remoteAddress = remoteAddress;
    this.localPort = localPort;
  }

  /**
   * Sends one audio message with one write (§1.6). Returns false, sending nothing, once the connection
   * is closed or hanging up. Throws `AUDIOSOCKET_BAD_FRAME` for a payload Asterisk would hang up on.
   */
  sendAudio(kind: number, payload: Buffer): boolean {
    if (this.#link.closed) return false;
    this.#link.write(encodeAudio(kind, payload));
    return true;
  }

  /**
   * Sends one audio message that is already encoded, header and payload in one buffer (encodeAudio,
   * encodeAudioInPlace), with one write (§1.6) and no copy. The buffer is handed over: the socket may
   * hold it in its write queue after this returns (Node queues written buffers by reference), so the
   * caller must never write to it again. A shared buffer that nobody ever changes (a pre-encoded
   * silence frame) may be sent any number of times. Returns false, sending nothing, once closed.
   */
  sendAudioMessage(message: Buffer): boolean {
    if (this.#link.closed) return false;
    this.#link.write(message);
    return true;
  }

  /**
   * Sends `00 00 00` and half-closes (§1.10); Asterisk then closes its side and onClose('local')
   * follows (the socket is destroyed if Asterisk takes longer than hangupTimeoutMs). Inbound audio
   * and DTMF are no longer delivered. Idempotent.
   */
  hangup(): void {
    this.#link.hangup();
  }

  /** Destroys the socket at once; Asterisk treats a close like a hangup (§1.6). Idempotent. */
  close(): void {
    this.#link.close();
  }

  /** True once hangup() or close() was called or the socket ended; sendAudio then does nothing. */
  get closed(): boolean {
    return this.#link.closed;
  }

  /** Bytes queued in user space behind the socket: the pacer's view of outbound backpressure. */
  get writableLength(): number {
    return this.#link.writableLength;
  }
}

export interface AudioSocketListenerOptions {
  host: string;
  port: number /* 0 = ephemeral */;
  /** A connection must send its UUID this fast (§1.3: Asterisk sends it ~1 ms after connecting). */
  uuidTimeoutMs: number;
  maxPayloadBytes: number;
  logger: Logger;
  clock: Clock;
  /** undefined = refuse: logged as AUDIOSOCKET_UNKNOWN_UUID and destroyed (§1.10: UUID is a capability). */
  accept: (uuid: string, connection: MediaConnection) => MediaHandler | undefined;
  /** After hangup(), how long Asterisk gets to close before we destroy the socket (it took < 1 ms, §1.10). */
  hangupTimeoutMs?: number;
  /** Stop listening once one connection has been accepted (per-call pool ports). */
  acceptOnce?: boolean;
}

const DEFAULT_HANGUP_TIMEOUT_MS = 2_000;

/** Listens on one port and runs every AudioSocket connection that arrives on it. */
export class AudioSocketListener {
  readonly #options: AudioSocketListenerOptions;
  readonly #server: Server;
  readonly #peers = new Set<AudioSocketPeer>();
  #logger: Logger;
  /** stopped = no longer listening (acceptOnce), but its connection carries on. */
  #state: 'idle' | 'binding' | 'listening' | 'stopped' | 'closed' = 'idle';
  #port: number | undefined;
  #binding: Promise<unknown> | undefined;
  #serverClosed: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: AudioSocketListenerOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: 'audiosocket' });
    this.#server = createServer({ noDelay: true });
    this.#server.on('connection', this.#onServerConnection);
    this.#server.on('error', this.#onServerError);
  }

  /** Binds the port; rejects with the system error (e.g. `EADDRINUSE`) if it cannot. */
  listen(): Promise<{ host: string; port: number }> {
    if (this.#state !== 'idle') return Promise.reject(new Error(`the AudioSocket listener is ${this.#state}; listen() works once`));
    this.#state = 'binding';
    const server = this.#server;
    const binding = new Promise<{ host: string; port: number }>((resolve, reject) => {
      const onListenError = (err: Error): void => {
        server.off('listening', onListening);
        if (this.#state === 'binding') this.#state = 'idle';
        reject(err);
      };
      const onListening = (): void => {
        server.off('error', onListenError);
        if (this.#state !== 'binding') {
          reject(new Error('the AudioSocket listener was closed while binding'));
          return; // close() is waiting for this and closes the server
        }
        const address = server.address() as AddressInfo;
        this.#port = address.port;
        this.#state = 'listening';
        this.#logger = this.#options.logger.child({ component: 'audiosocket', port: address.port });
        this.#logger.debug({ host: address.address }, 'AudioSocket listening');
        resolve({ host: address.address, port: address.port });
      };
      server.once('error', onListenError);
      server.once('listening', onListening);
      server.listen({ host: this.#options.host, port: this.#options.port });
    });
    this.#binding = binding;
    return binding;
  }

  /** The bound port once listening (useful with port 0), else the configured one. */
  get port(): number {
    return this.#port ?? this.#options.port;
  }

  /** Open TCP connections, including those still waiting for their UUID. */
  get connections(): number {
    return this.#peers.size;
  }

  /** Stops listening and destroys every connection (accepted ones get onClose('local')). Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#closeAll();
    return this.#closing;
  }

  async #closeAll(): Promise<void> {
    const wasBinding = this.#state === 'binding';
    this.#state = 'closed';
    if (wasBinding) await this.#binding?.catch(() => undefined);
    if (this.#server.listening) this.#stopServer();
    const closes = [...this.#peers].map((peer) => peer.destroyLocal());
    await Promise.all([...closes, this.#serverClosed]);
  }

  /** Closes the listening socket; existing connections carry on. */
  #stopServer(): void {
    this.#serverClosed ??= new Promise((resolve) => {
      this.#server.close(() => resolve());
    });
  }

  #onServerConnection = (socket: Socket): void => {
    if (this.#state !== 'listening') {
      socket.destroy();
      return;
    }
    const peer = new AudioSocketPeer(socket, {
      uuidTimeoutMs: this.#options.uuidTimeoutMs,
      maxPayloadBytes: this.#options.maxPayloadBytes,
      hangupTimeoutMs: this.#options.hangupTimeoutMs ?? DEFAULT_HANGUP_TIMEOUT_MS,
      logger: this.#logger,
      clock: this.#options.clock,
      accept: this.#acceptUuid,
      onClosed: this.#onPeerClosed,
    });
    this.#peers.add(peer);
  };

  #acceptUuid = (uuid: string, connection: MediaConnection): MediaHandler | undefined => {
    if (this.#state !== 'listening') return undefined;
    const handler = this.#options.accept(uuid, connection);
    if (handler && this.#options.acceptOnce) {
      // A per-call port serves exactly one call: nobody else may even connect (§1.10).
      this.#state = 'stopped';
      this.#stopServer();
    }
    return handler;
  };

  #onPeerClosed = (peer: AudioSocketPeer): void => {
    this.#peers.delete(peer);
  };

  #onServerError = (err: Error): void => {
    // While binding, listen() reports the error; later ones are only logged.
    if (this.#state !== 'binding') this.#logger.error({ err }, 'AudioSocket server error');
  };
}

interface PeerOptions {
  readonly uuidTimeoutMs: number;
  readonly maxPayloadBytes: number;
  readonly hangupTimeoutMs: number;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly accept: (uuid: string, connection: MediaConnection) => MediaHandler | undefined;
  readonly onClosed: (peer: AudioSocketPeer) => void;
}

/**
 * One socket's life (style.md rule 6: resources live in the state that owns them). `handler` is
 * undefined while accept() runs, and for refused connections.
 */
type PeerState =
  | { readonly phase: 'awaiting-uuid'; readonly timer: TimerHandle }
  | { readonly phase: 'media'; readonly connection: MediaConnection; readonly handler: MediaHandler | undefined }
  | { readonly phase: 'hanging-up'; readonly handler: MediaHandler | undefined; readonly timer: TimerHandle }
  | { readonly phase: 'closing'; readonly handler: MediaHandler | undefined; readonly reason: MediaCloseReason }
  | { readonly phase: 'closed' };

/** Drives one TCP connection: UUID handshake, then media. It is the MediaLink behind a MediaConnection. */
class AudioSocketPeer implements MediaLink {
  readonly #socket: Socket;
  readonly #options: PeerOptions;
  readonly #parser: AudioSocketParser;
  /** `ip:port` of Asterisk, for logs. */
  readonly #remote: string;
  #logger: Logger;
  #state: PeerState;
  readonly #closed: Promise<void>;
  #resolveClosed: () => void = () => undefined;

  constructor(socket: Socket, options: PeerOptions) {
    this.#socket = socket;
    this.#options = options;
    this.#parser = new AudioSocketParser({ maxPayloadBytes: options.maxPayloadBytes });
    this.#remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.#logger = options.logger.child({ remote: this.#remote });
    this.#closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    // §1.6: header and payload must leave together; Asterisk sets TCP_NODELAY on its side too (§1.1).
    socket.setNoDelay(true);
    socket.on('data', this.#onSocketData);
    socket.on('end', this.#onSocketEnd);
    socket.on('error', this.#onSocketError);
    socket.on('close', this.#onSocketClose);
    const timer = options.clock.setTimer(this.#onUuidTimeout, options.uuidTimeoutMs);
    timer.unref?.();
    this.#state = { phase: 'awaiting-uuid', timer };
    this.#logger.debug('AudioSocket connection opened');
  }

  // ── MediaLink ──────────────────────────────────────────────────────────────────────────────────

  get closed(): boolean {
    return this.#state.phase !== 'media';
  }

  get writableLength(): number {
    return this.#socket.writableLength;
  }

  write(message: Buffer): void {
    if (this.#state.phase === 'media') this.#socket.write(message);
  }

  hangup(): void {
    const state = this.#state;
    if (state.phase !== 'media') return;
    const timer = this.#options.clock.setTimer(this.#onHangupTimeout, this.#options.hangupTimeoutMs);
    timer.unref?.();
    this.#transition({ phase: 'hanging-up', handler: state.handler, timer });
    // §1.10: `00 00 00`, then FIN. The app returns 0 (the dialplan continues); a driver leg hangs up.
    this.#socket.end(encodeHangup());
  }

  close(): void {
    this.#destroy('local');
  }

  /** For listener.close(): destroys the socket; resolves once onClose has run. */
  destroyLocal(): Promise<void> {
    this.#destroy('local');
    return this.#closed;
  }

  // ── socket events ──────────────────────────────────────────────────────────────────────────────

  #onSocketData = (chunk: Buffer): void => {
    const phase = this.#state.phase;
    if (phase !== 'awaiting-uuid' && phase !== 'media') return; // hanging up or closing: discard
    let messages: AudioSocketMessage[];
    try {
      messages = this.#parser.push(chunk);
    } catch (err) {
      this.#onBadFrame(err);
      return;
    }
    // Inbound backpressure: handlers are synchronous, so reading on is safe (style.md rule 4).
    for (const message of messages) {
      const state = this.#state;
      if (state.phase === 'awaiting-uuid') this.#onFirstMessage(message);
      else if (state.phase === 'media' && state.handler) this.#onMediaMessage(message, state.handler);
      else return; // closed by a handler, or refused: drop the rest
    }
    // Garbage after valid messages in one read: they were delivered, now the connection ends.
    const failure = this.#parser.failure;
    if (failure) this.#onBadFrame(failure);
  };

  #onSocketEnd = (): void => {
    const phase = this.#state.phase;
    if (phase === 'awaiting-uuid') {
      // §1.3: on an unanswered channel the app connects, then closes ~13 ms later with no UUID.
      this.#logger.debug('AudioSocket connection closed before sending a UUID (unanswered channel?)');
    } else if (this.#parser.bufferedBytes > 0) {
      this.#logger.debug({ bufferedBytes: this.#parser.bufferedBytes }, 'AudioSocket EOF inside a message');
    }
    // §1.5: Asterisk ends a call by closing the socket, never with a 0x00 message.
    this.#destroy('eof');
  };

  #onSocketError = (err: Error): void => {
    // §1.5: a hangup with unread data pending arrives as ECONNRESET. 'close' follows.
    if (this.#state.phase === 'media') this.#logger.info({ err }, 'AudioSocket connection error');
    else this.#logger.debug({ err, phase: this.#state.phase }, 'AudioSocket connection error');
    this.#destroy('error');
  };

  #onSocketClose = (): void => {
    const state = this.#state;
    if (state.phase === 'closed') return;
    let handler: MediaHandler | undefined;
    let reason: MediaCloseReason = 'eof';
    switch (state.phase) {
      case 'media':
        handler = state.handler;
        break;
      case 'hanging-up':
        handler = state.handler;
        reason = 'local';
        break;
      case 'closing':
        handler = state.handler;
        reason = state.reason;
        break;
      case 'awaiting-uuid':
        break;
    }
    this.#transition({ phase: 'closed' });
    // The 'error' listener stays: a late error on a dead socket must never become uncaught.
    this.#socket.off('data', this.#onSocketData);
    this.#socket.off('end', this.#onSocketEnd);
    this.#socket.off('close', this.#onSocketClose);
    this.#options.onClosed(this);
    if (handler) {
      const accepted = handler;
      this.#logger.debug({ reason }, 'AudioSocket connection closed');
      this.#callHandler(() => accepted.onClose(reason), 'onClose');
    }
    this.#resolveClosed();
  };

  // ── timers ─────────────────────────────────────────────────────────────────────────────────────

  #onUuidTimeout = (): void => {
    if (this.#state.phase !== 'awaiting-uuid') return;
    this.#logger.warn(
      { code: 'AUDIOSOCKET_NO_UUID', uuidTimeoutMs: this.#options.uuidTimeoutMs },
      'AudioSocket connection sent no UUID in time; closing it',
    );
    this.#destroy('local');
  };

  #onHangupTimeout = (): void => {
    if (this.#state.phase !== 'hanging-up') return;
    this.#logger.debug({ hangupTimeoutMs: this.#options.hangupTimeoutMs }, 'Asterisk did not close after our hangup; destroying');
    this.#destroy('local');
  };

  // ── messages ───────────────────────────────────────────────────────────────────────────────────

  #onFirstMessage(message: AudioSocketMessage): void {
    if (message.kind !== 'uuid') {
      // §1.3: the UUID is always the first message.
      this.#logger.warn({ code: 'AUDIOSOCKET_NO_UUID', first: message.kind }, 'AudioSocket first message is not a UUID; closing');
      this.#destroy('bad-frame');
      return;
    }
    const uuid = message.uuid;
    const connection = new MediaConnection(this, uuid, this.#socket.remoteAddress ?? '', this.#socket.localPort ?? 0);
    // Live before accept() runs, so the caller may start sending silence at once (§1.7).
    this.#transition({ phase: 'media', connection, handler: undefined });
    let handler: MediaHandler | undefined;
    try {
      handler = this.#options.accept(uuid, connection);
    } catch (err) {
      this.#logger.error({ err, uuid }, 'AudioSocket accept() threw; refusing the connection');
    }
    const state = this.#state;
    if (!handler) {
      if (state.phase === 'media') {
        // §1.10: unknown, expired or reused UUIDs are closed at once.
        this.#logger.warn({ code: 'AUDIOSOCKET_UNKNOWN_UUID', uuid }, 'AudioSocket UUID refused; closing');
        this.#destroy('local');
      }
      return;
    }
    this.#logger = this.#logger.child({ uuid });
    // Not a phase change: the handler joins whatever state accept() left (it may have closed already).
    if (state.phase === 'media' || state.phase === 'hanging-up' || state.phase === 'closing') {
      this.#state = { ...state, handler };
    } else {
      const accepted = handler;
      this.#callHandler(() => accepted.onClose('local'), 'onClose'); // 'close' already ran: still exactly once
    }
    this.#logger.debug('AudioSocket connection accepted');
  }

  #onMediaMessage(message: AudioSocketMessage, handler: MediaHandler): void {
    switch (message.kind) {
      case 'audio':
        // The hot path (one call per 20 ms per call): no closure, unlike the rare callbacks below.
        if (message.payload.length === 0) return;
        try {
          handler.onAudio(message.payload, message.sampleRateHz);
        } catch (err) {
          this.#onHandlerError(err, 'onAudio');
        }
        return;
      case 'dtmf': {
        const { digit } = message;
        this.#callHandler(() => handler.onDtmf(digit), 'onDtmf');
        return;
      }
      case 'hangup':
        // Asterisk never sends 0x00 (§1.2), but from a peer it can only mean "call over", like EOF.
        this.#destroy('eof');
        return;
      case 'uuid':
        this.#onBadFrame(new BridgeError('AUDIOSOCKET_BAD_FRAME', 'a second UUID message arrived'));
        return;
      case 'error':
        // §1.2: defined, but no Asterisk 22 code path sends it; log it and let Asterisk decide.
        this.#logger.warn({ payload: message.payload.toString('hex') }, 'AudioSocket peer sent an error message');
        return;
    }
  }

  #onBadFrame(err: unknown): void {
    // The child logger already carries remote and, once accepted, uuid.
    this.#logger.warn({ code: isBridgeError(err) ? err.code : undefined, err }, 'AudioSocket malformed frame; closing this connection');
    this.#destroy('bad-frame');
  }

  // ── lifecycle ──────────────────────────────────────────────────────────────────────────────────

  /** Records why the connection ends (the first cause wins) and destroys it; onClose follows on 'close'. */
  #destroy(reason: MediaCloseReason): void {
    const state = this.#state;
    if (state.phase === 'closed') return;
    if (state.phase !== 'closing') {
      const handler = state.phase === 'awaiting-uuid' ? undefined : state.handler;
      // After our own hangup, whatever Asterisk does next (FIN, RST, silence) ends a 'local' close.
      this.#transition({ phase: 'closing', handler, reason: state.phase === 'hanging-up' ? 'local' : reason });
    }
    this.#socket.destroy();
  }

  /** The single place the phase changes; it releases what the old state owned. */
  #transition(next: PeerState): void {
    const previous = this.#state;
    if (previous.phase === 'awaiting-uuid' || previous.phase === 'hanging-up') this.#options.clock.clearTimer(previous.timer);
    this.#state = next;
  }

  #callHandler(call: () => void, callback: keyof MediaHandler): void {
    try {
      call();
    } catch (err) {
      this.#onHandlerError(err, callback);
    }
  }

  #onHandlerError(err: unknown, callback: keyof MediaHandler): void {
    // A throwing handler must not become an uncaught exception inside a socket event.
    this.#logger.error({ err, callback }, 'AudioSocket media handler threw');
    if (callback !== 'onClose') this.#destroy('error');
  }
}
