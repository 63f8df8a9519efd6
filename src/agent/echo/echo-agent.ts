import type { AgentHandlers, AgentProvider, AgentSession, CallContext } from '../types.js';
import { bytesForMs, type AudioFormat } from '../../audio/format.js';
import { generateDtmf } from '../../audio/dtmf.js';
import { BridgeError } from '../../errors.js';

/**
 * The diagnostic agent, like Asterisk's Echo(): it plays the caller's audio back `delayMs` later
 * and answers key presses with the same DTMF tones. An admin uses it to prove the wiring
 * (AGI, AudioSocket, pacing, DTMF) before any ElevenLabs agent is involved.
 */
export class EchoProvider implements AgentProvider {
  readonly #delayMs: number;

  constructor(options: { delayMs: number }) {
    this.#delayMs = options.delayMs;
  }

  async start(_context: CallContext, handlers: AgentHandlers, signal: AbortSignal): Promise<AgentSession> {
    if (signal.aborted) throw new BridgeError('AGENT_CONNECT_FAILED', 'echo agent start aborted', { cause: signal.reason });
    return new EchoSession(this.#delayMs, handlers);
  }
}

class EchoSession implements AgentSession {
  readonly formats = 'line' as const;
  readonly conversationId = undefined;
  readonly #delayMs: number;
  readonly #handlers: AgentHandlers;
  #lineFormat: AudioFormat | undefined;
  #closed = false;

  constructor(delayMs: number, handlers: AgentHandlers) {
    this.#delayMs = delayMs;
    this.#handlers = handlers;
  }

  startMedia(lineFormat: AudioFormat): void {
    const first = this.#lineFormat === undefined;
    this.#lineFormat = lineFormat;
    if (!first) return;
    // The delay is a run of silence queued ahead of the caller's audio; the 20 ms clock then
    // keeps everything that follows exactly that far behind.
    const delayBytes = bytesForMs(lineFormat, this.#delayMs);
    if (delayBytes > 0 && !this.#closed) this.#handlers.onAudio(Buffer.alloc(delayBytes), 0);
  }

  sendAudio(chunk: Buffer): void {
    if (!this.#closed) this.#handlers.onAudio(chunk, 0);
  }

  sendText(_kind: 'user_message' | 'contextual_update', text: string): void {
    if (this.#closed || this.#lineFormat === undefined) return;
    const digits = (/digits: ([0-9*#A-D]+)/.exec(text)?.[1]) ?? '';
    if (digits.length > 0) this.#handlers.onAudio(generateDtmf(digits, { sampleRateHz: this.#lineFormat.sampleRateHz }), 0);
  }

  sendToolResult(): void {
    // The echo agent never calls tools.
  }

  close(): void {
    this.#closed = true;
  }
}
