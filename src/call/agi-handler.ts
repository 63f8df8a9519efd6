/**
 * The AGI contract the dialplan depends on (docs/agi-contract.md):
 *
 *   AGI(agi://HOST:4573/ai-call?agent=NAME)          → AI_STATUS, AI_UUID, AI_AUDIOSOCKET, AI_AGENT, AI_ERROR
 *   AGI(agi://HOST:4573/ai-call/result?uuid=UUID)    → AI_RESULT, AI_TRANSFER_TO, AI_CONVERSATION_ID, AI_DURATION, AI_ERROR
 *   AGI(agi://HOST:4573/ai-call/run?agent=NAME)      → both, running AudioSocket itself with EXEC
 *
 * The agent name may also be the first AGI() argument: AGI(agi://HOST:4573/ai-call,NAME).
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { AgiSession } from '../asterisk/agi/server.js';
import type { CallContext } from '../agent/types.js';
import type { CallOutcome } from './events.js';
import type { AssignResult, CallRegistry } from './registry.js';
import type { OutboundCalls } from './outbound.js';
import { describeError } from '../errors.js';

export interface AgiHandlerOptions {
  readonly config: Config;
  readonly registry: CallRegistry;
  readonly logger: Logger;
  /** How long the result AGI waits for a call that is still ending. */
  readonly resultWaitMs?: number;
  /** Present with AMI: hands an originated call's variables to its agent. */
  readonly outbound?: OutboundCalls | undefined;
  /**
   * Worker mode: the result AGI can reach a worker that did not carry the call; this asks the
   * others. 'running' means the owner has the call and it has not ended within waitMs.
   */
  readonly remoteOutcome?: ((callId: string, waitMs: number) => Promise<CallOutcome | 'running' | undefined>) | undefined;
}

const SCRIPT_ASSIGN = 'ai-call';
const SCRIPT_RESULT = 'ai-call/result';
const SCRIPT_RUN = 'ai-call/run';
/** AI_ERROR is for a dialplan log line, not an essay. */
const MAX_ERROR_CHARS = 200;

export function createAgiHandler(options: AgiHandlerOptions): (session: AgiSession) => Promise<void> {
  const log = options.logger.child({ component: 'agi' });
  const resultWaitMs = options.resultWaitMs ?? 3_000;

  return async function handleAgiSession(agi: AgiSession): Promise<void> {
    const script = agi.request.script.replace(/^\/+|\/+$/g, '');
    const callLog = log.child({ uniqueid: agi.request.env['agi_uniqueid'], channel: agi.request.env['agi_channel'], script });
    switch (script) {
      case SCRIPT_ASSIGN: {
        await assign(agi, callLog);
        return;
      }
      case SCRIPT_RESULT: {
        const callId = agi.request.query['uuid'] ?? agi.request.args[0] ?? '';
        let outcome = await options.registry.outcome(callId, resultWaitMs);
        let running = options.registry.knows(callId);
        if (outcome === undefined && !running && options.remoteOutcome) {
          const remote = await options.remoteOutcome(callId, resultWaitMs);
          running = remote === 'running';
          outcome = remote === 'running' ? undefined : remote;
        }
        await setOutcomeVariables(agi, outcome, callId, running);
        return;
      }
      case SCRIPT_RUN: {
        const assigned = await assign(agi, callLog);
        if (assigned.status !== 'READY') return;
        await runMedia(agi, assigned, callLog);
        return;
      }
      default: {
        callLog.warn('unknown AGI script requested');
        await agi.setVariable('AI_STATUS', 'ERROR');
        await agi.setVariable('AI_ERROR', `unknown AGI script "${script}": use ai-call, ai-call/run or ai-call/result`.slice(0, MAX_ERROR_CHARS));
      }
    }
  };

  async function assign(agi: AgiSession, callLog: Logger): Promise<AssignResult> {
    const agentName = agi.request.query['agent'] ?? agi.request.args[0];
    const abort = new AbortController();
    const onHangup = (): void => abort.abort(new Error('channel hung up'));
    agi.once('hangup', onHangup);
    let result: AssignResult;
    try {
      const context = await buildContext(agi, agentName);
      result = await options.registry.assign({ agentName, source: 'agi', context, signal: abort.signal });
    } finally {
      agi.off('hangup', onHangup);
    }
    callLog.info({ status: result.status, agent: result.agent, callId: result.callId, error: result.status === 'READY' ? undefined : result.error }, 'agent requested');
    if (result.callId !== undefined) options.outbound?.linkCall(agi.request.env['agi_uniqueid'], result.callId);
    await agi.setVariable('AI_STATUS', result.status);
    await agi.setVariable('AI_AGENT', result.agent);
    await agi.setVariable('AI_UUID', result.callId ?? '');
    await agi.setVariable('AI_AUDIOSOCKET', result.status === 'READY' ? result.audiosocket : '');
    await agi.setVariable('AI_ERROR', result.status === 'READY' ? '' : shortError(result.error));
    return result;
  }

  /** Reads what the agent's templates may use: the AGI env, query, arguments and configured channel variables. */
  async function buildContext(agi: AgiSession, agentName: string | undefined): Promise<Omit<CallContext, 'callId' | 'agentName'>> {
    const env = agi.request.env;
    const known = (value: string | undefined): string | undefined => (value === undefined || value === '' || value === 'unknown' ? undefined : value);
    const vars: Record<string, string> = {};
    const agentConfig = agentName !== undefined && Object.hasOwn(options.config.agents, agentName) ? options.config.agents[agentName] : undefined;
    if (agentConfig?.provider === 'elevenlabs') {
      for (const name of agentConfig.channelVariables) {
        const value = await agi.getVariable(name);
        if (value !== undefined) vars[name] = value;
      }
    }
    // An originated call (ai-call originate, POST /calls) brings the variables it was given.
    const originated = options.outbound?.claim(env['agi_uniqueid']);
    if (originated) Object.assign(vars, originated.vars);
    return {
      dynamicVariables: originated?.vars,
      callerId: known(env['agi_callerid']),
      callerName: known(env['agi_calleridname']),
      dnid: known(env['agi_dnid']),
      extension: known(env['agi_extension']),
      context: known(env['agi_context']),
      channel: known(env['agi_channel']),
      uniqueid: known(env['agi_uniqueid']),
      args: agi.request.args,
      query: agi.request.query,
      vars,
    };
  }

  /** The one-line form: answer, carry the media with EXEC, then hand the outcome to the dialplan. */
  async function runMedia(agi: AgiSession, assigned: Extract<AssignResult, { status: 'READY' }>, callLog: Logger): Promise<void> {
    const wideband = options.config.agents[assigned.agent]?.wideband ?? false;
    try {
      await agi.answer();
      // protocols.md §2.5: EXEC blocks for the whole call, so it runs without a command timeout.
      const reply = wideband
        ? // g: Dial returns to us when the AudioSocket leg ends instead of failing the caller (protocols.md §1.4).
          await agi.exec('Dial', `AudioSocket/${assigned.audiosocket}/${assigned.callId}/c(slin16),,g`)
        : await agi.exec('AudioSocket', `${assigned.callId},${assigned.audiosocket}`);
      if (reply.result < 0 && assigned.session.state === 'pending') {
        // -2: the application is not loaded; -1: it failed before connecting.
        assigned.session.hangup(`EXEC ${wideband ? 'Dial' : 'AudioSocket'} returned ${reply.result}`, 'AGENT_ERROR');
      }
    } catch (err) {
      callLog.warn({ err: describeError(err) }, 'run: media step failed');
      if (assigned.session.state === 'pending') assigned.session.hangup(`run failed: ${describeError(err)}`, 'AGENT_ERROR');
    }
    const outcome = await options.registry.outcome(assigned.callId, resultWaitMs);
    // SET VARIABLE is allowed on a dead channel (protocols.md §2.5), so h-extension logic still sees it.
    await setOutcomeVariables(agi, outcome, assigned.callId).catch((err: unknown) => {
      callLog.debug({ err: describeError(err) }, 'run: could not set result variables');
    });
  }

  async function setOutcomeVariables(agi: AgiSession, outcome: CallOutcome | undefined, callId: string, known = options.registry.knows(callId)): Promise<void> {
    if (!outcome) {
      await agi.setVariable('AI_RESULT', 'AGENT_ERROR');
      await agi.setVariable('AI_TRANSFER_TO', '');
      await agi.setVariable('AI_CONVERSATION_ID', '');
      await agi.setVariable('AI_DURATION', '0');
      await agi.setVariable('AI_ERROR', known ? 'CALL_TIMEOUT: the call is still running' : `CALL_NOT_FOUND: no call with uuid "${callId.slice(0, 64)}"`);
      return;
    }
    await agi.setVariable('AI_RESULT', outcome.result);
    await agi.setVariable('AI_TRANSFER_TO', outcome.transferTo);
    await agi.setVariable('AI_CONVERSATION_ID', outcome.conversationId);
    await agi.setVariable('AI_DURATION', String(outcome.durationS));
    await agi.setVariable('AI_ERROR', shortError(outcome.error));
  }
}

function shortError(error: string): string {
  return error.replace(/[\r\n]+/g, ' ').slice(0, MAX_ERROR_CHARS);
}
