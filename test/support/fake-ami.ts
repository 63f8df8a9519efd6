/**
 * A fake Asterisk Manager Interface on 127.0.0.1, faithful to what Asterisk 22 puts on the wire
 * (protocols.md §3 and test/fixtures/asterisk22/ami-session.json):
 *
 * - banner `Asterisk Call Manager/11.0.0\r\n` on connect (optionally late);
 * - input lines end with `\r\n` or `\n`; a line over 1024 bytes discards its whole message, and
 *   only the first 128 headers count (main/manager.c `get_input`, `AST_MAX_MANHEADERS`);
 * - header lookup is case-insensitive, first match, leading blanks skipped (`astman_get_header`);
 * - `Login` answers `Success` + `FullyBooted` in one write, or `Authentication failed` after a delay
 *   and then closes; every other action before login gets `Permission denied`;
 * - `Ping`, `Logoff`, `Originate` (Async or not, scripted outcomes with Newchannel, VarSet,
 *   DialBegin, Newstate, DialEnd, Hangup and `OriginateResponse`), `Hangup`, `Redirect`, `Setvar`,
 *   `Getvar`, `PlayDTMF` and `CoreShowChannels` (an event list), each with Asterisk's error texts.
 *
 * Fault injection: drop every connection with a TCP RST, never answer chosen actions, hold replies
 * and release them in another order, split every write at chosen byte offsets, delay the banner,
 * write raw bytes. Every action received is recorded, parsed the way Asterisk parses it.
 *
 * @example
 * const ami = await FakeAmi.start({ secret: 's3cret' });
 * onTestFinished(() => ami.close());
 * ami.scriptOriginate(/busy/, 'busy');
 * // … point an AmiClient at 127.0.0.1:ami.port, then:
 * expect(ami.actionsNamed('Originate')[0]?.get('Async')).toBe('true');
 */
import { EventEmitter, once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { hangupCauseText, OriginateReason } from '../../src/asterisk/ami/protocol.js';

/** Asterisk's input buffer: a line and its line end must fit in 1024 bytes (main/manager.c). */
const MAX_INPUT_LINE_BYTES = 1024;
/** Asterisk keeps the first 128 headers of an action and ignores the rest. */
const MAX_INPUT_HEADERS = 128;

export interface FakeAmiOptions {
  /** Accepted user name (default `ai-call`). */
  readonly username?: string;
  /** Accepted secret (default `fake-secret`). */
  readonly secret?: string;
  /** Version in the banner (default `11.0.0`, Asterisk 22). */
  readonly amiVersion?: string;
  /** Delay before the banner, in ms (default 0). */
  readonly bannerDelayMs?: number;
  /** Delay before `Authentication failed`, in ms (default 50; real Asterisk waits 1000). */
  readonly loginFailureDelayMs?: number;
  /** Send `Event: FullyBooted` with a successful login (default true, as with `read=system`). */
  readonly fullyBooted?: boolean;
  /** Split every write at these offsets (see {@link FakeAmi.splitWrites}). */
  readonly splitWrites?: WriteSplitter;
  /** Pause between the pieces of a split write, in ms (default 2), so they arrive as separate reads. */
  readonly splitDelayMs?: number;
}

/** Returns the byte offsets at which one write is cut into pieces (empty: one piece). */
export type WriteSplitter = (bytes: Buffer) => readonly number[];

/** How a scripted Originate ends. `silent` never sends an OriginateResponse. */
export type FakeOriginateOutcome = 'answered' | 'busy' | 'no-answer' | 'congestion' | 'failed' | 'silent';

export interface FakeOriginateScript {
  readonly outcome: FakeOriginateOutcome;
  /** Delay between the `queued` acknowledgement and the call events, in ms (default 5). */
  readonly delayMs?: number;
  /** Leave `ActionID` out of the OriginateResponse, so only `Uniqueid` can correlate it. */
  readonly omitActionId?: boolean;
  /** Send the OriginateResponse before the channel events (the order is not fixed on real Asterisk). */
  readonly responseFirst?: boolean;
}

/** One channel the fake knows about; Hangup, Redirect, Setvar, Getvar, PlayDTMF and CoreShowChannels act on these. */
export interface FakeChannel {
  name: string;
  uniqueid: string;
  linkedid: string;
  /** 0 Down, 4 Ring, 5 Ringing, 6 Up, 7 Busy. */
  state: number;
  context: string;
  exten: string;
  priority: number;
  callerIdNum: string;
  callerIdName: string;
  application: string;
  applicationData: string;
  readonly vars: Map<string, string>;
  /** The other half of a Local channel pair. */
  peer?: FakeChannel;
}

/** One action as the fake received it, parsed the way Asterisk parses it. */
export class FakeAmiAction {
  /** Which connection it came on (1-based, in accept order). */
  readonly conn: number;
  /** Raw header lines split at the first ':' (name, value with leading blanks skipped). */
  readonly headers: ReadonlyArray<readonly [string, string]>;

  constructor(conn: number, headers: ReadonlyArray<readonly [string, string]>) {
    this.conn = conn;
    this.headers = headers;
  }

  /** The `Action:` value ('' when missing). */
  get name(): string {
    return this.get('Action') ?? '';
  }

  get actionId(): string | undefined {
    return this.get('ActionID');
  }

  /** First value of a header, case-insensitive (`astman_get_header`). */
  get(name: string): string | undefined {
    const wanted = name.toLowerCase();
    return this.headers.find(([key]) => key.toLowerCase() === wanted)?.[1];
  }

  /** Every value of a repeated header, e.g. `Variable`. */
  getAll(name: string): string[] {
    const wanted = name.toLowerCase();
    return this.headers.filter(([key]) => key.toLowerCase() === wanted).map(([, value]) => value);
  }
}

/** Handed to a custom action handler to answer on the action's connection. */
export interface FakeAmiReply {
  /** Writes a response; `Response:` and the echoed `ActionID` come first, as Asterisk writes them. */
  respond(response: 'Success' | 'Error' | 'Goodbye' | 'Follows', fields?: FakeFields): void;
  /** Writes an event to this connection only. */
  event(name: string, fields?: FakeFields): void;
  /** Writes raw bytes to this connection. */
  raw(text: string | Buffer): void;
  /** Resets this connection (TCP RST). */
  drop(): void;
}

export type FakeFields = Readonly<Record<string, string | number>> | ReadonlyArray<readonly [string, string | number]>;
export type FakeActionHandler = (action: FakeAmiAction, reply: FakeAmiReply) => void;

interface Session {
  readonly id: number;
  readonly socket: Socket;
  authenticated: boolean;
  closing: boolean;
  input: Buffer;
  discarding: boolean;
  lines: Array<readonly [string, string]>;
  headerCount: number;
  /** Serialises writes so split pieces and delayed replies keep their order. */
  queue: Promise<void>;
}

interface OriginateScriptEntry {
  readonly match: (dial: string) => boolean;
  readonly script: FakeOriginateScript;
}

type FakeAmiEvents = { action: [FakeAmiAction]; connection: [number] };

export class FakeAmi {
  readonly host = '127.0.0.1';
  /** Every action received, in order, on every connection (Login included). */
  readonly actions: FakeAmiAction[] = [];
  /** Channels by name. */
  readonly channels = new Map<string, FakeChannel>();
  /** Global variables (Setvar/Getvar without Channel). */
  readonly globals = new Map<string, string>();
  username: string;
  secret: string;
  amiVersion: string;
  bannerDelayMs: number;
  loginFailureDelayMs: number;
  fullyBooted: boolean;
  /** Cuts every later write at these offsets; `undefined` writes each reply whole. */
  splitWrites: WriteSplitter | undefined;
  splitDelayMs: number;

  readonly #server: Server;
  readonly #sessions = new Set<Session>();
  readonly #emitter = new EventEmitter<FakeAmiEvents>();
  readonly #ignored: Array<(action: FakeAmiAction) => boolean> = [];
  readonly #handlers = new Map<string, FakeActionHandler>();
  readonly #scripts: OriginateScriptEntry[] = [];
  #held: Array<{ session: Session; text: string }> | undefined;
  #acceptCount = 0;
  #channelSeq = 0;
  #uniqueSeq = 0;
  readonly #startedAtSec = Math.floor(Date.now() / 1000);

  private constructor(server: Server, options: FakeAmiOptions) {
    this.#server = server;
    this.username = options.username ?? 'ai-call';
    this.secret = options.secret ?? 'fake-secret';
    this.amiVersion = options.amiVersion ?? '11.0.0';
    this.bannerDelayMs = options.bannerDelayMs ?? 0;
    this.loginFailureDelayMs = options.loginFailureDelayMs ?? 50;
    this.fullyBooted = options.fullyBooted ?? true;
    this.splitWrites = options.splitWrites;
    this.splitDelayMs = options.splitDelayMs ?? 2;
    server.on('connection', (socket) => this.#onConnection(socket));
  }

  /** Starts a fake manager on 127.0.0.1 and an ephemeral port. */
  static async start(options: FakeAmiOptions = {}): Promise<FakeAmi> {
    const server = createServer();
    const fake = new FakeAmi(server, options);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return fake;
  }

  /** The port it listens on. */
  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** Connections accepted so far. */
  get connectionCount(): number {
    return this.#acceptCount;
  }

  /** Connections open now. */
  get openConnections(): number {
    return this.#sessions.size;
  }

  /** Logged-in connections open now. */
  get loggedInConnections(): number {
    return [...this.#sessions].filter((s) => s.authenticated && !s.closing).length;
  }

  /** Recorded actions with this name (case-insensitive). */
  actionsNamed(name: string): FakeAmiAction[] {
    const wanted = name.toLowerCase();
    return this.actions.filter((a) => a.name.toLowerCase() === wanted);
  }

  /** Resolves once `count` actions with this name have been received in total (default 1). */
  async waitForAction(name: string, count = 1, timeoutMs = 5_000): Promise<FakeAmiAction> {
    return this.#waitFor(() => this.actionsNamed(name)[count - 1], 'action', timeoutMs, `${count}× ${name}`);
  }

  /** Resolves once `count` connections have been accepted in total. */
  async waitForConnections(count: number, timeoutMs = 5_000): Promise<void> {
    await this.#waitFor(() => (this.#acceptCount >= count ? true : undefined), 'connection', timeoutMs, `${count} connections`);
  }

  /** Leaves matching actions unanswered (they are still recorded). Returns an undo function. */
  ignore(action: string | ((action: FakeAmiAction) => boolean)): () => void {
    const test = typeof action === 'string' ? (a: FakeAmiAction) => a.name.toLowerCase() === action.toLowerCase() : action;
    this.#ignored.push(test);
    return () => {
      const index = this.#ignored.indexOf(test);
      if (index !== -1) this.#ignored.splice(index, 1);
    };
  }

  /** Replaces the built-in handling of one action (after the login check). Returns an undo function. */
  handle(action: string, handler: FakeActionHandler): () => void {
    const key = action.toLowerCase();
    this.#handlers.set(key, handler);
    return () => {
      if (this.#handlers.get(key) === handler) this.#handlers.delete(key);
    };
  }

  /**
   * Scripts how Originates to a matching dial string (`Channel:` header) end. The first matching
   * script wins; unscripted Originates are answered.
   */
  scriptOriginate(
    match: string | RegExp | ((dial: string) => boolean),
    script: FakeOriginateOutcome | FakeOriginateScript,
  ): void {
    const test = typeof match === 'string' ? (d: string) => d === match : match instanceof RegExp ? (d: string) => match.test(d) : match;
    this.#scripts.push({ match: test, script: typeof script === 'string' ? { outcome: script } : script });
  }

  /** Adds a live channel (state Up by default) for Hangup, Redirect, Setvar, Getvar, PlayDTMF and CoreShowChannels. */
  addChannel(init: Partial<Omit<FakeChannel, 'vars'>> & { name: string; vars?: Record<string, string> }): FakeChannel {
    const uniqueid = init.uniqueid ?? this.#nextUniqueid();
    const channel: FakeChannel = {
      name: init.name,
      uniqueid,
      linkedid: init.linkedid ?? uniqueid,
      state: init.state ?? 6,
      context: init.context ?? 'default',
      exten: init.exten ?? 's',
      priority: init.priority ?? 1,
      callerIdNum: init.callerIdNum ?? '<unknown>',
      callerIdName: init.callerIdName ?? '<unknown>',
      application: init.application ?? 'Wait',
      applicationData: init.applicationData ?? '60',
      vars: new Map(Object.entries(init.vars ?? {})),
      ...(init.peer ? { peer: init.peer } : {}),
    };
    this.channels.set(channel.name, channel);
    return channel;
  }

  /** Finds a channel by name or uniqueid, as Asterisk's `ast_channel_get_by_name` does. */
  findChannel(nameOrUniqueid: string): FakeChannel | undefined {
    const byName = this.channels.get(nameOrUniqueid);
    if (byName) return byName;
    const lower = nameOrUniqueid.toLowerCase();
    for (const channel of this.channels.values()) {
      if (channel.uniqueid === nameOrUniqueid || channel.name.toLowerCase() === lower) return channel;
    }
    return undefined;
  }

  /** Sends an event (`Event`, `Privilege`, then the fields) to every logged-in connection. */
  emitEvent(name: string, fields: FakeFields = {}, privilege = 'call,all'): void {
    const text = formatMessage([['Event', name], ['Privilege', privilege], ...fieldPairs(fields)]);
    for (const session of this.#sessions) {
      if (session.authenticated) this.#write(session, text, false);
    }
  }

  /** Writes raw bytes to every open connection (malformed input, partial messages, …). */
  writeRaw(text: string | Buffer): void {
    for (const session of this.#sessions) this.#write(session, text, false);
  }

  /** Resets every open connection (TCP RST), like a crashed or restarted Asterisk. */
  dropConnections(): void {
    for (const session of this.#sessions) this.#destroy(session, true);
  }

  /** From now on, keeps action responses back until {@link releaseReplies}. Events still flow. */
  holdReplies(): void {
    this.#held ??= [];
  }

  /** Number of responses held back so far. */
  get heldReplies(): number {
    return this.#held?.length ?? 0;
  }

  /**
   * Writes the held responses, per connection in one write, in the given order: `reverse`, or
   * `shuffle` (deterministic for a given seed). Stops holding.
   */
  releaseReplies(order: 'fifo' | 'reverse' | 'shuffle' = 'fifo', seed = 1): void {
    const held = this.#held ?? [];
    this.#held = undefined;
    if (order === 'reverse') held.reverse();
    if (order === 'shuffle') shuffle(held, seed);
    const bySession = new Map<Session, string[]>();
    for (const { session, text } of held) bySession.set(session, [...(bySession.get(session) ?? []), text]);
    for (const [session, texts] of bySession) this.#write(session, texts.join(''), false);
  }

  /** Closes every connection and the listener. */
  async close(): Promise<void> {
    for (const session of this.#sessions) this.#destroy(session, false);
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  // ---- connection handling -------------------------------------------------------------------

  #onConnection(socket: Socket): void {
    const session: Session = {
      id: ++this.#acceptCount,
      socket,
      authenticated: false,
      closing: false,
      input: Buffer.alloc(0),
      discarding: false,
      lines: [],
      headerCount: 0,
      queue: Promise.resolve(),
    };
    this.#sessions.add(session);
    socket.setNoDelay(true);
    socket.on('error', () => {});
    socket.on('close', () => this.#sessions.delete(session));
    socket.on('data', (chunk: Buffer) => this.#onData(session, chunk));
    const banner = `Asterisk Call Manager/${this.amiVersion}\r\n`;
    if (this.bannerDelayMs > 0) {
      session.queue = delay(this.bannerDelayMs).then(() => this.#writeNow(session, banner)).catch(() => {});
    } else {
      this.#write(session, banner, false);
    }
    this.#emitter.emit('connection', session.id);
  }

  /** Asterisk's `get_input` + `do_message`: lines, then an action at each empty line. */
  #onData(session: Session, chunk: Buffer): void {
    session.input = Buffer.concat([session.input, chunk]);
    for (;;) {
      const lf = session.input.indexOf(0x0a);
      if (lf === -1) {
        if (session.input.length >= MAX_INPUT_LINE_BYTES) {
          // "Discarding message … Line too long": the rest of the message is dropped too.
          session.input = session.input.subarray(session.input.length - 1);
          session.discarding = true;
        }
        return;
      }
      const end = lf > 0 && session.input[lf - 1] === 0x0d ? lf - 1 : lf;
      const tooLong = lf + 1 > MAX_INPUT_LINE_BYTES;
      const line = session.input.toString('utf8', 0, end);
      session.input = session.input.subarray(lf + 1);
      if (tooLong) session.discarding = true;
      if (line === '') {
        const lines = session.lines;
        const discard = session.discarding;
        session.lines = [];
        session.headerCount = 0;
        session.discarding = false;
        if (!discard && lines.length > 0) this.#onAction(session, new FakeAmiAction(session.id, lines));
        continue;
      }
      if (tooLong || session.discarding) continue;
      if (session.headerCount >= MAX_INPUT_HEADERS) continue;
      session.headerCount += 1;
      const colon = line.indexOf(':');
      if (colon === -1) {
        session.lines.push([line, '']);
      } else {
        session.lines.push([line.slice(0, colon), line.slice(colon + 1).replace(/^[ \t]+/, '')]);
      }
    }
  }

  #onAction(session: Session, action: FakeAmiAction): void {
    this.actions.push(action);
    this.#emitter.emit('action', action);
    if (session.closing) return;
    if (this.#ignored.some((test) => test(action))) return;
    const name = action.name.toLowerCase();
    const reply = this.#reply(session, action);
    if (name === '') {
      reply.respond('Error', { Message: 'Missing action in request' });
      return;
    }
    // protocols.md §3.2: before login only Login, Logoff and Challenge are allowed.
    if (!session.authenticated && name !== 'login' && name !== 'logoff' && name !== 'challenge') {
      reply.respond('Error', { Message: 'Permission denied' });
      return;
    }
    const custom = this.#handlers.get(name);
    if (custom) {
      custom(action, reply);
      return;
    }
    switch (name) {
      case 'login':
        return this.#login(session, action, reply);
      case 'logoff':
        reply.respond('Goodbye', { Message: 'Thanks for all the fish.' });
        return this.#end(session);
      case 'ping': {
        const nowMs = Date.now();
        const timestamp = `${Math.floor(nowMs / 1000)}.${String((nowMs % 1000) * 1000).padStart(6, '0')}`;
        return reply.respond('Success', { Ping: 'Pong', Timestamp: timestamp });
      }
      case 'originate':
        return this.#originate(action, reply);
      case 'hangup':
        return this.#hangupAction(action, reply);
      case 'redirect':
        return this.#redirect(action, reply);
      case 'setvar':
        return this.#setvar(action, reply);
      case 'getvar':
        return this.#getvar(action, reply);
      case 'playdtmf':
        return this.#playDtmf(action, reply);
      case 'coreshowchannels':
        return this.#coreShowChannels(action, reply);
      default:
        reply.respond('Error', {
          Message: `Invalid/unknown command: ${action.name}. Use Action: ListCommands to show available commands.`,
        });
    }
  }

  #reply(session: Session, action: FakeAmiAction): FakeAmiReply {
    const actionId = action.actionId;
    return {
      respond: (response, fields = {}) => {
        const pairs: Array<readonly [string, string | number]> = [['Response', response]];
        if (actionId !== undefined && actionId !== '') pairs.push(['ActionID', actionId]);
        this.#write(session, formatMessage([...pairs, ...fieldPairs(fields)]), true);
      },
      event: (name, fields = {}) => this.#write(session, formatMessage([['Event', name], ...fieldPairs(fields)]), false),
      raw: (text) => this.#write(session, text, false),
      drop: () => this.#destroy(session, true),
    };
  }

  #login(session: Session, action: FakeAmiAction, reply: FakeAmiReply): void {
    if (action.get('Username') === this.username && action.get('Secret') === this.secret) {
      session.authenticated = true;
      const pairs: Array<readonly [string, string]> = [['Response', 'Success']];
      const actionId = action.actionId;
      if (actionId) pairs.push(['ActionID', actionId]);
      pairs.push(['Message', 'Authentication accepted']);
      let text = formatMessage(pairs);
      // Same write as the response, as recorded (fixture ami-1).
      if (this.fullyBooted) {
        const uptime = Math.max(0, Math.floor(Date.now() / 1000) - this.#startedAtSec);
        text += formatMessage([
          ['Event', 'FullyBooted'], ['Privilege', 'system,all'], ['Uptime', uptime], ['LastReload', uptime], ['Status', 'Fully Booted'],
        ]);
      }
      this.#write(session, text, true);
      return;
    }
    // protocols.md §3.2: refused after ~1 s, then Asterisk closes the session.
    session.queue = session.queue.then(() => delay(this.loginFailureDelayMs));
    reply.respond('Error', { Message: 'Authentication failed' });
    this.#end(session);
  }

  // ---- call control ----------------------------------------------------------------------------

  #originate(action: FakeAmiAction, reply: FakeAmiReply): void {
    const dial = action.get('Channel');
    if (!dial) {
      reply.respond('Error', { Message: 'Channel not specified' });
      return;
    }
    const script = this.#scripts.find((s) => s.match(dial))?.script ?? { outcome: 'answered' };
    const isAsync = /^(true|yes|on|1|y|t)$/i.test(action.get('Async') ?? '');
    if (isAsync) reply.respond('Success', { Message: 'Originate successfully queued' });
    void delay(script.delayMs ?? 5).then(() => {
      const events = this.#originateEvents(dial, action, script);
      if (isAsync) {
        for (const [name, fields] of events) this.#broadcastCall(name, fields);
      } else {
        // Without Async the session blocks until the end and no OriginateResponse is sent.
        for (const [name, fields] of events) if (name !== 'OriginateResponse') this.#broadcastCall(name, fields);
        if (script.outcome === 'answered') reply.respond('Success', { Message: 'Originate successfully queued' });
        else if (script.outcome !== 'silent') reply.respond('Error', { Message: 'Originate failed' });
      }
    });
  }

  /** The events of one scripted call, in the order Asterisk 22 sent them in the fixture. */
  #originateEvents(dial: string, action: FakeAmiAction, script: FakeOriginateScript): Array<[string, Pairs]> {
    const context = action.get('Context') ?? '';
    const exten = action.get('Exten') ?? '';
    const priority = Number(action.get('Priority') ?? '1') || 1;
    const application = action.get('Application');
    const { num, name } = parseCallerId(action.get('CallerID'));
    const channelId = action.get('ChannelId') || undefined;
    const target = parseDial(dial);
    const destination: Pairs = application !== undefined
      ? [['Application', application], ['Data', action.get('Data') ?? '']]
      : [['Context', context], ['Exten', exten]];
    const response = (ok: boolean, reason: number, channel: string, uniqueid: string): [string, Pairs] => [
      'OriginateResponse',
      [
        ...(script.omitActionId || !action.actionId ? [] : [['ActionID', action.actionId] as const]),
        ['Response', ok ? 'Success' : 'Failure'],
        ['Channel', channel],
        ...destination,
        ['Reason', reason],
        ['Uniqueid', uniqueid],
        ['CallerIDNum', num],
        ['CallerIDName', name],
      ],
    ];
    if (script.outcome === 'failed') {
      return [response(false, OriginateReason.failed, dial, channelId ?? '<unknown>')];
    }
    const seq = (++this.#channelSeq).toString(16).padStart(8, '0');
    const one = this.addChannel({
      name: target.local ? `${dial}-${seq};1` : `${dial}-${seq}`,
      uniqueid: channelId ?? this.#nextUniqueid(),
      state: 0,
      context: target.context,
      exten: target.exten,
      priority: 1,
      callerIdNum: num,
      callerIdName: name,
      application: 'AppDial2',
      applicationData: '(Outgoing Line)',
    });
    one.linkedid = one.uniqueid;
    const channels = [one];
    if (target.local) {
      const other = action.get('OtherChannelId') || (channelId ? `${channelId};2` : this.#nextUniqueid());
      const two = this.addChannel({
        name: `${dial}-${seq};2`, uniqueid: other, linkedid: one.uniqueid, state: 4, context: target.context,
        exten: target.exten, priority: 1, callerIdNum: num, callerIdName: name, application: 'Wait', applicationData: '60',
      });
      one.peer = two;
      two.peer = one;
      channels.push(two);
    }
    const events: Array<[string, Pairs]> = [];
    for (const channel of channels) events.push(['Newchannel', snapshot(channel)]);
    for (const assignment of action.getAll('Variable')) {
      for (const [key, value] of parseVariables(assignment)) {
        for (const channel of channels) {
          channel.vars.set(key, value);
          events.push(['VarSet', [...snapshot(channel), ['Variable', key], ['Value', escapeVarSet(value)]]]);
        }
      }
    }
    events.push(['DialBegin', [...snapshot(one, 'Dest'), ['DialString', dial.replace(/^[^/]*\//, '')]]]);
    const far = channels[channels.length - 1]!;
    const hangupAll = (causes: readonly number[]): void => {
      channels.forEach((channel, i) => {
        const cause = causes[Math.min(i, causes.length - 1)]!;
        events.push(['Hangup', [...snapshot(channel), ['Cause', cause], ['Cause-txt', hangupCauseText(cause)]]]);
        this.channels.delete(channel.name);
      });
    };
    let final: [string, Pairs] | undefined;
    switch (script.outcome) {
      case 'answered':
      case 'silent': {
        for (const channel of [...channels].reverse()) {
          channel.state = 6;
          events.push(['Newstate', snapshot(channel)]);
        }
        events.push(['DialEnd', [...snapshot(one, 'Dest'), ['DialStatus', 'ANSWER']]]);
        one.context = context || one.context;
        one.exten = exten || one.exten;
        one.priority = priority;
        if (script.outcome === 'answered') final = response(true, OriginateReason.answered, one.name, one.uniqueid);
        break;
      }
      case 'busy':
        far.state = 7;
        events.push(['Newstate', snapshot(far)]);
        events.push(['DialEnd', [...snapshot(one, 'Dest'), ['DialStatus', 'BUSY']]]);
        hangupAll([0, 17]);
        final = response(false, OriginateReason.busy, dial, one.uniqueid);
        break;
      case 'no-answer':
        one.state = 5;
        events.push(['Newstate', snapshot(one)]);
        events.push(['DialEnd', [...snapshot(one, 'Dest'), ['DialStatus', 'NOANSWER']]]);
        hangupAll([19]);
        final = response(false, OriginateReason['no-answer'], dial, one.uniqueid);
        break;
      case 'congestion':
        events.push(['DialEnd', [...snapshot(one, 'Dest'), ['DialStatus', 'CONGESTION']]]);
        hangupAll([34]);
        final = response(false, OriginateReason.congestion, dial, one.uniqueid);
        break;
    }
    if (final !== undefined) {
      if (script.responseFirst) events.unshift(final);
      else events.push(final);
    }
    return events;
  }

  #hangupAction(action: FakeAmiAction, reply: FakeAmiReply): void {
    const target = action.get('Channel');
    if (!target) {
      reply.respond('Error', { Message: 'No channel specified' });
      return;
    }
    const cause = Number(action.get('Cause') ?? '16') || 16;
    const regex = /^\/(.*)\/$/.exec(target);
    const matched = regex
      ? [...this.channels.values()].filter((c) => new RegExp(regex[1]!).test(c.name))
      : [this.findChannel(target)].filter((c): c is FakeChannel => c !== undefined);
    if (matched.length === 0) {
      reply.respond('Error', { Message: 'No such channel' });
      return;
    }
    reply.respond('Success', { Message: regex ? `${matched.length} channels hung up.` : 'Channel Hungup' });
    for (const channel of matched) this.hangup(channel, cause);
  }

  /** Hangs a channel (and its Local peer) up: SoftHangupRequest, HangupRequest, Hangup events, as in the fixture. */
  hangup(channel: FakeChannel, cause = 16): void {
    const causeFields: Pairs = [['Cause', cause]];
    this.#broadcastCall('SoftHangupRequest', [...snapshot(channel), ...causeFields]);
    if (channel.peer) this.#broadcastCall('HangupRequest', [...snapshot(channel.peer), ...causeFields]);
    this.#broadcastCall('Hangup', [...snapshot(channel), ...causeFields, ['Cause-txt', hangupCauseText(cause)]]);
    this.channels.delete(channel.name);
    const peer = channel.peer;
    if (peer && this.channels.has(peer.name)) {
      this.#broadcastCall('SoftHangupRequest', [...snapshot(peer), ...causeFields]);
      this.#broadcastCall('Hangup', [...snapshot(peer), ...causeFields, ['Cause-txt', hangupCauseText(cause)]]);
      this.channels.delete(peer.name);
    }
  }

  #redirect(action: FakeAmiAction, reply: FakeAmiReply): void {
    const name = action.get('Channel');
    const context = action.get('Context');
    const exten = action.get('Exten');
    const priority = action.get('Priority');
    if (!name) return reply.respond('Error', { Message: 'Channel not specified' });
    if (!context) return reply.respond('Error', { Message: 'Context not specified' });
    if (!exten) return reply.respond('Error', { Message: 'Exten not specified' });
    if (!priority) return reply.respond('Error', { Message: 'Priority not specified' });
    const pri = Number.parseInt(priority, 10);
    if (!(pri >= 1)) return reply.respond('Error', { Message: 'Priority is invalid' });
    const channel = this.findChannel(name);
    if (!channel) return reply.respond('Error', { Message: `Channel does not exist: ${name}` });
    reply.respond('Success', { Message: 'Redirect successful' });
    channel.context = context;
    channel.exten = exten;
    channel.priority = pri;
    this.#broadcast('Newexten', [...snapshot(channel), ['Extension', exten], ['Application', 'Wait'], ['AppData', '60']], 'dialplan,all');
  }

  #setvar(action: FakeAmiAction, reply: FakeAmiReply): void {
    const variable = action.get('Variable');
    if (!variable) return reply.respond('Error', { Message: 'No variable specified' });
    const name = action.get('Channel');
    const value = action.get('Value') ?? '';
    if (name) {
      const channel = this.findChannel(name);
      if (!channel) return reply.respond('Error', { Message: 'No such channel' });
      channel.vars.set(variable, value);
      reply.respond('Success', { Message: 'Variable Set' });
      // The VarSet event follows the response and escapes double quotes (fixture notes).
      this.#broadcast('VarSet', [...snapshot(channel), ['Variable', variable], ['Value', escapeVarSet(value)]], 'dialplan,all');
      return;
    }
    this.globals.set(variable, value);
    reply.respond('Success', { Message: 'Variable Set' });
  }

  #getvar(action: FakeAmiAction, reply: FakeAmiReply): void {
    const variable = action.get('Variable');
    if (!variable) return reply.respond('Error', { Message: 'No variable specified' });
    const name = action.get('Channel');
    let vars = this.globals;
    if (name) {
      const channel = this.findChannel(name);
      if (!channel) return reply.respond('Error', { Message: 'No such channel' });
      vars = channel.vars;
    }
    // `astman_start_ack`: Response and ActionID, no Message; an unset variable has an empty Value.
    reply.respond('Success', { Variable: variable, Value: vars.get(variable) ?? '' });
  }

  #playDtmf(action: FakeAmiAction, reply: FakeAmiReply): void {
    const name = action.get('Channel');
    const digit = action.get('Digit');
    if (!name) return reply.respond('Error', { Message: 'Channel not specified' });
    if (!digit) return reply.respond('Error', { Message: 'No digit specified' });
    const channel = this.findChannel(name);
    // protocols.md §3.4: PlayDTMF (app_senddtmf) says "Channel not found", not "No such channel".
    if (!channel) return reply.respond('Error', { Message: 'Channel not found' });
    reply.respond('Success', { Message: 'DTMF successfully queued' });
  }

  #coreShowChannels(action: FakeAmiAction, reply: FakeAmiReply): void {
    const actionId = action.actionId;
    const idPair: Pairs = actionId ? [['ActionID', actionId]] : [];
    const parts = [
      formatMessage([['Response', 'Success'], ...idPair, ['EventList', 'start'], ['Message', 'Channels will follow']]),
    ];
    for (const channel of this.channels.values()) {
      parts.push(formatMessage([
        ['Event', 'CoreShowChannel'], ...idPair, ...snapshot(channel),
        ['Application', channel.application], ['ApplicationData', channel.applicationData],
        ['Duration', '00:00:02'], ['BridgeId', ''],
      ]));
    }
    parts.push(formatMessage([
      ['Event', 'CoreShowChannelsComplete'], ...idPair, ['EventList', 'Complete'], ['ListItems', this.channels.size],
    ]));
    // One write: the response and the Complete event share a chunk (protocols.md §3.3).
    reply.raw(parts.join(''));
  }

  // ---- writing ---------------------------------------------------------------------------------

  #broadcastCall(name: string, fields: Pairs): void {
    this.#broadcast(name, fields, 'call,all');
  }

  #broadcast(name: string, fields: Pairs, privilege: string): void {
    this.emitEvent(name, fields, privilege);
  }

  /** Queues a write; responses are captured instead while replies are held. */
  #write(session: Session, text: string | Buffer, isResponse: boolean): void {
    if (isResponse && this.#held !== undefined) {
      this.#held.push({ session, text: text.toString() });
      return;
    }
    session.queue = session.queue.then(() => this.#writeNow(session, text)).catch(() => {});
  }

  async #writeNow(session: Session, text: string | Buffer): Promise<void> {
    const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
    const offsets = this.splitWrites ? [...this.splitWrites(bytes)].sort((a, b) => a - b) : [];
    let start = 0;
    for (const offset of [...offsets, bytes.length]) {
      if (offset <= start || offset > bytes.length) continue;
      if (session.socket.destroyed) return;
      session.socket.write(bytes.subarray(start, offset));
      start = offset;
      if (start < bytes.length) await delay(this.splitDelayMs);
    }
  }

  /** Ends a session after everything queued for it has been written (Logoff, failed login). */
  #end(session: Session): void {
    session.closing = true;
    session.queue = session.queue.then(() => {
      session.socket.end();
    });
  }

  #destroy(session: Session, reset: boolean): void {
    session.closing = true;
    if (reset) session.socket.resetAndDestroy();
    else session.socket.destroy();
    this.#sessions.delete(session);
  }

  #nextUniqueid(): string {
    return `${this.#startedAtSec}.${this.#uniqueSeq++}`;
  }

  async #waitFor<T>(probe: () => T | undefined, on: keyof FakeAmiEvents, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = probe();
      if (found !== undefined) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`FakeAmi: timed out after ${timeoutMs} ms waiting for ${what}`);
      await Promise.race([once(this.#emitter, on), delay(Math.min(left, 50))]);
    }
  }
}

type Pairs = ReadonlyArray<readonly [string, string | number]>;

function fieldPairs(fields: FakeFields): Pairs {
  return Array.isArray(fields) ? (fields as Pairs) : Object.entries(fields as Record<string, string | number>);
}

/** `Key: Value\r\n` lines and the closing empty line. */
function formatMessage(pairs: Pairs): string {
  return `${pairs.map(([key, value]) => `${key}: ${value}\r\n`).join('')}\r\n`;
}

/** The channel snapshot every channel event carries (protocols.md §3.5); `Dest` etc. prefix each key. */
function snapshot(channel: FakeChannel, prefix = ''): Pairs {
  const connected = channel.state === 6 ? channel.callerIdNum : '<unknown>';
  const connectedName = channel.state === 6 ? channel.callerIdName : '<unknown>';
  const pairs: Pairs = [
    ['Channel', channel.name],
    ['ChannelState', channel.state],
    ['ChannelStateDesc', STATE_DESC[channel.state] ?? `Unknown (${channel.state})`],
    ['CallerIDNum', channel.callerIdNum],
    ['CallerIDName', channel.callerIdName],
    ['ConnectedLineNum', connected],
    ['ConnectedLineName', connectedName],
    ['Language', 'en'],
    ['AccountCode', ''],
    ['Context', channel.context],
    ['Exten', channel.exten],
    ['Priority', channel.priority],
    ['Uniqueid', channel.uniqueid],
    ['Linkedid', channel.linkedid],
  ];
  return pairs.map(([key, value]) => [`${prefix}${key}`, value] as const);
}

/** main/channel.c `ast_state2str`. */
const STATE_DESC: Readonly<Record<number, string>> = {
  0: 'Down', 1: 'Rsrvd', 2: 'OffHook', 3: 'Dialing', 4: 'Ring', 5: 'Ringing', 6: 'Up', 7: 'Busy', 8: 'Dialing Offhook', 9: 'Pre-ring',
};

/** `Local/exten@context[/n]` → its parts; other technologies are single channels. */
function parseDial(dial: string): { local: boolean; exten: string; context: string } {
  const local = /^Local\/([^@/]+)@([^/]+)/i.exec(dial);
  if (local) return { local: true, exten: local[1]!, context: local[2]! };
  return { local: false, exten: 's', context: 'default' };
}

/** `"Name" <num>` or a bare number. */
function parseCallerId(callerId: string | undefined): { num: string; name: string } {
  if (!callerId) return { num: '<unknown>', name: '<unknown>' };
  const match = /^\s*"?([^"<]*?)"?\s*<([^>]*)>\s*$/.exec(callerId);
  if (match) return { num: match[2] || '<unknown>', name: match[1] || '<unknown>' };
  return { num: callerId.trim(), name: '<unknown>' };
}

/** Originate `Variable`: comma-separated `n=v`, double quotes group, `\` escapes (protocols.md §3.4). */
function parseVariables(text: string): Array<[string, string]> {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '\\' && i + 1 < text.length) {
      current += text[++i];
    } else if (ch === '"') {
      quoted = !quoted;
    } else if (ch === ',' && !quoted) {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts
    .map((part) => {
      const eq = part.indexOf('=');
      return eq === -1 ? undefined : ([part.slice(0, eq), part.slice(eq + 1)] as [string, string]);
    })
    .filter((pair): pair is [string, string] => pair !== undefined);
}

/** The VarSet event backslash-escapes double quotes (fixture: `\"quoted\"`), Getvar does not. */
function escapeVarSet(value: string): string {
  return value.replace(/"/g, '\\"');
}

/** Deterministic Fisher–Yates with a small LCG. */
function shuffle<T>(items: T[], seed: number): void {
  let state = seed >>> 0 || 1;
  for (let i = items.length - 1; i > 0; i--) {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    const j = state % (i + 1);
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}
