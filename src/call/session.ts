/**
 * One phone call between Asterisk and an agent: the only code that sees both sides.
 *
 *   Asterisk ──AudioSocket──► onAudio ──► uplink converter ──► agent.sendAudio ─────────────► agent
 *   agent ──onAudio(chunk, eventId)──► pending ring (agent format, bounded, not yet converted)
 *          shared FrameClock tick ──► downlink converter, one frame's worth ──► playout buffer
 *          ──► the frame, header written in its headroom ──► MediaConnection.sendAudioMessage ──► Asterisk
 *
 * Agent audio is converted on the clock, not on arrival: a 2 s reply arrives as twenty messages at
 * once, and resampling it there would hold the event loop (and every call's next frame) for
 * milliseconds. Each tick converts only what its frame needs, so the same work is spread evenly.
 * Per frame out: one allocation (the playout frame, with room for the AudioSocket header) and one
 * write; silence is one pre-encoded message shared by every silent frame of the call.
 *
 * States: pending (UUID issued, waiting for Asterisk to connect) → live (media flowing) →
 * draining (agent finished or transferred: play out what is queued) → ended (outcome kept for
 * the result AGI). Every path ends in #end(), which releases every resource exactly once.
 */
import type { AgentConfig } from '../config/schema.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log.js';
import type { Clock, TimerHandle } from '../audio/clock.js';
import type { FrameClock, FrameListener } from '../audio/frame-clock.js';
import type { AgentEnd, AgentHandlers, AgentProvider, AgentSession, CallContext, ToolCall, TranscriptEntry } from '../agent/types.js';
import type { MediaConnection, MediaHandler } from '../asterisk/audiosocket/server.js';
import type { CallEvent, CallEventSink, CallOutcome, CallResult, CallSource, CallStats } from './events.js';
import { audioFormatName, bytesForMs, bytesPerSample, msForBytes, sameFormat, SLIN_16K, SLIN_8K, type AudioFormat } from '../audio/format.js';
import { ChunkQueue } from '../audio/chunk-queue.js';
import { createConverter, type Converter } from '../audio/convert.js';
import { PlayoutBuffer } from '../audio/playout.js';
import { generateDtmf } from '../audio/dtmf.js';
import { encodeAudio, encodeAudioInPlace, HEADER_BYTES, kindForSampleRate } from '../asterisk/audiosocket/protocol.js';
import { BridgeError, describeError } from '../errors.js';
import { formatTransferTarget } from './transfer.js';

/** Caller audio counts as speech above this mean absolute sample value (about -36 dBFS). */
const SPEECH_MEAN_ABS = 500;
/** With no frame from Asterisk for this long, we feed the agent silence (protocols.md §4.7: 60 s without input ends the session). */
const UPLINK_IDLE_MS = 100;
const DTMF_DIGITS = /^[0-9*#A-D]{1,32}$/;
const NO_AUDIO = Buffer.alloc(0);
/** Bounds agent audio queued before its format is known (the agent still starting): the widest format. */
const UNKNOWN_AGENT_FORMAT: AudioFormat = Object.freeze({ encoding: 'pcm', sampleRateHz: 48_000 });

type PendingEnd = { readonly result: CallResult; readonly reason: string; readonly transferTo?: string; readonly error?: string };

type CallState =
  | { readonly name: 'pending'; readonly expiryTimer: TimerHandle }
  | { readonly name: 'live'; readonly media: MediaConnection }
  | { readonly name: 'draining'; readonly media: MediaConnection; readonly end: PendingEnd; readonly deadline: number }
  | { readonly name: 'ended'; readonly outcome: CallOutcome };

export interface CallSessionOptions {
  readonly callId: string;
  readonly agentName: string;
  readonly agentConfig: AgentConfig;
  readonly context: CallContext;
  readonly source: CallSource;
  readonly calls: Config['calls'];
  /** How long Asterisk has to connect with this UUID. */
  readonly mediaTimeoutMs: number;
  readonly clock: Clock;
  readonly frameClock: FrameClock;
  readonly logger: Logger;
  readonly emit: CallEventSink;
  /** Called once, after the call ended and released everything. */
  readonly onEnded: (session: CallSession) => void;
  /** Builds the uplink and downlink converters; audio/convert.ts `createConverter` unless a test watches them. */
  readonly createConverter?: ((from: AudioFormat, to: AudioFormat) => Converter) | undefined;
}

export interface CallSnapshot {
  readonly callId: string;
  readonly agent: string;
  readonly state: CallState['name'];
  readonly source: CallSource;
  readonly callerId: string | undefined;
  readonly channel: string | undefined;
  readonly uniqueid: string | undefined;
  readonly conversationId: string | undefined;
  readonly startedAt: string;
  readonly durationS: number;
  readonly sampleRateHz: number;
  readonly stats: CallStats;
  readonly outcome: CallOutcome | undefined;
}

export class CallSession implements FrameListener {
  readonly callId: string;
  readonly agentName: string;
  readonly source: CallSource;
  readonly context: CallContext;
  readonly startedAt: number;
  readonly #o: CallSessionOptions;
  readonly #log: Logger;
  readonly #createConverter: (from: AudioFormat, to: AudioFormat) => Converter;
  readonly #frameMs: number;
  #state: CallState;
  #ended: Promise<CallOutcome>;
  #resolveEnded!: (outcome: CallOutcome) => void;

  #agent: AgentSession | undefined;
  #agentStart: AbortController | undefined;
  #agentEnd: PendingEnd | undefined;
  /** The agent connection finished by itself: no more audio can come. */
  #agentFinished = false;
  /**
   * Agent audio as it arrived (agent format), converted on the clock one frame's worth at a time;
   * before media it waits here until the line format is known. Copied into one ring per call, so
   * seconds of queued audio do not promote a reply's worth of buffers to V8's old generation.
   */
  readonly #pending = new ChunkQueue();
  /** Agent-format bytes converted per step: one frame's worth. */
  #downlinkSliceBytes = 0;

  #lineFormat: AudioFormat;
  #lineKind: number;
  #sawInboundAudio = false;
  #playout: PlayoutBuffer;
  #uplink: Converter | undefined;
  #downlink: Converter | undefined;
  /** One silent frame, already an AudioSocket message: written as is, never changed (shared by every silent tick). */
  #silenceMessage: Buffer;
  #uplinkSilence: Buffer | undefined;

  #mediaAtMs: number | undefined;
  #endedAtMs: number | undefined;
  #maxEndAtMs = Infinity;
  #lastInboundAtMs = 0;
  #lastAgentAudioAtMs = 0;
  #lastFrameOutAtMs: number | undefined;
  #lastInterruptId = -1;
  #lastEnqueuedEventId = -1;
  #callerSpeaking = false;
  #callerStoppedAtMs: number | undefined;
  #greetingReported = false;

  /** Set by expectRedirect(): where an AMI Redirect is moving the channel. */
  #redirectedTo: string | undefined;
  #dtmfDigits = '';
  #dtmfTimer: TimerHandle | undefined;

  #stats = { framesOut: 0, agentFramesOut: 0, silenceFramesOut: 0, framesIn: 0, bytesToAgent: 0, droppedAgentBytes: 0, interruptions: 0, maxOutGapMs: 0 };

  constructor(options: CallSessionOptions) {
    this.#o = options;
    this.#createConverter = options.createConverter ?? createConverter;
    this.callId = options.callId;
    this.agentName = options.agentName;
    this.source = options.source;
    this.context = options.context;
    this.startedAt = options.clock.wallNow();
    this.#frameMs = options.calls.frameMs;
    this.#log = options.logger.child({ callId: options.callId, agent: options.agentName, uniqueid: options.context.uniqueid });
    this.#lineFormat = options.agentConfig.wideband ? SLIN_16K : SLIN_8K;
    this.#lineKind = kindForSampleRate(this.#lineFormat.sampleRateHz)!;
    this.#playout = this.#newPlayout(this.#lineFormat);
    this.#silenceMessage = encodeAudio(this.#lineKind, Buffer.alloc(bytesForMs(this.#lineFormat, this.#frameMs)));
    this.#ended = new Promise((resolve) => (this.#resolveEnded = resolve));
    const expiryTimer = options.clock.setTimer(() => this.#onMediaTimeout(), options.mediaTimeoutMs);
    expiryTimer.unref?.();
    this.#state = { name: 'pending', expiryTimer };
    this.#emit({ type: 'call.started', agent: this.agentName, source: this.source, uniqueid: this.context.uniqueid, callerId: this.context.callerId, channel: this.context.channel });
  }

  get state(): CallState['name'] {
    return this.#state.name;
  }

  /** Resolves with the outcome once the call has ended. */
  get ended(): Promise<CallOutcome> {
    return this.#ended;
  }

  get outcome(): CallOutcome | undefined {
    return this.#state.name === 'ended' ? this.#state.outcome : undefined;
  }

  /**
   * Opens the agent and resolves once it is ready. A failure ends the call with AGENT_ERROR and
   * rethrows, so the AGI can answer AGENT_UNAVAILABLE and the dialplan falls back.
   */
  async startAgent(provider: AgentProvider, timeoutMs: number): Promise<void> {
    const abort = new AbortController();
    this.#agentStart = abort;
    const startedAtMs = this.#o.clock.now();
    const timer = this.#o.clock.setTimer(
      () => abort.abort(new BridgeError('AGENT_CONNECT_TIMEOUT', `agent ${this.agentName} was not ready within ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      const agent = await Promise.race([
        provider.start(this.context, this.#agentHandlers(), abort.signal),
        new Promise<never>((_, reject) => {
          if (abort.signal.aborted) reject(abort.signal.reason);
          abort.signal.addEventListener('abort', () => reject(abort.signal.reason), { once: true });
        }),
      ]);
      if (this.#state.name === 'ended' || abort.signal.aborted) {
        agent.close('call ended while the agent was starting');
        throw abort.signal.aborted ? abort.signal.reason : new BridgeError('AGENT_CLOSED', 'call ended while the agent was starting');
      }
      this.#agent = agent;
      const formats = agent.formats;
      this.#emit({
        type: 'agent.ready',
        conversationId: agent.conversationId,
        inputFormat: formats === 'line' ? 'line' : audioFormatName(formats.input),
        outputFormat: formats === 'line' ? 'line' : audioFormatName(formats.output),
        connectMs: Math.round(this.#o.clock.now() - startedAtMs),
      });
      if (this.#state.name === 'live') this.#onAgentAndMediaReady();
    } catch (err) {
      const error = err instanceof BridgeError ? err : new BridgeError('AGENT_CONNECT_FAILED', describeError(err), { cause: err });
      this.#log.warn({ err: describeError(error) }, 'agent could not be started');
      this.#end({ result: 'AGENT_ERROR', reason: 'agent start failed', error: describeError(error) });
      throw error;
    } finally {
      this.#o.clock.clearTimer(timer);
      this.#agentStart = undefined;
    }
  }

  /** Asterisk connected with this call's UUID. Returns the handler for the media connection. */
  attachMedia(media: MediaConnection): MediaHandler {
    const state = this.#state;
    if (state.name !== 'pending') {
      // The registry attaches only pending calls; a second connection must never replace the first.
      this.#log.warn({ state: state.name }, 'media connected to a call that is not waiting for it: hanging it up');
      media.hangup();
      return { onAudio() {}, onDtmf() {}, onClose() {} };
    }
    this.#o.clock.clearTimer(state.expiryTimer);
    const nowMs = this.#o.clock.now();
    this.#mediaAtMs = nowMs;
    this.#lastInboundAtMs = nowMs;
    this.#maxEndAtMs = nowMs + this.#o.calls.maxDurationS * 1000;
    this.#transition({ name: 'live', media });
    this.#emit({ type: 'media.connected', remoteAddress: media.remoteAddress, sampleRateHz: this.#lineFormat.sampleRateHz });
    if (this.#agent) this.#onAgentAndMediaReady();
    // protocols.md §1.7: send from the moment the UUID arrives; never wait for Asterisk. Frame 0 goes
    // out now (the greeting, if the agent is pre-connected), the rest on the shared clock.
    this.#o.frameClock.add(this);
    this.onFrame();
    if (this.#agentEnd) this.#beginDrain(this.#agentEnd);
    return {
      onAudio: (payload, sampleRateHz) => this.#onMediaAudio(payload, sampleRateHz),
      onDtmf: (digit) => this.#onMediaDtmf(digit),
      onClose: (reason) => this.#onMediaClose(reason),
    };
  }

  /**
   * An AMI Redirect is about to move the caller's channel elsewhere: Asterisk's AudioSocket app then
   * closes the socket like a hang-up (it logs "Failed to receive frame"), so the close that follows
   * is recorded as COMPLETED with where the call went, not as CALLER_HANGUP.
   */
  expectRedirect(target: string | undefined): void {
    if (this.#state.name === 'live' || this.#state.name === 'draining') this.#redirectedTo = target;
  }

  /** Ends the call from outside (admin hang-up, shutdown, a result asked for before media). */
  hangup(reason: string, result: CallResult = 'COMPLETED', error?: string): void {
    this.#end(error === undefined ? { result, reason } : { result, reason, error });
  }

  snapshot(): CallSnapshot {
    return {
      callId: this.callId,
      agent: this.agentName,
      state: this.#state.name,
      source: this.source,
      callerId: this.context.callerId,
      channel: this.context.channel,
      uniqueid: this.context.uniqueid,
      conversationId: this.#agent?.conversationId ?? (this.outcome?.conversationId || undefined),
      startedAt: new Date(this.startedAt).toISOString(),
      durationS: this.#durationS(),
      sampleRateHz: this.#lineFormat.sampleRateHz,
      stats: { ...this.#stats },
      outcome: this.outcome,
    };
  }

  // ── the 20 ms clock ─────────────────────────────────────────────────────────────────────────

  /** One frame is due. Called by the shared FrameClock, never by a timer of our own. */
  onFrame(): void {
    const state = this.#state;
    if (state.name !== 'live' && state.name !== 'draining') return;
    const nowMs = this.#o.clock.now();
    if (nowMs >= this.#maxEndAtMs) {
      this.#end({ result: 'TIMEOUT', reason: 'maximum call duration reached', error: `CALL_TIMEOUT: call exceeded calls.maxDurationS=${this.#o.calls.maxDurationS}` });
      return;
    }
    const frame = this.#nextFrame();
    if (frame) {
      // The frame is ours alone (the playout never touches a shifted frame): the socket may keep it queued.
      state.media.sendAudioMessage(encodeAudioInPlace(this.#lineKind, frame));
      this.#stats.agentFramesOut++;
      if (!this.#greetingReported && this.#mediaAtMs !== undefined) {
        this.#greetingReported = true;
        this.#emit({ type: 'greeting', msAfterMedia: Math.round(nowMs - this.#mediaAtMs) });
      }
    } else {
      state.media.sendAudioMessage(this.#silenceMessage);
      this.#stats.silenceFramesOut++;
    }
    this.#stats.framesOut++;
    if (this.#lastFrameOutAtMs !== undefined) {
      const gapMs = nowMs - this.#lastFrameOutAtMs;
      if (gapMs > this.#stats.maxOutGapMs) this.#stats.maxOutGapMs = gapMs;
    }
    this.#lastFrameOutAtMs = nowMs;

    if (state.name === 'draining') {
      const quiet = this.#agentFinished || nowMs - this.#lastAgentAudioAtMs >= this.#o.calls.postToolQuietMs;
      if ((this.#playout.frames === 0 && this.#pending.bytes === 0 && quiet) || nowMs >= state.deadline) {
        this.#end(state.end);
      }
      return;
    }
    // Asterisk sends nothing while the far end has no media; keep the agent's input alive.
    if (this.#agent && this.#uplinkSilence && nowMs - this.#lastInboundAtMs >= UPLINK_IDLE_MS) {
      this.#agent.sendAudio(this.#uplinkSilence);
      this.#stats.bytesToAgent += this.#uplinkSilence.length;
    }
  }

  // ── Asterisk side ───────────────────────────────────────────────────────────────────────────

  #onMediaAudio(payload: Buffer, sampleRateHz: number): void {
    if (this.#state.name !== 'live' && this.#state.name !== 'draining') return;
    this.#stats.framesIn++;
    this.#lastInboundAtMs = this.#o.clock.now();
    if (!this.#sawInboundAudio) {
      this.#sawInboundAudio = true;
      if (sampleRateHz !== this.#lineFormat.sampleRateHz) this.#switchLineFormat(sampleRateHz);
    } else if (sampleRateHz !== this.#lineFormat.sampleRateHz) {
      // protocols.md §1.6: Asterisk adapts to rate changes, so we follow it too.
      this.#switchLineFormat(sampleRateHz);
    }
    this.#trackCallerSpeech(payload);
    // Uplink stops while draining: the caller's words would only start a turn nobody hears.
    if (this.#state.name !== 'live' || !this.#agent || !this.#uplink) return;
    const chunk = this.#uplink.convert(payload);
    if (chunk.length > 0) {
      this.#agent.sendAudio(chunk);
      this.#stats.bytesToAgent += chunk.length;
    }
  }

  #onMediaDtmf(digit: string): void {
    if (this.#state.name !== 'live' || !this.#agent) return;
    const dtmf = this.#dtmfPolicy();
    if (dtmf.mode === 'off') return;
    if (this.#dtmfTimer) this.#o.clock.clearTimer(this.#dtmfTimer);
    this.#dtmfTimer = undefined;
    if (dtmf.terminator !== 'none' && digit === dtmf.terminator) {
      this.#flushDtmf(dtmf.mode, true);
      return;
    }
    this.#dtmfDigits += digit;
    if (dtmf.interDigitTimeoutMs <= 0) {
      this.#flushDtmf(dtmf.mode, false);
      return;
    }
    const mode = dtmf.mode;
    this.#dtmfTimer = this.#o.clock.setTimer(() => {
      this.#dtmfTimer = undefined;
      this.#flushDtmf(mode, false);
    }, dtmf.interDigitTimeoutMs);
  }

  #flushDtmf(mode: 'user_message' | 'contextual_update', terminated: boolean): void {
    const digits = this.#dtmfDigits;
    this.#dtmfDigits = '';
    if (digits.length === 0 || !this.#agent) return;
    const text = `The caller pressed keypad digits: ${digits}${terminated ? ' (ended with the terminator key)' : ''}`;
    this.#agent.sendText(mode, text);
    this.#emit({ type: 'dtmf', digits, forwardedAs: mode });
  }

  #dtmfPolicy(): { mode: 'user_message' | 'contextual_update' | 'off'; interDigitTimeoutMs: number; terminator: string } {
    const config = this.#o.agentConfig;
    // The echo agent answers each key at once with the same tone, which proves DTMF wiring.
    if (config.provider === 'echo') return { mode: 'user_message', interDigitTimeoutMs: 0, terminator: 'none' };
    return config.dtmf;
  }

  #onMediaClose(reason: 'eof' | 'error' | 'local' | 'bad-frame'): void {
    const state = this.#state;
    if (state.name === 'ended') return;
    if (this.#redirectedTo !== undefined) {
      this.#end({ result: 'COMPLETED', reason: `redirected to ${this.#redirectedTo} over AMI` });
      return;
    }
    if (state.name === 'draining') {
      // We asked for the end already (or the caller left during the farewell): keep that outcome.
      this.#end(state.end);
      return;
    }
    if (reason === 'bad-frame') {
      this.#end({ result: 'AGENT_ERROR', reason: 'malformed AudioSocket message', error: 'AUDIOSOCKET_BAD_FRAME: malformed AudioSocket message from Asterisk' });
      return;
    }
    this.#end({ result: 'CALLER_HANGUP', reason: `media ${reason}` });
  }

  #onMediaTimeout(): void {
    if (this.#state.name !== 'pending') return;
    this.#end({
      result: 'TIMEOUT',
      reason: 'Asterisk never connected to AudioSocket',
      error: `CALL_TIMEOUT: no AudioSocket connection within ${this.#o.mediaTimeoutMs} ms`,
    });
  }

  // ── agent side ──────────────────────────────────────────────────────────────────────────────

  #agentHandlers(): AgentHandlers {
    return {
      onAudio: (chunk, eventId) => this.#onAgentAudio(chunk, eventId),
      onInterruption: (eventId) => this.#onAgentInterruption(eventId),
      onToolCall: (call) => this.#onAgentToolCall(call),
      onTranscript: (entry) => this.#onAgentTranscript(entry),
      onNotice: (notice) => {
        this.#log.info({ notice: notice.type, detail: notice.detail }, 'agent notice');
        this.#emit({ type: 'notice', notice: notice.type, detail: notice.detail });
      },
      onEnd: (end) => this.#onAgentEnd(end),
    };
  }

  #onAgentAudio(chunk: Buffer, eventId: number): void {
    if (this.#state.name === 'ended') return;
    // protocols.md §4.9: after an interruption, audio of that response or older is stale.
    if (eventId <= this.#lastInterruptId && eventId !== 0) return;
    this.#lastAgentAudioAtMs = this.#o.clock.now();
    if (chunk.length === 0) return;
    this.#noteResponse(eventId);
    // Bounded in milliseconds (calls.maxBufferedAudioMs, style.md rule 4): beyond it the newest audio
    // is dropped and counted; what is queued keeps playing in order.
    const format = this.#agentOutputFormat() ?? UNKNOWN_AGENT_FORMAT;
    const roomMs = this.#o.calls.maxBufferedAudioMs - this.#queuedMs();
    const sampleBytes = bytesPerSample(format);
    const roomBytes = Math.max(0, Math.floor((roomMs * format.sampleRateHz) / 1000)) * sampleBytes;
    if (roomBytes < chunk.length) {
      this.#stats.droppedAgentBytes += chunk.length - roomBytes;
      this.#log.warn({ droppedBytes: chunk.length - roomBytes }, 'playout buffer full: agent audio dropped');
      if (roomBytes === 0) return;
      chunk = chunk.subarray(0, roomBytes);
    }
    this.#pending.push(chunk, eventId);
  }

  /** A new response: the caller waited for it since they stopped speaking, plus what is still queued. */
  #noteResponse(eventId: number): void {
    if (eventId <= this.#lastEnqueuedEventId) return;
    if (this.#callerStoppedAtMs !== undefined && this.#lastEnqueuedEventId >= 0) {
      const latencyMs = this.#o.clock.now() - this.#callerStoppedAtMs + this.#queuedMs();
      this.#emit({ type: 'turn', latencyMs: Math.round(latencyMs), eventId });
      this.#callerStoppedAtMs = undefined;
    }
    this.#lastEnqueuedEventId = eventId;
  }

  /** Agent audio queued ahead of the clock: playout frames plus what is not converted yet. */
  #queuedMs(): number {
    const pendingBytes = this.#pending.bytes;
    const pendingMs = pendingBytes === 0 ? 0 : msForBytes(this.#agentOutputFormat() ?? UNKNOWN_AGENT_FORMAT, pendingBytes);
    return msForBytes(this.#lineFormat, this.#playout.bufferedBytes) + pendingMs;
  }

  /** The format of the audio the agent sends, once it is known. */
  #agentOutputFormat(): AudioFormat | undefined {
    const formats = this.#agent?.formats;
    if (formats === undefined) return undefined;
    return formats === 'line' ? this.#lineFormat : formats.output;
  }

  /**
   * The next line frame, or undefined for silence. Converts pending agent audio one frame's worth at
   * a time, only as far as this frame needs (the rest waits for its own tick).
   */
  #nextFrame(): Buffer | undefined {
    const downlink = this.#downlink;
    const pending = this.#pending;
    if (downlink !== undefined) {
      while (this.#playout.frames === 0 && pending.bytes > 0) {
        const slice = pending.take(this.#downlinkSliceBytes)!;
        this.#enqueueLine(downlink.convert(slice), pending.takenEventId);
      }
    }
    return this.#playout.shift();
  }

  /** Converts everything pending now, in order: before the drain seals the last frame, or DTMF tones queue behind it. */
  #convertAllPending(): void {
    const downlink = this.#downlink;
    if (downlink === undefined) return;
    const pending = this.#pending;
    while (pending.bytes > 0) {
      const slice = pending.take(this.#downlinkSliceBytes)!;
      this.#enqueueLine(downlink.convert(slice), pending.takenEventId);
    }
  }

  /** Line audio into the playout buffer (whose own bound is the same maxBufferedAudioMs). */
  #enqueueLine(lineAudio: Buffer, eventId: number): void {
    if (lineAudio.length === 0) return;
    const accepted = this.#playout.enqueue(lineAudio, eventId);
    if (accepted < lineAudio.length) {
      this.#stats.droppedAgentBytes += lineAudio.length - accepted;
      this.#log.warn({ droppedBytes: lineAudio.length - accepted }, 'playout buffer full: agent audio dropped');
    }
  }

  #onAgentInterruption(eventId: number): void {
    if (eventId <= this.#lastInterruptId) return;
    this.#lastInterruptId = eventId;
    this.#stats.interruptions++;
    // AudioSocket has no "clear" command: the only way to stop speech at once is to drop what is queued.
    const droppedMs = this.#queuedMs();
    this.#playout.clear();
    this.#pending.clear();
    this.#downlink?.reset();
    this.#emit({ type: 'interruption', eventId, droppedMs: Math.round(droppedMs) });
  }

  #onAgentTranscript(entry: TranscriptEntry): void {
    this.#emit({ type: 'transcript', role: entry.role, text: entry.text, eventId: entry.eventId, original: entry.original });
  }

  #onAgentToolCall(call: ToolCall): void {
    const agent = this.#agent;
    const answer = (result: string, isError: boolean): void => {
      agent?.sendToolResult(call.toolCallId, result, isError);
      this.#emit({ type: 'tool', toolName: call.toolName, toolCallId: call.toolCallId, parameters: call.parameters, result, isError });
    };
    if (this.#state.name === 'ended' || this.#state.name === 'draining') {
      answer('The call is already ending.', true);
      return;
    }
    switch (call.toolName) {
      case 'transfer_call': {
        const transfers = this.#o.agentConfig.transfers;
        const name = String(call.parameters['destination'] ?? call.parameters['target'] ?? '');
        const target = Object.hasOwn(transfers, name) ? transfers[name] : undefined;
        if (!target) {
          const allowed = Object.keys(transfers);
          answer(
            allowed.length > 0
              ? `Unknown destination "${name}". Allowed destinations: ${allowed.join(', ')}.`
              : 'Transfers are not enabled for this agent.',
            true,
          );
          return;
        }
        answer(`Transferring the caller to ${name}.`, false);
        this.#requestEnd({ result: 'TRANSFER', reason: `transfer to ${name}`, transferTo: formatTransferTarget(target) });
        return;
      }
      case 'hangup_call': {
        answer('The call will end after your last words.', false);
        this.#requestEnd({ result: 'AGENT_HANGUP', reason: 'agent used hangup_call' });
        return;
      }
      case 'send_dtmf': {
        const digits = String(call.parameters['digits'] ?? '');
        if (!DTMF_DIGITS.test(digits)) {
          answer('digits must be 1-32 characters of 0-9, *, #, A-D.', true);
          return;
        }
        const tones = generateDtmf(digits, { sampleRateHz: this.#lineFormat.sampleRateHz });
        // After whatever the agent already said: the tones are line audio, so what is pending goes first.
        this.#convertAllPending();
        this.#enqueueLine(tones, Math.max(this.#lastEnqueuedEventId, 0));
        answer(`Sent DTMF ${digits}.`, false);
        return;
      }
      default:
        answer(`Unknown tool "${call.toolName}": ai-call executes transfer_call, hangup_call and send_dtmf.`, true);
    }
  }

  #onAgentEnd(end: AgentEnd): void {
    this.#agentFinished = true;
    if (end.kind === 'agent_hangup') {
      this.#requestEnd({ result: 'AGENT_HANGUP', reason: end.detail });
      return;
    }
    this.#log.warn({ err: describeError(end.error), closeCode: end.closeCode }, 'agent session failed');
    this.#end({ result: 'AGENT_ERROR', reason: 'agent failed', error: describeError(end.error) });
  }

  /** The agent is done (hang-up, transfer): play out its last words, then end. */
  #requestEnd(end: PendingEnd): void {
    const state = this.#state;
    if (state.name === 'live') this.#beginDrain(end);
    else if (state.name === 'pending') this.#agentEnd ??= end;
  }

  #beginDrain(end: PendingEnd): void {
    const state = this.#state;
    if (state.name !== 'live') return;
    this.#emit({ type: 'call.ending', result: end.result, reason: end.reason });
    // The last words: everything received so far, its final partial frame padded with silence.
    this.#convertAllPending();
    this.#playout.sealPartial();
    // After a tool call the agent usually still speaks ("transferring you now"): give it time to start.
    this.#lastAgentAudioAtMs = this.#o.clock.now();
    this.#transition({ name: 'draining', media: state.media, end, deadline: this.#o.clock.now() + this.#o.calls.drainTimeoutMs });
  }

  #onAgentAndMediaReady(): void {
    const agent = this.#agent!;
    this.#configureConverters();
    agent.startMedia(this.#lineFormat);
    // Audio that arrived before media (the greeting) is pending and plays from the next frame on.
  }

  #configureConverters(): void {
    const agent = this.#agent;
    if (!agent) return;
    const formats = agent.formats;
    if (formats === 'line') {
      this.#uplink = identityConverter();
      this.#downlink = identityConverter();
      this.#downlinkSliceBytes = bytesForMs(this.#lineFormat, this.#frameMs);
      this.#uplinkSilence = Buffer.alloc(bytesForMs(this.#lineFormat, this.#frameMs));
    } else {
      this.#uplink = this.#createConverter(this.#lineFormat, formats.input);
      this.#downlink = this.#createConverter(formats.output, this.#lineFormat);
      this.#downlinkSliceBytes = bytesForMs(formats.output, this.#frameMs);
      this.#uplinkSilence = this.#createConverter(this.#lineFormat, formats.input).convert(Buffer.alloc(bytesForMs(this.#lineFormat, this.#frameMs)));
      if (sameFormat(formats.input, this.#lineFormat) && sameFormat(formats.output, this.#lineFormat)) {
        this.#log.debug('agent formats match the line: audio passes through untouched');
      }
    }
  }

  #switchLineFormat(sampleRateHz: number): void {
    const kind = kindForSampleRate(sampleRateHz);
    if (kind === undefined) return;
    const previous = this.#lineFormat;
    const next: AudioFormat = { encoding: 'pcm', sampleRateHz };
    this.#log.info({ fromHz: previous.sampleRateHz, toHz: sampleRateHz }, 'Asterisk carries a different rate than expected: following it');
    // Re-convert what is already queued (the greeting) so nothing is lost or played at the wrong pitch.
    // (Pending agent audio is still in the agent's format: the new downlink converter takes it as is.)
    const queued: Buffer[] = [];
    for (let frame = this.#playout.shift(); frame; frame = this.#playout.shift()) queued.push(frame.subarray(HEADER_BYTES));
    const requeue = this.#createConverter(previous, next);
    this.#lineFormat = next;
    this.#lineKind = kind;
    this.#playout = this.#newPlayout(next);
    this.#silenceMessage = encodeAudio(kind, Buffer.alloc(bytesForMs(next, this.#frameMs)));
    for (const frame of queued) this.#playout.enqueue(requeue.convert(frame), this.#lastEnqueuedEventId);
    this.#configureConverters();
    this.#agent?.startMedia(next);
    this.#emit({ type: 'media.format', sampleRateHz });
  }

  #newPlayout(format: AudioFormat): PlayoutBuffer {
    return new PlayoutBuffer({
      frameBytes: bytesForMs(format, this.#frameMs),
      maxBufferedBytes: bytesForMs(format, this.#o.calls.maxBufferedAudioMs),
      // Each frame leaves as one AudioSocket message built in place (encodeAudioInPlace): no copy.
      headroomBytes: HEADER_BYTES,
    });
  }

  #trackCallerSpeech(payload: Buffer): void {
    // Mean absolute level over every sample (skipping samples would alias with tones: a 1 kHz tone
    // read every 4th sample at 8 kHz is all zero crossings). 160 samples per frame, s16le read by hand:
    // the payload sits at an odd offset of the socket chunk, so no Int16Array can view it.
    let sum = 0;
    let count = 0;
    for (let i = 0; i + 1 < payload.length; i += 2) {
      sum += Math.abs(((payload[i]! | (payload[i + 1]! << 8)) << 16) >> 16);
      count++;
    }
    const speaking = count > 0 && sum / count > SPEECH_MEAN_ABS;
    if (speaking) {
      this.#callerSpeaking = true;
      this.#callerStoppedAtMs = undefined;
    } else if (this.#callerSpeaking) {
      this.#callerSpeaking = false;
      this.#callerStoppedAtMs = this.#o.clock.now();
    }
  }

  // ── lifecycle ───────────────────────────────────────────────────────────────────────────────

  #transition(next: CallState): void {
    const previous = this.#state;
    if (previous.name === 'pending' && next.name !== 'pending') this.#o.clock.clearTimer(previous.expiryTimer);
    this.#state = next;
    this.#log.debug({ from: previous.name, to: next.name }, 'call state');
  }

  /** The single exit: releases media, agent, timers and the clock slot, exactly once. */
  #end(end: PendingEnd): void {
    const state = this.#state;
    if (state.name === 'ended') return;
    this.#endedAtMs = this.#o.clock.now();
    this.#o.frameClock.remove(this);
    if (this.#dtmfTimer) this.#o.clock.clearTimer(this.#dtmfTimer);
    this.#dtmfTimer = undefined;
    this.#agentStart?.abort(new BridgeError('AGENT_CLOSED', `call ended: ${end.reason}`));
    this.#agent?.close(end.reason);
    if (state.name === 'live' || state.name === 'draining') {
      if (end.result === 'CALLER_HANGUP') state.media.close();
      else state.media.hangup();
    }
    const outcome: CallOutcome = Object.freeze({
      result: end.result,
      transferTo: end.transferTo ?? '',
      conversationId: this.#agent?.conversationId ?? '',
      durationS: this.#durationS(),
      error: end.error ?? '',
    });
    this.#transition({ name: 'ended', outcome });
    this.#pending.release();
    this.#playout.clear();
    // The registry keeps ended calls for the result AGI (calls.resultTtlMs, 10 min by default):
    // keep only the outcome, not the agent session (WebSocket, buffers) or the resamplers.
    this.#agent = undefined;
    this.#uplink = undefined;
    this.#downlink = undefined;
    this.#uplinkSilence = undefined;
    // The silence message is a slice of Node's shared 8 KB buffer pool: kept, it would pin that slab.
    this.#silenceMessage = NO_AUDIO;
    this.#log.info({ result: outcome.result, reason: end.reason, error: outcome.error || undefined, durationS: outcome.durationS, stats: this.#stats }, 'call ended');
    this.#emit({ type: 'call.ended', outcome, stats: { ...this.#stats, maxOutGapMs: Math.round(this.#stats.maxOutGapMs * 100) / 100 } });
    this.#resolveEnded(outcome);
    this.#o.onEnded(this);
  }

  #durationS(): number {
    if (this.#mediaAtMs === undefined) return 0;
    const endMs = this.#endedAtMs ?? this.#o.clock.now();
    return Math.max(0, Math.round((endMs - this.#mediaAtMs) / 1000));
  }

  #emit(event: DistributiveOmit<CallEvent, 'callId' | 'at'>): void {
    try {
      this.#o.emit({ ...event, callId: this.callId, at: this.#o.clock.wallNow() } as CallEvent);
    } catch (err) {
      this.#log.error({ err: describeError(err) }, 'call event sink threw');
    }
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function identityConverter(): Converter {
  return { convert: (input) => input, reset() {} };
}
