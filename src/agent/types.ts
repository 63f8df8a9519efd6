import type { AudioFormat } from '../audio/format.js';
import type { BridgeError } from '../errors.js';

/**
 * The contract between a call and the agent on it. A provider opens one AgentSession per call;
 * the call session (src/call/session.ts) converts audio between the line and the agent's formats,
 * paces agent audio on the shared 20 ms clock and executes tool calls.
 */

/** What is known about a call when its agent starts; rendered into dynamic variables and overrides. */
export interface CallContext {
  /** ai-call's id for the call: the UUID Asterisk presents on AudioSocket. */
  readonly callId: string;
  readonly agentName: string;
  readonly callerId?: string | undefined;
  readonly callerName?: string | undefined;
  /** Dialled number (agi_dnid) */
  readonly dnid?: string | undefined;
  readonly extension?: string | undefined;
  readonly context?: string | undefined;
  readonly channel?: string | undefined;
  /** Asterisk's uniqueid of the channel that ran the AGI. */
  readonly uniqueid?: string | undefined;
  /** AGI() arguments after the URL: agi_arg_1 … */
  readonly args: readonly string[];
  /** Query arguments of the AGI URL, e.g. agent=sales&lang=en. */
  readonly query: Readonly<Record<string, string>>;
  /** Channel variables read at call start plus variables given to an originate. */
  readonly vars: Readonly<Record<string, string>>;
  /** Dynamic variables given for this one call (ai-call originate --var, POST /calls). */
  readonly dynamicVariables?: Readonly<Record<string, string>> | undefined;
}

/** `line` means: carry whatever the AudioSocket line carries, untouched (the echo agent). */
export type AgentFormats = { readonly input: AudioFormat; readonly output: AudioFormat } | 'line';

export interface ToolCall {
  readonly toolName: string;
  readonly toolCallId: string;
  readonly parameters: Readonly<Record<string, unknown>>;
}

export interface TranscriptEntry {
  readonly role: 'user' | 'agent' | 'agent_correction';
  readonly text: string;
  readonly eventId?: number | undefined;
  /** For corrections: what the agent had said before the caller interrupted it. */
  readonly original?: string | undefined;
}

/** Why an agent session ended by itself (never reported after close() was called). */
export type AgentEnd =
  /** The agent finished the conversation (end_call, close 1000, max duration). */
  | { readonly kind: 'agent_hangup'; readonly detail: string }
  /** Anything else: errors, abnormal closes, silence. */
  | { readonly kind: 'error'; readonly error: BridgeError; readonly closeCode?: number | undefined };

/** Callbacks a session calls. Given at start so nothing said before a listener attaches is lost. */
export interface AgentHandlers {
  /** Agent audio in the agent's output format; arrives faster than real time. eventId 0 if the provider has none. */
  onAudio(chunk: Buffer, eventId: number): void;
  /** The caller barged in: drop unplayed audio with event ids <= eventId. */
  onInterruption(eventId: number): void;
  /** Must be answered exactly once with sendToolResult. */
  onToolCall(call: ToolCall): void;
  onTranscript(entry: TranscriptEntry): void;
  /** Something the admin should see on the status stream and in the call record. */
  onNotice(notice: { readonly type: string; readonly detail: string }): void;
  onEnd(end: AgentEnd): void;
}

export interface AgentSession {
  readonly formats: AgentFormats;
  readonly conversationId: string | undefined;
  /**
   * Media is flowing; lineFormat is what AudioSocket carries. Called when media starts, and again
   * if Asterisk turns out to carry another rate (the slin16 channel driver), so it must be idempotent.
   */
  startMedia(lineFormat: AudioFormat): void;
  /** Caller audio in formats.input (or the line format for 'line'). */
  sendAudio(chunk: Buffer): void;
  /** Text on behalf of the caller: user_message starts a turn, contextual_update does not. */
  sendText(kind: 'user_message' | 'contextual_update', text: string): void;
  sendToolResult(toolCallId: string, result: string, isError: boolean): void;
  /** Ends the session (idempotent); no handler is called afterwards. */
  close(reason: string): void;
}

export interface AgentProvider {
  /**
   * Opens the agent for one call and resolves once it is ready to take audio (for ElevenLabs:
   * after conversation_initiation_metadata). Rejects with a BridgeError, or when signal aborts.
   */
  start(context: CallContext, handlers: AgentHandlers, signal: AbortSignal): Promise<AgentSession>;
}
