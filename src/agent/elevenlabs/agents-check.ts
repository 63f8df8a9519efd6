import type { Config, ElevenLabsAgentConfig } from '../../config/schema.js';
import { parseAudioFormat } from '../../audio/format.js';
import { describeError } from '../../errors.js';
import { describeBody, resolveOrigins, scrub } from './endpoint.js';

/**
 * `ai-call agents check`: reads every configured ElevenLabs agent over the REST API and says which of
 * its settings will break calls (error), work but cost quality, CPU or records (warning), or are
 * right (ok). Nothing here is sent to the conversation WebSocket, and the API key appears in no
 * message: it goes only into the `xi-api-key` header.
 *
 *   config.agents ─► GET {httpOrigin}/v1/convai/agents/{agentId} ─► readRemoteAgent() ─► checkAgentSettings()
 *                                                                                          └► AgentCheckReport
 *
 * The response is the REST "Get agent" model (https://elevenlabs.io/docs/api-reference/agents/get;
 * field names from elevenlabs/elevenlabs-js `src/api/types/GetAgentResponseModel.ts`,
 * `AgentPlatformSettingsResponseModel.ts`, `AuthSettings.ts`, `AgentConfigOverrideConfig.ts`,
 * `PromptAgentApiModelOutput.ts`): `conversation_config.{asr.user_input_audio_format,
 * tts.agent_output_audio_format, conversation.client_events, agent.prompt.{tools, tool_ids}}` and
 * `platform_settings.{auth.{enable_auth, allowlist[].hostname, require_origin_header},
 * overrides.conversation_config_override.{agent.{first_message, language, prompt.prompt}, tts.voice_id}}`.
 * Every field is read defensively: the model grows additively, and a missing field is reported,
 * never thrown.
 */

export const AGENT_CONFIG_PATH = '/v1/convai/agents'; // + /{agent_id}
export const DEFAULT_AGENT_CHECK_TIMEOUT_MS = 10_000;

export type AgentCheckSeverity = 'error' | 'warning' | 'ok';

/** What a finding is about; each one is a column in the human output. */
export const AGENT_CHECK_TOPICS = {
  api: 'reading the agent over the REST API (key, HTTP status)',
  audio: 'user input and agent output audio formats against the AudioSocket line',
  events: 'conversation.client_events the bridge listens to (protocols.md §4.6)',
  overrides: 'config overrides against platform_settings.overrides (protocols.md §4.4)',
  tools: 'the client tools ai-call executes: transfer_call, hangup_call, send_dtmf (protocols.md §4.10)',
  auth: 'platform_settings.auth.enable_auth against the agent\'s private setting',
  origin: 'platform_settings.auth allowlist and require_origin_header against origin (protocols.md §4.1)',
} as const;
export type AgentCheckTopic = keyof typeof AGENT_CHECK_TOPICS;

export interface AgentCheckFinding {
  readonly severity: AgentCheckSeverity;
  readonly topic: AgentCheckTopic;
  /** One sentence: what is set, and what it does to calls. */
  readonly message: string;
  /** What to change, and where; absent for ok findings. */
  readonly fix?: string | undefined;
}

export interface AgentCheckReport {
  /** The agent's name in ai-call's config (what the dialplan asks for). */
  readonly agent: string;
  readonly agentId: string;
  /** The agent's name on ElevenLabs, when it could be read. */
  readonly remoteName?: string | undefined;
  /** The REST origin asked (no credentials), e.g. https://api.elevenlabs.io. */
  readonly origin: string;
  /** The worst finding. */
  readonly severity: AgentCheckSeverity;
  readonly findings: readonly AgentCheckFinding[];
}

export interface CheckAgentsOptions {
  /** Injected for tests; defaults to the global fetch. */
  readonly fetch?: typeof fetch | undefined;
  /** Per agent request, body included; default 10 s. */
  readonly timeoutMs?: number | undefined;
}

/** Client tools the call session executes (src/call/session.ts), by name. */
export const AI_CALL_CLIENT_TOOLS = ['transfer_call', 'hangup_call', 'send_dtmf'] as const;

/** The platform's client_events when an agent lists none (EL contract; protocols.md §4.6). */
export const PLATFORM_DEFAULT_CLIENT_EVENTS: readonly string[] = [
  'audio',
  'interruption',
  'agent_response',
  'user_transcript',
  'tentative_user_transcript',
  'conversation_initiation_metadata',
  'ping',
];

/** What the check needs from one agent's REST configuration; undefined where the response is silent. */
export interface RemoteAgent {
  readonly name: string | undefined;
  readonly userInputAudioFormat: string | undefined;
  readonly agentOutputAudioFormat: string | undefined;
  /** undefined when the response has no conversation.client_events. */
  readonly clientEvents: readonly string[] | undefined;
  /** platform_settings.overrides.conversation_config_override, by ai-call's override names. */
  readonly overridesEnabled: { readonly firstMessage: boolean; readonly language: boolean; readonly prompt: boolean; readonly voiceId: boolean };
  /** agent.prompt.tools (name and type); undefined when the response lists tools only by id. */
  readonly tools: readonly { readonly name: string; readonly type: string }[] | undefined;
  /** agent.prompt.tool_ids length. */
  readonly toolIdCount: number;
  readonly enableAuth: boolean;
  /** allowlist[].hostname */
  readonly allowlist: readonly string[];
  readonly requireOriginHeader: boolean;
}

// ---------------------------------------------------------------------------------------------
// Reading the REST response (pure).

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function at(parent: unknown, ...path: string[]): unknown {
  let node = parent;
  for (const key of path) {
    if (!isObject(node)) return undefined;
    node = node[key];
  }
  return node;
}

function stringAt(parent: unknown, ...path: string[]): string | undefined {
  const value = at(parent, ...path);
  return typeof value === 'string' ? value : undefined;
}

function flagAt(parent: unknown, ...path: string[]): boolean {
  return at(parent, ...path) === true;
}

/** Reads the fields the check uses from a GET /v1/convai/agents/{agent_id} body. */
export function readRemoteAgent(body: unknown): RemoteAgent {
  const conversationConfig = at(body, 'conversation_config');
  const events = at(conversationConfig, 'conversation', 'client_events');
  const prompt = at(conversationConfig, 'agent', 'prompt');
  const rawTools = at(prompt, 'tools');
  const toolIds = at(prompt, 'tool_ids');
  const override = at(body, 'platform_settings', 'overrides', 'conversation_config_override');
  const auth = at(body, 'platform_settings', 'auth');
  const allowlist = at(auth, 'allowlist');
  return {
    name: stringAt(body, 'name'),
    userInputAudioFormat: stringAt(conversationConfig, 'asr', 'user_input_audio_format'),
    agentOutputAudioFormat: stringAt(conversationConfig, 'tts', 'agent_output_audio_format'),
    clientEvents: Array.isArray(events) ? events.filter((e): e is string => typeof e === 'string') : undefined,
    overridesEnabled: {
      firstMessage: flagAt(override, 'agent', 'first_message'),
      language: flagAt(override, 'agent', 'language'),
      prompt: flagAt(override, 'agent', 'prompt', 'prompt'),
      voiceId: flagAt(override, 'tts', 'voice_id'),
    },
    tools: Array.isArray(rawTools)
      ? rawTools.filter(isObject).map((t) => ({ name: stringAt(t, 'name') ?? '', type: stringAt(t, 'type') ?? '' }))
      : undefined,
    toolIdCount: Array.isArray(toolIds) ? toolIds.length : 0,
    enableAuth: flagAt(auth, 'enable_auth'),
    allowlist: Array.isArray(allowlist) ? allowlist.map((item) => stringAt(item, 'hostname') ?? '').filter((h) => h !== '') : [],
    requireOriginHeader: flagAt(auth, 'require_origin_header'),
  };
}

// ---------------------------------------------------------------------------------------------
// The checks (pure).

const err = (topic: AgentCheckTopic, message: string, fix?: string): AgentCheckFinding => ({ severity: 'error', topic, message, fix });
const warn = (topic: AgentCheckTopic, message: string, fix?: string): AgentCheckFinding => ({ severity: 'warning', topic, message, fix });
const ok = (topic: AgentCheckTopic, message: string): AgentCheckFinding => ({ severity: 'ok', topic, message });

/** Every check of one agent against its REST configuration, in a stable order. */
export function checkAgentSettings(agent: ElevenLabsAgentConfig, remote: RemoteAgent): AgentCheckFinding[] {
  return [
    ...checkFormat('input', remote.userInputAudioFormat, agent.wideband),
    ...checkFormat('output', remote.agentOutputAudioFormat, agent.wideband),
    ...checkClientEvents(agent, remote),
    ...checkOverrides(agent, remote),
    ...checkTools(agent, remote),
    ...checkAuth(agent, remote),
    ...checkOrigin(agent, remote),
  ];
}

function checkFormat(direction: 'input' | 'output', value: string | undefined, wideband: boolean): AgentCheckFinding[] {
  const field = direction === 'input' ? 'asr.user_input_audio_format' : 'tts.agent_output_audio_format';
  const lineHz = wideband ? 16_000 : 8_000;
  const line = wideband ? 'the 16 kHz line (wideband: true)' : 'the 8 kHz AudioSocket() line';
  const best = wideband ? 'pcm_16000' : 'pcm_8000';
  const fixTo = `set ${field} to ${best} (no conversion at all)`;
  if (value === undefined) {
    return [warn('audio', `the agent's configuration has no ${field}; ai-call will convert whatever the conversation announces`, fixTo)];
  }
  const format = parseAudioFormat(value);
  if (format === undefined) {
    return [err('audio', `${field} is ${value}, which ai-call cannot carry: every call fails at start with AGENT_UNSUPPORTED_FORMAT`, fixTo)];
  }
  if (format.encoding === 'pcm' && format.sampleRateHz === lineHz) {
    return [ok('audio', `${field} ${value} passes through ${line} unchanged`)];
  }
  const alternative = !wideband && value === 'pcm_16000' ? `; or carry the call at 16 kHz with wideband: true (Asterisk 20.17+/22.7+)` : '';
  if (format.encoding === 'ulaw') {
    const what = wideband ? 'G.711 µ-law coding and 8↔16 kHz resampling' : 'G.711 µ-law coding (lossy)';
    return [warn('audio', `${field} ${value} needs ${what} on every frame of ${line}`, fixTo + alternative)];
  }
  const fractional = (Math.max(format.sampleRateHz, lineHz) % Math.min(format.sampleRateHz, lineHz)) !== 0;
  const resample = `resampling ${direction === 'input' ? `${lineHz} → ${format.sampleRateHz}` : `${format.sampleRateHz} → ${lineHz}`} Hz`;
  return [
    warn(
      'audio',
      `${field} ${value} needs ${resample} on every frame of ${line}${fractional ? ' (a non-integer ratio: the costliest conversion)' : ''}`,
      fixTo + alternative,
    ),
  ];
}

type EventRule = { readonly event: string; readonly severity: (agent: ElevenLabsAgentConfig, remote: RemoteAgent) => 'error' | 'warning'; readonly effect: string };

/** The events the bridge uses (protocols.md §4.6), what their absence does, and how bad it is. */
const EVENT_RULES: readonly EventRule[] = [
  { event: 'conversation_initiation_metadata', severity: () => 'error', effect: 'ai-call never learns the formats or conversation id, so no call becomes ready (AGENT_CONNECT_TIMEOUT)' },
  { event: 'audio', severity: () => 'error', effect: 'the caller hears nothing' },
  { event: 'ping', severity: () => 'error', effect: 'a quiet agent looks dead: calls end with AGENT_SILENT after silenceTimeoutMs' },
  { event: 'interruption', severity: () => 'error', effect: 'barge-in is off: the caller cannot interrupt the agent, queued speech keeps playing' },
  {
    event: 'client_tool_call',
    severity: (agent, remote) => (Object.keys(agent.transfers).length > 0 || (remote.tools ?? []).some((t) => t.type === 'client') ? 'error' : 'warning'),
    effect: 'client tools never run (no transfer_call, hangup_call or send_dtmf reaches ai-call, and the agent waits for results in vain)',
  },
  { event: 'agent_tool_response', severity: () => 'warning', effect: 'end_call is not observed (ai-call still ends the call on the close 1000 that follows, but cannot tell it from other closes)' },
  { event: 'agent_response_correction', severity: () => 'warning', effect: 'call records keep what the agent meant to say instead of what it said before a barge-in' },
  { event: 'user_transcript', severity: () => 'warning', effect: 'call records and logs have no caller transcript' },
  { event: 'agent_response', severity: () => 'warning', effect: 'call records and logs have no agent transcript' },
];

function checkClientEvents(agent: ElevenLabsAgentConfig, remote: RemoteAgent): AgentCheckFinding[] {
  const listed = remote.clientEvents ?? PLATFORM_DEFAULT_CLIENT_EVENTS;
  const assumed = remote.clientEvents === undefined ? ' (the configuration lists none: the platform default is assumed)' : '';
  const findings: AgentCheckFinding[] = [];
  for (const rule of EVENT_RULES) {
    if (listed.includes(rule.event)) continue;
    const severity = rule.severity(agent, remote);
    const message = `client event ${rule.event} is not enabled${assumed}: ${rule.effect}`;
    const fix = `add ${rule.event} to conversation.client_events (agent settings → Advanced → Client events)`;
    findings.push(severity === 'error' ? err('events', message, fix) : warn('events', message, fix));
  }
  if (findings.length === 0) findings.push(ok('events', `all ${EVENT_RULES.length} client events ai-call uses are enabled`));
  return findings;
}

const OVERRIDE_LABELS = {
  firstMessage: 'first message (agent.first_message)',
  language: 'language (agent.language)',
  prompt: 'system prompt (agent.prompt.prompt)',
  voiceId: 'voice (tts.voice_id)',
} as const;

function checkOverrides(agent: ElevenLabsAgentConfig, remote: RemoteAgent): AgentCheckFinding[] {
  const used = (Object.keys(OVERRIDE_LABELS) as (keyof typeof OVERRIDE_LABELS)[]).filter((key) => agent.overrides[key] !== undefined);
  if (used.length === 0) return [ok('overrides', 'no overrides configured, none needed on the agent')];
  const findings: AgentCheckFinding[] = [];
  for (const key of used) {
    if (remote.overridesEnabled[key]) continue;
    findings.push(
      err(
        'overrides',
        `overrides.${key} is configured but the ${OVERRIDE_LABELS[key]} override is not enabled on the agent: every call is refused with override_error, close 1008 (AI_STATUS=AGENT_UNAVAILABLE, AGENT_OVERRIDE_REJECTED)`,
        `enable the ${OVERRIDE_LABELS[key].split(' (')[0]} override (agent settings → Security → Overrides), or remove overrides.${key}`,
      ),
    );
  }
  if (findings.length === 0) findings.push(ok('overrides', `the overrides used (${used.join(', ')}) are enabled on the agent`));
  return findings;
}

function checkTools(agent: ElevenLabsAgentConfig, remote: RemoteAgent): AgentCheckFinding[] {
  const transfers = Object.keys(agent.transfers);
  if (remote.tools === undefined) {
    if (remote.toolIdCount === 0) return checkToolList(agent, [], transfers);
    return [
      warn(
        'tools',
        `the agent lists ${remote.toolIdCount} tool(s) only by id, so transfer_call, hangup_call and send_dtmf cannot be verified`,
        'check in the agent settings (Tools) that they exist as client tools (templates/tools/*.json)',
      ),
    ];
  }
  return checkToolList(agent, remote.tools, transfers);
}

function checkToolList(agent: ElevenLabsAgentConfig, tools: readonly { name: string; type: string }[], transfers: readonly string[]): AgentCheckFinding[] {
  const findings: AgentCheckFinding[] = [];
  const present: string[] = [];
  const addTool = (name: string): string => `add the client tool ${name} (templates/tools/${name}.json; agent settings → Tools → Add tool → Client)`;
  for (const name of AI_CALL_CLIENT_TOOLS) {
    const tool = tools.find((t) => t.name === name);
    if (tool !== undefined && tool.type !== 'client') {
      findings.push(
        err('tools', `${name} is a ${tool.type || 'untyped'} tool on the agent: ElevenLabs never sends it to ai-call, only client tools reach the call`, `delete it and ${addTool(name)}`),
      );
      continue;
    }
    if (tool !== undefined) present.push(name);
    switch (name) {
      case 'transfer_call':
        if (tool === undefined && transfers.length > 0) {
          findings.push(err('tools', `transfers are configured (${transfers.join(', ')}) but the agent has no transfer_call tool: it can never transfer a caller`, addTool(name)));
        } else if (tool !== undefined && transfers.length === 0) {
          findings.push(
            warn('tools', 'the agent has transfer_call but this ai-call agent has no transfers: every transfer it tries is refused', 'list destinations under transfers, or remove the tool'),
          );
        }
        break;
      case 'hangup_call':
        if (tool === undefined) {
          findings.push(warn('tools', 'no hangup_call tool: the agent can end calls only with the end_call system tool (seen as agent_tool_response, then close 1000)', addTool(name)));
        }
        break;
      case 'send_dtmf':
        if (tool === undefined) {
          findings.push(warn('tools', 'no send_dtmf tool: the agent cannot press keys (e.g. to walk an IVR on outbound calls)', `${addTool(name)}, if the agent needs it`));
        }
        break;
    }
  }
  for (const tool of tools) {
    if (tool.type === 'client' && !(AI_CALL_CLIENT_TOOLS as readonly string[]).includes(tool.name)) {
      findings.push(
        warn('tools', `client tool ${tool.name || '(unnamed)'} is not one ai-call executes: every call to it gets an error result`, `remove it, or run it elsewhere (ai-call executes ${AI_CALL_CLIENT_TOOLS.join(', ')})`),
      );
    }
  }
  if (present.length > 0) findings.unshift(ok('tools', `client tools present: ${present.join(', ')}`));
  return findings;
}

function checkAuth(agent: ElevenLabsAgentConfig, remote: RemoteAgent): AgentCheckFinding[] {
  if (remote.enableAuth && !agent.private) {
    return [
      err(
        'auth',
        'the agent requires authentication but the config has private: false: the WebSocket upgrade is refused with HTTP 403 on every call (AGENT_AUTH_FAILED)',
        'set private: true (ai-call then fetches a signed URL per call with ELEVENLABS_API_KEY)',
      ),
    ];
  }
  if (remote.enableAuth) return [ok('auth', 'authentication required and private: true: a signed URL is fetched per call')];
  if (agent.private) return [ok('auth', 'private: true: a signed URL is fetched per call (this agent would also accept calls without)')];
  return [ok('auth', 'public agent, private: false: calls connect without a signed URL')];
}

/** True if an allowlist entry (a host, maybe with scheme, port or a leading "*.") matches the origin. */
function allowlistMatches(entry: string, origin: URL): boolean {
  const host = entry.trim().toLowerCase().replace(/^[a-z][a-z0-9+.-]*:\/\//, '').replace(/\/.*$/, '');
  if (host === '') return false;
  if (host.startsWith('*.')) return origin.hostname.endsWith(host.slice(1));
  return host === origin.host.toLowerCase() || host === origin.hostname.toLowerCase();
}

function checkOrigin(agent: ElevenLabsAgentConfig, remote: RemoteAgent): AgentCheckFinding[] {
  if (remote.allowlist.length === 0) {
    return agent.origin === undefined ? [] : [ok('origin', `origin ${new URL(agent.origin).origin} is sent; the agent has no allowlist`)];
  }
  const hosts = remote.allowlist.join(', ');
  if (agent.origin === undefined) {
    const fix = `set origin: https://${remote.allowlist[0]!.replace(/^\*\./, '')} (any allowlisted host) on this agent in ai-call's config`;
    return remote.requireOriginHeader
      ? [err('origin', `the agent has an allowlist (${hosts}) and requires an Origin header, and no origin is configured: every WebSocket upgrade is refused with HTTP 403 (AGENT_AUTH_FAILED)`, fix)]
      : [warn('origin', `the agent has an allowlist (${hosts}) and no origin is configured: calls work only while "require Origin header" stays off`, fix)];
  }
  const origin = new URL(agent.origin);
  if (remote.allowlist.some((entry) => allowlistMatches(entry, origin))) {
    return [ok('origin', `origin ${origin.origin} is in the agent's allowlist`)];
  }
  return [
    err(
      'origin',
      `origin ${origin.origin} is not in the agent's allowlist (${hosts}): every WebSocket upgrade is refused with HTTP 403 (AGENT_AUTH_FAILED)`,
      `add ${origin.host} to the allowlist (agent settings → Security), or set origin to an allowlisted host`,
    ),
  ];
}

// ---------------------------------------------------------------------------------------------
// The REST request.

type Fetched = { readonly ok: true; readonly body: unknown } | { readonly ok: false; readonly finding: AgentCheckFinding };

/** HTTP statuses with a known cause; the message says what to change (never the key itself). */
function httpFinding(status: number, agentId: string, origin: string, body: string): AgentCheckFinding {
  const said = `HTTP ${status}${body ? `: ${body}` : ''}`;
  switch (status) {
    case 401:
      return err('api', `ElevenLabs refused the API key (${said}); private agents fail the same way on every call (AGENT_AUTH_FAILED)`, 'set ELEVENLABS_API_KEY to a valid key of the workspace that owns the agent');
    case 403:
      return err(
        'api',
        `the API key may not read agent ${agentId} (${said})`,
        'give the key access to ElevenAgents (agents read permission), or use a key of the workspace that owns the agent',
      );
    case 404:
      return err(
        'api',
        `no agent ${agentId} at ${origin} (${said}): calls fail too (AGENT_CONNECT_FAILED / AGENT_AUTH_FAILED)`,
        'check agentId, and that elevenlabs.residency / ELEVENLABS_BASE_URL point at the workspace\'s region',
      );
    default:
      return err('api', `GET agent ${agentId} failed (${said})`, status >= 500 ? 'try again later; if it persists, check status.elevenlabs.io' : undefined);
  }
}

async function fetchAgentConfig(origin: string, agentId: string, apiKey: string, options: CheckAgentsOptions): Promise<Fetched> {
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? DEFAULT_AGENT_CHECK_TIMEOUT_MS;
  const signal = AbortSignal.timeout(timeoutMs);
  const url = `${origin}${AGENT_CONFIG_PATH}/${encodeURIComponent(agentId)}`;
  let response: Response;
  try {
    // redirect: 'error': a redirect would carry the xi-api-key header to wherever it points.
    response = await doFetch(url, { method: 'GET', headers: { 'xi-api-key': apiKey, accept: 'application/json' }, redirect: 'error', signal });
  } catch (cause) {
    if (signal.aborted) return { ok: false, finding: err('api', `${origin} did not answer within ${timeoutMs} ms`, 'check the network path to ElevenLabs (proxy, firewall, DNS)') };
    const detail = cause instanceof Error ? (cause.cause instanceof Error ? cause.cause.message : cause.message) : String(cause);
    return { ok: false, finding: err('api', `cannot reach ${origin}: ${scrub(detail, apiKey)}`, 'check the network path to ElevenLabs and ELEVENLABS_BASE_URL') };
  }
  if (!response.ok) return { ok: false, finding: httpFinding(response.status, agentId, origin, await describeBody(response, apiKey)) };
  try {
    return { ok: true, body: await response.json() };
  } catch {
    const why = signal.aborted ? `did not complete within ${timeoutMs} ms` : 'is not JSON';
    return { ok: false, finding: err('api', `the agent configuration from ${origin} ${why}`) };
  }
}

function worst(findings: readonly AgentCheckFinding[]): AgentCheckSeverity {
  if (findings.some((f) => f.severity === 'error')) return 'error';
  if (findings.some((f) => f.severity === 'warning')) return 'warning';
  return 'ok';
}

function report(agent: string, agentId: string, origin: string, findings: AgentCheckFinding[], remoteName?: string): AgentCheckReport {
  return { agent, agentId, ...(remoteName !== undefined ? { remoteName } : {}), origin, severity: worst(findings), findings };
}

/**
 * Reads each `provider: elevenlabs` agent of the config over the REST API and checks it; agents
 * of other providers are skipped. Without an API key no request is sent and every agent gets one
 * error. Never rejects: every failure is a finding.
 */
export async function checkAgents(config: Config, options: CheckAgentsOptions = {}): Promise<AgentCheckReport[]> {
  const agents = Object.entries(config.agents).filter((e): e is [string, ElevenLabsAgentConfig] => e[1].provider === 'elevenlabs');
  let origin: string;
  try {
    origin = resolveOrigins(config.elevenlabs).httpOrigin;
  } catch (cause) {
    const finding = err('api', describeError(cause), 'fix ELEVENLABS_BASE_URL / elevenlabs.baseUrl');
    // Not the URL itself: it could carry credentials.
    return agents.map(([name, agent]) => report(name, agent.agentId, '(invalid elevenlabs.baseUrl)', [finding]));
  }
  const apiKey = config.elevenlabs.apiKey;
  if (apiKey === undefined || apiKey === '') {
    return agents.map(([name, agent]) =>
      report(name, agent.agentId, origin, [
        err(
          'api',
          `no ElevenLabs API key, so the agent was not read${agent.private ? '; as a private agent it also cannot take calls (AGENT_AUTH_FAILED)' : ''}`,
          'set ELEVENLABS_API_KEY in the environment of ai-call',
        ),
      ]),
    );
  }
  return Promise.all(
    agents.map(async ([name, agent]) => {
      const fetched = await fetchAgentConfig(origin, agent.agentId, apiKey, options);
      if (!fetched.ok) return report(name, agent.agentId, origin, [fetched.finding]);
      const remote = readRemoteAgent(fetched.body);
      return report(name, agent.agentId, origin, checkAgentSettings(agent, remote), remote.name);
    }),
  );
}

// ---------------------------------------------------------------------------------------------
// Output.

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Counts of findings over all reports, for summaries and the JSON output. */
export function countFindings(reports: readonly AgentCheckReport[]): { errors: number; warnings: number } {
  let errors = 0;
  let warnings = 0;
  for (const r of reports) {
    for (const f of r.findings) {
      if (f.severity === 'error') errors++;
      else if (f.severity === 'warning') warnings++;
    }
  }
  return { errors, warnings };
}

/**
 * The human report: one block per agent, one line per finding (severity, topic, message) with
 * its fix underneath, then a summary line. Pure; ends with a newline.
 */
export function formatAgentCheckReport(reports: readonly AgentCheckReport[]): string {
  if (reports.length === 0) return 'no elevenlabs agents configured: nothing to check\n';
  const lines: string[] = [];
  for (const r of reports) {
    const remote = r.remoteName !== undefined ? ` "${r.remoteName}"` : '';
    lines.push(`${r.agent}: ${r.agentId}${remote} at ${r.origin}`);
    for (const f of r.findings) {
      lines.push(`  ${f.severity.padEnd(7)}  ${f.topic.padEnd(9)}  ${f.message}`);
      if (f.fix !== undefined) lines.push(`  ${''.padEnd(7)}  ${''.padEnd(9)}  fix: ${f.fix}`);
    }
    const { errors, warnings } = countFindings([r]);
    lines.push(`  => ${errors === 0 && warnings === 0 ? 'ok' : `${plural(errors, 'error')}, ${plural(warnings, 'warning')}`}`, '');
  }
  const failing = reports.filter((r) => r.severity === 'error').length;
  const warned = reports.filter((r) => r.severity === 'warning').length;
  lines.push(`${plural(reports.length, 'agent')} checked: ${failing} with errors, ${warned} with warnings only, ${reports.length - failing - warned} ok`);
  return `${lines.join('\n')}\n`;
}
