/**
 * FastAGI server: wires socket → parser → handler (style.md rule 1). The wire rules live in
 * parser.ts and protocol.ts; this file owns sockets, timers and the one-command-in-flight queue.
 *
 *   accept ─► allowlist ─► env phase (AgiLineReader + AgiEnvParser, envTimeoutMs)
 *                               │ empty line
 *                               ▼
 *                          AgiSession ─► handler(session) ─► settles ─► session.close()
 *                          command() ─► queue ─► one line on the wire ─► AgiReplyParser ─► settle head
 */
import { EventEmitter } from 'node:events';
import { BlockList, createServer, isIP, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Clock, TimerHandle } from '../../audio/clock.js';
import { BridgeError, describeError, isBridgeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import {
  AgiEnvParser,
  AgiErrorCode,
  AgiLineReader,
  AgiReplyParser,
  type AgiParseEvent,
  type AgiReply,
  type AgiRequest,
} from './parser.js';
import {
  encodeAnswer,
  encodeExec,
  encodeGetFullVariable,
  encodeGetVariable,
  encodeSetVariable,
  encodeVerbose,
  normalizeCommandLine,
} from './protocol.js';

/** How long Asterisk gets to send the whole environment block; it sends it at once (fixtures: < 1 ms). */
const DEFAULT_ENV_TIMEOUT_MS = 5_000;
/**
 * After our FIN, Asterisk writes its end-of-script HANGUP and closes within ~1 ms (fixtures,
 * protocols.md §2.6). A peer that keeps the socket open longer than this is destroyed.
 */
export const CLOSE_GRACE_MS = 1_000;
/**
 * The AGI socket is silent for the whole media session during `EXEC AudioSocket` (§2.5): TCP
 * keepalive is the only way to notice an Asterisk host that vanished without a FIN or RST.
 */
const KEEPALIVE_INITIAL_DELAY_MS = 60_000;

export interface AgiServerOptions {
  host: string;
  /** 0 = an ephemeral port, read it back from listen() or `port`. */
  port: number;
  /** Client IPs or CIDR blocks (IPv4 and IPv6); `::ffff:a.b.c.d` counts as `a.b.c.d`. Empty refuses all. */
  allow: readonly string[];
  /** Default per-command reply timeout; a timeout closes the session (the stream is out of sync). */
  commandTimeoutMs: number;
  /** Longest line accepted from Asterisk, env or reply, before its "\n". */
  maxLineBytes: number;
  /** The environment block must be complete within this; default 5000. */
  envTimeoutMs?: number;
  logger: Logger;
  clock: Clock;
  /** Called once per session after the environment block; the session is closed when it settles. */
  handler: (session: AgiSession) => Promise<void>;
}

/** Per-command options. */
export interface AgiCommandOptions {
  /** Reply timeout from the moment the line is written; `null` = none (long EXEC); default commandTimeoutMs. */
  timeoutMs?: number | null;
  /**
   * Abort while queued: the command is never sent. Abort once sent: the promise rejects with
   * `signal.reason` at once, and the reply Asterisk still owes is read and dropped, so later
   * commands stay in step.
   */
  signal?: AbortSignal;
}

export class AgiServer {
  readonly #options: AgiServerOptions;
  readonly #envTimeoutMs: number;
  /** A BlockList used as an allow list: `check()` true means the address may connect. */
  readonly #allowList: BlockList;
  #server: Server | undefined;
  #closing: Promise<void> | undefined;
  /** Accepted sockets still sending their environment block. */
  readonly #envSockets = new Set<Socket>();
  readonly #sessions = new Set<AgiSession>();
  #refusedClients = 0;
  #port = 0;

  constructor(options: AgiServerOptions) {
    this.#options = options;
    this.#envTimeoutMs = options.envTimeoutMs ?? DEFAULT_ENV_TIMEOUT_MS;
    this.#allowList = buildAllowList(options.allow);
  }

  /** Starts listening; resolves with the bound address (the real port when `port` was 0). */
  listen(): Promise<{ host: string; port: number }> {
    if (this.#closing !== undefined) return Promise.reject(new Error('AgiServer is closed'));
    if (this.#server !== undefined) return Promise.reject(new Error('AgiServer is already listening'));
    if (this.#options.allow.length === 0) {
      this.#options.logger.warn('agi.allow is empty: every FastAGI client will be refused');
    }
    // Our commands are single short lines answered before the next one goes out (§2.3): Nagle
    // would only add delay, as it does on Asterisk's side (agi-session-assign.json notes).
    const server = createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: KEEPALIVE_INITIAL_DELAY_MS });
    this.#server = server;
    server.on('connection', this.#onServerConnection);
    return new Promise((resolve, reject) => {
      const onListenError = (err: Error): void => {
        server.off('listening', onListening);
        reject(err);
      };
      const onListening = (): void => {
        server.off('error', onListenError);
        server.on('error', this.#onServerError);
        const address = server.address() as AddressInfo;
        this.#port = address.port;
        this.#options.logger.info({ host: address.address, port: address.port }, 'FastAGI server listening');
        resolve({ host: address.address, port: address.port });
      };
      server.once('error', onListenError);
      server.once('listening', onListening);
      server.listen({ host: this.#options.host, port: this.#options.port });
    });
  }

  /** The bound port; 0 before listen() resolves. */
  get port(): number {
    return this.#port;
  }

  /** Open connections: sessions plus clients still sending their environment block. */
  get activeSessions(): number {
    return this.#envSockets.size + this.#sessions.size;
  }

  /** Connections refused because their address is not in `allow` (or arrived while closing). */
  get refusedClients(): number {
    return this.#refusedClients;
  }

  /** Stops listening and closes every session; resolves once every socket is closed. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#closeAll();
    return this.#closing;
  }

  async #closeAll(): Promise<void> {
    const server = this.#server;
    const listenerClosed = new Promise<void>((resolve) => {
      if (server === undefined) resolve();
      // The callback also gets ERR_SERVER_NOT_RUNNING when listen() failed: nothing to wait for then.
      else server.close(() => resolve());
    });
    for (const socket of this.#envSockets) socket.destroy();
    const sessionsClosed = [...this.#sessions].map(
      (session) => new Promise<void>((resolve) => session.once('close', resolve)),
    );
    for (const session of this.#sessions) session.close();
    await Promise.all([listenerClosed, ...sessionsClosed]);
    server?.off('connection', this.#onServerConnection);
    server?.off('error', this.#onServerError);
    this.#options.logger.info('FastAGI server closed');
  }

  #onServerError = (err: Error): void => {
    // After listen() succeeded, a net.Server reports only accept-level errors (EMFILE…); keep serving.
    this.#options.logger.error({ err }, 'FastAGI server error');
  };

  #onServerConnection = (socket: Socket): void => {
    // Registered before anything else: an RST (ECONNRESET) must never reach the process as an
    // uncaught 'error' (the ding-dong defect, dependencies.md).
    socket.on('error', onRefusedSocketError);
    const remoteAddress = normalizeAddress(socket.remoteAddress ?? '');
    if (this.#closing !== undefined || remoteAddress === '' || !this.#isAllowed(remoteAddress)) {
      this.#refusedClients++;
      this.#options.logger.warn(
        { remoteAddress, code: 'AGI_CLIENT_REFUSED' },
        this.#closing !== undefined ? 'refused a FastAGI client: the server is closing' : 'refused a FastAGI client not in agi.allow',
      );
      socket.destroy();
      return;
    }
    socket.off('error', onRefusedSocketError);
    this.#readEnvironment(socket, remoteAddress);
  };

  #isAllowed(address: string): boolean {
    const family = isIP(address);
    if (family === 0) return false;
    return this.#allowList.check(address, family === 4 ? 'ipv4' : 'ipv6');
  }

  /** The env phase (protocols.md §2.2): lines until the empty one, within envTimeoutMs. */
  #readEnvironment(socket: Socket, remoteAddress: string): void {
    const { clock, maxLineBytes } = this.#options;
    const logger = this.#options.logger.child({ remoteAddress });
    const reader = new AgiLineReader({ maxLineBytes });
    const envParser = new AgiEnvParser();
    this.#envSockets.add(socket);

    const onEnvTimeout = (): void => {
      logger.warn({ envTimeoutMs: this.#envTimeoutMs }, 'FastAGI client did not complete its environment block in time');
      socket.destroy();
    };
    const timer = clock.setTimer(onEnvTimeout, this.#envTimeoutMs);
    timer.unref?.();

    const detach = (): void => {
      clock.clearTimer(timer);
      socket.off('data', onEnvData);
      socket.off('error', onEnvError);
      socket.off('close', onEnvClose);
      this.#envSockets.delete(socket);
    };
    const onEnvData = (chunk: Buffer): void => {
      try {
        const lines = reader.push(chunk);
        for (let index = 0; index < lines.length; index++) {
          const request = envParser.feed(lines[index] ?? '');
          if (request === undefined) continue;
          detach();
          // Lines after the empty one (an early HANGUP) and any partial line travel with the reader.
          this.#startSession(socket, request, reader, lines.slice(index + 1), remoteAddress);
          return;
        }
      } catch (err) {
        logger.warn({ err, code: isBridgeError(err) ? err.code : undefined }, 'bad FastAGI environment block');
        socket.destroy();
      }
    };
    const onEnvError = (err: Error): void => {
      logger.debug({ err }, 'FastAGI socket error before the environment block was complete');
    };
    const onEnvClose = (): void => {
      detach();
      logger.debug('FastAGI client closed before its environment block was complete');
    };
    socket.on('error', onEnvError);
    socket.on('data', onEnvData);
    socket.on('close', onEnvClose);
  }

  #startSession(socket: Socket, request: AgiRequest, reader: AgiLineReader, pendingLines: string[], remoteAddress: string): void {
    const logger = this.#options.logger.child({
      remoteAddress,
      uniqueid: request.env['agi_uniqueid'],
      channel: request.env['agi_channel'],
    });
    const session = new AgiSession({
      socket,
      request,
      remoteAddress,
      reader,
      pendingLines,
      commandTimeoutMs: this.#options.commandTimeoutMs,
      logger,
      clock: this.#options.clock,
    });
    this.#sessions.add(session);
    const onSessionClose = (): void => {
      this.#sessions.delete(session);
    };
    session.once('close', onSessionClose);
    logger.info({ script: request.script }, 'FastAGI session started');
    this.#runHandler(session, logger);
  }

  #runHandler(session: AgiSession, logger: Logger): void {
    let outcome: Promise<void>;
    try {
      outcome = Promise.resolve(this.#options.handler(session));
    } catch (err) {
      outcome = Promise.reject(err);
    }
    outcome
      .then(
        () => logger.debug('FastAGI handler finished'),
        (err: unknown) => {
          // A rejection caused by the session closing under the handler is expected; anything else is a bug.
          const level = session.closed ? 'warn' : 'error';
          logger[level](
            { err, code: isBridgeError(err) ? err.code : undefined, script: session.request.script },
            'FastAGI handler failed',
          );
        },
      )
      .then(() => session.close());
  }
}

/** One queued command; `queued` → `sent` → settled, or `abandoned` when aborted after sending. */
interface PendingCommand {
  readonly line: string;
  readonly timeoutMs: number | null;
  readonly signal: AbortSignal | undefined;
  readonly resolve: (reply: AgiReply) => void;
  readonly reject: (err: unknown) => void;
  state: 'queued' | 'sent' | 'abandoned';
  timer: TimerHandle | undefined;
  onAbort: (() => void) | undefined;
}

/** What AgiServer hands a new session; not for use outside this folder. */
export interface AgiSessionInit {
  socket: Socket;
  request: AgiRequest;
  remoteAddress: string;
  /** The env phase's reader: it may hold the start of the first line after the block. */
  reader: AgiLineReader;
  /** Complete lines that arrived with the end of the environment block. */
  pendingLines: readonly string[];
  commandTimeoutMs: number;
  logger: Logger;
  clock: Clock;
}

type SessionState =
  | { kind: 'open' }
  /** We sent FIN (or saw the peer's); destroy at the deadline if the socket is still open. */
  | { kind: 'closing'; reason: BridgeError; graceTimer: TimerHandle }
  | { kind: 'closed'; reason: BridgeError };

/**
 * One FastAGI connection after its environment block. Commands run strictly one at a time
 * (protocols.md §2.3); every promise settles, with a coded BridgeError on failure.
 */
export class AgiSession extends EventEmitter<{ hangup: []; close: [] }> {
  readonly request: AgiRequest;
  readonly remoteAddress: string;
  readonly #socket: Socket;
  readonly #reader: AgiLineReader;
  readonly #parser = new AgiReplyParser();
  readonly #commandTimeoutMs: number;
  readonly #logger: Logger;
  readonly #clock: Clock;
  /** Head = the command on the wire once its state is `sent`; never more than one is sent. */
  #queue: PendingCommand[] = [];
  #state: SessionState = { kind: 'open' };
  #hungUp = false;

  /** @internal Built by AgiServer once the environment block is complete. */
  constructor(init: AgiSessionInit) {
    super();
    this.request = init.request;
    this.remoteAddress = init.remoteAddress;
    this.#socket = init.socket;
    this.#reader = init.reader;
    this.#commandTimeoutMs = init.commandTimeoutMs;
    this.#logger = init.logger;
    this.#clock = init.clock;
    this.#socket.on('error', this.#onSocketError);
    this.#socket.on('data', this.#onSocketData);
    this.#socket.on('end', this.#onSocketEnd);
    this.#socket.on('close', this.#onSocketClose);
    const pendingLines = init.pendingLines;
    if (pendingLines.length > 0) {
      // Deliver lines that came with the env block (an early HANGUP) after the server has called the
      // handler, so its synchronously attached 'hangup' listener sees them.
      queueMicrotask(() => this.#onLines(pendingLines));
    }
  }

  /** True once Asterisk sent a `HANGUP` line while the session was open (§2.6). */
  get hungUp(): boolean {
    return this.#hungUp;
  }

  /** True once the session takes no more commands: close() was called or the connection ended. */
  get closed(): boolean {
    return this.#state.kind !== 'open';
  }

  /**
   * Queues one raw command line (with or without its "\n") and resolves with its `200` reply.
   * Rejects with AGI_COMMAND_FAILED (510/520), AGI_DEAD_CHANNEL (511), AGI_COMMAND_TIMEOUT (and the
   * session closes), AGI_CLOSED, AGI_BAD_VALUE (unsendable line) or `signal.reason`.
   */
  command(line: string, options: AgiCommandOptions = {}): Promise<AgiReply> {
    if (this.#state.kind !== 'open') {
      return Promise.reject(new BridgeError('AGI_CLOSED', 'the FastAGI session is closed', { cause: this.#state.reason }));
    }
    let wire: string;
    try {
      wire = normalizeCommandLine(line);
    } catch (err) {
      return Promise.reject(err);
    }
    const timeoutMs = options.timeoutMs === undefined ? this.#commandTimeoutMs : options.timeoutMs;
    if (timeoutMs !== null && !(Number.isFinite(timeoutMs) && timeoutMs > 0)) {
      return Promise.reject(new RangeError(`timeoutMs must be a positive number or null, got ${timeoutMs}`));
    }
    const signal = options.signal;
    if (signal?.aborted === true) return Promise.reject(signal.reason);
    return new Promise<AgiReply>((resolve, reject) => {
      const entry: PendingCommand = { line: wire, timeoutMs, signal, resolve, reject, state: 'queued', timer: undefined, onAbort: undefined };
      if (signal !== undefined) {
        entry.onAbort = () => this.#onCommandAbort(entry);
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      this.#queue.push(entry);
      this.#sendNext();
    });
  }

  /** `SET VARIABLE name "value"`; `_`/`__` prefixes and functions such as `CDR(userfield)` allowed. */
  async setVariable(name: string, value: string, options?: AgiCommandOptions): Promise<void> {
    await this.command(encodeSetVariable(name, value), options);
  }

  /** The variable's value, `undefined` when unset (`200 result=0`). Asterisk truncates at 1023 chars (§2.5). */
  async getVariable(name: string, options?: AgiCommandOptions): Promise<string | undefined> {
    const reply = await this.command(encodeGetVariable(name), options);
    return reply.result === 0 ? undefined : (reply.data ?? '');
  }

  /** `GET FULL VARIABLE`: expands `${…}` expressions, no length cap; `undefined` on `result=0`. */
  async getFullVariable(expression: string, options?: AgiCommandOptions): Promise<string | undefined> {
    const reply = await this.command(encodeGetFullVariable(expression), options);
    return reply.result === 0 ? undefined : (reply.data ?? '');
  }

  /**
   * `EXEC app options`; `reply.result` is the app's return (`-2` = no such app). No timeout unless
   * given: `EXEC AudioSocket` blocks for the whole call (§2.5).
   */
  exec(app: string, options: string, commandOptions: AgiCommandOptions = {}): Promise<AgiReply> {
    let line: string;
    try {
      line = encodeExec(app, options);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.command(line, { ...commandOptions, timeoutMs: commandOptions.timeoutMs === undefined ? null : commandOptions.timeoutMs });
  }

  /** `ANSWER`: `result` 0 on success, -1 on failure; AGI_DEAD_CHANNEL after a hangup. */
  answer(options?: AgiCommandOptions): Promise<AgiReply> {
    return this.command(encodeAnswer(), options);
  }

  /** `VERBOSE "msg" level` into Asterisk's log. */
  async verbose(message: string, level = 1, options?: AgiCommandOptions): Promise<void> {
    await this.command(encodeVerbose(message, level), options);
  }

  /**
   * Ends the session: rejects every pending command with AGI_CLOSED, sends FIN, and destroys the
   * socket if Asterisk has not closed it within CLOSE_GRACE_MS. Idempotent. 'close' is emitted
   * once the socket is fully closed.
   */
  close(): void {
    this.#shutdown(new BridgeError('AGI_CLOSED', 'the FastAGI session was closed'));
  }

  #sendNext(): void {
    if (this.#state.kind !== 'open') return;
    const head = this.#queue[0];
    if (head === undefined || head.state !== 'queued') return;
    head.state = 'sent';
    if (head.timeoutMs !== null) {
      head.timer = this.#clock.setTimer(() => this.#onCommandTimeout(head), head.timeoutMs);
      head.timer.unref?.();
    }
    this.#logger.debug({ command: head.line.split(' ', 2).join(' ').trimEnd() }, 'FastAGI command sent');
    this.#socket.write(head.line);
  }

  #onCommandAbort(entry: PendingCommand): void {
    if (entry.state === 'queued') {
      this.#queue.splice(this.#queue.indexOf(entry), 1);
      this.#release(entry);
      entry.reject(entry.signal?.reason);
    } else if (entry.state === 'sent') {
      // The line is on the wire and Asterisk will answer it: keep the slot until it does (its
      // timer, if any, still guards the session) and drop that reply, or the next command would
      // take it for its own.
      entry.state = 'abandoned';
      entry.onAbort = undefined;
      entry.reject(entry.signal?.reason);
    }
  }

  #onCommandTimeout(entry: PendingCommand): void {
    entry.timer = undefined;
    const err = new BridgeError(
      'AGI_COMMAND_TIMEOUT',
      `Asterisk did not answer ${JSON.stringify(entry.line.trimEnd().slice(0, 60))} within ${entry.timeoutMs} ms`,
    );
    // A late reply would be taken for the next command's: the stream is out of step, so end it.
    this.#logger.warn({ code: err.code, timeoutMs: entry.timeoutMs }, 'FastAGI command timed out; closing the session');
    this.#shutdown(err);
  }

  #onSocketData = (chunk: Buffer): void => {
    // Lines are handled synchronously and nothing queues up behind them (replies settle promises,
    // one per command in flight), so there is no consumer to wait for and no reason to pause the
    // socket (style.md rule 4); memory is bounded by maxLineBytes.
    let lines: string[];
    try {
      lines = this.#reader.push(chunk);
    } catch (err) {
      this.#onProtocolError(err);
      return;
    }
    this.#onLines(lines);
  };

  #onLines(lines: readonly string[]): void {
    for (const line of lines) {
      if (this.#state.kind !== 'open') {
        // After our FIN Asterisk still sends one HANGUP: its end-of-script notice, not a hangup (§2.6).
        this.#logger.debug({ line: line.slice(0, 80) }, 'FastAGI line after close ignored');
        continue;
      }
      let event: AgiParseEvent | undefined;
      try {
        event = this.#parser.feed(line);
      } catch (err) {
        this.#onProtocolError(err);
        return;
      }
      if (event !== undefined) this.#onParseEvent(event);
    }
  }

  #onParseEvent(event: AgiParseEvent): void {
    if (event.type === 'hangup') {
      // §2.6: a notification, never a reply; the pending command keeps waiting. Asterisk sends it
      // once on hangup (and again on exit), so only the first one is news.
      if (this.#hungUp) {
        this.#logger.debug('repeated FastAGI HANGUP ignored');
        return;
      }
      this.#hungUp = true;
      this.#logger.info('Asterisk reported a hangup (FastAGI HANGUP)');
      this.#emitSafely('hangup');
      return;
    }
    const head = this.#queue[0];
    if (head === undefined || head.state === 'queued') {
      this.#onProtocolError(
        new BridgeError('AGI_BAD_LINE', `FastAGI reply with no command in flight: ${JSON.stringify((event.type === 'reply' ? event.reply.raw : event.message).slice(0, 80))}`),
      );
      return;
    }
    this.#queue.shift();
    this.#release(head);
    if (head.state === 'abandoned') {
      this.#logger.debug('reply to an aborted FastAGI command dropped');
    } else if (event.type === 'reply') {
      head.resolve(event.reply);
    } else {
      head.reject(commandError(head.line, event));
    }
    this.#sendNext();
  }

  #onProtocolError(err: unknown): void {
    const error = isBridgeError(err) ? err : new BridgeError('AGI_BAD_LINE', describeError(err), { cause: err });
    this.#logger.warn({ err: error, code: error.code }, 'FastAGI protocol error; closing the session');
    this.#shutdown(error);
  }

  #onSocketError = (err: Error): void => {
    // ECONNRESET / EPIPE when Asterisk (or anything posing as it) vanishes; 'close' follows.
    this.#logger.warn({ err, errorCode: (err as NodeJS.ErrnoException).code }, 'FastAGI socket error');
    this.#shutdown(new BridgeError('AGI_CLOSED', `the FastAGI connection failed: ${err.message}`, { cause: err }));
  };

  #onSocketEnd = (): void => {
    // Asterisk closed its side (script over, or AGIEXITONHANGUP): nothing more will be answered.
    this.#shutdown(new BridgeError('AGI_CLOSED', 'Asterisk closed the FastAGI connection'));
  };

  #onSocketClose = (): void => {
    if (this.#state.kind === 'open') {
      this.#shutdown(new BridgeError('AGI_CLOSED', 'the FastAGI connection closed'));
    }
    if (this.#state.kind === 'closing') {
      this.#clock.clearTimer(this.#state.graceTimer);
      this.#state = { kind: 'closed', reason: this.#state.reason };
    }
    this.#socket.off('data', this.#onSocketData);
    this.#socket.off('end', this.#onSocketEnd);
    this.#socket.off('close', this.#onSocketClose);
    this.#socket.off('error', this.#onSocketError);
    this.#logger.info({ hungUp: this.#hungUp }, 'FastAGI session closed');
    this.#emitSafely('close');
  };

  /**
   * The one way out: settles every pending command, then half-closes. The command on the wire gets
   * `reason` (timeout, bad line…); queued ones get AGI_CLOSED caused by it.
   */
  #shutdown(reason: BridgeError): void {
    if (this.#state.kind !== 'open') return;
    const onGraceExpired = (): void => {
      this.#logger.debug({ closeGraceMs: CLOSE_GRACE_MS }, 'Asterisk kept the FastAGI socket open after FIN; destroying it');
      this.#socket.destroy();
    };
    const graceTimer = this.#clock.setTimer(onGraceExpired, CLOSE_GRACE_MS);
    graceTimer.unref?.();
    this.#state = { kind: 'closing', reason, graceTimer };
    const queue = this.#queue;
    this.#queue = [];
    for (const entry of queue) {
      const wasSent = entry.state === 'sent';
      const wasAbandoned = entry.state === 'abandoned';
      this.#release(entry);
      if (wasAbandoned) continue;
      entry.reject(
        wasSent || reason.code === 'AGI_CLOSED'
          ? reason
          : new BridgeError('AGI_CLOSED', `the FastAGI session closed before this command was sent: ${reason.message}`, { cause: reason }),
      );
    }
    // FIN first: Asterisk then ends the script cleanly (AGISTATUS=SUCCESS unless the caller hung up).
    if (!this.#socket.destroyed) this.#socket.end();
  }

  /** Stops the timer and the abort listener of a command that leaves the queue. */
  #release(entry: PendingCommand): void {
    if (entry.timer !== undefined) {
      this.#clock.clearTimer(entry.timer);
      entry.timer = undefined;
    }
    if (entry.onAbort !== undefined) {
      entry.signal?.removeEventListener('abort', entry.onAbort);
      entry.onAbort = undefined;
    }
  }

  /** A throwing listener is a bug in the caller; it must not become an uncaught socket-handler exception. */
  #emitSafely(event: 'hangup' | 'close'): void {
    try {
      this.emit(event);
    } catch (err) {
      this.#logger.error({ err, event }, 'FastAGI session listener threw');
    }
  }
}

/** Maps 510/511/520 to the error catalogue (protocols.md §2.3). */
function commandError(line: string, event: Extract<AgiParseEvent, { type: 'error' }>): BridgeError {
  const command = JSON.stringify(line.trimEnd().slice(0, 60));
  if (event.code === AgiErrorCode.DeadChannel) {
    return new BridgeError('AGI_DEAD_CHANNEL', `Asterisk refused ${command} on a dead channel: 511 ${event.message}`);
  }
  const usage = event.usage !== undefined && event.usage.length > 0 ? ` (usage: ${event.usage.join(' ').trim()})` : '';
  return new BridgeError('AGI_COMMAND_FAILED', `Asterisk answered ${command} with ${event.code} ${event.message}${usage}`);
}

/** `::ffff:127.0.0.1` (an IPv4 client on a dual-stack socket) → `127.0.0.1`. */
export function normalizeAddress(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  return mapped?.[1] ?? address;
}

function buildAllowList(allow: readonly string[]): BlockList {
  const list = new BlockList();
  for (const entry of allow) {
    const [rawAddress = '', prefixText, extra] = entry.split('/');
    const address = normalizeAddress(rawAddress);
    const family = isIP(address);
    const maxPrefix = family === 4 ? 32 : 128;
    const prefix = prefixText === undefined ? maxPrefix : Number(prefixText);
    if (family === 0 || extra !== undefined || prefixText === '' || !Number.isInteger(prefix) || prefix < 0 || prefix > maxPrefix) {
      throw new BridgeError('CONFIG_INVALID', `agi.allow: expected an IP address or CIDR block, got ${JSON.stringify(entry)}`);
    }
    list.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

function onRefusedSocketError(): void {
  // Refused sockets are destroyed at once; an RST racing the destroy is of no interest.
}
