import { isIP } from 'node:net';
import { z } from 'zod';

/**
 * The one place where every setting, its default and its unit is declared.
 * Durations end in Ms or S, sizes in Bytes, so a YAML reader never has to guess.
 */

/** 0 lets the OS pick a free port (tests); AI_AUDIOSOCKET then carries the real one. */
const port = z.number().int().min(0).max(65535);
const host = z.string().min(1).refine((v) => isIP(v) !== 0 || /^[A-Za-z0-9.-]+$/.test(v), {
  message: 'expected an IP address or host name',
});
/** An IPv4/IPv6 address or a CIDR block, e.g. 127.0.0.1 or 10.0.0.0/8. */
const addressOrCidr = z.string().refine(
  (v) => {
    const [addr, bits, extra] = v.split('/');
    if (extra !== undefined || addr === undefined) return false;
    const family = isIP(addr);
    if (family === 0) return false;
    if (bits === undefined) return true;
    const n = Number(bits);
    return Number.isInteger(n) && n >= 0 && n <= (family === 4 ? 32 : 128);
  },
  { message: 'expected an IP address or CIDR block such as 10.0.0.0/8' },
);
/** Dialplan names (contexts, agent and transfer names) must survive being written into extensions.conf. */
export const DIALPLAN_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const dialplanName = z.string().regex(DIALPLAN_NAME, 'expected 1-64 letters, digits, "_" or "-"');
const extension = z.string().regex(/^_?[A-Za-z0-9*#+.!\[\]-]{1,80}$/, 'expected a dialplan extension or pattern');
const channelVariable = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'expected a channel variable name');

export const AUDIO_FORMATS = ['pcm_8000', 'pcm_16000', 'pcm_22050', 'pcm_24000', 'pcm_44100', 'pcm_48000', 'ulaw_8000'] as const;

const agiSchema = z
  .object({
    host: host.default('127.0.0.1'),
    port: port.default(4573),
    /** Client addresses allowed to connect; Asterisk hosts only. */
    allow: z.array(addressOrCidr).default(['127.0.0.1', '::1']),
    commandTimeoutMs: z.number().int().min(100).max(120_000).default(5_000),
    /** protocols.md §2.3: Asterisk reads at most 8191 bytes per line; we allow a little more for env values. */
    maxLineBytes: z.number().int().min(256).max(65_536).default(8_192),
  })
  .strict();

const audiosocketSchema = z
  .object({
    host: host.default('127.0.0.1'),
    port: port.default(9092),
    /** The address Asterisk dials, handed out in AI_AUDIOSOCKET; defaults to host. */
    advertise: host.optional(),
    mode: z.enum(['shared', 'pool']).default('shared'),
    pool: z
      .object({ from: port.default(9100), to: port.default(9199) })
      .strict()
      .refine((p) => p.from <= p.to, { message: 'pool.from must not exceed pool.to' })
      .default({ from: 9100, to: 9199 }),
    /** How long an issued UUID waits for Asterisk to connect (protocols.md §1.10: seconds-long expiry). */
    uuidTtlMs: z.number().int().min(500).max(300_000).default(30_000),
    /** A connection must present its UUID this fast. */
    uuidTimeoutMs: z.number().int().min(100).max(10_000).default(2_000),
    maxPayloadBytes: z.number().int().min(320).max(65_535).default(16_384),
    /** Ports bound to one agent, for dialers that cannot run AGI. */
    bindings: z
      .array(z.object({ port, agent: dialplanName, host: host.optional() }).strict())
      .default([]),
  })
  .strict();

const statusSchema = z
  .object({
    enabled: z.boolean().default(true),
    host: host.default('127.0.0.1'),
    port: port.default(9093),
    /** Bearer token for write endpoints (POST /calls …); from AI_CALL_STATUS_TOKEN. */
    token: z.string().min(8).optional(),
  })
  .strict();

const callsSchema = z
  .object({
    maxConcurrent: z.number().int().min(1).max(100_000).default(1_000),
    frameMs: z.literal(20).default(20),
    /** How long a finished call's outcome stays readable by the result AGI. */
    resultTtlMs: z.number().int().min(1_000).max(86_400_000).default(600_000),
    /**
     * After transfer_call or hangup_call, how long the agent may stay quiet before ai-call ends the
     * AudioSocket: the agent usually still speaks ("transferring you now") after the tool result.
     */
    postToolQuietMs: z.number().int().min(0).max(10_000).default(1_000),
    /** Bound on playing out buffered agent audio after the agent ends or transfers. */
    drainTimeoutMs: z.number().int().min(0).max(120_000).default(15_000),
    maxDurationS: z.number().int().min(10).max(86_400).default(3_600),
    /** Most agent audio kept ahead of the 20 ms clock; beyond it new audio is dropped and counted. */
    maxBufferedAudioMs: z.number().int().min(1_000).max(600_000).default(120_000),
    /** Directory for per-call JSON Lines records; unset disables them. */
    recordDir: z.string().min(1).optional(),
  })
  .strict();

const amiSchema = z
  .object({
    host: host.default('127.0.0.1'),
    port: port.default(5038),
    username: z.string().min(1),
    /** From AI_CALL_AMI_SECRET or a ${VAR} reference; only `serve` needs it (dialplan commands do not). */
    secret: z.string().min(1).optional(),
    actionTimeoutMs: z.number().int().min(100).max(120_000).default(10_000),
    reconnectMinMs: z.number().int().min(50).max(60_000).default(250),
    reconnectMaxMs: z.number().int().min(100).max(300_000).default(5_000),
    pingIntervalMs: z.number().int().min(1_000).max(600_000).default(20_000),
    /** Context that originated calls dial out through (an existing one, e.g. from-internal). */
    outboundContext: dialplanName.default('from-internal'),
    /** The generated context that answered originated calls land in. */
    agentContext: dialplanName.default('ai-call-agent'),
  })
  .strict();

const elevenlabsSchema = z
  .object({
    /** From ELEVENLABS_BASE_URL; default https://api.elevenlabs.io. */
    baseUrl: z.url().optional(),
    residency: z.enum(['default', 'us', 'eu', 'in']).default('default'),
    /** From ELEVENLABS_API_KEY or a ${VAR} reference. */
    apiKey: z.string().min(1).optional(),
  })
  .strict();

const transferTarget = z.union([
  z.string().regex(/^[A-Za-z0-9_-]{1,64},[A-Za-z0-9*#+_-]{1,80},[0-9]{1,4}$/, 'expected "context,exten,priority"'),
  z.object({ context: dialplanName, exten: z.string().regex(/^[A-Za-z0-9*#+_-]{1,80}$/), priority: z.number().int().min(1).default(1) }).strict(),
]);

const commonAgent = {
  /** Calls this agent may carry at once (the ElevenLabs plan's concurrency). */
  maxConcurrent: z.number().int().min(1).max(100_000).optional(),
  /** Carry the call at 16 kHz with Dial(AudioSocket/…/c(slin16)) where the dialplan is generated. */
  wideband: z.boolean().default(false),
  /** Where the dialplan sends the caller when this agent cannot take the call. */
  fallback: transferTarget.optional(),
  /** Transfer destinations the agent may choose by name; nothing else is ever dialled. */
  transfers: z.record(dialplanName, transferTarget).default({}),
};

const echoAgentSchema = z
  .object({
    provider: z.literal('echo'),
    /** How far behind the caller the echo plays. */
    delayMs: z.number().int().min(0).max(5_000).default(200),
    ...commonAgent,
  })
  .strict();

const overridesSchema = z
  .object({
    firstMessage: z.string().min(1).optional(),
    language: z.string().regex(/^[a-z]{2,3}(-[a-z]{2,4})?$/, 'expected an ElevenLabs language code such as en or pt-br').optional(),
    prompt: z.string().min(1).optional(),
    voiceId: z.string().min(1).optional(),
  })
  .strict();

const elevenlabsAgentSchema = z
  .object({
    provider: z.literal('elevenlabs'),
    agentId: z.string().min(1),
    /** Private agents need a signed URL fetched with the API key. */
    private: z.boolean().default(true),
    environment: z.string().min(1).optional(),
    /** Sent as the Origin header, for agents with an allowlist. */
    origin: z.url().optional(),
    connectTimeoutMs: z.number().int().min(100).max(30_000).default(3_000),
    /** No message from the agent for this long ends the call. */
    silenceTimeoutMs: z.number().int().min(1_000).max(600_000).default(30_000),
    /** Caller audio batched per message to the agent. */
    uplinkChunkMs: z.number().int().min(20).max(250).multipleOf(20).default(20),
    /** Templates such as "{{callerId}}" rendered per call; see docs/configuration.md. */
    dynamicVariables: z.record(z.string().regex(/^(?!system__)[A-Za-z_][A-Za-z0-9_]{0,63}$/), z.union([z.string(), z.number(), z.boolean()])).default({}),
    overrides: overridesSchema.default({}),
    /** Channel variables read over AGI at call start and offered to templates as vars.NAME. */
    channelVariables: z.array(channelVariable).default([]),
    dtmf: z
      .object({
        mode: z.enum(['user_message', 'contextual_update', 'off']).default('contextual_update'),
        interDigitTimeoutMs: z.number().int().min(100).max(30_000).default(2_000),
        terminator: z.enum(['#', '*', 'none']).default('#'),
      })
      .strict()
      .default({ mode: 'contextual_update', interDigitTimeoutMs: 2_000, terminator: '#' }),
    ...commonAgent,
  })
  .strict();

export const agentSchema = z.discriminatedUnion('provider', [echoAgentSchema, elevenlabsAgentSchema]);

const routeSchema = z
  .object({
    context: dialplanName,
    /** An extension or DID pattern, e.g. 600 or _+1555XXXXXXX. */
    extension,
    agent: dialplanName,
  })
  .strict();

/**
 * Where a dialer (VICIdial, OSdial) hands an answered call to ai-call: the generated context
 * `<prefix>-dialer-<name>` reads the lead id the dialer carries, sets lead-field variables and runs
 * the AI flow (docs/dialers.md). Cross-references (agent, transfers) are checked by the dialplan
 * generator, which refuses a config that would produce broken dialplan.
 */
const dialerSchema = z
  .object({
    name: dialplanName,
    kind: z.enum(['vicidial', 'osdial']),
    /** The extension the dialer sends answered calls to (remote-agent External Extension, survey or call-menu target). */
    extension: z.string().regex(/^[A-Za-z0-9*#+]{1,80}$/, 'expected a plain extension: letters, digits, "*", "#" or "+"'),
    agent: dialplanName,
    /** The dialer's own context (VICIdial servers.ext_context, default "default"; OSdial "osdial"); ai-call never originates through it. */
    context: dialplanName.optional(),
    /**
     * Channel variables set before the agent is requested: NAME → a channel variable, CALLERID(num|name|…),
     * CONNECTEDLINE(num|name), CHANNEL(accountcode|…) or CDR(accountcode|userfield), optionally `:offset[:length]`;
     * or `=literal`. List the names in the agent's channelVariables to use them as {{vars.NAME}}.
     */
    leadFields: z
      .record(
        z.string().regex(/^(?!AI_)[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'expected a channel variable name not starting with AI_'),
        z
          .string()
          .regex(
            /^(?:=[A-Za-z0-9 _.:@+#*/-]{0,80}|(?:[A-Za-z_][A-Za-z0-9_]{0,63}|CALLERID\((?:num|name|ani|dnid|rdnis)\)|CONNECTEDLINE\((?:num|name)\)|CHANNEL\((?:accountcode|peeraccount|linkedid|language)\)|CDR\((?:accountcode|userfield)\))(?::-?[0-9]{1,3}(?::[0-9]{1,3})?)?)$/,
            'expected VAR, CALLERID(num), CONNECTEDLINE(name), CHANNEL(accountcode), CDR(userfield) (optionally :offset[:length]) or =literal',
          ),
      )
      .default({}),
    /** The agent's transfers allowed from this dialer (same name and target as in the agent); default: all of them. */
    transfers: z.record(dialplanName, transferTarget).optional(),
    /** Where the caller goes when the agent cannot take the call; default: the agent's fallback. */
    fallback: transferTarget.optional(),
    /** Run the dialer's call_log FastAGI (127.0.0.1:4577) in the h extension, as the dialer's own contexts do. */
    callLog: z.boolean().default(true),
  })
  .strict();

export const configSchema = z
  .object({
    agi: agiSchema.default(agiSchema.parse({})),
    audiosocket: audiosocketSchema.default(audiosocketSchema.parse({})),
    status: statusSchema.default(statusSchema.parse({})),
    calls: callsSchema.default(callsSchema.parse({})),
    ami: amiSchema.optional(),
    elevenlabs: elevenlabsSchema.default(elevenlabsSchema.parse({})),
    agents: z.record(dialplanName, agentSchema).refine((a) => Object.keys(a).length > 0, {
      message: 'expected at least one agent',
    }),
    routes: z.array(routeSchema).default([]),
    /** Context name prefix for generated dialplan. */
    dialplan: z
      .object({ prefix: dialplanName.default('ai-call'), agiHost: host.optional() })
      .strict()
      .default({ prefix: 'ai-call' }),
    /** Dialers (VICIdial, OSdial) that hand answered calls to an agent; see docs/dialers.md. */
    dialers: z.array(dialerSchema).optional(),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .default({ level: 'info' }),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    for (const [i, route] of cfg.routes.entries()) {
      if (!Object.hasOwn(cfg.agents, route.agent)) {
        ctx.addIssue({ code: 'custom', path: ['routes', i, 'agent'], message: `no agent named "${route.agent}" in agents` });
      }
    }
    for (const [i, binding] of cfg.audiosocket.bindings.entries()) {
      if (!Object.hasOwn(cfg.agents, binding.agent)) {
        ctx.addIssue({ code: 'custom', path: ['audiosocket', 'bindings', i, 'agent'], message: `no agent named "${binding.agent}" in agents` });
      }
    }
    for (const [i, dialer] of (cfg.dialers ?? []).entries()) {
      if (!Object.hasOwn(cfg.agents, dialer.agent)) {
        ctx.addIssue({ code: 'custom', path: ['dialers', i, 'agent'], message: `no agent named "${dialer.agent}" in agents` });
      }
    }
  });

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type AgentConfig = Config['agents'][string];
export type EchoAgentConfig = Extract<AgentConfig, { provider: 'echo' }>;
export type ElevenLabsAgentConfig = Extract<AgentConfig, { provider: 'elevenlabs' }>;
export type TransferTarget = z.output<typeof transferTarget>;
export type AudioFormatName = (typeof AUDIO_FORMATS)[number];
