import { randomUUID } from 'node:crypto';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Clock } from '../audio/clock.js';
import type { FrameClock } from '../audio/frame-clock.js';
import type { AgentProvider, CallContext } from '../agent/types.js';
import type { MediaConnection, MediaHandler } from '../asterisk/audiosocket/server.js';
import type { AssignStatus, CallEventSink, CallOutcome, CallSource } from './events.js';
import { CallSession, type CallSnapshot } from './session.js';
import { describeError, isBridgeError } from '../errors.js';

/** Where Asterisk should send a call's audio: the shared port, or a port of its own (pool mode). */
export interface MediaEndpoints {
  /** Returns "host:port" for AI_AUDIOSOCKET; rejects AUDIOSOCKET_POOL_EXHAUSTED when none is free. */
  reserve(callId: string): Promise<string>;
  /** Gives a reserved endpoint back; safe to call more than once. */
  release(callId: string): void;
}

export interface AssignRequest {
  /** Undefined when the dialplan named no agent. */
  readonly agentName: string | undefined;
  readonly source: CallSource;
  readonly context: Omit<CallContext, 'callId' | 'agentName'>;
  /** Aborts the agent start, e.g. when the caller hangs up during ringback. */
  readonly signal?: AbortSignal | undefined;
}

export type AssignResult =
  | { readonly status: 'READY'; readonly callId: string; readonly agent: string; readonly audiosocket: string; readonly session: CallSession }
  | { readonly status: Exclude<AssignStatus, 'READY'>; readonly agent: string; readonly error: string; readonly callId?: string | undefined };

export interface CallRegistryOptions {
  readonly config: Config;
  readonly clock: Clock;
  readonly frameClock: FrameClock;
  readonly logger: Logger;
  readonly providers: ReadonlyMap<string, AgentProvider>;
  readonly endpoints: MediaEndpoints;
  readonly emit: CallEventSink;
}

/**
 * Every call the process knows: live ones, and finished ones whose outcome the result AGI may
 * still ask for. Issues UUIDs (capabilities: single use, expiring) and enforces limits.
 */
export class CallRegistry {
  readonly #o: CallRegistryOptions;
  readonly #log: Logger;
  readonly #live = new Map<string, CallSession>();
  /** Live calls by the Asterisk uniqueid of the channel that ran the AGI, for AMI events. */
  readonly #byUniqueid = new Map<string, CallSession>();
  /**
   * Ended calls by id, in end order, kept calls.resultTtlMs for the result AGI and /calls/:id. Only
   * the final snapshot is kept, not the session: a busy server ends thousands of calls per TTL, and
   * each session holds its context, logger and agent wiring.
   */
  readonly #finished = new Map<string, { snapshot: CallSnapshot; expiresAtMs: number }>();
  /** UUIDs that already had their one AudioSocket connection. */
  readonly #mediaClaimed = new Set<string>();
  #draining = false;

  constructor(options: CallRegistryOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'calls' });
  }

  get draining(): boolean {
    return this.#draining;
  }

  get liveCount(): number {
    return this.#live.size;
  }

  countForAgent(agentName: string): number {
    let count = 0;
    for (const session of this.#live.values()) if (session.agentName === agentName) count++;
    return count;
  }

  /**
   * The AGI asks for an agent: issue a UUID, reserve an AudioSocket endpoint and open the agent
   * (so the greeting is ready when media starts). Never throws: every failure is a status the
   * dialplan can route on.
   */
  async assign(request: AssignRequest): Promise<AssignResult> {
    const agentName = request.agentName ?? '';
    const refusal = this.admissionRefusal(agentName);
    if (refusal) return refusal;
    const agentConfig = this.#o.config.agents[agentName]!;
    const provider = this.#o.providers.get(agentName)!;
    const callId = randomUUID();
    let audiosocket: string;
    try {
      audiosocket = await this.#o.endpoints.reserve(callId);
    } catch (err) {
      const busy = isBridgeError(err, 'AUDIOSOCKET_POOL_EXHAUSTED');
      this.#log.warn({ callId, agent: agentName, err: describeError(err) }, 'no AudioSocket endpoint for the call');
      return { status: busy ? 'BUSY' : 'ERROR', agent: agentName, error: describeError(err) };
    }
    const session = this.#createSession(callId, agentName, request.source, request.context);
    const onAbort = (): void => session.hangup('caller hung up while the agent was connecting', 'CALLER_HANGUP');
    request.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const timeoutMs = agentConfig.provider === 'elevenlabs' ? agentConfig.connectTimeoutMs : 1_000;
      await session.startAgent(provider, timeoutMs);
      return { status: 'READY', callId, agent: agentName, audiosocket, session };
    } catch (err) {
      return { status: 'AGENT_UNAVAILABLE', agent: agentName, error: describeError(err), callId };
    } finally {
      request.signal?.removeEventListener('abort', onAbort);
    }
  }

  /** An AudioSocket connection presented `uuid`. Undefined refuses it (unknown, expired or reused). */
  acceptMedia(uuid: string, connection: MediaConnection): MediaHandler | undefined {
    const callId = uuid.toLowerCase();
    if (this.#mediaClaimed.has(callId)) {
      this.#log.warn({ callId, remote: connection.remoteAddress }, 'AudioSocket UUID reused: refused');
      return undefined;
    }
    this.#pruneFinished();
    if (this.#finished.has(callId)) {
      // An ended call still gets its one connection: 00 00 00 lets AudioSocket() return 0, so the
      // dialplan continues to the result AGI and its fallback (protocols.md §1.6) instead of hanging up.
      this.#mediaClaimed.add(callId);
      this.#log.info({ callId, remote: connection.remoteAddress }, 'media connected after the call ended: hanging it up so the dialplan continues');
      connection.hangup();
      return { onAudio() {}, onDtmf() {}, onClose() {} };
    }
    const session = this.#live.get(callId);
    if (!session || session.state !== 'pending') return undefined;
    this.#mediaClaimed.add(callId);
    return session.attachMedia(connection);
  }

  /**
   * A connection on a port bound to one agent (dialers that cannot run AGI): the dialer's UUID
   * becomes the call id, and the agent starts while silence already flows.
   */
  acceptBound(agentName: string, uuid: string, connection: MediaConnection): MediaHandler | undefined {
    const callId = uuid.toLowerCase();
    if (this.#live.has(callId) || this.#finished.has(callId) || this.#mediaClaimed.has(callId)) {
      this.#log.warn({ callId, agent: agentName }, 'bound AudioSocket UUID already used: refused');
      return undefined;
    }
    const refusal = this.admissionRefusal(agentName);
    if (refusal) {
      this.#log.warn({ callId, agent: agentName, status: refusal.status, error: refusal.error }, 'bound call refused');
      return undefined;
    }
    const agentConfig = this.#o.config.agents[agentName]!;
    const session = this.#createSession(callId, agentName, 'binding', { args: [], query: {}, vars: {} });
    this.#mediaClaimed.add(callId);
    const handler = session.attachMedia(connection);
    const timeoutMs = agentConfig.provider === 'elevenlabs' ? agentConfig.connectTimeoutMs : 1_000;
    session.startAgent(this.#o.providers.get(agentName)!, timeoutMs).catch(() => {
      // startAgent already ended the call with AGENT_ERROR and logged why.
    });
    return handler;
  }

  /**
   * The outcome for the result AGI. If the call is still running, waits up to waitMs for it to end
   * (in the dialplan the result AGI runs right after AudioSocket() returns).
   */
  async outcome(callId: string, waitMs: number): Promise<CallOutcome | undefined> {
    const id = callId.toLowerCase();
    this.#pruneFinished();
    const finished = this.#finished.get(id);
    if (finished) return finished.snapshot.outcome;
    const live = this.#live.get(id);
    if (!live) return undefined;
    if (live.state === 'pending') {
      // The dialplan only asks for the result after AudioSocket() returned: if the media never
      // connected, it never will, so the call ends now instead of holding its slot until uuidTtlMs.
      live.hangup('the result was requested but AudioSocket never connected', 'TIMEOUT', 'CALL_TIMEOUT: AudioSocket never connected (check AI_AUDIOSOCKET reachability and that the channel was answered)');
      return live.outcome;
    }
    let timer: ReturnType<Clock['setTimer']> | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = this.#o.clock.setTimer(() => resolve(undefined), waitMs);
    });
    try {
      return await Promise.race([live.ended, timeout]);
    } finally {
      if (timer) this.#o.clock.clearTimer(timer);
    }
  }

  /** The live call whose AGI ran on the channel with this Asterisk uniqueid. */
  byUniqueid(uniqueid: string): CallSession | undefined {
    return this.#byUniqueid.get(uniqueid);
  }

  /** The live call with this id; ended calls are only a snapshot (see snapshot()). */
  get(callId: string): CallSession | undefined {
    return this.#live.get(callId.toLowerCase());
  }

  /** A live call's current snapshot, or an ended call's last one while its outcome is kept. */
  snapshot(callId: string): CallSnapshot | undefined {
    const id = callId.toLowerCase();
    this.#pruneFinished();
    return this.#live.get(id)?.snapshot() ?? this.#finished.get(id)?.snapshot;
  }

  /** Whether the id is a live call or an ended one whose outcome is still kept. */
  knows(callId: string): boolean {
    const id = callId.toLowerCase();
    this.#pruneFinished();
    return this.#live.has(id) || this.#finished.has(id);
  }

  list(): CallSnapshot[] {
    return [...this.#live.values()].map((session) => session.snapshot());
  }

  /** Ends a live call from outside (status API, CLI). */
  hangup(callId: string, reason: string): boolean {
    const session = this.#live.get(callId.toLowerCase());
    if (!session) return false;
    session.hangup(reason);
    return true;
  }

  /** Stops taking new calls; live calls continue. */
  drain(): void {
    this.#draining = true;
  }

  /** Resolves when no call is live, or after timeoutMs. */
  async waitIdle(timeoutMs: number): Promise<boolean> {
    const deadlineMs = this.#o.clock.now() + timeoutMs;
    while (this.#live.size > 0 && this.#o.clock.now() < deadlineMs) {
      await Promise.race([
        Promise.allSettled([...this.#live.values()].map((s) => s.ended)),
        new Promise<void>((resolve) => this.#o.clock.setTimer(resolve, Math.max(0, deadlineMs - this.#o.clock.now()))),
      ]);
    }
    return this.#live.size === 0;
  }

  /** Ends every live call (shutdown). */
  close(): void {
    this.#draining = true;
    for (const session of [...this.#live.values()]) session.hangup('ai-call is shutting down');
  }

  /**
   * Why a new call for `agentName` cannot be taken now, or undefined if it can. `reserved` counts
   * calls already promised to the agent (originates still dialling).
   */
  admissionRefusal(agentName: string, reserved = 0): Extract<AssignResult, { status: Exclude<AssignStatus, 'READY'> }> | undefined {
    if (this.#draining) return { status: 'DRAINING', agent: agentName, error: 'CALL_DRAINING: ai-call is shutting down' };
    const agentConfig = Object.hasOwn(this.#o.config.agents, agentName) ? this.#o.config.agents[agentName] : undefined;
    if (!agentConfig || !this.#o.providers.has(agentName)) {
      return { status: 'UNKNOWN_AGENT', agent: agentName, error: `AGENT_UNKNOWN: no agent named "${agentName}"` };
    }
    if (this.#live.size + reserved >= this.#o.config.calls.maxConcurrent) {
      return { status: 'BUSY', agent: agentName, error: `CALL_BUSY: ${this.#live.size} calls live (calls.maxConcurrent)` };
    }
    if (agentConfig.maxConcurrent !== undefined && this.countForAgent(agentName) + reserved >= agentConfig.maxConcurrent) {
      return { status: 'BUSY', agent: agentName, error: `CALL_BUSY: agent ${agentName} carries its maximum of ${agentConfig.maxConcurrent} calls` };
    }
    return undefined;
  }

  #createSession(callId: string, agentName: string, source: CallSource, context: Omit<CallContext, 'callId' | 'agentName'>): CallSession {
    const session = new CallSession({
      callId,
      agentName,
      agentConfig: this.#o.config.agents[agentName]!,
      context: Object.freeze({ ...context, callId, agentName }),
      source,
      calls: this.#o.config.calls,
      mediaTimeoutMs: this.#o.config.audiosocket.uuidTtlMs,
      clock: this.#o.clock,
      frameClock: this.#o.frameClock,
      logger: this.#o.logger,
      emit: this.#o.emit,
      onEnded: (ended) => this.#onSessionEnded(ended),
    });
    this.#live.set(callId, session);
    if (context.uniqueid !== undefined) this.#byUniqueid.set(context.uniqueid, session);
    return session;
  }

  #onSessionEnded(session: CallSession): void {
    this.#live.delete(session.callId);
    const uniqueid = session.context.uniqueid;
    if (uniqueid !== undefined && this.#byUniqueid.get(uniqueid) === session) this.#byUniqueid.delete(uniqueid);
    this.#o.endpoints.release(session.callId);
    const snapshot = session.snapshot();
    Object.freeze(snapshot.stats);
    this.#finished.set(session.callId, { snapshot: Object.freeze(snapshot), expiresAtMs: this.#o.clock.now() + this.#o.config.calls.resultTtlMs });
    this.#pruneFinished();
  }

  /** Finished calls are kept in end order, so expired ones are always at the front. */
  #pruneFinished(): void {
    const nowMs = this.#o.clock.now();
    for (const [callId, entry] of this.#finished) {
      if (entry.expiresAtMs > nowMs) break;
      this.#finished.delete(callId);
      this.#mediaClaimed.delete(callId);
    }
  }
}

