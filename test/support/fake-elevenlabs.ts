/**
 * A contract-faithful fake of the ElevenLabs Agents Platform for tests: one `node:http` server on
 * 127.0.0.1:0 with the `ws` package, never the internet. Field names follow
 * /work/shared/specs/elevenlabs-agent.asyncapi.yaml (outgoing frames are typed with
 * `@elevenlabs/types`, so a drift in the contract breaks the build) and protocols.md §4.
 *
 * REST
 * - `GET /v1/convai/conversation/get-signed-url?agent_id=…(&environment=…)` with `xi-api-key`:
 *   200 `{"signed_url":"ws://127.0.0.1:PORT/v1/convai/conversation?agent_id=…&conversation_signature=…"}`,
 *   401 `{"detail":{"status":"invalid_api_key",…}}` on a bad key, 404 for an unknown agent.
 * - `GET /v1/convai/agents/:agent_id` with `xi-api-key`: the agent's configuration, for `ai-call
 *   agents check`, in the shape of the REST "Get agent" response
 *   (https://elevenlabs.io/docs/api-reference/agents/get; elevenlabs/elevenlabs-js
 *   `src/api/types/GetAgentResponseModel.ts`): `conversation_config.asr.user_input_audio_format`,
 *   `tts.agent_output_audio_format`, `conversation.client_events`, `agent.prompt.tools` (client and
 *   system tools; deprecated upstream in favour of `tool_ids`, which the fake also lists) and
 *   `platform_settings.{auth: {enable_auth, allowlist: [{hostname}], require_origin_header},
 *   overrides.conversation_config_override}`. `failAgentConfig(status)` makes it fail.
 *
 * WebSocket `/v1/convai/conversation?agent_id=…`
 * - A private agent needs a `conversation_signature` issued by get-signed-url (single use); without
 *   it, or with a bad one, the upgrade is refused with HTTP 403. Unknown agents get 404.
 * - An agent with `allowedOrigins` refuses (403) an Origin header outside them, and a missing Origin
 *   too unless `requireOriginHeader: false` (protocols.md §4.1).
 * - Every client frame is recorded (`FakeConversation.received`).
 * - On `conversation_initiation_client_data`: overrides the agent does not allow → `error`
 *   override_error + close 1008; a `{{variable}}` of the prompt/first message (or
 *   `requiredDynamicVariables`) not supplied → `error` missing_dynamic_variable + close 1008;
 *   `startFault` if set; otherwise `conversation_initiation_metadata` and, if the agent has a first
 *   message, the greeting: `agent_response` plus a tone in `agent_output_audio_format`, sent in
 *   `chunkMs` pieces at once (faster than real time), all with one `event_id`.
 * - Caller audio is decoded and measured (RMS): speech for `vad.speechMs` then silence for
 *   `vad.silenceMs` (audio time) plays the next scripted `turns` entry: `user_transcript`, an
 *   optional `client_tool_call` (waits for the `client_tool_result`), the reply (`agent_response` +
 *   tone, a new, higher `event_id`) and an optional end_call.
 * - Barge-in: speech starting while agent audio is still "playing" (each tone counts as playing for
 *   its real-time duration after it was sent) sends `interruption {event_id: <playing id>}`, then
 *   `agent_response_correction`, then `bargeIn.staleChunks` late audio chunks with the old id.
 * - Pings every `pingIntervalMs` (own event id sequence), pong latency recorded in `pongs`.
 * - Events are gated by the agent's `clientEvents`, as the real platform does (`error` always goes).
 * - Faults (`FakeFault`): quota, override_error, missing_dynamic_variable, crash (1011), drop
 *   (TCP destroyed, no close frame), silence (nothing more is sent), never_answer (no metadata).
 *
 * Scripting: give an agent `script(conversation)` (runs on accept) and/or `manual: true` (no
 * automatic replies at all), or take conversations with `fake.nextConversation()` and drive them
 * with the FakeConversation methods.
 *
 * @example
 *   const fake = await FakeElevenLabs.start({ agents: [{ agentId: 'agent_1', private: true }] });
 *   onTestFinished(() => fake.close());
 *   // config: elevenlabs.baseUrl = fake.baseUrl, elevenlabs.apiKey = fake.apiKey
 *   const conversation = await fake.nextConversation();
 *   await conversation.initiation;
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type {
  AgentResponse,
  AgentResponseCorrection,
  AgentToolResponseMessage,
  Audio,
  ClientToolCallMessage,
  ClientToolResult,
  ConversationInitiation,
  ConversationMetadata,
  ErrorMessage,
  Interruption,
  Ping,
  UserTranscript,
  VadScore,
} from '@elevenlabs/types';
import type { AudioFormatName } from '../../src/config/schema.js';

export const FAKE_API_KEY = 'xi-fake-key-0123456789abcdef';

/** The events the bridge needs (protocols.md §4.6); the fake's default client_events. */
export const BRIDGE_CLIENT_EVENTS = [
  'conversation_initiation_metadata',
  'ping',
  'audio',
  'interruption',
  'user_transcript',
  'agent_response',
  'agent_response_correction',
  'client_tool_call',
  'agent_tool_response',
] as const;

/** The platform's default client_events (EL contract): no tool events, no corrections. One list, ai-call's. */
export { PLATFORM_DEFAULT_CLIENT_EVENTS } from '../../src/agent/elevenlabs/agents-check.js';

/** Messages the fake can send, each exactly as the contract types it. */
export type FakeServerMessage =
  | ConversationMetadata
  | Audio
  | AgentResponse
  | AgentResponseCorrection
  | UserTranscript
  | Interruption
  | Ping
  | ClientToolCallMessage
  | AgentToolResponseMessage
  | VadScore
  | ErrorMessage;

/**
 * - `quota`: flat `{"type":"error","message":"…quota limit."}` (no error_event) + close 1002 (elevenlabs/packages#911)
 * - `override_error` / `missing_dynamic_variable`: `error` with error_event code 1008 + close 1008
 * - `crash`: `error` unknown_websocket_crash code 1011 + close 1011
 * - `drop`: the TCP socket is destroyed, no close frame (the client sees 1006)
 * - `silence`: from now on nothing is sent (no pings, audio or replies); the socket stays open
 * - `never_answer`: (start only) the initiation is recorded but never answered
 */
export type FakeFault = 'quota' | 'override_error' | 'missing_dynamic_variable' | 'crash' | 'drop' | 'silence' | 'never_answer';

export interface FakeTool {
  readonly name: string;
  /** client tools arrive as client_tool_call; system tools (end_call) as agent_tool_response. */
  readonly type: 'client' | 'system' | 'webhook';
  readonly description?: string;
}

export interface FakeTurn {
  /** Sent as user_transcript when the caller's utterance ends. Default "(caller speech N)". */
  readonly userTranscript?: string;
  /** Called (client_tool_call) before the reply; the reply waits for the client_tool_result. */
  readonly toolCall?: { readonly toolName: string; readonly parameters?: Record<string, unknown> };
  /** Reply text (agent_response); '' sends no reply. Default "(agent reply N)". */
  readonly agentResponse?: string;
  /** Reply tone length. Default 400 ms. */
  readonly replyMs?: number;
  /** After the reply: agent_tool_response end_call + farewell audio + close 1000 at once. */
  readonly endCall?: boolean;
}

export interface FakeAgent {
  readonly agentId: string;
  readonly name?: string;
  /** Private agents need a signed URL (default false). */
  readonly private?: boolean;
  /** Default pcm_16000. */
  readonly userInputAudioFormat?: AudioFormatName;
  /** Default pcm_16000. */
  readonly agentOutputAudioFormat?: AudioFormatName;
  /** conversation.client_events; default BRIDGE_CLIENT_EVENTS. */
  readonly clientEvents?: readonly string[];
  /** platform_settings.overrides; every field disabled by default, as on the platform. */
  readonly allowedOverrides?: {
    readonly firstMessage?: boolean;
    readonly language?: boolean;
    readonly prompt?: boolean;
    readonly voiceId?: boolean;
  };
  /** Refuse disallowed overrides with override_error (default true). */
  readonly enforceOverrides?: boolean;
  readonly prompt?: string;
  /** The greeting; '' or null means the agent waits for the caller. Default "Hello, how can I help?". */
  readonly firstMessage?: string | null;
  readonly language?: string;
  readonly voiceId?: string;
  /** Needed in addition to the {{names}} found in prompt and first message. */
  readonly requiredDynamicVariables?: readonly string[];
  readonly tools?: readonly FakeTool[];
  /** Greeting tone length; default 600 ms. */
  readonly greetingMs?: number;
  /** Tone frequency; default 440 Hz. */
  readonly toneHz?: number;
  /** Audio per `audio` message; default 100 ms. */
  readonly chunkMs?: number;
  readonly turns?: readonly FakeTurn[];
  /** Answer the initiation with this fault instead of metadata. */
  readonly startFault?: FakeFault;
  /** Send pings this often; 0 or unset: none. */
  readonly pingIntervalMs?: number;
  readonly bargeIn?: {
    /** Late audio chunks re-sent with the interrupted event_id after the interruption (default 0). */
    readonly staleChunks?: number;
    /** Send agent_response_correction after an interruption (default true; gated by clientEvents). */
    readonly correction?: boolean;
  };
  readonly vad?: {
    /** RMS on the 16-bit scale that counts as speech; default 500. */
    readonly thresholdRms?: number;
    /** Speech this long (audio time) starts an utterance; default 60 ms. */
    readonly speechMs?: number;
    /** Silence this long ends it; default 300 ms. */
    readonly silenceMs?: number;
  };
  /**
   * Only these Origin headers may connect (unset: any, including none). Listed in the agent's
   * configuration as `platform_settings.auth.allowlist: [{hostname: <host of the origin>}]`.
   */
  readonly allowedOrigins?: readonly string[];
  /**
   * `platform_settings.auth.require_origin_header`: with an allowlist, a connection without an Origin
   * header is refused. Default true when `allowedOrigins` is set (no effect without an allowlist).
   */
  readonly requireOriginHeader?: boolean;
  /**
   * The configuration leaves out `prompt.tools` (the deprecated expanded list) and gives only
   * `prompt.tool_ids`, so a reader cannot see the tools' names or types. Default false.
   */
  readonly omitToolDefinitions?: boolean;
  /** No automatic metadata, greeting, turns or pings: the test drives everything. */
  readonly manual?: boolean;
  /** Runs when a conversation is accepted (before the initiation arrives). */
  readonly script?: (conversation: FakeConversation) => void | Promise<void>;
}

export interface FakeElevenLabsOptions {
  /** The one valid xi-api-key; default FAKE_API_KEY. */
  readonly apiKey?: string;
  readonly agents?: readonly FakeAgent[];
}

/** One client frame as the fake received it. */
export interface ReceivedMessage {
  /** ms since the conversation was accepted. */
  readonly atMs: number;
  readonly text: string;
  readonly json: Record<string, unknown>;
}

export interface RestRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly apiKeyValid: boolean;
  readonly status: number;
}

// ---------------------------------------------------------------------------------------------
// Audio helpers (test-only; the fake needs no DSP beyond a tone and an RMS).

function formatOf(name: AudioFormatName): { encoding: 'pcm' | 'ulaw'; rateHz: number } {
  const [encoding, rate] = name.split('_') as ['pcm' | 'ulaw', string];
  return { encoding, rateHz: Number(rate) };
}

function linearToUlaw(sample: number): number {
  const BIAS = 0x84;
  const CLIP = 32635;
  let s = Math.max(-32768, Math.min(32767, Math.round(sample)));
  const sign = s < 0 ? 0x80 : 0;
  if (sign) s = -s;
  if (s > CLIP) s = CLIP;
  s += BIAS;
  let exponent = 7;
  for (let mask = 0x4000; (s & mask) === 0 && exponent > 0; mask >>= 1) exponent--;
  const mantissa = (s >> (exponent + 3)) & 0x0f;
  return ~(sign | (exponent << 4) | mantissa) & 0xff;
}

function ulawToLinear(code: number): number {
  const u = ~code & 0xff;
  const t = (((u & 0x0f) << 3) + 0x84) << ((u & 0x70) >> 4);
  return u & 0x80 ? 0x84 - t : t - 0x84;
}

/** A sine tone of `ms` in `format` (pcm s16le or µ-law), amplitude ~0.3 full scale. */
export function makeTone(format: AudioFormatName, ms: number, hz = 440, amplitude = 10_000): Buffer {
  const { encoding, rateHz } = formatOf(format);
  const samples = Math.round((rateHz * ms) / 1000);
  const out = Buffer.alloc(samples * (encoding === 'pcm' ? 2 : 1));
  for (let i = 0; i < samples; i++) {
    const v = amplitude * Math.sin((2 * Math.PI * hz * i) / rateHz);
    if (encoding === 'pcm') out.writeInt16LE(Math.round(v), i * 2);
    else out[i] = linearToUlaw(v);
  }
  return out;
}

/** Silence of `ms` in `format` (µ-law silence is 0xFF). */
export function makeSilence(format: AudioFormatName, ms: number): Buffer {
  const { encoding, rateHz } = formatOf(format);
  const samples = Math.round((rateHz * ms) / 1000);
  return encoding === 'pcm' ? Buffer.alloc(samples * 2) : Buffer.alloc(samples, 0xff);
}

/** RMS of a chunk on the 16-bit scale, and its duration. */
export function measureAudio(format: AudioFormatName, audio: Buffer): { rms: number; ms: number } {
  const { encoding, rateHz } = formatOf(format);
  const samples = encoding === 'pcm' ? Math.floor(audio.length / 2) : audio.length;
  if (samples === 0) return { rms: 0, ms: 0 };
  let sum = 0;
  for (let i = 0; i < samples; i++) {
    const v = encoding === 'pcm' ? audio.readInt16LE(i * 2) : ulawToLinear(audio[i]!);
    sum += v * v;
  }
  return { rms: Math.sqrt(sum / samples), ms: (samples / rateHz) * 1000 };
}

function placeholders(text: string | null | undefined): string[] {
  if (!text) return [];
  return [...text.matchAll(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g)].map((m) => m[1]!).filter((n) => !n.startsWith('system__'));
}

function renderVariables(text: string, vars: Record<string, unknown>): string {
  return text.replace(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g, (whole, name: string) =>
    Object.hasOwn(vars, name) ? String(vars[name]) : whole,
  );
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------

/** The fake server. Create with `FakeElevenLabs.start()`; always `close()` it. */
export class FakeElevenLabs {
  /** The valid xi-api-key. */
  readonly apiKey: string;
  /** Every conversation accepted so far, in order. */
  readonly conversations: FakeConversation[] = [];
  /** Every REST request, in order. */
  readonly restRequests: RestRequest[] = [];
  /** Upgrade attempts refused, with the HTTP status sent. */
  readonly refusedUpgrades: { readonly path: string; readonly status: number }[] = [];

  readonly #server: Server;
  readonly #wss: WebSocketServer;
  readonly #agents = new Map<string, FakeAgent>();
  /** signature → agent id; single use. */
  readonly #signatures = new Map<string, string>();
  #signedUrlFailure: number | 'hang' | undefined;
  #agentConfigFailure: number | undefined;
  #unclaimed: FakeConversation[] = [];
  #waiters: ((c: FakeConversation) => void)[] = [];
  #port = 0;

  private constructor(options: FakeElevenLabsOptions) {
    this.apiKey = options.apiKey ?? FAKE_API_KEY;
    for (const agent of options.agents ?? []) this.#agents.set(agent.agentId, agent);
    this.#wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 });
    this.#server = createServer((req, res) => this.#onRequest(req, res));
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#onUpgrade(req, socket, head));
  }

  /** Starts listening on 127.0.0.1 with a free port. */
  static async start(options: FakeElevenLabsOptions = {}): Promise<FakeElevenLabs> {
    const fake = new FakeElevenLabs(options);
    await new Promise<void>((resolve, reject) => {
      fake.#server.once('error', reject);
      fake.#server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = fake.#server.address();
    fake.#port = typeof address === 'object' && address !== null ? address.port : 0;
    return fake;
  }

  get port(): number {
    return this.#port;
  }

  /** `http://127.0.0.1:PORT`: use as `elevenlabs.baseUrl` (ELEVENLABS_BASE_URL). */
  get baseUrl(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Adds or replaces an agent. */
  defineAgent(agent: FakeAgent): void {
    this.#agents.set(agent.agentId, agent);
  }

  /** Makes get-signed-url answer with this HTTP status, or never answer ('hang'); undefined restores. */
  failSignedUrl(failure: number | 'hang' | undefined): void {
    this.#signedUrlFailure = failure;
  }

  /** Makes GET /v1/convai/agents/:agent_id answer with this HTTP status (after the key check); undefined restores. */
  failAgentConfig(status: number | undefined): void {
    this.#agentConfigFailure = status;
  }

  /** Resolves with the next conversation not yet taken by an earlier call (FIFO). */
  nextConversation(timeoutMs = 5_000): Promise<FakeConversation> {
    const ready = this.#unclaimed.shift();
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`no conversation within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (c: FakeConversation): void => {
        clearTimeout(timer);
        resolve(c);
      };
      this.#waiters.push(waiter);
    });
  }

  /** Destroys every connection and stops listening. */
  async close(): Promise<void> {
    for (const c of this.conversations) c.dispose();
    for (const client of this.#wss.clients) client.terminate();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  // ---- REST ----------------------------------------------------------------------------------

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.baseUrl);
    const query = Object.fromEntries(url.searchParams);
    const apiKeyValid = req.headers['xi-api-key'] === this.apiKey;
    const reply = (status: number, body: unknown): void => {
      this.restRequests.push({ method: req.method ?? '', path: url.pathname, query, apiKeyValid, status });
      const text = JSON.stringify(body);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (req.method !== 'GET') return reply(405, { detail: 'Method Not Allowed' });
    const agentMatch = /^\/v1\/convai\/agents\/([^/]+)$/.exec(url.pathname);
    if (url.pathname !== '/v1/convai/conversation/get-signed-url' && !agentMatch) return reply(404, { detail: 'Not Found' });
    if (!apiKeyValid) {
      return reply(401, { detail: { status: 'invalid_api_key', message: 'Invalid API key' } });
    }
    if (agentMatch) {
      if (this.#agentConfigFailure !== undefined) {
        return reply(this.#agentConfigFailure, { detail: { status: 'error', message: `fake failure ${this.#agentConfigFailure}` } });
      }
      const agent = this.#agents.get(decodeURIComponent(agentMatch[1]!));
      if (!agent) return reply(404, { detail: { status: 'agent_not_found', message: 'Agent not found' } });
      return reply(200, agentConfigJson(agent));
    }
    if (this.#signedUrlFailure === 'hang') {
      this.restRequests.push({ method: 'GET', path: url.pathname, query, apiKeyValid, status: 0 });
      return; // never answered; close() ends it
    }
    if (this.#signedUrlFailure !== undefined) {
      return reply(this.#signedUrlFailure, { detail: { status: 'error', message: `fake failure ${this.#signedUrlFailure}` } });
    }
    const agentId = url.searchParams.get('agent_id') ?? '';
    if (!this.#agents.has(agentId)) return reply(404, { detail: { status: 'agent_not_found', message: 'Agent not found' } });
    const signature = randomBytes(24).toString('base64url');
    this.#signatures.set(signature, agentId);
    const signed = new URLSearchParams({ agent_id: agentId });
    const environment = url.searchParams.get('environment');
    if (environment !== null) signed.set('environment', environment);
    signed.set('conversation_signature', signature);
    return reply(200, { signed_url: `ws://127.0.0.1:${this.#port}/v1/convai/conversation?${signed.toString()}` });
  }

  // ---- WebSocket -----------------------------------------------------------------------------

  #refuse(socket: Duplex, path: string, status: number, text: string): void {
    this.refusedUpgrades.push({ path, status });
    socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    socket.destroy();
  }

  #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(req.url ?? '/', this.baseUrl);
    if (url.pathname !== '/v1/convai/conversation') return this.#refuse(socket, url.pathname, 404, 'Not Found');
    const agentId = url.searchParams.get('agent_id') ?? '';
    const agent = this.#agents.get(agentId);
    if (!agent) return this.#refuse(socket, url.pathname, 404, 'Not Found');
    const signature = url.searchParams.get('conversation_signature');
    if (signature !== null) {
      if (this.#signatures.get(signature) !== agentId) return this.#refuse(socket, url.pathname, 403, 'Forbidden');
      this.#signatures.delete(signature); // single use
    } else if (agent.private === true) {
      return this.#refuse(socket, url.pathname, 403, 'Forbidden');
    }
    if (agent.allowedOrigins !== undefined) {
      const origin = req.headers.origin;
      const allowed = origin === undefined ? agent.requireOriginHeader === false : agent.allowedOrigins.includes(origin);
      if (!allowed) return this.#refuse(socket, url.pathname, 403, 'Forbidden');
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      const conversation = new FakeConversation(ws, socket as Socket, req, url, agent);
      this.conversations.push(conversation);
      const waiter = this.#waiters.shift();
      if (waiter) waiter(conversation);
      else this.#unclaimed.push(conversation);
      conversation.runScript();
    });
  }
}

/** The allowlist entry for an origin: its host (hostname[:port]), as the dashboard takes it. */
function allowlistHostname(origin: string): string {
  try {
    return new URL(origin).host || origin;
  } catch {
    return origin;
  }
}

function agentConfigJson(agent: FakeAgent): Record<string, unknown> {
  const allowed = agent.allowedOverrides ?? {};
  const tools = agent.tools ?? [];
  return {
    agent_id: agent.agentId,
    name: agent.name ?? agent.agentId,
    conversation_config: {
      asr: { user_input_audio_format: agent.userInputAudioFormat ?? 'pcm_16000' },
      tts: { agent_output_audio_format: agent.agentOutputAudioFormat ?? 'pcm_16000', voice_id: agent.voiceId ?? 'fake-voice' },
      conversation: { client_events: [...(agent.clientEvents ?? BRIDGE_CLIENT_EVENTS)], max_duration_seconds: 600 },
      agent: {
        first_message: agent.firstMessage === undefined ? 'Hello, how can I help?' : (agent.firstMessage ?? ''),
        language: agent.language ?? 'en',
        prompt: {
          prompt: agent.prompt ?? 'You are a helpful phone agent.',
          tool_ids: tools.map((t) => `tool_fake_${t.name}`),
          ...(agent.omitToolDefinitions === true ? {} : { tools: tools.map((t) => ({ type: t.type, name: t.name, description: t.description ?? '' })) }),
        },
      },
    },
    platform_settings: {
      auth: {
        enable_auth: agent.private === true,
        allowlist: (agent.allowedOrigins ?? []).map((origin) => ({ hostname: allowlistHostname(origin) })),
        require_origin_header: agent.allowedOrigins !== undefined && agent.requireOriginHeader !== false,
      },
      overrides: {
        conversation_config_override: {
          agent: {
            first_message: allowed.firstMessage === true,
            language: allowed.language === true,
            prompt: { prompt: allowed.prompt === true },
          },
          tts: { voice_id: allowed.voiceId === true },
        },
      },
    },
  };
}

/** One conversation (one accepted WebSocket). Methods send contract-shaped frames to the client. */
export class FakeConversation {
  readonly agent: FakeAgent;
  readonly agentId: string;
  /** The upgrade request URL (contains the signature for signed URLs). */
  readonly url: URL;
  readonly headers: IncomingHttpHeaders;
  readonly conversationId = `conv_${randomUUID().replaceAll('-', '')}`;
  /** Every client frame, in order. */
  readonly received: ReceivedMessage[] = [];
  /** The first conversation_initiation_client_data. */
  readonly initiation: Promise<ConversationInitiation>;
  /** Decoded caller audio: message count, total bytes and each message's base64 length. */
  readonly userAudio = { messages: 0, bytes: 0, base64Lengths: [] as number[] };
  /** Pong replies with their latency after the ping was sent. */
  readonly pongs: { readonly eventId: number; readonly latencyMs: number }[] = [];
  /** client_tool_result frames, in order. */
  readonly toolResults: ClientToolResult[] = [];
  /** Interruptions the fake sent (event ids). */
  readonly interruptionsSent: number[] = [];
  /** Resolves when the socket is closed, with the close code (1006 for a drop) and reason. */
  readonly closed: Promise<{ readonly code: number; readonly reason: string }>;
  /** Errors thrown by a script or a scripted turn. */
  readonly scriptErrors: unknown[] = [];

  readonly #ws: WebSocket;
  readonly #socket: Socket;
  readonly #startedAt = performance.now();
  readonly #clientEvents: ReadonlySet<string>;
  readonly #inputFormat: AudioFormatName;
  readonly #outputFormat: AudioFormatName;
  #resolveInitiation!: (init: ConversationInitiation) => void;
  #initiated = false;
  #silent = false;
  #eventId = 0;
  #pingEventId = 0;
  readonly #pingSentAt = new Map<number, number>();
  #lastPingMs: number | null = null;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #toolSeq = 0;
  readonly #toolWaiters = new Map<string, (r: ClientToolResult) => void>();
  #messageWaiters: { predicate: (m: ReceivedMessage) => boolean; resolve: (m: ReceivedMessage) => void }[] = [];
  #dynamicVariables: Record<string, unknown> = {};
  // "Playing" agent audio (wall clock).
  #playingUntil = 0;
  #playingEventId = -1;
  #playingText = '';
  // VAD over caller audio (audio time).
  #speechRunMs = 0;
  #silenceRunMs = 0;
  #speaking = false;
  #turnIndex = 0;
  #turnChain: Promise<void> = Promise.resolve();

  constructor(ws: WebSocket, socket: Socket, req: IncomingMessage, url: URL, agent: FakeAgent) {
    this.#ws = ws;
    this.#socket = socket;
    this.agent = agent;
    this.agentId = agent.agentId;
    this.url = url;
    this.headers = req.headers;
    this.#clientEvents = new Set(agent.clientEvents ?? BRIDGE_CLIENT_EVENTS);
    this.#inputFormat = agent.userInputAudioFormat ?? 'pcm_16000';
    this.#outputFormat = agent.agentOutputAudioFormat ?? 'pcm_16000';
    this.initiation = new Promise((resolve) => (this.#resolveInitiation = resolve));
    this.closed = new Promise((resolve) => {
      ws.on('close', (code: number, reason: Buffer) => {
        this.dispose();
        resolve({ code, reason: reason.toString('utf8') });
      });
    });
    ws.on('error', () => {}); // a client RST must not crash the test process
    ws.on('message', (data: RawData) => this.#onMessage(data));
  }

  /** @internal Runs the agent's script, then nothing else: the rest is event driven. */
  runScript(): void {
    const script = this.agent.script;
    if (!script) return;
    Promise.resolve()
      .then(() => script(this))
      .catch((err: unknown) => this.scriptErrors.push(err));
  }

  /** The dynamic variables the client sent in its initiation. */
  get dynamicVariables(): Readonly<Record<string, unknown>> {
    return this.#dynamicVariables;
  }

  /** Event ids so far: the last one used for a response/transcript. */
  get lastEventId(): number {
    return this.#eventId;
  }

  /** True while agent audio is still "playing" (real-time duration since it was sent). */
  get isPlaying(): boolean {
    return performance.now() < this.#playingUntil;
  }

  /** Client frames of one type (`user_audio` for the untyped audio frames). */
  messagesOfType(type: string): Record<string, unknown>[] {
    return this.received.filter((m) => (m.json['type'] ?? 'user_audio') === type).map((m) => m.json);
  }

  /** Resolves with the first received frame (past or future) that matches. */
  waitForMessage(predicate: (json: Record<string, unknown>) => boolean, timeoutMs = 5_000): Promise<Record<string, unknown>> {
    const found = this.received.find((m) => predicate(m.json));
    if (found) return Promise.resolve(found.json);
    return new Promise((resolve, reject) => {
      const entry = {
        predicate: (m: ReceivedMessage) => predicate(m.json),
        resolve: (m: ReceivedMessage) => {
          clearTimeout(timer);
          resolve(m.json);
        },
      };
      const timer = setTimeout(() => {
        this.#messageWaiters = this.#messageWaiters.filter((w) => w !== entry);
        reject(new Error(`no matching client message within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#messageWaiters.push(entry);
    });
  }

  /** Resolves once at least `bytes` of caller audio arrived. */
  async waitForUserAudioBytes(bytes: number, timeoutMs = 5_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.userAudio.bytes < bytes) {
      if (performance.now() > deadline) throw new Error(`only ${this.userAudio.bytes} of ${bytes} caller audio bytes arrived`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  // ---- sending -------------------------------------------------------------------------------

  /** The next response event id (strictly increasing over the conversation). */
  nextEventId(): number {
    return ++this.#eventId;
  }

  /** Sends one contract message if its type is in the agent's client_events (errors always go). */
  send(message: FakeServerMessage): boolean {
    if (message.type !== 'error' && !this.#clientEvents.has(message.type)) return false;
    return this.sendRaw(JSON.stringify(message));
  }

  /** Sends any text frame, even one outside the contract; false once silent or closed. */
  sendRaw(text: string): boolean {
    if (this.#silent || this.#ws.readyState !== this.#ws.OPEN) return false;
    this.#ws.send(text);
    return true;
  }

  /** Runs `fn` with the TCP socket corked, so its frames leave in one write (one client read). */
  burst(fn: () => void): void {
    this.#socket.cork();
    try {
      fn();
    } finally {
      this.#socket.uncork();
    }
  }

  sendMetadata(formats: { input?: AudioFormatName; output?: AudioFormatName } | { rawInput: string; rawOutput: string } = {}): void {
    const event =
      'rawInput' in formats
        ? { conversation_id: this.conversationId, agent_output_audio_format: formats.rawOutput, user_input_audio_format: formats.rawInput }
        : {
            conversation_id: this.conversationId,
            agent_output_audio_format: formats.output ?? this.#outputFormat,
            user_input_audio_format: formats.input ?? this.#inputFormat,
          };
    // rawInput/rawOutput exist to send formats outside the contract enum, deliberately.
    this.send({ type: 'conversation_initiation_metadata', conversation_initiation_metadata_event: event as ConversationMetadata['conversation_initiation_metadata_event'] });
  }

  /** Sends `audio` in chunkMs pieces, all with `eventId`; returns the number of messages. */
  sendAudio(audio: Buffer, eventId: number, chunkMs = this.agent.chunkMs ?? 100): number {
    const { encoding, rateHz } = formatOf(this.#outputFormat);
    const chunkBytes = Math.max(1, Math.round((rateHz * chunkMs) / 1000)) * (encoding === 'pcm' ? 2 : 1);
    let n = 0;
    for (let offset = 0; offset < audio.length; offset += chunkBytes) {
      const piece = audio.subarray(offset, offset + chunkBytes);
      if (this.send({ type: 'audio', audio_event: { audio_base_64: piece.toString('base64'), event_id: eventId } })) n++;
    }
    return n;
  }

  /**
   * The agent says something: agent_response + a tone of `ms`, at once, with one new event id
   * (or `eventId`). The audio counts as playing for `ms` of wall time. Returns the event id.
   */
  speak(text: string, ms: number, eventId = this.nextEventId()): number {
    this.send({ type: 'agent_response', agent_response_event: { agent_response: text, event_id: eventId } });
    this.sendAudio(makeTone(this.#outputFormat, ms, this.agent.toneHz ?? 440), eventId);
    const now = performance.now();
    this.#playingUntil = Math.max(now, this.#playingUntil) + ms;
    this.#playingEventId = eventId;
    this.#playingText = text;
    return eventId;
  }

  /** Sends a ping with the next ping event id; the pong latency lands in `pongs`. */
  ping(): number {
    const eventId = ++this.#pingEventId;
    this.#pingSentAt.set(eventId, performance.now());
    this.send({ type: 'ping', ping_event: { event_id: eventId, ping_ms: this.#lastPingMs } });
    return eventId;
  }

  /** Sends `interruption {event_id}` (default: the response now playing) and stops "playing". */
  interrupt(eventId = this.#playingEventId): void {
    this.interruptionsSent.push(eventId);
    this.send({ type: 'interruption', interruption_event: { event_id: eventId } });
    if (eventId >= this.#playingEventId) this.#playingUntil = 0;
  }

  sendUserTranscript(text: string, eventId = this.nextEventId()): number {
    this.send({ type: 'user_transcript', user_transcription_event: { user_transcript: text, event_id: eventId } });
    return eventId;
  }

  /** client_tool_call, then waits for the matching client_tool_result. */
  callClientTool(toolName: string, parameters: Record<string, unknown> = {}, timeoutMs = 5_000): Promise<ClientToolResult> {
    const toolCallId = `toolu_${++this.#toolSeq}_${randomBytes(4).toString('hex')}`;
    const result = new Promise<ClientToolResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#toolWaiters.delete(toolCallId);
        reject(new Error(`no client_tool_result for ${toolName} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#toolWaiters.set(toolCallId, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
    });
    this.send({
      type: 'client_tool_call',
      client_tool_call: { tool_name: toolName, tool_call_id: toolCallId, parameters, event_id: this.nextEventId() },
    });
    return result;
  }

  /**
   * The agent ends the call: agent_tool_response end_call (system), the farewell (agent_response +
   * audio) and close 1000 at once, long before the farewell would have finished playing.
   */
  endCall(options: { farewell?: string; farewellMs?: number } = {}): void {
    const eventId = this.nextEventId();
    this.burst(() => {
      this.send({
        type: 'agent_tool_response',
        agent_tool_response: {
          tool_name: 'end_call',
          tool_call_id: `end_call_${eventId}`,
          tool_type: 'system',
          is_error: false,
          is_called: true,
          event_id: eventId,
        },
      });
      this.speak(options.farewell ?? 'Goodbye.', options.farewellMs ?? 500, eventId);
    });
    this.close(1000, '');
  }

  /** Injects a fault now (see FakeFault). */
  fault(kind: FakeFault, detail?: string): void {
    switch (kind) {
      case 'quota':
        this.sendRaw(JSON.stringify({ type: 'error', message: detail ?? 'This request exceeds your quota limit.' }));
        this.close(1002, '');
        return;
      case 'override_error':
        this.#sendError(1008, 'override_error', detail ?? "Override for field 'first_message' is not allowed by config.");
        this.close(1008, 'Invalid override configuration');
        return;
      case 'missing_dynamic_variable':
        this.#sendError(1008, 'missing_dynamic_variable', detail ?? "Missing required dynamic variables in first message: {'customer_name'}");
        this.close(1008, 'Missing dynamic variable');
        return;
      case 'crash':
        this.#sendError(1011, 'unknown_websocket_crash', detail ?? 'Unexpected server error');
        this.close(1011, '');
        return;
      case 'drop':
        this.dispose();
        this.#ws.terminate();
        return;
      case 'silence':
        this.#silent = true;
        this.dispose();
        return;
      case 'never_answer':
        return;
    }
  }

  /** Closes with a close frame. */
  close(code = 1000, reason = ''): void {
    this.#stopPings();
    if (this.#ws.readyState === this.#ws.OPEN) this.#ws.close(code, reason);
  }

  /** Stops reading the client's socket (its bufferedAmount then grows). */
  pauseReading(): void {
    this.#socket.pause();
  }

  resumeReading(): void {
    this.#socket.resume();
  }

  /** @internal Stops timers; the socket is left as is. */
  dispose(): void {
    this.#stopPings();
  }

  #sendError(code: 1000 | 1002 | 1008 | 1011, errorType: ErrorMessage['error_event']['error_type'], message: string): void {
    this.send({ type: 'error', error_event: { code, error_type: errorType, message, reason: message } });
  }

  #stopPings(): void {
    if (this.#pingTimer !== undefined) clearInterval(this.#pingTimer);
    this.#pingTimer = undefined;
  }

  // ---- receiving -----------------------------------------------------------------------------

  #onMessage(data: RawData): void {
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8');
    let json: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(text);
      if (!isRecord(parsed)) throw new Error('not an object');
      json = parsed;
    } catch {
      // The platform answers a malformed frame with invalid_message and 1008.
      this.#sendError(1008, 'invalid_message', 'Invalid message received');
      this.close(1008, 'Invalid message');
      return;
    }
    const entry: ReceivedMessage = { atMs: performance.now() - this.#startedAt, text, json };
    this.received.push(entry);
    for (const waiter of [...this.#messageWaiters]) {
      if (waiter.predicate(entry)) {
        this.#messageWaiters = this.#messageWaiters.filter((w) => w !== waiter);
        waiter.resolve(entry);
      }
    }
    if (typeof json['user_audio_chunk'] === 'string') {
      this.#onUserAudio(json['user_audio_chunk']);
      return;
    }
    switch (json['type']) {
      case 'conversation_initiation_client_data':
        if (!this.#initiated) {
          this.#initiated = true;
          const init = json as unknown as ConversationInitiation;
          this.#dynamicVariables = isRecord(json['dynamic_variables']) ? json['dynamic_variables'] : {};
          this.#resolveInitiation(init);
          this.#onInitiation(init);
        }
        return;
      case 'pong': {
        const eventId = json['event_id'];
        const sentAt = typeof eventId === 'number' ? this.#pingSentAt.get(eventId) : undefined;
        if (typeof eventId === 'number' && sentAt !== undefined) {
          this.#pingSentAt.delete(eventId);
          const latencyMs = performance.now() - sentAt;
          this.#lastPingMs = Math.round(latencyMs);
          this.pongs.push({ eventId, latencyMs });
        }
        return;
      }
      case 'client_tool_result': {
        const result = json as unknown as ClientToolResult;
        this.toolResults.push(result);
        this.#toolWaiters.get(result.tool_call_id)?.(result);
        this.#toolWaiters.delete(result.tool_call_id);
        return;
      }
      default:
        return; // user_message, contextual_update, user_activity, …: recorded only
    }
  }

  #onInitiation(init: ConversationInitiation): void {
    if (this.agent.manual === true) return;
    const override = init.conversation_config_override;
    if (this.agent.enforceOverrides !== false && override !== undefined) {
      const allowed = this.agent.allowedOverrides ?? {};
      const sent: [string, boolean | undefined][] = [
        ['first_message', override.agent?.first_message !== undefined ? allowed.firstMessage : true],
        ['language', override.agent?.language !== undefined ? allowed.language : true],
        ['prompt', override.agent?.prompt !== undefined ? allowed.prompt : true],
        ['voice_id', override.tts?.voice_id !== undefined ? allowed.voiceId : true],
      ];
      const refused = sent.find(([, ok]) => ok !== true);
      if (refused) {
        this.fault('override_error', `Override for field '${refused[0]}' is not allowed by config.`);
        return;
      }
    }
    const firstMessage = override?.agent?.first_message ?? (this.agent.firstMessage === undefined ? 'Hello, how can I help?' : this.agent.firstMessage);
    const prompt = override?.agent?.prompt?.prompt ?? this.agent.prompt;
    const required = new Set([...(this.agent.requiredDynamicVariables ?? []), ...placeholders(firstMessage), ...placeholders(prompt)]);
    const missing = [...required].filter((name) => !Object.hasOwn(this.#dynamicVariables, name));
    if (missing.length > 0) {
      this.fault('missing_dynamic_variable', `Missing required dynamic variables: {${missing.map((m) => `'${m}'`).join(', ')}}`);
      return;
    }
    if (this.agent.startFault !== undefined) {
      this.fault(this.agent.startFault);
      return;
    }
    this.burst(() => {
      this.sendMetadata();
      if (firstMessage) this.speak(renderVariables(firstMessage, this.#dynamicVariables), this.agent.greetingMs ?? 600);
    });
    const interval = this.agent.pingIntervalMs ?? 0;
    if (interval > 0) this.#pingTimer = setInterval(() => this.ping(), interval);
  }

  #onUserAudio(base64: string): void {
    const audio = Buffer.from(base64, 'base64');
    this.userAudio.messages++;
    this.userAudio.bytes += audio.length;
    this.userAudio.base64Lengths.push(base64.length);
    if (this.agent.manual === true || this.#silent) return;
    const vad = this.agent.vad ?? {};
    const { rms, ms } = measureAudio(this.#inputFormat, audio);
    if (rms >= (vad.thresholdRms ?? 500)) {
      this.#speechRunMs += ms;
      this.#silenceRunMs = 0;
      if (!this.#speaking && this.#speechRunMs >= (vad.speechMs ?? 60)) {
        this.#speaking = true;
        this.#onSpeechStart();
      }
    } else {
      this.#silenceRunMs += ms;
      if (!this.#speaking) this.#speechRunMs = 0;
      if (this.#speaking && this.#silenceRunMs >= (vad.silenceMs ?? 300)) {
        this.#speaking = false;
        this.#speechRunMs = 0;
        this.#onUtteranceEnd();
      }
    }
  }

  #onSpeechStart(): void {
    if (!this.isPlaying) return;
    // Barge-in: the caller speaks over the agent.
    const interrupted = this.#playingEventId;
    const text = this.#playingText;
    this.burst(() => {
      this.interrupt(interrupted);
      if (this.agent.bargeIn?.correction !== false) {
        this.send({
          type: 'agent_response_correction',
          agent_response_correction_event: {
            original_agent_response: text,
            corrected_agent_response: text.slice(0, Math.ceil(text.length / 2)),
            event_id: interrupted,
          },
        });
      }
      const stale = this.agent.bargeIn?.staleChunks ?? 0;
      if (stale > 0) {
        const chunkMs = this.agent.chunkMs ?? 100;
        this.sendAudio(makeTone(this.#outputFormat, chunkMs * stale), interrupted, chunkMs);
      }
    });
  }

  #onUtteranceEnd(): void {
    const index = this.#turnIndex++;
    const turn = this.agent.turns?.[index];
    if (!turn) return;
    this.#turnChain = this.#turnChain
      .then(async () => {
        this.sendUserTranscript(turn.userTranscript ?? `(caller speech ${index + 1})`);
        if (turn.toolCall) await this.callClientTool(turn.toolCall.toolName, turn.toolCall.parameters ?? {});
        const reply = turn.agentResponse ?? `(agent reply ${index + 1})`;
        if (turn.endCall) {
          this.endCall({ farewell: reply || 'Goodbye.', farewellMs: turn.replyMs ?? 400 });
          return;
        }
        if (reply !== '') this.speak(reply, turn.replyMs ?? 400);
      })
      .catch((err: unknown) => {
        this.scriptErrors.push(err);
      });
  }
}
