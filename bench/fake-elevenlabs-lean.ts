/**
 * A lean fake of the ElevenLabs Agents Platform for load: the same contract as
 * test/support/fake-elevenlabs.ts (/work/shared/specs/elevenlabs-agent.asyncapi.yaml, protocols.md §4),
 * with only what a load run needs and none of the per-message bookkeeping, so a thousand
 * conversations cost the load generator little.
 *
 * REST   GET /v1/convai/conversation/get-signed-url?agent_id=… with `xi-api-key` → 200
 *        {"signed_url":"ws://…/v1/convai/conversation?agent_id=…&conversation_signature=…"}; 401 on a
 *        bad key, 404 for an unknown agent. Signatures are single use; the upgrade needs one (403).
 * WS     on `conversation_initiation_client_data`: `conversation_initiation_metadata` and the greeting
 *        (`agent_response` + 600 ms of tone in 100 ms `audio` chunks, sent at once, faster than real
 *        time, one `event_id`). The format is the agent's, both ways (protocols.md §4.7: it is set on
 *        the agent, never per connection): LEAN_FAKE_AGENT_ID is `pcm_8000` (the recommended setup
 *        with the 8 kHz AudioSocket app: no DSP), LEAN_FAKE_AGENT_ID_16K is `pcm_16000` (the bridge
 *        resamples 8 k ↔ 16 k both ways).
 *        Caller audio (`user_audio_chunk`) drives a VAD (RMS ≥ 500 for 60 ms = speech; 300 ms of
 *        silence ends the utterance). An utterance end plays the next turn: `user_transcript`, then
 *        `agent_response` + tone (2000 ms; 600 ms after a barge-in). Speech that starts while agent
 *        audio is still "playing" (its real-time length since it was sent) is a barge-in:
 *        `interruption {event_id}`, `agent_response_correction`, then 2 stale `audio` chunks with the
 *        interrupted id, which the bridge must drop (§4.9). `ping` every 3 s; `pong` is read.
 *
 * Outgoing frames are built by string concatenation for speed; `checkFrameShapes()` proves at start
 * that each equals JSON.stringify of the object typed by `@elevenlabs/types`.
 *
 * Measurement hooks: the conversation is tied to the load generator's call through the bridge's
 * built-in dynamic variable `call_id` (the AI_UUID), so uplink latency (caller frame sent → chunk
 * here), the send time of each reply (downlink) and of each interruption (barge-in) reach the call.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { isDeepStrictEqual } from 'node:util';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { AgentResponse, AgentResponseCorrection, Audio, ConversationMetadata, Interruption, Ping, UserTranscript } from '@elevenlabs/types';

export const LEAN_FAKE_API_KEY = 'xi-bench-key-0123456789abcdef';
/** Agent formats `pcm_8000` both ways. */
export const LEAN_FAKE_AGENT_ID = 'bench_agent';
/** Agent formats `pcm_16000` both ways. */
export const LEAN_FAKE_AGENT_ID_16K = 'bench_agent_16k';

const CONVERSATION_PATH = '/v1/convai/conversation';
const SIGNED_URL_PATH = '/v1/convai/conversation/get-signed-url';
/** Agent id → its audio format (s16le, both directions). */
const AGENT_RATES_HZ: ReadonlyMap<string, number> = new Map([
  [LEAN_FAKE_AGENT_ID, 8_000],
  [LEAN_FAKE_AGENT_ID_16K, 16_000],
]);
const CHUNK_MS = 100;
const GREETING_MS = 600;
const REPLY_MS = 2_000;
const REPLY_AFTER_BARGE_IN_MS = 600;
const STALE_CHUNKS = 2;
const PING_INTERVAL_MS = 3_000;
/** Replies leave at a random point of the 20 ms slot, so downlink latency samples cover every phase. */
const REPLY_JITTER_MS = 20;
const VAD_THRESHOLD_RMS = 500;
const VAD_SPEECH_MS = 60;
const VAD_SILENCE_MS = 300;

/** 100 ms of a 400 Hz tone: exactly 40 cycles, so chunks join seamlessly. */
function toneChunkBase64(rateHz: number): string {
  const samples = (rateHz * CHUNK_MS) / 1000;
  const pcm = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) pcm.writeInt16LE(Math.round(10_000 * Math.sin((2 * Math.PI * 400 * i) / rateHz)), i * 2);
  return pcm.toString('base64');
}
const TONE_CHUNKS_BASE64: ReadonlyMap<number, string> = new Map([...AGENT_RATES_HZ.values()].map((rate) => [rate, toneChunkBase64(rate)]));

const USER_AUDIO_PREFIX = Buffer.from('{"user_audio_chunk":"');
const USER_AUDIO_SUFFIX = Buffer.from('"}');

// ── frames (contract shapes; see checkFrameShapes) ─────────────────────────────────────────────

function metadataFrame(conversationId: string, format: string): string {
  return `{"type":"conversation_initiation_metadata","conversation_initiation_metadata_event":{"conversation_id":"${conversationId}","agent_output_audio_format":"${format}","user_input_audio_format":"${format}"}}`;
}
function audioFrame(base64: string, eventId: number): string {
  return `{"type":"audio","audio_event":{"audio_base_64":"${base64}","event_id":${eventId}}}`;
}
function agentResponseFrame(text: string, eventId: number): string {
  return `{"type":"agent_response","agent_response_event":{"agent_response":"${text}","event_id":${eventId}}}`;
}
function userTranscriptFrame(text: string, eventId: number): string {
  return `{"type":"user_transcript","user_transcription_event":{"user_transcript":"${text}","event_id":${eventId}}}`;
}
function interruptionFrame(eventId: number): string {
  return `{"type":"interruption","interruption_event":{"event_id":${eventId}}}`;
}
function correctionFrame(original: string, corrected: string, eventId: number): string {
  return `{"type":"agent_response_correction","agent_response_correction_event":{"original_agent_response":"${original}","corrected_agent_response":"${corrected}","event_id":${eventId}}}`;
}
function pingFrame(eventId: number, pingMs: number | null): string {
  return `{"type":"ping","ping_event":{"event_id":${eventId},"ping_ms":${pingMs === null ? 'null' : pingMs}}}`;
}

/** Throws unless every hand-built frame is exactly the contract object, serialized. */
export function checkFrameShapes(): void {
  const cases: Array<[string, unknown]> = [
    [
      metadataFrame('conv_1', 'pcm_16000'),
      {
        type: 'conversation_initiation_metadata',
        conversation_initiation_metadata_event: { conversation_id: 'conv_1', agent_output_audio_format: 'pcm_16000', user_input_audio_format: 'pcm_16000' },
      } satisfies ConversationMetadata,
    ],
    [
      metadataFrame('conv_2', 'pcm_8000'),
      {
        type: 'conversation_initiation_metadata',
        conversation_initiation_metadata_event: { conversation_id: 'conv_2', agent_output_audio_format: 'pcm_8000', user_input_audio_format: 'pcm_8000' },
      } satisfies ConversationMetadata,
    ],
    [audioFrame('AAAA', 3), { type: 'audio', audio_event: { audio_base_64: 'AAAA', event_id: 3 } } satisfies Audio],
    [agentResponseFrame('Hello.', 3), { type: 'agent_response', agent_response_event: { agent_response: 'Hello.', event_id: 3 } } satisfies AgentResponse],
    [userTranscriptFrame('Hi.', 4), { type: 'user_transcript', user_transcription_event: { user_transcript: 'Hi.', event_id: 4 } } satisfies UserTranscript],
    [interruptionFrame(5), { type: 'interruption', interruption_event: { event_id: 5 } } satisfies Interruption],
    [
      correctionFrame('Long answer.', 'Long', 5),
      {
        type: 'agent_response_correction',
        agent_response_correction_event: { original_agent_response: 'Long answer.', corrected_agent_response: 'Long', event_id: 5 },
      } satisfies AgentResponseCorrection,
    ],
    [pingFrame(1, null), { type: 'ping', ping_event: { event_id: 1, ping_ms: null } } satisfies Ping],
    [pingFrame(2, 3), { type: 'ping', ping_event: { event_id: 2, ping_ms: 3 } } satisfies Ping],
  ];
  for (const [text, object] of cases) {
    if (text !== JSON.stringify(object) || !isDeepStrictEqual(JSON.parse(text), object)) {
      throw new Error(`lean fake frame drifted from the contract: ${text}`);
    }
  }
}

// ── measurement hooks ─────────────────────────────────────────────────────────────────────────

/** What the load generator's call exposes to its conversation. */
export interface CallProbe {
  /** Send time of the caller frame that began the current utterance; cleared once read. */
  takeOnsetSentAt(): number | undefined;
  /** The first `audio` frame of a reply was written at `atMs`. */
  agentAudioSent(atMs: number): void;
  /** An `interruption` was written at `atMs`. */
  interruptionSent(atMs: number): void;
}

export interface LeanFakeOptions {
  /** The call whose AI_UUID is `callId`, once the load generator knows it. */
  readonly lookupCall: (callId: string) => CallProbe | undefined;
  /** Caller frame sent → first audio of that utterance here (ms). */
  readonly onUplinkLatency: (ms: number) => void;
  /** The conversation for `callId` sent its `conversation_initiation_metadata` at `atMs`: the agent is ready. */
  readonly onAgentReady: (callId: string, atMs: number) => void;
}

export interface LeanFakeCounters {
  signedUrls: number;
  conversations: number;
  refused: number;
  greetings: number;
  replies: number;
  interruptions: number;
  pings: number;
  pongs: number;
  userAudioChunks: number;
  unparsable: number;
}

// ── server ────────────────────────────────────────────────────────────────────────────────────

export class LeanFakeElevenLabs {
  readonly counters: LeanFakeCounters = { signedUrls: 0, conversations: 0, refused: 0, greetings: 0, replies: 0, interruptions: 0, pings: 0, pongs: 0, userAudioChunks: 0, unparsable: 0 };
  readonly #options: LeanFakeOptions;
  readonly #server: Server;
  readonly #wss: WebSocketServer;
  readonly #signatures = new Set<string>();
  readonly #conversations = new Set<LeanConversation>();
  #port = 0;

  private constructor(options: LeanFakeOptions) {
    this.#options = options;
    this.#wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024, skipUTF8Validation: true, clientTracking: false });
    this.#server = createServer((req, res) => this.#onRequest(req, res));
    this.#server.keepAliveTimeout = 60_000;
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#onUpgrade(req, socket, head));
  }

  static async start(options: LeanFakeOptions): Promise<LeanFakeElevenLabs> {
    checkFrameShapes();
    const fake = new LeanFakeElevenLabs(options);
    await new Promise<void>((resolve, reject) => {
      fake.#server.once('error', reject);
      fake.#server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = fake.#server.address();
    fake.#port = typeof address === 'object' && address !== null ? address.port : 0;
    return fake;
  }

  /** `http://127.0.0.1:PORT`, for ELEVENLABS_BASE_URL. */
  get baseUrl(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  get liveConversations(): number {
    return this.#conversations.size;
  }

  /** Called on the load generator's 20 ms tick: pings that are due. */
  onTick(nowMs: number): void {
    for (const conversation of this.#conversations) conversation.onTick(nowMs);
  }

  resetCounters(): void {
    for (const key of Object.keys(this.counters) as Array<keyof LeanFakeCounters>) this.counters[key] = 0;
  }

  async close(): Promise<void> {
    for (const conversation of this.#conversations) conversation.terminate();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.baseUrl);
    const reply = (status: number, body: unknown): void => {
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (req.method !== 'GET' || url.pathname !== SIGNED_URL_PATH) return reply(404, { detail: 'Not Found' });
    if (req.headers['xi-api-key'] !== LEAN_FAKE_API_KEY) return reply(401, { detail: { status: 'invalid_api_key', message: 'Invalid API key' } });
    const agentId = url.searchParams.get('agent_id') ?? '';
    if (!AGENT_RATES_HZ.has(agentId)) return reply(404, { detail: { status: 'agent_not_found', message: 'Agent not found' } });
    const signature = randomBytes(18).toString('base64url');
    this.#signatures.add(signature);
    this.counters.signedUrls++;
    const query = new URLSearchParams({ agent_id: agentId, conversation_signature: signature });
    return reply(200, { signed_url: `ws://127.0.0.1:${this.#port}${CONVERSATION_PATH}?${query.toString()}` });
  }

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', this.baseUrl);
    const signature = url.searchParams.get('conversation_signature') ?? '';
    const rateHz = AGENT_RATES_HZ.get(url.searchParams.get('agent_id') ?? '');
    const status = url.pathname !== CONVERSATION_PATH || rateHz === undefined ? 404 : this.#signatures.delete(signature) ? 0 : 403;
    if (status !== 0 || rateHz === undefined) {
      this.counters.refused++;
      socket.end(`HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : 'Forbidden'}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      socket.destroy();
      return;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      this.counters.conversations++;
      const conversation = new LeanConversation(ws, socket as Socket, rateHz, this.#options, this.counters, () => this.#conversations.delete(conversation));
      this.#conversations.add(conversation);
    });
  }
}

/** Decoded byte length of a base64 string of `chars` characters ending as `text` ends. */
function base64DecodedBytes(data: Buffer, start: number, end: number): number {
  const chars = end - start;
  let padding = 0;
  if (chars > 0 && data[end - 1] === 0x3d) padding++;
  if (chars > 1 && data[end - 2] === 0x3d) padding++;
  return (chars / 4) * 3 - padding;
}

/** base64 of `bytes` zero bytes, by length: a silent chunk compares equal to it byte for byte. */
const silentBase64 = new Map<number, Buffer>();
function silentBase64Of(base64Chars: number, decodedBytes: number): Buffer {
  let silent = silentBase64.get(base64Chars);
  if (!silent) {
    silent = Buffer.from(Buffer.alloc(decodedBytes).toString('base64'), 'latin1');
    silentBase64.set(base64Chars, silent);
  }
  return silent;
}

class LeanConversation {
  readonly #ws: WebSocket;
  readonly #socket: Socket;
  readonly #options: LeanFakeOptions;
  readonly #counters: LeanFakeCounters;
  readonly #onClosed: () => void;
  /** The agent's format, both ways: s16le at this rate. */
  readonly #rateHz: number;
  readonly #toneBase64: string;
  readonly #conversationId = `conv_${randomBytes(12).toString('hex')}`;
  #callId: string | undefined;
  #call: CallProbe | undefined;
  #initiated = false;
  #eventId = 0;
  #pingEventId = 0;
  #pingSentAtMs = 0;
  #lastPingMs: number | null = null;
  #nextPingAtMs = Infinity;
  // VAD (audio time, from chunk sizes)
  #speaking = false;
  #speechRunMs = 0;
  #silenceRunMs = 0;
  #previousSilent = true;
  // what the agent is "saying"
  #playingUntilMs = 0;
  #playingEventId = -1;
  #interrupted = false;
  #replyTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(ws: WebSocket, socket: Socket, rateHz: number, options: LeanFakeOptions, counters: LeanFakeCounters, onClosed: () => void) {
    this.#ws = ws;
    this.#rateHz = rateHz;
    this.#toneBase64 = TONE_CHUNKS_BASE64.get(rateHz)!;
    this.#socket = socket;
    this.#options = options;
    this.#counters = counters;
    this.#onClosed = onClosed;
    ws.on('message', (data: RawData) => this.#onMessage(data));
    ws.on('close', () => this.#close());
    ws.on('error', () => this.#close());
  }

  onTick(nowMs: number): void {
    if (nowMs < this.#nextPingAtMs) return;
    this.#nextPingAtMs = nowMs + PING_INTERVAL_MS;
    this.#pingSentAtMs = nowMs;
    this.#counters.pings++;
    this.#send(pingFrame(++this.#pingEventId, this.#lastPingMs));
  }

  terminate(): void {
    this.#ws.terminate();
    this.#close();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#replyTimer !== undefined) clearTimeout(this.#replyTimer);
    this.#onClosed();
  }

  #send(text: string): void {
    if (this.#ws.readyState === this.#ws.OPEN) this.#ws.send(text);
  }

  #probe(): CallProbe | undefined {
    if (this.#call === undefined && this.#callId !== undefined) this.#call = this.#options.lookupCall(this.#callId);
    return this.#call;
  }

  // ── receiving ─────────────────────────────────────────────────────────────────────────────

  #onMessage(raw: RawData): void {
    const data = Buffer.isBuffer(raw) ? raw : Array.isArray(raw) ? Buffer.concat(raw) : Buffer.from(raw);
    const prefix = USER_AUDIO_PREFIX.length;
    // Fast path for exactly `{"user_audio_chunk":"<base64>"}` (protocols.md §4.3): base64 needs no
    // JSON escaping, so the payload is the bytes between the quotes.
    if (
      data.length > prefix + USER_AUDIO_SUFFIX.length &&
      data.compare(USER_AUDIO_PREFIX, 0, prefix, 0, prefix) === 0 &&
      data[data.length - 2] === 0x22 &&
      data[data.length - 1] === 0x7d
    ) {
      this.#onUserAudio(data, prefix, data.length - USER_AUDIO_SUFFIX.length);
      return;
    }
    let json: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(data.toString('utf8'));
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      json = parsed as Record<string, unknown>;
    } catch {
      this.#counters.unparsable++;
      return;
    }
    const chunk = json['user_audio_chunk'];
    if (typeof chunk === 'string') {
      const bytes = Buffer.from(chunk, 'latin1');
      this.#onUserAudio(bytes, 0, bytes.length);
      return;
    }
    switch (json['type']) {
      case 'conversation_initiation_client_data':
        if (!this.#initiated) this.#onInitiation(json);
        return;
      case 'pong':
        if (json['event_id'] === this.#pingEventId) {
          this.#counters.pongs++;
          this.#lastPingMs = Math.round(performance.now() - this.#pingSentAtMs);
        }
        return;
      default:
        return; // contextual_update, user_message, user_activity: nothing to do in a load run
    }
  }

  #onInitiation(json: Record<string, unknown>): void {
    this.#initiated = true;
    const variables = json['dynamic_variables'];
    const callId = typeof variables === 'object' && variables !== null ? (variables as Record<string, unknown>)['call_id'] : undefined;
    if (typeof callId === 'string') this.#callId = callId.toLowerCase();
    this.#counters.greetings++;
    // Pings start at a random point so a thousand conversations do not ping in the same tick.
    this.#nextPingAtMs = performance.now() + Math.random() * PING_INTERVAL_MS;
    this.#socket.cork();
    this.#send(metadataFrame(this.#conversationId, `pcm_${this.#rateHz}`));
    this.#speak('Hello, this is the benchmark agent.', GREETING_MS);
    this.#socket.uncork();
    if (this.#callId !== undefined) this.#options.onAgentReady(this.#callId, performance.now());
  }

  #onUserAudio(data: Buffer, start: number, end: number): void {
    this.#counters.userAudioChunks++;
    const bytes = base64DecodedBytes(data, start, end);
    const ms = (bytes / 2 / this.#rateHz) * 1000;
    const silent = data.compare(silentBase64Of(end - start, bytes), 0, end - start, start, end) === 0;
    let rms = 0;
    if (!silent) {
      if (this.#previousSilent) {
        const sentAt = this.#probe()?.takeOnsetSentAt();
        if (sentAt !== undefined) this.#options.onUplinkLatency(performance.now() - sentAt);
      }
      const pcm = Buffer.from(data.toString('latin1', start, end), 'base64');
      let sum = 0;
      const samples = pcm.length >> 1;
      for (let i = 0; i < samples; i++) {
        const v = pcm.readInt16LE(i * 2);
        sum += v * v;
      }
      rms = samples > 0 ? Math.sqrt(sum / samples) : 0;
    }
    this.#previousSilent = silent;
    if (rms >= VAD_THRESHOLD_RMS) {
      this.#speechRunMs += ms;
      this.#silenceRunMs = 0;
      if (!this.#speaking && this.#speechRunMs >= VAD_SPEECH_MS) {
        this.#speaking = true;
        this.#onSpeechStart();
      }
    } else {
      this.#silenceRunMs += ms;
      if (!this.#speaking) this.#speechRunMs = 0;
      if (this.#speaking && this.#silenceRunMs >= VAD_SILENCE_MS) {
        this.#speaking = false;
        this.#speechRunMs = 0;
        this.#onUtteranceEnd();
      }
    }
  }

  // ── the agent ─────────────────────────────────────────────────────────────────────────────

  #onSpeechStart(): void {
    const now = performance.now();
    if (now >= this.#playingUntilMs) return;
    // Barge-in (protocols.md §4.9): interruption, correction, then stale chunks the bridge must drop.
    const interrupted = this.#playingEventId;
    this.#playingUntilMs = 0;
    this.#interrupted = true;
    this.#counters.interruptions++;
    this.#socket.cork();
    this.#send(interruptionFrame(interrupted));
    this.#probe()?.interruptionSent(performance.now());
    this.#send(correctionFrame('This is a long answer.', 'This is', interrupted));
    for (let i = 0; i < STALE_CHUNKS; i++) this.#send(audioFrame(this.#toneBase64, interrupted));
    this.#socket.uncork();
  }

  #onUtteranceEnd(): void {
    if (this.#replyTimer !== undefined) return;
    const replyMs = this.#interrupted ? REPLY_AFTER_BARGE_IN_MS : REPLY_MS;
    this.#interrupted = false;
    this.#replyTimer = setTimeout(() => {
      this.#replyTimer = undefined;
      if (this.#closed) return;
      this.#counters.replies++;
      this.#socket.cork();
      this.#send(userTranscriptFrame('Caller speech.', ++this.#eventId));
      this.#speak(replyMs === REPLY_MS ? 'This is a long answer.' : 'Sure.', replyMs);
      this.#socket.uncork();
    }, Math.random() * REPLY_JITTER_MS);
  }

  /** agent_response + the tone in CHUNK_MS pieces, all at once, one new event id. */
  #speak(text: string, ms: number): void {
    const eventId = ++this.#eventId;
    this.#send(agentResponseFrame(text, eventId));
    const chunks = Math.round(ms / CHUNK_MS);
    for (let i = 0; i < chunks; i++) {
      this.#send(audioFrame(this.#toneBase64, eventId));
      if (i === 0) this.#probe()?.agentAudioSent(performance.now());
    }
    this.#playingEventId = eventId;
    this.#playingUntilMs = performance.now() + ms;
  }
}
