import type { Outgoing } from '@elevenlabs/types';
import { BridgeError, type ErrorCode } from '../../errors.js';

/**
 * The ElevenLabs agent WebSocket vocabulary (protocols.md §4, specs/elevenlabs-agent.asyncapi.yaml).
 * Pure: JSON text in, typed messages out, and encoders that build the exact client JSON.
 * Nothing here touches a socket, the logger or the config.
 */

/** Server message types the bridge acts on (protocols.md §4.5); every other type parses as `unknown`. */
export const SERVER_TYPES = [
  'conversation_initiation_metadata', // conversation_initiation_metadata_event: formats + conversation id
  'audio', // audio_event: agent audio, base64, faster than real time
  'interruption', // interruption_event: the caller barged in
  'ping', // ping_event: answer with pong at once (§4.8)
  'user_transcript', // user_transcription_event
  'agent_response', // agent_response_event
  'agent_response_correction', // agent_response_correction_event: text after a barge-in
  'client_tool_call', // client_tool_call: answer exactly once with client_tool_result
  'agent_tool_response', // agent_tool_response: shows end_call (§4.11)
  'agent_tool_response_full_payload', // agent_tool_response_full_payload: same fields + full result
  'error', // error_event, or the flat {"type":"error","message":…} (§4.12)
] as const;

/** WebSocket close codes the conversation API uses (contract WebSocketCloseCode, protocols.md §4.12). */
export const CLOSE_CODE = {
  Normal: 1000, // agent ended the conversation, max duration exceeded
  Operational: 1002, // timeouts, LLM/TTS/ASR failures, quota
  Policy: 1008, // input/contract: override_error, missing_dynamic_variable, invalid_message
  Internal: 1011, // unknown_websocket_crash: retryable infrastructure error
  Abnormal: 1006, // no close frame: TCP dropped (never sent on the wire; ws reports it)
} as const;

/** What an `error` message says, from either the contract shape or the flat shape. */
export interface AgentErrorInfo {
  /** error_event.code: the close code the server is about to use. */
  readonly code: number | undefined;
  /** error_event.error_type, e.g. override_error (contract ErrorType). */
  readonly errorType: string | undefined;
  /** `error_event.message ?? message ?? error_event.reason` (protocols.md §4.12). */
  readonly message: string | undefined;
  readonly reason: string | undefined;
  readonly debugMessage: string | undefined;
}

export type ServerMessage =
  | {
      readonly type: 'conversation_initiation_metadata';
      readonly conversationId: string | undefined;
      /** e.g. pcm_16000; undefined when the server left it out. */
      readonly agentOutputAudioFormat: string | undefined;
      readonly userInputAudioFormat: string | undefined;
    }
  | {
      readonly type: 'audio';
      /** May be empty (protocols.md §4.7). */
      readonly audioBase64: string;
      /** undefined only for the legacy `{"audio":{"chunk":…}}` shape. */
      readonly eventId: number | undefined;
    }
  | { readonly type: 'interruption'; readonly eventId: number | undefined }
  | { readonly type: 'ping'; readonly eventId: number | undefined; readonly pingMs: number | undefined }
  | { readonly type: 'user_transcript'; readonly text: string; readonly eventId: number | undefined }
  | { readonly type: 'agent_response'; readonly text: string; readonly eventId: number | undefined }
  | {
      readonly type: 'agent_response_correction';
      readonly original: string;
      readonly corrected: string;
      readonly eventId: number | undefined;
    }
  | {
      readonly type: 'client_tool_call';
      readonly toolName: string;
      /** '' when the server left it out: such a call cannot be answered. */
      readonly toolCallId: string;
      readonly parameters: Readonly<Record<string, unknown>>;
      readonly eventId: number | undefined;
    }
  | {
      readonly type: 'agent_tool_response' | 'agent_tool_response_full_payload';
      readonly toolName: string;
      readonly toolCallId: string;
      /** client | system | mcp */
      readonly toolType: string;
      readonly isError: boolean;
      readonly eventId: number | undefined;
    }
  | { readonly type: 'error'; readonly error: AgentErrorInfo };

/** Any type the bridge ignores: the contract grows additively (protocols.md §4.5). */
export interface UnknownServerMessage {
  readonly type: 'unknown';
  /** The message's `type`, or '' when it had none. */
  readonly rawType: string;
}

export type ParsedServerMessage = ServerMessage | UnknownServerMessage;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function objectAt(parent: Json, key: string): Json {
  const value = parent[key];
  return isObject(value) ? value : {};
}

function stringAt(parent: Json, key: string): string | undefined {
  const value = parent[key];
  return typeof value === 'string' ? value : undefined;
}

function intAt(parent: Json, key: string): number | undefined {
  const value = parent[key];
  if (typeof value === 'number' && Number.isFinite(value)) return Math.trunc(value);
  if (typeof value === 'string' && /^-?\d{1,15}$/.test(value)) return Number(value);
  return undefined;
}

/**
 * Parses one text frame from the agent. Never throws for an unknown `type` or a missing field;
 * throws BridgeError AGENT_PROTOCOL only when the frame is not JSON or not a JSON object.
 */
export function parseServerMessage(text: string): ParsedServerMessage {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new BridgeError('AGENT_PROTOCOL', `agent sent a frame that is not JSON (${text.length} chars)`, { cause });
  }
  if (!isObject(raw)) {
    throw new BridgeError('AGENT_PROTOCOL', `agent sent JSON that is not an object (${Array.isArray(raw) ? 'array' : typeof raw})`);
  }
  const type = stringAt(raw, 'type') ?? '';
  switch (type) {
    case 'conversation_initiation_metadata': {
      const event = objectAt(raw, 'conversation_initiation_metadata_event');
      return {
        type,
        conversationId: stringAt(event, 'conversation_id'),
        agentOutputAudioFormat: stringAt(event, 'agent_output_audio_format'),
        userInputAudioFormat: stringAt(event, 'user_input_audio_format'),
      };
    }
    case 'audio': {
      const event = raw['audio_event'];
      if (isObject(event)) {
        return { type, audioBase64: stringAt(event, 'audio_base_64') ?? '', eventId: intAt(event, 'event_id') };
      }
      // Legacy shape: {"type":"audio","audio":{"chunk":"<b64>"}} (protocols.md §4.5).
      const legacy = objectAt(raw, 'audio');
      return { type, audioBase64: stringAt(legacy, 'chunk') ?? '', eventId: intAt(legacy, 'event_id') };
    }
    case 'interruption':
      return { type, eventId: intAt(objectAt(raw, 'interruption_event'), 'event_id') };
    case 'ping': {
      const event = objectAt(raw, 'ping_event');
      return { type, eventId: intAt(event, 'event_id'), pingMs: intAt(event, 'ping_ms') };
    }
    case 'user_transcript': {
      const event = objectAt(raw, 'user_transcription_event');
      return { type, text: stringAt(event, 'user_transcript') ?? '', eventId: intAt(event, 'event_id') };
    }
    case 'agent_response': {
      const event = objectAt(raw, 'agent_response_event');
      return { type, text: stringAt(event, 'agent_response') ?? '', eventId: intAt(event, 'event_id') };
    }
    case 'agent_response_correction': {
      const event = objectAt(raw, 'agent_response_correction_event');
      return {
        type,
        original: stringAt(event, 'original_agent_response') ?? '',
        corrected: stringAt(event, 'corrected_agent_response') ?? '',
        eventId: intAt(event, 'event_id'),
      };
    }
    case 'client_tool_call': {
      const event = objectAt(raw, 'client_tool_call');
      return {
        type,
        toolName: stringAt(event, 'tool_name') ?? '',
        toolCallId: stringAt(event, 'tool_call_id') ?? '',
        parameters: objectAt(event, 'parameters'),
        eventId: intAt(event, 'event_id'),
      };
    }
    case 'agent_tool_response':
    case 'agent_tool_response_full_payload': {
      const event = objectAt(raw, type);
      return {
        type,
        toolName: stringAt(event, 'tool_name') ?? '',
        toolCallId: stringAt(event, 'tool_call_id') ?? '',
        toolType: stringAt(event, 'tool_type') ?? '',
        isError: event['is_error'] === true,
        eventId: intAt(event, 'event_id'),
      };
    }
    case 'error': {
      // Contract: error_event{code,message?,error_type?,reason?}; seen flat: {"type":"error","message":…}
      // (elevenlabs/packages#911).
      const event = objectAt(raw, 'error_event');
      return {
        type,
        error: {
          code: intAt(event, 'code') ?? intAt(raw, 'code'),
          errorType: stringAt(event, 'error_type') ?? stringAt(raw, 'error_type'),
          message: stringAt(event, 'message') ?? stringAt(raw, 'message') ?? stringAt(event, 'reason'),
          reason: stringAt(event, 'reason') ?? stringAt(raw, 'reason'),
          debugMessage: stringAt(event, 'debug_message'),
        },
      };
    }
    default:
      return { type: 'unknown', rawType: type };
  }
}

// ---------------------------------------------------------------------------------------------
// Client → server encoders (protocols.md §4.3). Each returns the exact text frame.

/** `{"user_audio_chunk":"<b64>"}`: no `type` field. Base64 needs no JSON escaping, so concatenate. */
export function encodeUserAudio(base64: string): string {
  return '{"user_audio_chunk":"' + base64 + '"}';
}

const USER_AUDIO_OPEN = Buffer.from('{"user_audio_chunk":"', 'latin1');

/**
 * The same `{"user_audio_chunk":"<b64>"}` text as encodeUserAudio, built straight into one Buffer from
 * `length` bytes of `pcm`. Sent with `ws.send(frame, { binary: false })` it is still a text frame, but
 * ws masks it into a single buffer with its header (one write), where a string costs a conversion and
 * a two-buffer writev per 20 ms of audio.
 */
export function encodeUserAudioFrame(pcm: Buffer, length: number): Buffer {
  const base64 = pcm.toString('base64', 0, length);
  const frame = Buffer.allocUnsafe(USER_AUDIO_OPEN.length + base64.length + 2);
  USER_AUDIO_OPEN.copy(frame, 0);
  frame.write(base64, USER_AUDIO_OPEN.length, 'latin1');
  frame[frame.length - 2] = 0x22; // "
  frame[frame.length - 1] = 0x7d; // }
  return frame;
}

/** `{"type":"pong","event_id":N}`, sent at once for every ping (§4.8). */
export function encodePong(eventId: number): string {
  const message: Outgoing.PongClientToOrchestratorEvent = { type: 'pong', event_id: eventId };
  return JSON.stringify(message);
}

/** Overrides as the config names them, already rendered for the call. */
export interface InitiationOverrides {
  readonly firstMessage?: string | undefined;
  readonly language?: string | undefined;
  readonly prompt?: string | undefined;
  readonly voiceId?: string | undefined;
}

export interface InitiationData {
  readonly overrides?: InitiationOverrides | undefined;
  /** string, number or boolean values; names must not start with system__ (§4.4). */
  readonly dynamicVariables?: Readonly<Record<string, string | number | boolean>> | undefined;
}

type InitiationMessage = Outgoing.ConversationInitiationClientToOrchestratorEvent;
type ConfigOverride = NonNullable<InitiationMessage['conversation_config_override']>;
type AgentOverride = NonNullable<ConfigOverride['agent']>;

function present(value: string | undefined): value is string {
  return value !== undefined && value !== '';
}

/**
 * `conversation_initiation_client_data`. Only configured, non-empty overrides are included (each one
 * must be enabled on the agent or the server closes 1008 override_error, §4.4); empty objects are
 * left out rather than sent as `{}` or null. Dynamic variables are sent as given, '' included: a
 * referenced variable that is missing closes the session with missing_dynamic_variable.
 */
export function encodeInitiation(data: InitiationData = {}): string {
  const message: InitiationMessage = { type: 'conversation_initiation_client_data' };
  const o = data.overrides ?? {};
  const agent: AgentOverride = {};
  if (present(o.prompt)) agent.prompt = { prompt: o.prompt };
  if (present(o.firstMessage)) agent.first_message = o.firstMessage;
  if (present(o.language)) agent.language = o.language as NonNullable<AgentOverride['language']>;
  const override: ConfigOverride = {};
  if (Object.keys(agent).length > 0) override.agent = agent;
  if (present(o.voiceId)) override.tts = { voice_id: o.voiceId };
  if (Object.keys(override).length > 0) message.conversation_config_override = override;
  const variables = data.dynamicVariables ?? {};
  if (Object.keys(variables).length > 0) message.dynamic_variables = { ...variables };
  return JSON.stringify(message);
}

/** `client_tool_result`: exactly one per client_tool_call; result is always a string (§4.3). */
export function encodeClientToolResult(toolCallId: string, result: string, isError: boolean): string {
  const message: Outgoing.ClientToolResultClientToOrchestratorEvent = {
    type: 'client_tool_result',
    tool_call_id: toolCallId,
    result: typeof result === 'string' ? result : JSON.stringify(result),
    is_error: isError,
  };
  return JSON.stringify(message);
}

/** `contextual_update`: never interrupts; with contextId only the latest update is kept. */
export function encodeContextualUpdate(text: string, contextId?: string): string {
  const message: Outgoing.ContextualUpdateClientToOrchestratorEvent = { type: 'contextual_update', text };
  if (contextId !== undefined && contextId !== '') message.context_id = contextId;
  return JSON.stringify(message);
}

/** `user_message`: text on behalf of the caller; starts a turn. */
export function encodeUserMessage(text: string): string {
  const message: Outgoing.UserMessageClientToOrchestratorEvent = { type: 'user_message', text };
  return JSON.stringify(message);
}

/** `user_activity`: resets the agent's turn timeout. */
export function encodeUserActivity(): string {
  return '{"type":"user_activity"}';
}

// ---------------------------------------------------------------------------------------------
// Error classification (protocols.md §4.4, §4.12).

/** What ended (or is ending) a connection, as far as the wire tells. */
export interface AgentEndFacts {
  readonly lastError?: AgentErrorInfo | undefined;
  readonly closeCode?: number | undefined;
  readonly closeReason?: string | undefined;
}

/**
 * Maps the last `error` message and the close code to a bridge error code. `phase` picks the
 * fallback: a connection that never became ready failed to connect; a live one closed unexpectedly.
 */
export function classifyAgentEnd(facts: AgentEndFacts, phase: 'connecting' | 'active'): ErrorCode {
  const err = facts.lastError;
  const type = err?.errorType ?? '';
  if (type === 'override_error') return 'AGENT_OVERRIDE_REJECTED';
  if (type === 'missing_dynamic_variable' || type === 'missing_dynamic_variable_transfer') return 'AGENT_MISSING_VARIABLE';
  const text = [err?.message, err?.reason, err?.debugMessage, facts.closeReason].filter((t) => t !== undefined).join(' ');
  if (/quota/i.test(text)) return 'AGENT_QUOTA_EXCEEDED';
  if (/\b(auth\w*|unauthori[sz]ed|forbidden|api[ _-]?key|signature)\b/i.test(text)) return 'AGENT_AUTH_FAILED';
  if (type === 'invalid_message' || type === 'missing_fields' || type === 'value_error') return 'AGENT_PROTOCOL';
  return phase === 'connecting' ? 'AGENT_CONNECT_FAILED' : 'AGENT_CLOSED';
}

function quote(text: string, maxChars = 300): string {
  const clipped = text.length > maxChars ? `${text.slice(0, maxChars)}…` : text;
  return JSON.stringify(clipped);
}

/** One line that says exactly why: error_type, message, close code and reason. */
export function describeAgentEnd(facts: AgentEndFacts): string {
  const parts: string[] = [];
  const err = facts.lastError;
  if (err !== undefined) {
    if (err.errorType !== undefined) parts.push(`error_type=${err.errorType}`);
    if (err.message !== undefined) parts.push(`message=${quote(err.message)}`);
    if (err.reason !== undefined && err.reason !== err.message) parts.push(`reason=${quote(err.reason)}`);
    if (err.code !== undefined && err.code !== facts.closeCode) parts.push(`error_code=${err.code}`);
  }
  if (facts.closeCode !== undefined) parts.push(`close=${facts.closeCode}`);
  if (facts.closeReason !== undefined && facts.closeReason !== '') parts.push(`close_reason=${quote(facts.closeReason)}`);
  return parts.length > 0 ? parts.join(' ') : 'no error or close information';
}
