/**
 * AMI client: one TCP session to Asterisk's manager, kept alive and logged in.
 *
 *   start() ─► connect ─► banner ─► Login ─► connected ──► Ping every pingIntervalMs
 *                 ▲                   │ Error: loginFailed      │ socket closed / Ping timeout /
 *                 │                   ▼                         ▼ unparsable input
 *                 └──── backoff (reconnectMinMs doubling to reconnectMaxMs) ◄── pending actions
 *                                                                 rejected with AMI_DISCONNECTED
 *
 * The socket is always read and never paused: Asterisk drops a session it cannot write to within
 * `writetimeout` (100 ms, protocols.md §3.1). Our own queues (the parser's partial line, pending
 * actions, list items) are bounded instead. The secret never reaches a log line or an error.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { createConnection, type Socket } from 'node:net';
import type { Clock, TimerHandle } from '../../audio/clock.js';
import { BridgeError, describeError, isBridgeError } from '../../errors.js';
import type { Logger } from '../../log.js';
import { AmiParser, type AmiMessage } from './parser.js';
import { encodeAction, type AmiFieldValue, type AmiFields } from './protocol.js';

export type AmiClientState = 'disconnected' | 'connecting' | 'connected' | 'closed';

export interface AmiClientOptions {
  readonly host: string;
  readonly port: number;
  readonly username: string;
  /** Never logged, never put in an error message. */
  readonly secret: string;
  /** How long an action may wait for its response, in ms. */
  readonly actionTimeoutMs: number;
  /** First reconnect delay after a drop, in ms; doubles per failed attempt. */
  readonly reconnectMinMs: number;
  /** Longest reconnect delay, in ms; also the delay after a refused login. */
  readonly reconnectMaxMs: number;
  /** Keep-alive Ping period while connected, in ms. */
  readonly pingIntervalMs: number;
  readonly logger: Logger;
  readonly clock: Clock;
  /** ActionIDs are `<prefix>-<counter>`; default `ai-call-<6 random hex digits>`. */
  readonly actionIdPrefix?: string;
  /** Most actions awaiting a response at once (default 1000); more are refused at once. */
  readonly maxPendingActions?: number;
  /** Most items collected for one list action (default 100 000). */
  readonly maxListItems?: number;
}

export type AmiClientEvents = {
  /** Every event Asterisk sends, except the items of our own list actions. */
  event: [AmiMessage];
  /** Logged in (again). */
  connected: [];
  /** A logged-in session ended; `closed` after close(). */
  disconnected: [reason: string];
  /** Asterisk refused the login (AMI_AUTH_FAILED); the client keeps retrying every reconnectMaxMs. */
  loginFailed: [BridgeError];
};

export interface AmiListResult {
  /** The `Response: Success` / `EventList: start` reply. */
  readonly response: AmiMessage;
  /** The list events carrying our ActionID, in order. */
  readonly items: AmiMessage[];
  /** The closing event with `EventList: Complete` (and usually `ListItems: N`). */
  readonly complete: AmiMessage;
}

export interface AmiOriginateResult {
  /** `Response: Success` / `Message: Originate successfully queued`. */
  readonly response: AmiMessage;
  /**
   * The `OriginateResponse` event (Response Success or Failure; see `originateReason`). Rejected with
   * AMI_ACTION_TIMEOUT after the Originate `Timeout` + actionTimeoutMs, or AMI_DISCONNECTED.
   */
  readonly result: Promise<AmiMessage>;
}

/** Reconnect delay for the given attempt (0-based): min, 2·min, 4·min, … capped at max. */
export function reconnectDelayMs(attempt: number, minMs: number, maxMs: number): number {
  return Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
}

const DEFAULT_MAX_PENDING_ACTIONS = 1_000;
/** Bytes we let pile up unsent before refusing more actions: Asterisk has stopped reading. */
const MAX_UNSENT_BYTES = 1024 * 1024;
const DEFAULT_MAX_LIST_ITEMS = 100_000;
/** protocols.md §3.2: Asterisk answers a refused login only after 1 s; the handshake allows for it. */
const LOGIN_FAILURE_DELAY_MS = 1_000;
/** Originate `Timeout` when the caller sends none, in ms (Asterisk's default, protocols.md §3.4). */
const DEFAULT_ORIGINATE_TIMEOUT_MS = 30_000;
/** Longest close() waits for the Logoff `Goodbye`, in ms. */
const LOGOFF_WAIT_MS = 1_000;
/** protocols.md §3.1: the banner is `Asterisk Call Manager/<AMI version>`. */
const BANNER = /^Asterisk Call Manager\/(\S+)/;
const ACTION_ID_PREFIX = /^[A-Za-z0-9_.-]{1,64}$/;

interface Connection {
  readonly id: number;
  readonly socket: Socket;
  readonly parser: AmiParser;
  /** tcp: connecting; banner: waiting for it; login: Login sent; ready: logged in. */
  phase: 'tcp' | 'banner' | 'login' | 'ready';
  ended: boolean;
  authFailed: boolean;
  loginActionId?: string;
  logoffActionId?: string;
  onLogoffDone?: () => void;
  handshakeTimer?: TimerHandle;
  pingTimer?: TimerHandle;
  lastError?: string;
}

interface PendingAction {
  readonly name: string;
  readonly list: boolean;
  readonly items: AmiMessage[];
  response?: AmiMessage;
  timer?: TimerHandle;
  readonly resolve: (value: AmiMessage | AmiListResult) => void;
  readonly reject: (err: BridgeError) => void;
}

interface PendingOriginate {
  readonly channelId: string | undefined;
  readonly timer: TimerHandle;
  readonly resolve: (message: AmiMessage) => void;
  readonly reject: (err: BridgeError) => void;
}

interface ConnectWaiter {
  readonly resolve: () => void;
  readonly reject: (err: BridgeError) => void;
  timer?: TimerHandle;
}

interface Prepared {
  readonly name: string;
  readonly actionId: string;
  readonly text: string;
  readonly conn: Connection;
}

function noop(): void {}

export class AmiClient extends EventEmitter<AmiClientEvents> {
  readonly #options: AmiClientOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #prefix: string;
  readonly #maxPending: number;
  readonly #maxListItems: number;
  #state: AmiClientState = 'disconnected';
  #started = false;
  #conn: Connection | undefined;
  #connCount = 0;
  #counter = 0;
  /** Failed connection attempts since the last successful login; drives the backoff. */
  #attempt = 0;
  #reconnectTimer: TimerHandle | undefined;
  #lastProblem: string | undefined;
  #closePromise: Promise<void> | undefined;
  readonly #pending = new Map<string, PendingAction>();
  readonly #originates = new Map<string, PendingOriginate>();
  readonly #waiters = new Set<ConnectWaiter>();

  constructor(options: AmiClientOptions) {
    super();
    this.#options = options;
    this.#clock = options.clock;
    this.#log = options.logger.child({ component: 'ami', host: options.host, port: options.port });
    this.#prefix = options.actionIdPrefix ?? `ai-call-${randomBytes(3).toString('hex')}`;
    this.#maxPending = options.maxPendingActions ?? DEFAULT_MAX_PENDING_ACTIONS;
    this.#maxListItems = options.maxListItems ?? DEFAULT_MAX_LIST_ITEMS;
    if (!ACTION_ID_PREFIX.test(this.#prefix)) {
      throw new BridgeError('AMI_BAD_VALUE', 'AMI actionIdPrefix must be 1-64 letters, digits, ".", "_" or "-"');
    }
    // Fail at start-up, not on every login, if the credentials cannot be sent safely.
    encodeAction('Login', { Username: options.username, Secret: options.secret }, `${this.#prefix}-0`);
  }

  get state(): AmiClientState {
    return this.#state;
  }

  /** Connects and logs in, and from then on reconnects on its own until close(). Idempotent. */
  start(): void {
    if (this.#started || this.#state === 'closed') return;
    this.#started = true;
    this.#connect();
  }

  /**
   * Resolves once logged in. Rejects with AMI_AUTH_FAILED as soon as a login is refused, or with
   * AMI_DISCONNECTED on close() or when `timeoutMs` passes first.
   */
  waitConnected(timeoutMs: number): Promise<void> {
    if (this.#state === 'connected') return Promise.resolve();
    if (this.#state === 'closed') return Promise.reject(new BridgeError('AMI_DISCONNECTED', 'the AMI client is closed'));
    return new Promise<void>((resolve, reject) => {
      const waiter: ConnectWaiter = { resolve, reject };
      waiter.timer = this.#clock.setTimer(() => {
        this.#waiters.delete(waiter);
        const last = this.#lastProblem === undefined ? '' : ` (last problem: ${this.#lastProblem})`;
        reject(new BridgeError('AMI_DISCONNECTED', `AMI not connected within ${timeoutMs} ms${last}`));
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  /**
   * Sends one action and resolves with its response. Rejects with AMI_DISCONNECTED at once when not
   * logged in, AMI_BAD_VALUE before anything is written, AMI_ACTION_FAILED on `Response: Error`
   * (the response is the error's `cause`), AMI_ACTION_TIMEOUT after actionTimeoutMs.
   */
  action(name: string, fields: AmiFields = {}): Promise<AmiMessage> {
    let prepared: Prepared;
    try {
      prepared = this.#prepare(name, fields);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#dispatch(prepared, false) as Promise<AmiMessage>;
  }

  /**
   * Sends a list action (CoreShowChannels, …) and resolves once its `EventList: Complete` event
   * arrives. The collector is registered before the bytes are written, since the response and the
   * Complete event can share one TCP read (protocols.md §3.3). The timeout restarts on every item.
   */
  listAction(name: string, fields: AmiFields = {}): Promise<AmiListResult> {
    let prepared: Prepared;
    try {
      prepared = this.#prepare(name, fields);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#dispatch(prepared, true) as Promise<AmiListResult>;
  }

  /**
   * Originate with `Async: true` forced (without it Asterisk blocks the session, protocols.md §3.4).
   * Resolves with the queued acknowledgement and a `result` promise for the `OriginateResponse`,
   * matched by ActionID or, failing that, by `Uniqueid` = the `ChannelId` sent.
   */
  async originate(fields: AmiFields): Promise<AmiOriginateResult> {
    const sent: Record<string, AmiFieldValue> = {};
    for (const [name, value] of Object.entries(fields)) {
      if (name.toLowerCase() !== 'async') sent[name] = value;
    }
    sent['Async'] = 'true';
    if (this.#originates.size >= this.#maxPending) {
      throw new BridgeError('AMI_ACTION_FAILED', `${this.#originates.size} originated calls already await their OriginateResponse`);
    }
    const prepared = this.#prepare('Originate', sent);
    const channelId = fieldText(fields, 'ChannelId');
    const dialTimeoutMs = Number(fieldText(fields, 'Timeout') ?? DEFAULT_ORIGINATE_TIMEOUT_MS);
    const resultTimeoutMs =
      (Number.isFinite(dialTimeoutMs) && dialTimeoutMs >= 0 ? dialTimeoutMs : DEFAULT_ORIGINATE_TIMEOUT_MS) +
      this.#options.actionTimeoutMs;
    const result = new Promise<AmiMessage>((resolve, reject) => {
      const timer = this.#clock.setTimer(() => {
        this.#originates.delete(prepared.actionId);
        reject(new BridgeError('AMI_ACTION_TIMEOUT', `no OriginateResponse for ${prepared.actionId} within ${resultTimeoutMs} ms`));
      }, resultTimeoutMs);
      this.#originates.set(prepared.actionId, { channelId, timer, resolve, reject });
    });
    // The caller may never await `result` (e.g. the ack failed); that must not be an unhandled rejection.
    result.catch(noop);
    let response: AmiMessage;
    try {
      response = (await this.#dispatch(prepared, false)) as AmiMessage;
    } catch (err) {
      this.#settleOriginate(prepared.actionId, undefined, err as BridgeError);
      throw err;
    }
    return { response, result };
  }

  /**
   * Stops for good: no more reconnects, every pending action, originate result and waitConnected()
   * rejected with AMI_DISCONNECTED, a best-effort Logoff, then the socket closed. Idempotent.
   */
  close(): Promise<void> {
    this.#closePromise ??= this.#close();
    return this.#closePromise;
  }

  async #close(): Promise<void> {
    this.#state = 'closed';
    if (this.#reconnectTimer !== undefined) this.#clock.clearTimer(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#rejectAll('the AMI client was closed');
    this.#settleWaiters(new BridgeError('AMI_DISCONNECTED', 'the AMI client was closed'));
    const conn = this.#conn;
    if (conn !== undefined) {
      if (conn.phase === 'ready' && !conn.ended) await this.#logoff(conn);
      this.#drop(conn, 'closed');
    }
    this.#log.info('AMI client closed');
  }

  /** Sends Logoff and waits for `Goodbye` or the socket to close, at most LOGOFF_WAIT_MS. */
  #logoff(conn: Connection): Promise<void> {
    return new Promise<void>((resolve) => {
      const actionId = this.#nextActionId();
      const timer = this.#clock.setTimer(done, Math.min(this.#options.actionTimeoutMs, LOGOFF_WAIT_MS));
      const clock = this.#clock;
      function done(): void {
        clock.clearTimer(timer);
        conn.onLogoffDone = undefined;
        resolve();
      }
      conn.logoffActionId = actionId;
      conn.onLogoffDone = done;
      conn.socket.write(encodeAction('Logoff', {}, actionId));
    });
  }

  #nextActionId(): string {
    this.#counter += 1;
    return `${this.#prefix}-${this.#counter}`;
  }

  /** Checks the session and the bounds and encodes; throws, writes nothing. */
  #prepare(name: string, fields: AmiFields): Prepared {
    const conn = this.#conn;
    if (this.#state !== 'connected' || conn === undefined || conn.phase !== 'ready' || conn.ended) {
      throw new BridgeError('AMI_DISCONNECTED', `AMI is ${this.#state}; action "${safeName(name)}" was not sent`);
    }
    if (this.#pending.size >= this.#maxPending) {
      throw new BridgeError('AMI_ACTION_FAILED', `${this.#pending.size} AMI actions are already pending; "${safeName(name)}" was not sent`);
    }
    if (conn.socket.writableLength > MAX_UNSENT_BYTES) {
      throw new BridgeError('AMI_ACTION_FAILED', `Asterisk is not reading (${conn.socket.writableLength} bytes unsent); "${safeName(name)}" was not sent`);
    }
    const actionId = this.#nextActionId();
    return { name, actionId, text: encodeAction(name, fields, actionId), conn };
  }

  /** Registers the response waiter, then writes. */
  #dispatch(prepared: Prepared, list: boolean): Promise<AmiMessage | AmiListResult> {
    return new Promise<AmiMessage | AmiListResult>((resolve, reject) => {
      const entry: PendingAction = { name: prepared.name, list, items: [], resolve, reject };
      this.#pending.set(prepared.actionId, entry);
      this.#armActionTimer(prepared.actionId, entry);
      this.#log.debug({ action: prepared.name, actionId: prepared.actionId }, 'AMI action sent');
      prepared.conn.socket.write(prepared.text);
    });
  }

  #armActionTimer(actionId: string, entry: PendingAction): void {
    if (entry.timer !== undefined) this.#clock.clearTimer(entry.timer);
    const timeoutMs = this.#options.actionTimeoutMs;
    entry.timer = this.#clock.setTimer(() => {
      if (this.#pending.get(actionId) !== entry) return;
      this.#pending.delete(actionId);
      entry.reject(new BridgeError('AMI_ACTION_TIMEOUT', `AMI action "${entry.name}" (${actionId}) got no response within ${timeoutMs} ms`));
    }, timeoutMs);
  }

  #finishAction(actionId: string, entry: PendingAction): void {
    this.#pending.delete(actionId);
    if (entry.timer !== undefined) this.#clock.clearTimer(entry.timer);
  }

  #connect(): void {
    if (this.#state === 'closed') return;
    this.#state = 'connecting';
    const { host, port } = this.#options;
    const socket = createConnection({ host, port });
    const conn: Connection = {
      id: ++this.#connCount,
      socket,
      parser: new AmiParser(),
      phase: 'tcp',
      ended: false,
      authFailed: false,
    };
    this.#conn = conn;
    // protocols.md §3.2: allow for the 1 s delay Asterisk puts on a refused login.
    conn.handshakeTimer = this.#clock.setTimer(
      () => this.#drop(conn, `no login response within ${this.#options.actionTimeoutMs + LOGIN_FAILURE_DELAY_MS} ms`),
      this.#options.actionTimeoutMs + LOGIN_FAILURE_DELAY_MS,
    );
    socket.setNoDelay(true);
    socket.on('error', (err) => this.#onSocketError(conn, err));
    socket.on('close', () => this.#drop(conn, conn.lastError ?? 'connection closed by Asterisk'));
    socket.on('connect', () => this.#onSocketConnect(conn));
    socket.on('data', (chunk: Buffer) => this.#onSocketData(conn, chunk));
    this.#log.debug({ conn: conn.id }, 'AMI connecting');
  }

  #onSocketConnect(conn: Connection): void {
    if (conn.ended) return;
    conn.phase = 'banner';
  }

  #onSocketError(conn: Connection, err: Error): void {
    // 'close' always follows; the reconnect happens there.
    conn.lastError = err.message;
    this.#log.debug({ conn: conn.id, err: err.message }, 'AMI socket error');
  }

  #onSocketData(conn: Connection, chunk: Buffer): void {
    if (conn.ended) return;
    let messages: AmiMessage[];
    try {
      messages = conn.parser.push(chunk);
    } catch (err) {
      this.#log.warn({ conn: conn.id, err: describeError(err) }, 'AMI input unparsable; reconnecting');
      this.#drop(conn, describeError(err));
      return;
    }
    if (conn.phase === 'tcp' || conn.phase === 'banner') {
      const banner = conn.parser.banner;
      if (banner === undefined) {
        if (messages.length > 0) this.#drop(conn, 'the peer sent no AMI banner');
        return;
      }
      const version = BANNER.exec(banner)?.[1];
      if (version === undefined) {
        this.#drop(conn, `the peer is not an Asterisk manager (banner ${JSON.stringify(banner.slice(0, 64))})`);
        return;
      }
      this.#sendLogin(conn, version);
    }
    for (const message of messages) {
      if (conn.ended) return;
      this.#onMessage(conn, message);
    }
  }

  #sendLogin(conn: Connection, version: string): void {
    conn.phase = 'login';
    conn.loginActionId = this.#nextActionId();
    this.#log.debug({ conn: conn.id, amiVersion: version, username: this.#options.username }, 'AMI banner received; logging in');
    conn.socket.write(
      encodeAction('Login', { Username: this.#options.username, Secret: this.#options.secret }, conn.loginActionId),
    );
  }

  #onMessage(conn: Connection, message: AmiMessage): void {
    const actionId = message.actionId;
    if (this.#state === 'closed') {
      if (actionId !== undefined && actionId === conn.logoffActionId && message.response !== undefined) conn.onLogoffDone?.();
      return;
    }
    if (conn.phase === 'login') {
      if (actionId === conn.loginActionId && message.response !== undefined) this.#onLoginResponse(conn, message);
      return;
    }
    if (conn.phase !== 'ready') return;
    const event = message.event;
    if (event === undefined) {
      this.#onResponse(actionId, message);
      return;
    }
    if (actionId !== undefined) {
      const entry = this.#pending.get(actionId);
      if (entry?.list) {
        this.#onListEvent(actionId, entry, message);
        return;
      }
    }
    if (event === 'OriginateResponse') this.#onOriginateResponse(message);
    this.#emitSafe('event', message);
  }

  #onLoginResponse(conn: Connection, message: AmiMessage): void {
    if (conn.handshakeTimer !== undefined) this.#clock.clearTimer(conn.handshakeTimer);
    conn.handshakeTimer = undefined;
    if (message.response === 'Success') {
      conn.phase = 'ready';
      this.#state = 'connected';
      this.#attempt = 0;
      this.#lastProblem = undefined;
      this.#log.info({ conn: conn.id, username: this.#options.username }, 'AMI connected');
      this.#schedulePing(conn);
      this.#settleWaiters(undefined);
      this.#emitSafe('connected');
      return;
    }
    // protocols.md §3.2: "Authentication failed" after 1 s, then Asterisk closes the socket.
    const reason = message.get('Message') ?? message.response ?? 'no reason given';
    const err = new BridgeError('AMI_AUTH_FAILED', `Asterisk refused the AMI login of user "${this.#options.username}": ${reason}`);
    conn.authFailed = true;
    this.#lastProblem = describeError(err);
    this.#log.error({ conn: conn.id, username: this.#options.username, reason }, 'AMI login refused');
    this.#settleWaiters(err);
    this.#emitSafe('loginFailed', err);
    this.#drop(conn, 'login refused');
  }

  #onResponse(actionId: string | undefined, message: AmiMessage): void {
    const entry = actionId === undefined ? undefined : this.#pending.get(actionId);
    if (actionId === undefined || entry === undefined) {
      // A late reply to an action that timed out, or another session's ActionID: nothing waits.
      this.#log.debug({ actionId, response: message.response }, 'AMI response matches no pending action');
      return;
    }
    if (message.response === 'Error') {
      this.#finishAction(actionId, entry);
      const text = message.get('Message') ?? 'no message';
      entry.reject(new BridgeError('AMI_ACTION_FAILED', `AMI action "${entry.name}" failed: ${text}`, { cause: message }));
      return;
    }
    if (!entry.list) {
      this.#finishAction(actionId, entry);
      entry.resolve(message);
      return;
    }
    if (message.get('EventList')?.toLowerCase() === 'start') {
      entry.response = message;
      this.#armActionTimer(actionId, entry);
      return;
    }
    // A list action answered without a list: nothing will follow.
    this.#finishAction(actionId, entry);
    entry.resolve({ response: message, items: entry.items, complete: message });
  }

  #onListEvent(actionId: string, entry: PendingAction, message: AmiMessage): void {
    if (message.get('EventList')?.toLowerCase() === 'complete') {
      this.#finishAction(actionId, entry);
      entry.resolve({ response: entry.response ?? message, items: entry.items, complete: message });
      return;
    }
    if (entry.items.length >= this.#maxListItems) {
      this.#finishAction(actionId, entry);
      entry.reject(new BridgeError('AMI_ACTION_FAILED', `AMI list action "${entry.name}" sent more than ${this.#maxListItems} items`));
      return;
    }
    entry.items.push(message);
    this.#armActionTimer(actionId, entry);
  }

  #onOriginateResponse(message: AmiMessage): void {
    const actionId = message.actionId;
    if (actionId !== undefined && this.#originates.has(actionId)) {
      this.#settleOriginate(actionId, message, undefined);
      return;
    }
    // Fallback: Uniqueid is the ChannelId we pre-assigned (test/fixtures/asterisk22 README).
    const uniqueid = message.get('Uniqueid');
    if (uniqueid === undefined) return;
    for (const [id, waiter] of this.#originates) {
      if (waiter.channelId === uniqueid) {
        this.#settleOriginate(id, message, undefined);
        return;
      }
    }
  }

  #settleOriginate(actionId: string, message: AmiMessage | undefined, err: BridgeError | undefined): void {
    const waiter = this.#originates.get(actionId);
    if (waiter === undefined) return;
    this.#originates.delete(actionId);
    this.#clock.clearTimer(waiter.timer);
    if (message !== undefined) waiter.resolve(message);
    else waiter.reject(err ?? new BridgeError('AMI_DISCONNECTED', 'the AMI connection closed before the OriginateResponse'));
  }

  #schedulePing(conn: Connection): void {
    conn.pingTimer = this.#clock.setTimer(() => this.#ping(conn), this.#options.pingIntervalMs);
  }

  #ping(conn: Connection): void {
    conn.pingTimer = undefined;
    if (conn.ended || this.#conn !== conn || this.#state !== 'connected') return;
    this.action('Ping').then(
      () => {
        if (!conn.ended && this.#conn === conn) this.#schedulePing(conn);
      },
      (err: unknown) => {
        if (conn.ended || this.#conn !== conn) return;
        if (isBridgeError(err, 'AMI_ACTION_TIMEOUT')) {
          this.#log.warn({ conn: conn.id }, 'AMI Ping timed out; reconnecting');
          this.#drop(conn, 'ping timeout');
          return;
        }
        this.#log.warn({ conn: conn.id, err: describeError(err) }, 'AMI Ping failed');
        this.#schedulePing(conn);
      },
    );
  }

  /** Ends one connection: settles what depended on it and, unless closed, schedules a reconnect. */
  #drop(conn: Connection, reason: string): void {
    if (conn.ended) return;
    conn.ended = true;
    if (conn.handshakeTimer !== undefined) this.#clock.clearTimer(conn.handshakeTimer);
    if (conn.pingTimer !== undefined) this.#clock.clearTimer(conn.pingTimer);
    conn.handshakeTimer = undefined;
    conn.pingTimer = undefined;
    conn.socket.destroy();
    conn.onLogoffDone?.();
    if (this.#conn === conn) this.#conn = undefined;
    const wasReady = conn.phase === 'ready';
    if (this.#state === 'closed') {
      if (wasReady) this.#emitSafe('disconnected', 'closed');
      return;
    }
    this.#rejectAll(`the AMI connection was lost (${reason})`);
    if (!conn.authFailed) this.#lastProblem = reason;
    this.#state = 'disconnected';
    const delayMs = conn.authFailed
      ? this.#options.reconnectMaxMs
      : reconnectDelayMs(this.#attempt++, this.#options.reconnectMinMs, this.#options.reconnectMaxMs);
    if (wasReady) {
      this.#log.warn({ conn: conn.id, reason, retryInMs: delayMs }, 'AMI disconnected');
      this.#emitSafe('disconnected', reason);
    } else {
      // Repeated failures while Asterisk is down: loud once, then quiet. A refused login was logged already.
      const level = this.#attempt <= 1 && !conn.authFailed ? 'warn' : 'debug';
      this.#log[level]({ conn: conn.id, reason, retryInMs: delayMs }, 'AMI connection attempt failed');
    }
    if (this.#state !== 'disconnected') return; // a listener called close()
    this.#reconnectTimer = this.#clock.setTimer(() => {
      this.#reconnectTimer = undefined;
      this.#connect();
    }, delayMs);
  }

  #rejectAll(reason: string): void {
    for (const [actionId, entry] of [...this.#pending]) {
      this.#finishAction(actionId, entry);
      entry.reject(new BridgeError('AMI_DISCONNECTED', `AMI action "${entry.name}" (${actionId}) not answered: ${reason}`));
    }
    for (const actionId of [...this.#originates.keys()]) {
      this.#settleOriginate(actionId, undefined, new BridgeError('AMI_DISCONNECTED', `no OriginateResponse for ${actionId}: ${reason}`));
    }
  }

  #settleWaiters(err: BridgeError | undefined): void {
    for (const waiter of [...this.#waiters]) {
      this.#waiters.delete(waiter);
      if (waiter.timer !== undefined) this.#clock.clearTimer(waiter.timer);
      if (err === undefined) waiter.resolve();
      else waiter.reject(err);
    }
  }

  /** Emits without letting a throwing listener unwind into the socket handler. */
  #emitSafe<K extends keyof AmiClientEvents>(name: K, ...args: AmiClientEvents[K]): void {
    try {
      (this.emit as (name: K, ...args: AmiClientEvents[K]) => boolean)(name, ...args);
    } catch (err) {
      this.#log.error({ event: name, err: describeError(err) }, 'AMI event listener threw');
    }
  }
}

/** A field's value by case-insensitive name, as text (first value of an array). */
function fieldText(fields: AmiFields, name: string): string | undefined {
  const wanted = name.toLowerCase();
  for (const [key, value] of Object.entries(fields)) {
    if (key.toLowerCase() !== wanted || value === undefined) continue;
    const first = typeof value === 'object' ? value[0] : value;
    return first === undefined ? undefined : String(first);
  }
  return undefined;
}

/** An action name fit for an error message even when it is malformed. */
function safeName(name: string): string {
  return JSON.stringify(name.slice(0, 64)).slice(1, -1);
}
