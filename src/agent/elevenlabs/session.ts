import WebSocket, { type RawData } from 'ws';
import type { Logger } from '../../log.js';
import type { Clock, TimerHandle } from '../../audio/clock.js';
import { bytesForMs, parseAudioFormat, type AudioFormat } from '../../audio/format.js';
import type { ElevenLabsAgentConfig } from '../../config/schema.js';
import { BridgeError, describeError } from '../../errors.js';
import type { AgentEnd, AgentFormats, AgentHandlers, AgentSession, CallContext } from '../types.js';
import { renderCallContext, type RenderedContext } from './context.js';
import { getSignedUrl, publicConversationUrl, type AgentOrigins } from './endpoint.js';
import {
  CLOSE_CODE,
  classifyAgentEnd,
  describeAgentEnd,
  encodeClientToolResult,
  encodeContextualUpdate,
  encodeInitiation,
  encodePong,
  encodeUserAudioFrame,
  encodeUserMessage,
  parseServerMessage,
  type AgentEndFacts,
  type AgentErrorInfo,
  type ParsedServerMessage,
} from './messages.js';

/**
 * One ElevenLabs conversation over one WebSocket (protocols.md §4).
 *
 *   start ─► [signed URL] ─► open ─► send initiation ─► metadata ─► active ─► remote close ─► onEnd
 *              connecting (connectTimeoutMs deadline, AbortSignal)          └► close() ─► (no handler)
 *
 * Handlers are live from the first frame, so greeting audio that arrives in the same read as the
 * metadata reaches onAudio before start() resolves.
 */

/** ws maxPayload, as the Node SDK sets it (protocols.md §4.1). */
export const MAX_PAYLOAD_BYTES = 16 * 1024 * 1024;
/** Default bound on unsent uplink bytes before caller audio is dropped (~5 s of pcm_16000 as base64 JSON). */
export const DEFAULT_MAX_UPLINK_BUFFERED_BYTES = 256 * 1024;
/** After we send a close frame, how long the server gets to answer before the socket is destroyed. */
const CLOSE_GRACE_MS = 2_000;
/** A close reason is at most 123 bytes (RFC 6455 §5.5). */
const MAX_CLOSE_REASON_BYTES = 123;

export interface SessionOptions {
  readonly agentName: string;
  readonly agent: ElevenLabsAgentConfig;
  readonly origins: AgentOrigins;
  readonly apiKey: string | undefined;
  readonly clock: Clock;
  /** Already bound to the call (callId, uniqueid, agent). */
  readonly logger: Logger;
  readonly context: CallContext;
  readonly handlers: AgentHandlers;
  readonly fetch?: typeof fetch | undefined;
  readonly maxUplinkBufferedBytes: number;
  readonly isFormatSupported: (format: AudioFormat) => boolean;
}

/** Counters for the call record and the end-of-call log line. */
export interface SessionStats {
  uplinkChunks: number;
  /** Batches dropped because ws.bufferedAmount was above the bound. */
  uplinkDropped: number;
  downlinkChunks: number;
  downlinkBytes: number;
  /** Audio chunks dropped by the interruption rule (event_id <= last interruption). */
  downlinkDropped: number;
  interruptions: number;
  staleInterruptions: number;
  pings: number;
  unparsable: number;
}

type Phase =
  | {
      readonly name: 'connecting';
      readonly resolve: () => void;
      readonly reject: (err: BridgeError) => void;
      readonly timer: TimerHandle;
      readonly signal: AbortSignal;
      readonly onAbort: () => void;
      readonly fetchAbort: AbortController;
    }
  | { readonly name: 'active' }
  | { readonly name: 'closed' };

function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  return bytes.subarray(0, maxBytes).toString('utf8').replace(/\uFFFD+$/, '');
}

function rawToText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

export class ElevenLabsSession implements AgentSession {
  readonly #opts: SessionOptions;
  readonly #log: Logger;
  readonly #handlers: AgentHandlers;
  readonly #clock: Clock;
  /** Strings that must never reach a log line or an error message (key, signed URL, signature). */
  readonly #secrets: string[] = [];

  #phase: Phase = { name: 'closed' };
  #step = 'starting';
  #ws: WebSocket | undefined;
  #formats: { readonly input: AudioFormat; readonly output: AudioFormat } | undefined;
  #conversationId: string | undefined;

  // Uplink batching: whole samples, uplinkChunkMs per message.
  #uplink: Buffer = Buffer.alloc(0);
  #uplinkFill = 0;
  #uplinkWarned = false;

  // Barge-in (protocols.md §4.9).
  #lastInterruptId = -1;
  #currentResponseId = -1;

  readonly #pendingToolCalls = new Set<string>();
  #endCallRequested = false;
  #lastError: AgentErrorInfo | undefined;
  #socketError: string | undefined;
  #httpStatus: number | undefined;

  #lastMessageAt = 0;
  #watchdog: TimerHandle | undefined;
  #closeGrace: ReturnType<typeof setTimeout> | undefined;
  #closeRequested = false;
  #endedBy: 'agent' | 'bridge' | undefined;
  #bridgeReason: string | undefined;
  #endLogged = false;
  #lineFormat: string | undefined;
  #rendered: RenderedContext | undefined;

  readonly stats: SessionStats = {
    uplinkChunks: 0,
    uplinkDropped: 0,
    downlinkChunks: 0,
    downlinkBytes: 0,
    downlinkDropped: 0,
    interruptions: 0,
    staleInterruptions: 0,
    pings: 0,
    unparsable: 0,
  };

  constructor(options: SessionOptions) {
    this.#opts = options;
    this.#log = options.logger;
    this.#handlers = options.handlers;
    this.#clock = options.clock;
    if (options.apiKey !== undefined && options.apiKey !== '') this.#secrets.push(options.apiKey);
  }

  get formats(): AgentFormats {
    if (this.#formats === undefined) throw new BridgeError('AGENT_CLOSED', 'agent formats are not known before conversation_initiation_metadata');
    return this.#formats;
  }

  get conversationId(): string | undefined {
    return this.#conversationId;
  }

  /**
   * Connects and resolves once conversation_initiation_metadata has arrived with formats ai-call
   * can carry. Rejects with a BridgeError on failure, timeout (AGENT_CONNECT_TIMEOUT) or abort.
   */
  open(signal: AbortSignal): Promise<this> {
    const timeoutMs = this.#opts.agent.connectTimeoutMs;
    return new Promise<this>((resolve, reject) => {
      const onAbort = (): void => this.#failStart(abortError(signal.reason));
      const timer = this.#clock.setTimer(() => {
        this.#failStart(new BridgeError('AGENT_CONNECT_TIMEOUT', `agent not ready within ${timeoutMs} ms (still ${this.#step})`));
      }, timeoutMs);
      this.#phase = {
        name: 'connecting',
        resolve: () => resolve(this),
        reject,
        timer,
        signal,
        onAbort,
        fetchAbort: new AbortController(),
      };
      if (signal.aborted) {
        onAbort();
        return;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      this.#connect().catch((err: unknown) => {
        this.#failStart(err instanceof BridgeError ? err : new BridgeError('AGENT_CONNECT_FAILED', this.#redact(describeError(err)), { cause: err }));
      });
    });
  }

  async #connect(): Promise<void> {
    const { agent, origins } = this.#opts;
    const rendered = renderCallContext(agent, this.#opts.context);
    this.#rendered = rendered;
    for (const warning of rendered.warnings) {
      this.#log.warn({ warning }, 'agent template value missing');
      this.#safely('onNotice', () => this.#handlers.onNotice({ type: 'template', detail: warning }));
    }
    let url: string;
    if (agent.private) {
      const apiKey = this.#opts.apiKey;
      if (apiKey === undefined || apiKey === '') {
        throw new BridgeError('AGENT_AUTH_FAILED', 'the agent is private but no ElevenLabs API key is configured (ELEVENLABS_API_KEY)');
      }
      this.#step = 'fetching the signed URL';
      const phase = this.#phase;
      url = await getSignedUrl({
        httpOrigin: origins.httpOrigin,
        agentId: agent.agentId,
        environment: agent.environment,
        apiKey,
        timeoutMs: agent.connectTimeoutMs,
        signal: phase.name === 'connecting' ? phase.fetchAbort.signal : undefined,
        fetch: this.#opts.fetch,
      });
      this.#secrets.push(url);
      const signature = /[?&]conversation_signature=([^&#]+)/.exec(url)?.[1];
      if (signature !== undefined) this.#secrets.push(signature);
    } else {
      url = publicConversationUrl(origins.wsOrigin, agent.agentId, agent.environment);
    }
    if (this.#phase.name !== 'connecting') return;
    this.#step = 'opening the WebSocket';
    let ws: WebSocket;
    try {
      ws = new WebSocket(url, {
        perMessageDeflate: false,
        maxPayload: MAX_PAYLOAD_BYTES,
        ...(agent.origin !== undefined ? { origin: new URL(agent.origin).origin } : {}),
      });
    } catch {
      // The error text would contain the URL, which may be signed: leave it out.
      throw new BridgeError('AGENT_CONNECT_FAILED', 'the agent WebSocket URL is invalid');
    }
    this.#ws = ws;
    ws.on('open', this.#onSocketOpen);
    ws.on('message', this.#onSocketMessage);
    ws.on('error', this.#onSocketError);
    ws.on('close', this.#onSocketClose);
    this.#log.debug({ host: new URL(url).host, private: agent.private }, 'opening agent WebSocket');
  }

  // ---- socket events -------------------------------------------------------------------------

  readonly #onSocketOpen = (): void => {
    if (this.#phase.name !== 'connecting') return;
    this.#step = 'waiting for conversation_initiation_metadata';
    const rendered = this.#rendered ?? renderCallContext(this.#opts.agent, this.#opts.context);
    // protocols.md §4.2: send the initiation immediately, as every SDK does.
    this.#send(encodeInitiation({ overrides: rendered.overrides, dynamicVariables: rendered.dynamicVariables }));
    this.#log.debug(
      { overrides: Object.keys(rendered.overrides), dynamicVariables: Object.keys(rendered.dynamicVariables) },
      'agent socket open, initiation sent',
    );
  };

  readonly #onSocketMessage = (data: RawData): void => {
    if (this.#phase.name === 'closed') return;
    this.#lastMessageAt = this.#clock.now();
    let message: ParsedServerMessage;
    try {
      message = parseServerMessage(rawToText(data));
    } catch (err) {
      // One bad frame does not end a live call; it is counted and shown.
      this.stats.unparsable++;
      if (this.stats.unparsable === 1) {
        this.#log.warn({ err: describeError(err) }, 'agent sent an unparsable frame');
        this.#notice('agent_protocol', describeError(err));
      }
      return;
    }
    this.#dispatch(message);
  };

  readonly #onSocketError = (err: Error): void => {
    const text = this.#redact(err.message);
    this.#socketError = text;
    const status = /^Unexpected server response: (\d{3})$/.exec(err.message)?.[1];
    if (status !== undefined) this.#httpStatus = Number(status);
    this.#log.debug({ err: text }, 'agent socket error');
    // ws always emits 'close' after 'error'; the end is handled there.
  };

  readonly #onSocketClose = (code: number, reasonBuffer: Buffer): void => {
    if (this.#closeGrace !== undefined) clearTimeout(this.#closeGrace);
    this.#closeGrace = undefined;
    const facts: AgentEndFacts = { lastError: this.#lastError, closeCode: code, closeReason: reasonBuffer.toString('utf8') };
    const phase = this.#phase;
    if (phase.name === 'connecting') {
      this.#endedBy = 'agent';
      this.#failStart(this.#startError(facts));
    } else if (phase.name === 'active') {
      this.#endedBy = 'agent';
      this.#finish(this.#remoteEnd(facts));
    }
    this.#logEnd(facts);
  };

  // ---- server messages -----------------------------------------------------------------------

  #dispatch(message: ParsedServerMessage): void {
    switch (message.type) {
      case 'conversation_initiation_metadata':
        if (this.#phase.name === 'connecting') this.#onMetadata(message);
        else this.#log.debug('ignoring a repeated conversation_initiation_metadata');
        return;
      case 'audio':
        this.#onAudio(message.audioBase64, message.eventId);
        return;
      case 'interruption':
        this.#onInterruption(message.eventId);
        return;
      case 'ping':
        this.stats.pings++;
        // protocols.md §4.8: answer at once, never delayed by ping_ms.
        if (message.eventId !== undefined) this.#send(encodePong(message.eventId));
        return;
      case 'user_transcript':
        this.#safely('onTranscript', () => this.#handlers.onTranscript({ role: 'user', text: message.text, eventId: message.eventId }));
        return;
      case 'agent_response':
        this.#safely('onTranscript', () => this.#handlers.onTranscript({ role: 'agent', text: message.text, eventId: message.eventId }));
        return;
      case 'agent_response_correction':
        this.#safely('onTranscript', () =>
          this.#handlers.onTranscript({
            role: 'agent_correction',
            text: message.corrected,
            original: message.original,
            eventId: message.eventId,
          }),
        );
        return;
      case 'client_tool_call':
        this.#onClientToolCall(message.toolName, message.toolCallId, message.parameters);
        return;
      case 'agent_tool_response':
      case 'agent_tool_response_full_payload':
        // protocols.md §4.11: end_call is a system tool; the close that follows is the agent's hangup.
        if (message.toolName === 'end_call') {
          if (!this.#endCallRequested) this.#log.info({ toolType: message.toolType }, 'agent called end_call');
          this.#endCallRequested = true;
        }
        return;
      case 'error':
        this.#lastError = message.error;
        this.#log.warn({ agentError: describeAgentEnd({ lastError: message.error }) }, 'agent sent an error');
        if (this.#phase.name === 'active') this.#notice('agent_error', describeAgentEnd({ lastError: message.error }));
        return;
      case 'unknown':
        return; // the contract grows additively (protocols.md §4.5)
    }
  }

  #onMetadata(message: Extract<ParsedServerMessage, { type: 'conversation_initiation_metadata' }>): void {
    const inputName = message.userInputAudioFormat ?? '(missing)';
    const outputName = message.agentOutputAudioFormat ?? '(missing)';
    const input = parseAudioFormat(inputName);
    const output = parseAudioFormat(outputName);
    const bad: string[] = [];
    if (input === undefined || !this.#opts.isFormatSupported(input)) bad.push(`user_input_audio_format ${inputName}`);
    if (output === undefined || !this.#opts.isFormatSupported(output)) bad.push(`agent_output_audio_format ${outputName}`);
    if (input === undefined || output === undefined || bad.length > 0) {
      this.#failStart(new BridgeError('AGENT_UNSUPPORTED_FORMAT', `the agent uses ${bad.join(' and ')}, which ai-call cannot carry`));
      return;
    }
    const phase = this.#phase;
    if (phase.name !== 'connecting') return;
    this.#formats = Object.freeze({ input, output });
    this.#conversationId = message.conversationId;
    this.#uplink = Buffer.alloc(bytesForMs(input, this.#opts.agent.uplinkChunkMs));
    this.#clearStart(phase);
    this.#phase = { name: 'active' };
    this.#lastMessageAt = this.#clock.now();
    this.#armWatchdog(this.#opts.agent.silenceTimeoutMs);
    this.#log.info({ conversationId: message.conversationId, input: inputName, output: outputName }, 'agent ready');
    phase.resolve();
  }

  #onAudio(base64: string, eventId: number | undefined): void {
    if (base64 === '') return; // may be empty (protocols.md §4.7)
    if (eventId !== undefined) {
      // protocols.md §4.9: drop every later audio whose event_id <= the last interruption.
      if (eventId <= this.#lastInterruptId) {
        this.stats.downlinkDropped++;
        return;
      }
      if (eventId > this.#currentResponseId) this.#currentResponseId = eventId;
    }
    const chunk = Buffer.from(base64, 'base64');
    if (chunk.length === 0) return;
    this.stats.downlinkChunks++;
    this.stats.downlinkBytes += chunk.length;
    this.#safely('onAudio', () => this.#handlers.onAudio(chunk, eventId ?? 0));
  }

  #onInterruption(eventId: number | undefined): void {
    // Without an id, interrupt whatever is playing.
    const id = eventId ?? this.#currentResponseId;
    if (id < 0) return;
    if (id < this.#currentResponseId) {
      // Stale: below the response now playing (elevenlabs/packages#685).
      this.stats.staleInterruptions++;
      this.#log.debug({ eventId: id, playing: this.#currentResponseId }, 'ignoring a stale interruption');
      return;
    }
    this.stats.interruptions++;
    this.#lastInterruptId = Math.max(this.#lastInterruptId, id);
    this.#safely('onInterruption', () => this.#handlers.onInterruption(id));
  }

  #onClientToolCall(toolName: string, toolCallId: string, parameters: Readonly<Record<string, unknown>>): void {
    if (toolCallId === '') {
      this.#notice('agent_protocol', `client_tool_call for ${JSON.stringify(toolName)} has no tool_call_id; ignored`);
      return;
    }
    if (this.#pendingToolCalls.has(toolCallId)) {
      this.#log.debug({ toolCallId }, 'ignoring a repeated client_tool_call');
      return;
    }
    this.#pendingToolCalls.add(toolCallId);
    this.#log.info({ toolName, toolCallId }, 'agent called a client tool');
    this.#safely('onToolCall', () => this.#handlers.onToolCall({ toolName, toolCallId, parameters }));
  }

  // ---- AgentSession --------------------------------------------------------------------------

  /**
   * Notes the line format (for logs). Idempotent: it may be called again when Asterisk turns out
   * to carry another rate; nothing changes on the agent side, whose formats are fixed by metadata.
   */
  startMedia(lineFormat: AudioFormat): void {
    const name = `${lineFormat.encoding}_${lineFormat.sampleRateHz}`;
    if (this.#lineFormat === name) return;
    this.#log.debug({ line: name, previous: this.#lineFormat }, 'media started');
    this.#lineFormat = name;
  }

  /** Batches caller audio into uplinkChunkMs messages of whole samples. */
  sendAudio(chunk: Buffer): void {
    if (this.#phase.name !== 'active') return;
    const batch = this.#uplink;
    // The common case (uplinkChunkMs = one 20 ms frame, frames arrive whole): encode straight from
    // the caller's frame, without copying it into the batch first.
    if (this.#uplinkFill === 0 && chunk.length === batch.length) {
      this.#flushUplink(chunk, chunk.length);
      return;
    }
    let offset = 0;
    while (offset < chunk.length) {
      const n = Math.min(batch.length - this.#uplinkFill, chunk.length - offset);
      chunk.copy(batch, this.#uplinkFill, offset, offset + n);
      this.#uplinkFill += n;
      offset += n;
      if (this.#uplinkFill === batch.length) {
        this.#uplinkFill = 0;
        this.#flushUplink(batch, batch.length);
      }
    }
  }

  /** Sends `length` bytes of `pcm` as one user_audio_chunk (encodeUserAudioFrame copies them). */
  #flushUplink(pcm: Buffer, length: number): void {
    const ws = this.#ws;
    if (ws === undefined || ws.readyState !== WebSocket.OPEN) return;
    // Style rule 4: watch ws.bufferedAmount; drop and count instead of growing without bound.
    if (ws.bufferedAmount > this.#opts.maxUplinkBufferedBytes) {
      this.stats.uplinkDropped++;
      if (!this.#uplinkWarned) {
        this.#uplinkWarned = true;
        const detail = `agent socket backed up (${ws.bufferedAmount} bytes unsent): dropping caller audio`;
        this.#log.warn({ bufferedAmount: ws.bufferedAmount }, detail);
        this.#notice('uplink_backpressure', detail);
      }
      return;
    }
    this.stats.uplinkChunks++;
    ws.send(encodeUserAudioFrame(pcm, length), { binary: false });
  }

  sendText(kind: 'user_message' | 'contextual_update', text: string): void {
    if (this.#phase.name !== 'active') return;
    this.#send(kind === 'user_message' ? encodeUserMessage(text) : encodeContextualUpdate(text));
  }

  sendToolResult(toolCallId: string, result: string, isError: boolean): void {
    if (!this.#pendingToolCalls.delete(toolCallId)) {
      this.#log.warn({ toolCallId }, 'tool result for an unknown or already answered call; not sent');
      return;
    }
    if (this.#phase.name !== 'active') return;
    this.#send(encodeClientToolResult(toolCallId, result, isError));
  }

  close(reason: string): void {
    if (this.#closeRequested) return;
    this.#closeRequested = true;
    this.#endedBy ??= 'bridge';
    this.#bridgeReason = reason;
    const phase = this.#phase;
    if (phase.name === 'connecting') {
      this.#failStart(new BridgeError('AGENT_CLOSED', `closed before the agent was ready: ${reason}`));
      return;
    }
    this.#phase = { name: 'closed' };
    this.#stopTimers();
    this.#closeSocket(CLOSE_CODE.Normal, reason);
    if (this.#ws === undefined) this.#logEnd({});
  }

  // ---- internals -----------------------------------------------------------------------------

  #send(text: string): void {
    const ws = this.#ws;
    if (ws !== undefined && ws.readyState === WebSocket.OPEN) ws.send(text);
  }

  #notice(type: string, detail: string): void {
    if (this.#phase.name === 'closed') return;
    this.#safely('onNotice', () => this.#handlers.onNotice({ type, detail }));
  }

  /** A throwing handler must not unwind into ws (that would crash the process). */
  #safely(name: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#log.error({ err: describeError(err), handler: name }, 'agent handler threw');
    }
  }

  #armWatchdog(delayMs: number): void {
    this.#watchdog = this.#clock.setTimer(this.#onWatchdog, delayMs);
  }

  /** No server message for silenceTimeoutMs ⇒ session dead (protocols.md §4.8). One timer, re-armed lazily. */
  readonly #onWatchdog = (): void => {
    this.#watchdog = undefined;
    if (this.#phase.name !== 'active') return;
    const limitMs = this.#opts.agent.silenceTimeoutMs;
    const idleMs = this.#clock.now() - this.#lastMessageAt;
    if (idleMs < limitMs) {
      this.#armWatchdog(limitMs - idleMs);
      return;
    }
    this.#endedBy = 'bridge';
    this.#bridgeReason = 'agent silent';
    this.#finish({
      kind: 'error',
      error: new BridgeError('AGENT_SILENT', `no message from the agent for ${Math.round(idleMs)} ms (silenceTimeoutMs ${limitMs})`),
    });
    this.#closeSocket(CLOSE_CODE.Normal, 'ai-call: agent silent');
  };

  #stopTimers(): void {
    if (this.#watchdog !== undefined) this.#clock.clearTimer(this.#watchdog);
    this.#watchdog = undefined;
  }

  /** Ends an active session and reports it; no handler runs after this. */
  #finish(end: AgentEnd): void {
    if (this.#phase.name !== 'active') return;
    this.#phase = { name: 'closed' };
    this.#stopTimers();
    this.#pendingToolCalls.clear();
    if (end.kind === 'error') this.#log.warn({ code: end.error.code, closeCode: end.closeCode }, end.error.message);
    else this.#log.info({ detail: end.detail }, 'agent ended the call');
    this.#safely('onEnd', () => this.#handlers.onEnd(end));
  }

  #remoteEnd(facts: AgentEndFacts): AgentEnd {
    const code = facts.closeCode;
    if (code === CLOSE_CODE.Normal || this.#endCallRequested) {
      const why = this.#endCallRequested ? 'end_call' : (facts.lastError?.errorType ?? 'agent closed the conversation');
      return { kind: 'agent_hangup', detail: `${why} (${describeAgentEnd(facts)})` };
    }
    const errorCode = classifyAgentEnd(facts, 'active');
    const socket = this.#socketError !== undefined && code === CLOSE_CODE.Abnormal ? ` socket_error=${JSON.stringify(this.#socketError)}` : '';
    return {
      kind: 'error',
      error: new BridgeError(errorCode, `agent connection ended: ${describeAgentEnd(facts)}${socket}`),
      closeCode: code,
    };
  }

  #startError(facts: AgentEndFacts): BridgeError {
    if (this.#httpStatus !== undefined) {
      const status = this.#httpStatus;
      return status === 401 || status === 403
        ? new BridgeError('AGENT_AUTH_FAILED', `ElevenLabs refused the WebSocket upgrade with HTTP ${status} (bad or expired signed URL, or origin not allowed)`)
        : new BridgeError('AGENT_CONNECT_FAILED', `ElevenLabs refused the WebSocket upgrade with HTTP ${status}`);
    }
    const code = classifyAgentEnd(facts, 'connecting');
    const socket = this.#socketError !== undefined ? ` socket_error=${JSON.stringify(this.#socketError)}` : '';
    return new BridgeError(code, `agent closed before it was ready (${this.#step}): ${describeAgentEnd(facts)}${socket}`);
  }

  #clearStart(phase: Extract<Phase, { name: 'connecting' }>): void {
    this.#clock.clearTimer(phase.timer);
    phase.signal.removeEventListener('abort', phase.onAbort);
  }

  /** Rejects start() once, tears the socket down and leaves the session closed. */
  #failStart(err: BridgeError): void {
    const phase = this.#phase;
    if (phase.name !== 'connecting') return;
    this.#clearStart(phase);
    phase.fetchAbort.abort();
    this.#phase = { name: 'closed' };
    this.#closeRequested = true;
    this.#endedBy ??= 'bridge';
    this.#log.warn({ code: err.code, step: this.#step }, `agent start failed: ${err.message}`);
    phase.reject(err);
    if (this.#ws === undefined) this.#logEnd({});
    else this.#closeSocket(CLOSE_CODE.Normal, `ai-call: ${err.code}`);
  }

  #closeSocket(code: number, reason: string): void {
    const ws = this.#ws;
    if (ws === undefined) return;
    if (ws.readyState === WebSocket.CONNECTING) {
      ws.terminate();
      return;
    }
    if (ws.readyState !== WebSocket.OPEN) return;
    ws.close(code, truncateUtf8(reason, MAX_CLOSE_REASON_BYTES));
    // A server that never answers the close frame must not hold the socket for ws's 30 s.
    this.#closeGrace = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
    this.#closeGrace.unref();
  }

  #logEnd(facts: AgentEndFacts): void {
    if (this.#endLogged) return;
    this.#endLogged = true;
    this.#log.info(
      {
        endedBy: this.#endedBy ?? 'agent',
        reason: this.#bridgeReason,
        conversationId: this.#conversationId,
        closeCode: facts.closeCode,
        closeReason: facts.closeReason === undefined || facts.closeReason === '' ? undefined : this.#redact(facts.closeReason),
        lastError: this.#lastError === undefined ? undefined : this.#redact(describeAgentEnd({ lastError: this.#lastError })),
        socketError: this.#socketError,
        endCall: this.#endCallRequested,
        stats: this.stats,
      },
      'agent connection ended',
    );
  }

  #redact(text: string): string {
    let out = text;
    for (const secret of this.#secrets) out = out.split(secret).join('[redacted]');
    return out.replace(/conversation_signature=[^&\s"']+/g, 'conversation_signature=[redacted]');
  }
}

function abortError(reason: unknown): BridgeError {
  if (reason instanceof BridgeError) return reason;
  if (reason instanceof Error && reason.name === 'TimeoutError') {
    return new BridgeError('AGENT_CONNECT_TIMEOUT', 'agent start timed out (abort signal)', { cause: reason });
  }
  const why = reason instanceof Error ? reason.message : reason === undefined ? 'aborted' : String(reason);
  return new BridgeError('AGENT_CONNECT_FAILED', `agent start aborted: ${why}`, { cause: reason });
}
