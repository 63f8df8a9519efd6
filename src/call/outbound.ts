/**
 * Outbound calls and call control over AMI.
 *
 *   originate(to, agent) ─► AMI Originate (Async, ChannelId = id)
 *        Channel: Local/<to>@<outbound context>     ← the admin's own context dials the number
 *        on answer: Context <agent context>, Exten <agent>, Priority 1   ← generated dialplan runs the AGI
 *   OriginateResponse ─► answered | busy | no-answer | congestion | failed   (status stream, CLI, API)
 *   AGI from that channel: agi_uniqueid = id ─► claim(id) hands the call's variables to the agent
 *
 * Every value that reaches AMI is validated here, so no input can name another channel, reach another
 * context than the configured ones, or inject AMI headers (the AMI encoder refuses CR/LF as well).
 */
import { randomUUID } from 'node:crypto';
import type { Config } from '../config/schema.js';
import { DIALPLAN_NAME } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Clock } from '../audio/clock.js';
import type { AmiClient } from '../asterisk/ami/client.js';
import type { AmiMessage } from '../asterisk/ami/parser.js';
import { hangupCauseText, originateReason } from '../asterisk/ami/protocol.js';
import type { CallRegistry } from './registry.js';
import { BridgeError, describeError } from '../errors.js';

export interface OriginateRequest {
  /** The number to call, dialled through the outbound context. */
  readonly to: string;
  readonly agent: string;
  /** The admin's context that dials out (default ami.outboundContext). */
  readonly via: string;
  /** `"Name" <number>`, `Name <number>` or a bare number. */
  readonly callerId: string | undefined;
  /** Handed to the agent as dynamic variables and set on the channel as AI_VAR_<NAME>. */
  readonly vars: Readonly<Record<string, string>>;
  readonly timeoutS: number;
}

export type OriginateOutcome = 'queued' | 'answered' | 'busy' | 'no-answer' | 'congestion' | 'failed' | 'hangup' | 'refused' | 'timeout';

export interface OriginateResult {
  readonly id: string;
  readonly to: string;
  readonly agent: string;
  readonly outcome: OriginateOutcome;
  /** Human-readable: OriginateResponse reason and hangup cause, or why it was refused. */
  readonly reason: string;
  readonly cause?: number | undefined;
}

const NUMBER = /^\+?[0-9*#]{1,32}$/;
const VARIABLE_NAME = /^(?!system__)[A-Za-z][A-Za-z0-9_]{0,63}$/;
const CALLER_NAME = /^[\p{L}\p{N} .,'_-]{0,40}$/u;
const CALLER_NUMBER = /^\+?[0-9]{1,20}$/;
const MAX_VARS = 32;
const MAX_VALUE_CHARS = 512;
/** A failed originate's Hangup event may trail its OriginateResponse; wait this long for the cause. */
const CAUSE_WAIT_MS = 300;
/** Claims (originate id → variables) older than this are dropped: the call was never answered. */
const CLAIM_TTL_MS = 10 * 60_000;

/** Validates a request from the CLI or POST /calls; every problem is an INPUT_INVALID naming the field. */
export function parseOriginateRequest(body: unknown, config: Config): OriginateRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('the request must be a JSON object');
  const input = body as Record<string, unknown>;
  const allowed = new Set(['to', 'agent', 'via', 'callerId', 'vars', 'timeoutS', 'wait']);
  for (const key of Object.keys(input)) if (!allowed.has(key)) throw invalid(`unknown field "${key}"`);
  const to = String(input['to'] ?? '');
  if (!NUMBER.test(to)) throw invalid('to: expected a number of 1-32 digits, *, #, optionally starting with +');
  const agent = String(input['agent'] ?? '');
  if (!Object.hasOwn(config.agents, agent)) throw invalid(`agent: no agent named "${agent.slice(0, 64)}"`);
  const via = input['via'] === undefined ? (config.ami?.outboundContext ?? 'from-internal') : String(input['via']);
  if (!DIALPLAN_NAME.test(via)) throw invalid('via: expected a context name of letters, digits, "_" or "-"');
  const callerId = input['callerId'] === undefined ? undefined : formatCallerId(String(input['callerId']));
  const vars: Record<string, string> = {};
  const rawVars = input['vars'] ?? {};
  if (typeof rawVars !== 'object' || rawVars === null || Array.isArray(rawVars)) throw invalid('vars: expected an object of NAME: value');
  const entries = Object.entries(rawVars as Record<string, unknown>);
  if (entries.length > MAX_VARS) throw invalid(`vars: at most ${MAX_VARS} variables`);
  for (const [name, value] of entries) {
    if (!VARIABLE_NAME.test(name)) throw invalid(`vars: "${name.slice(0, 64)}" is not a valid name (letters, digits, _; not system__)`);
    const text = typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : undefined;
    if (text === undefined) throw invalid(`vars.${name}: expected a string, number or boolean`);
    if (text.length > MAX_VALUE_CHARS || /[\r\n\0]/.test(text)) throw invalid(`vars.${name}: at most ${MAX_VALUE_CHARS} characters and no line breaks`);
    vars[name] = text;
  }
  const timeoutS = input['timeoutS'] === undefined ? 30 : Number(input['timeoutS']);
  if (!Number.isInteger(timeoutS) || timeoutS < 5 || timeoutS > 300) throw invalid('timeoutS: expected whole seconds from 5 to 300');
  return { to, agent, via, callerId, vars, timeoutS };
}

function formatCallerId(value: string): string {
  const match = /^\s*(?:"?([^"<>]*?)"?\s*<([^<>]+)>|([^<>"]+))\s*$/.exec(value);
  const name = (match?.[1] ?? '').trim();
  const number = (match?.[2] ?? match?.[3] ?? '').trim();
  if (!match || !CALLER_NUMBER.test(number) || !CALLER_NAME.test(name)) {
    throw invalid('callerId: expected a number, or Name <number> (name: letters, digits, spaces, . , \' _ -)');
  }
  return name ? `"${name}" <${number}>` : number;
}

/** An Originate `Variable` value: quoted so commas stay inside one variable (protocols.md §3.4). */
function originateVariable(name: string, value: string): string {
  return `${name}="${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

function invalid(message: string): BridgeError {
  return new BridgeError('INPUT_INVALID', message);
}

export interface OutboundOptions {
  readonly config: Config;
  readonly ami: AmiClient;
  readonly registry: CallRegistry;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Sends a non-call event to the status stream. */
  readonly publish: (type: string, payload: Record<string, unknown>) => void;
}

interface PendingOriginate {
  readonly request: OriginateRequest;
  readonly createdAtMs: number;
}

export class OutboundCalls {
  readonly #o: OutboundOptions;
  readonly #log: Logger;
  /** Originated calls not yet claimed by their AGI, by originate id (= the channel's uniqueid). */
  readonly #pending = new Map<string, PendingOriginate>();
  /** Hangup causes of originated channels, by uniqueid, until their result is reported. */
  readonly #causes = new Map<string, number>();

  constructor(options: OutboundOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'originate' });
  }

  /** Called for every AMI event: remembers hangup causes of the channels we originated. */
  onAmiEvent(event: AmiMessage): void {
    if (event.event !== 'Hangup') return;
    const uniqueid = event.get('Uniqueid') ?? '';
    const id = uniqueid.endsWith(';2') ? uniqueid.slice(0, -2) : uniqueid;
    if (!this.#pending.has(id)) return;
    const cause = Number(event.get('Cause'));
    if (Number.isInteger(cause) && cause > 0 && !this.#causes.has(id)) this.#causes.set(id, cause);
  }

  /**
   * Queues the call. Resolves once Asterisk accepted the Originate, with the final result as a
   * promise. A concurrency limit or a bad request rejects at once: a clear refusal, not a failed call.
   */
  async originate(request: OriginateRequest): Promise<{ id: string; result: Promise<OriginateResult> }> {
    const ami = this.#o.config.ami;
    if (!ami) throw new BridgeError('AMI_NOT_CONFIGURED', 'originate needs an ami: section in the config');
    this.#prune();
    // Calls being dialled count against the agent's limit before they reach the AGI.
    const reservedForAgent = [...this.#pending.values()].filter((p) => p.request.agent === request.agent).length;
    const refusal = this.#o.registry.admissionRefusal(request.agent, reservedForAgent);
    if (refusal) throw new BridgeError(refusal.status === 'DRAINING' ? 'CALL_DRAINING' : 'CALL_BUSY', refusal.error);

    const id = randomUUID();
    const variables = [
      `AI_ORIGINATE_ID=${id}`,
      `AI_AGENT=${request.agent}`,
      ...Object.entries(request.vars).map(([name, value]) => originateVariable(`AI_VAR_${name}`, value)),
    ];
    const pending: PendingOriginate = { request, createdAtMs: this.#o.clock.now() };
    this.#pending.set(id, pending);
    let queued: Awaited<ReturnType<AmiClient['originate']>>;
    try {
      queued = await this.#o.ami.originate({
        Channel: `Local/${request.to}@${request.via}`,
        Context: ami.agentContext,
        Exten: request.agent,
        Priority: 1,
        Timeout: request.timeoutS * 1000,
        CallerID: request.callerId,
        ChannelId: id,
        Variable: variables,
      });
    } catch (err) {
      this.#pending.delete(id);
      throw err;
    }
    this.#log.info({ id, to: request.to, agent: request.agent, via: request.via }, 'originate queued');
    this.#o.publish('originate.queued', { id, to: request.to, agent: request.agent, via: request.via, at: this.#o.clock.wallNow() });
    const result = this.#awaitResult(id, request, queued.result);
    return { id, result };
  }

  /** The AGI of an answered originated call asks for its variables (by agi_uniqueid). */
  claim(uniqueid: string | undefined): { vars: Readonly<Record<string, string>>; agent: string } | undefined {
    if (uniqueid === undefined) return undefined;
    const pending = this.#pending.get(uniqueid);
    if (!pending) return undefined;
    return { vars: pending.request.vars, agent: pending.request.agent };
  }

  /** The claimed originate became ai-call call `callId`: report the link and forget the originate. */
  linkCall(uniqueid: string | undefined, callId: string): void {
    if (uniqueid === undefined || !this.#pending.delete(uniqueid)) return;
    this.#o.publish('originate.linked', { id: uniqueid, callId, at: this.#o.clock.wallNow() });
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  // ── call control ───────────────────────────────────────────────────────────────────────────

  /** Hangs up the Asterisk channel of a live call (the whole phone call, not just the agent leg). */
  async hangupChannel(callId: string): Promise<void> {
    await this.#o.ami.action('Hangup', { Channel: this.#channelOf(callId), Cause: 16 });
  }

  /** Moves a live call's channel to a dialplan target; the AudioSocket ends and the channel continues there. */
  async redirect(callId: string, target: unknown): Promise<string> {
    const { context, exten, priority } = parseTarget(target);
    const channel = this.#channelOf(callId);
    const destination = `${context},${exten},${priority}`;
    const session = this.#o.registry.get(callId);
    session?.expectRedirect(destination);
    try {
      await this.#o.ami.action('Redirect', { Channel: channel, Context: context, Exten: exten, Priority: priority });
    } catch (err) {
      session?.expectRedirect(undefined);
      throw err;
    }
    return destination;
  }

  /** Sets channel variables on a live call, e.g. results for a call that cannot run the result AGI. */
  async setVariables(callId: string, body: unknown): Promise<string[]> {
    const channel = this.#channelOf(callId);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('expected an object of NAME: value');
    const entries = Object.entries(body as Record<string, unknown>);
    if (entries.length === 0 || entries.length > MAX_VARS) throw invalid(`expected 1-${MAX_VARS} variables`);
    for (const [name, value] of entries) {
      if (!/^_{0,2}[A-Za-z][A-Za-z0-9_]{0,63}$/.test(name)) throw invalid(`"${name.slice(0, 64)}" is not a channel variable name`);
      if (typeof value !== 'string' || value.length > MAX_VALUE_CHARS || /[\r\n\0]/.test(value)) throw invalid(`${name}: expected a string without line breaks`);
    }
    for (const [name, value] of entries) await this.#o.ami.action('Setvar', { Channel: channel, Variable: name, Value: value as string });
    return entries.map(([name]) => name);
  }

  #channelOf(callId: string): string {
    const session = this.#o.registry.get(callId);
    if (!session || session.state === 'ended') throw new BridgeError('CALL_NOT_FOUND', `no live call with id "${callId.slice(0, 64)}"`);
    const channel = session.context.channel;
    if (!channel) throw new BridgeError('CALL_NOT_FOUND', 'the call has no known Asterisk channel (static binding)');
    return channel;
  }

  async #awaitResult(id: string, request: OriginateRequest, response: Promise<AmiMessage>): Promise<OriginateResult> {
    let result: OriginateResult;
    try {
      const message = await response;
      const outcome = message.get('Response') === 'Success' ? 'answered' : originateReason(message.get('Reason'));
      let cause = this.#causes.get(id);
      if (outcome !== 'answered' && cause === undefined) {
        await new Promise<void>((resolve) => this.#o.clock.setTimer(resolve, CAUSE_WAIT_MS));
        cause = this.#causes.get(id);
      }
      const mapped: OriginateOutcome = outcome === 'unknown' || outcome === 'ringing' ? 'failed' : outcome;
      result = {
        id,
        to: request.to,
        agent: request.agent,
        outcome: mapped,
        reason: `OriginateResponse ${message.get('Response') ?? '?'} reason ${message.get('Reason') ?? '?'} (${outcome})${cause !== undefined ? `, hangup cause ${cause} ${hangupCauseText(cause)}` : ''}`,
        cause,
      };
    } catch (err) {
      result = { id, to: request.to, agent: request.agent, outcome: 'timeout', reason: describeError(err) };
    }
    this.#causes.delete(id);
    if (result.outcome !== 'answered') this.#pending.delete(id);
    this.#log.info({ ...result }, 'originate result');
    this.#o.publish('originate.result', { ...result, at: this.#o.clock.wallNow() });
    return result;
  }

  #prune(): void {
    const oldest = this.#o.clock.now() - CLAIM_TTL_MS;
    for (const [id, pending] of this.#pending) if (pending.createdAtMs < oldest) this.#pending.delete(id);
  }
}

function parseTarget(target: unknown): { context: string; exten: string; priority: number } {
  if (typeof target !== 'object' || target === null) throw invalid('expected { context, exten, priority }');
  const t = target as Record<string, unknown>;
  const context = String(t['context'] ?? '');
  const exten = String(t['exten'] ?? '');
  const priority = t['priority'] === undefined ? 1 : Number(t['priority']);
  if (!DIALPLAN_NAME.test(context)) throw invalid('context: expected letters, digits, "_" or "-"');
  if (!/^[A-Za-z0-9*#+_-]{1,80}$/.test(exten)) throw invalid('exten: expected an extension');
  if (!Number.isInteger(priority) || priority < 1 || priority > 9999) throw invalid('priority: expected a whole number from 1');
  return { context, exten, priority };
}
