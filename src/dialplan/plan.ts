/**
 * Config → render plan for the dialplan templates (pure: no I/O).
 *
 *   config ──► checks (every value that reaches the dialplan, plus cross-references) ──► DialplanPlan ──► templates/
 *                 │ any problem
 *                 ▼
 *        BridgeError DIALPLAN_UNSAFE_VALUE listing every problem with its config path
 *
 * Templates print only what this module produced, so the templates never see raw config.
 * Facts relied on are cited from docs/protocols.md (§1.4 app vs driver, §2.1 AGI URL) and docs/dialers.md.
 */
import { isIP } from 'node:net';
import { DIALPLAN_NAME, type Config, type TransferTarget } from '../config/schema.js';
import { BridgeError } from '../errors.js';

/** Asterisk's AST_MAX_CONTEXT / AST_MAX_EXTENSION are 80 bytes including the NUL. */
const MAX_NAME_CHARS = 79;
/** Route extensions and DID patterns: digits, letters, * # +, pattern chars . ! [ ] and the readability dash. */
const ROUTE_EXTENSION = /^_?[A-Za-z0-9*#+.!\[\]-]{1,79}$/;
/** A plain extension (dialer entry, transfer target extension). */
const PLAIN_EXTENSION = /^[A-Za-z0-9*#+][A-Za-z0-9*#+_-]{0,78}$/;
const PRIORITY = /^[1-9][0-9]{0,3}$/;
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
/** manager.conf section name for the AMI user. */
const AMI_USERNAME = /^[A-Za-z0-9_.@-]{1,64}$/;
/** Mirrors dialers[].leadFields in config/schema.ts: checked again because renderDialplan may get a config built in code. */
const LEAD_FIELD_NAME = /^(?!AI_)[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const LEAD_FIELD_LITERAL = /^=[A-Za-z0-9 _.:@+#*/-]{0,80}$/;
const LEAD_FIELD_REFERENCE =
  /^(?:[A-Za-z_][A-Za-z0-9_]{0,63}|CALLERID\((?:num|name|ani|dnid|rdnis)\)|CONNECTEDLINE\((?:num|name)\)|CHANNEL\((?:accountcode|peeraccount|linkedid|language)\)|CDR\((?:accountcode|userfield)\))(?::-?[0-9]{1,3}(?::[0-9]{1,3})?)?$/;
/** Single-letter extensions Asterisk gives a meaning to (h hangup, i invalid, t/T timeouts, o/a operator, e exception). */
const SPECIAL_EXTENSIONS = ['a', 'e', 'h', 'i', 'o', 't', 'T'] as const;
/** Characters that end, split or expand a dialplan line; no config value may carry them unless its grammar says so. */
const DIALPLAN_UNSAFE = /[\r\n\0;,()$"'\\{}]/;

/** VICIdial's FastAGI_log hangup logging, as in its generated contexts (docs/dialers.md). */
export const DIALER_CALL_LOG_AGI =
  'agi://127.0.0.1:4577/call_log--HVcauses--PRI-----NODEBUG-----${HANGUPCAUSE}-----${DIALSTATUS}-----${DIALEDTIME}-----${ANSWEREDTIME}';

export type DialerConfig = NonNullable<Config['dialers']>[number];
export type DialerKind = DialerConfig['kind'];

/** How a dialer carries its lead id; see docs/dialers.md for the sources. */
export interface LeadPlan {
  /** Dialplan expressions tried in order, each giving a candidate caller code. */
  readonly sources: readonly string[];
  /** POSIX ERE the whole candidate must match (REGEX() in func_strings). */
  readonly regex: string;
  /** `$[${AI_LEAD_CODE:offset:length} + 0]`: the lead id without its zero padding. */
  readonly leadIdExpr: string;
  readonly offset: number;
  readonly length: number;
  /** Verbose text when no source matched. */
  readonly missing: string;
}

export interface FlowPlan {
  readonly exten: string;
  readonly description: string;
  readonly agent: string;
  readonly wideband: boolean;
  readonly assignUrl: string;
  readonly resultUrl: string;
  /** "context,exten,priority" or null: hang up with a log line. */
  readonly fallback: string | null;
  /** Only dialer contexts restrict transfers in the dialplan (the server already allowlists them). */
  readonly restrictTransfers: boolean;
  readonly allowedTransfers: readonly string[];
  readonly lead: LeadPlan | null;
  readonly leadFields: ReadonlyArray<{ readonly name: string; readonly value: string }>;
}

export interface RunPlan {
  readonly exten: string;
  readonly description: string;
  readonly agent: string;
  readonly runUrl: string;
  readonly fallback: string | null;
  readonly restrictTransfers: false;
  readonly allowedTransfers: readonly string[];
}

export interface RouteGroupPlan {
  /** The admin's context the calls arrive in (never redefined). */
  readonly adminContext: string;
  /** `<prefix>-route-<context>`: one Goto per route, safe to include from the admin's context. */
  readonly entryContext: string;
  /** `<prefix>-flow-<context>`: ai-call's own context holding the flows and its h extension. */
  readonly flowContext: string;
  readonly routes: ReadonlyArray<{ readonly exten: string; readonly flow: FlowPlan }>;
}

export interface DialerPlan {
  readonly name: string;
  readonly kind: DialerKind;
  readonly label: string;
  readonly context: string;
  readonly exten: string;
  readonly agent: string;
  /** The dialer's own context (never originated through). */
  readonly dialerContext: string;
  /** The dialer's hangup-logging AGI run in our h extension, or null. */
  readonly callLog: string | null;
  readonly flow: FlowPlan;
  readonly vicidial: boolean;
  readonly osdial: boolean;
}

export interface DialplanPlan {
  readonly prefix: string;
  /** host:port as written in AGI URLs (IPv6 in brackets). */
  readonly agiAddress: string;
  /** The result AGI, also run from h when the caller hung up before the flow asked for it. */
  readonly resultUrl: string;
  readonly routeGroups: readonly RouteGroupPlan[];
  readonly agentContext: { readonly name: string; readonly flows: readonly FlowPlan[] };
  readonly runContext: { readonly name: string; readonly flows: readonly RunPlan[] };
  readonly dialers: readonly DialerPlan[];
  readonly manager: {
    readonly username: string;
    /** `addr/mask` or null when the ai-call host is only known by name. */
    readonly permit: string | null;
    readonly denyIpv6: boolean;
    readonly agiHost: string;
  };
  /** Names of every context this file defines, in file order. */
  readonly contexts: readonly string[];
}

/** Refuses with every problem found; each names its config path and value. */
export function planDialplan(config: Config): DialplanPlan {
  const problems: string[] = [];
  const plan = buildPlan(config, problems);
  if (problems.length > 0 || plan === undefined) {
    throw new BridgeError(
      'DIALPLAN_UNSAFE_VALUE',
      `refusing to generate dialplan that would be broken or unsafe:\n  ${problems.join('\n  ')}`,
    );
  }
  return plan;
}

/** Non-fatal advice: the dialplan works, but probably not as intended. */
export function dialplanWarnings(config: Config): string[] {
  const warnings: string[] = [];
  for (const [i, dialer] of (config.dialers ?? []).entries()) {
    const agent = Object.hasOwn(config.agents, dialer.agent) ? config.agents[dialer.agent] : undefined;
    if (agent?.provider !== 'elevenlabs') continue;
    const read = new Set(agent.channelVariables);
    const wanted = ['AI_LEAD_ID', ...Object.keys(dialer.leadFields)].filter((name) => !read.has(name));
    if (wanted.length > 0) {
      warnings.push(
        `dialers[${i}] (${dialer.name}): agent "${dialer.agent}" does not list ${wanted.join(', ')} in channelVariables, so its templates cannot use them as {{vars.NAME}}`,
      );
    }
  }
  const routed = new Set([...config.routes.map((r) => r.agent), ...(config.dialers ?? []).map((d) => d.agent)]);
  for (const name of [...routed].sort()) {
    const agent = Object.hasOwn(config.agents, name) ? config.agents[name] : undefined;
    if (agent && agent.fallback === undefined) {
      warnings.push(`agents.${name}: no fallback configured; callers are hung up (with a log line) when the agent cannot take the call`);
    }
  }
  return warnings;
}

/** "context,exten,priority" exactly as the server hands it out in AI_TRANSFER_TO (src/call/transfer.ts). */
export function formatTarget(target: TransferTarget): string {
  return typeof target === 'string' ? target : `${target.context},${target.exten},${target.priority}`;
}

function buildPlan(config: Config, problems: string[]): DialplanPlan | undefined {
  const fail = (path: string, value: unknown, why: string): void => {
    problems.push(`${path}: ${JSON.stringify(value)} ${why}`);
  };
  const name = (path: string, value: unknown, what: string): value is string => {
    if (typeof value === 'string' && DIALPLAN_NAME.test(value)) return true;
    fail(path, value, `is not a safe ${what} (expected 1-64 letters, digits, "_" or "-")`);
    return false;
  };

  // ---- where Asterisk reaches ai-call (protocols.md §2.1: agi://host[:port]/script?query)
  const prefix = config.dialplan.prefix;
  name('dialplan.prefix', prefix, 'context prefix');
  const agiHost = resolveAgiHost(config, fail);
  const agiPort = config.agi.port;
  if (!Number.isInteger(agiPort) || agiPort < 1 || agiPort > 65_535) {
    fail('agi.port', agiPort, 'cannot be written into the dialplan: Asterisk needs the fixed FastAGI port (1-65535)');
  }
  const agiAddress = agiHost === undefined ? '' : `${isIP(agiHost) === 6 ? `[${agiHost}]` : agiHost}:${agiPort}`;
  const assignUrl = (agent: string): string => `agi://${agiAddress}/ai-call?agent=${agent}`;
  const runUrl = (agent: string): string => `agi://${agiAddress}/ai-call/run?agent=${agent}`;
  const resultUrl = `agi://${agiAddress}/ai-call/result?uuid=\${AI_UUID}`;

  // ---- generated context names: ours alone, never an admin's
  const generated = new Map<string, string>();
  const claim = (contextName: string, owner: string): void => {
    if (contextName.length > MAX_NAME_CHARS) {
      fail(owner, contextName, `makes a context name longer than Asterisk's ${MAX_NAME_CHARS} characters; shorten dialplan.prefix or the name`);
    }
    const previous = generated.get(contextName);
    if (previous !== undefined) fail(owner, contextName, `would generate the same context as ${previous}`);
    else generated.set(contextName, owner);
  };

  // ---- agents (names become extensions in the agent and run contexts)
  const agentNames = Object.keys(config.agents).sort();
  for (const agentName of agentNames) {
    const path = `agents.${agentName}`;
    if (!name(path, agentName, 'agent name')) continue;
    if (agentName.startsWith('_') || (SPECIAL_EXTENSIONS as readonly string[]).includes(agentName)) {
      fail(path, agentName, 'cannot be an extension name (a leading "_" makes a pattern; a, e, h, i, o, t and T are special extensions)');
    }
    const agent = config.agents[agentName]!;
    if (agent.fallback !== undefined) checkTarget(`${path}.fallback`, agent.fallback, fail);
    for (const [transferName, target] of Object.entries(agent.transfers)) {
      name(`${path}.transfers`, transferName, 'transfer name');
      checkTarget(`${path}.transfers.${transferName}`, target, fail);
    }
  }

  const agentContextName = config.ami?.agentContext ?? `${prefix}-agent`;
  if (config.ami !== undefined) name('ami.agentContext', agentContextName, 'context name');
  claim(agentContextName, config.ami ? 'ami.agentContext' : 'the agent context (dialplan.prefix + "-agent")');
  const runContextName = `${prefix}-run`;
  claim(runContextName, 'the run context (dialplan.prefix + "-run")');

  // ---- routes, grouped by the admin's context
  const groups = new Map<string, Array<{ index: number; exten: string; agent: string }>>();
  const seen = new Map<string, number>();
  for (const [i, route] of config.routes.entries()) {
    const path = `routes[${i}]`;
    const okContext = name(`${path}.context`, route.context, 'context name');
    const okExten = checkRouteExtension(`${path}.extension`, route.extension, fail);
    const okAgent = name(`${path}.agent`, route.agent, 'agent name');
    if (okAgent && !Object.hasOwn(config.agents, route.agent)) fail(`${path}.agent`, route.agent, 'names no agent in agents');
    if (!okContext || !okExten) continue;
    const key = `${route.context}\u0000${normalizeExtension(route.extension)}`;
    const first = seen.get(key);
    if (first !== undefined) {
      fail(path, `${route.context}/${route.extension}`, `duplicates routes[${first}]: one extension can reach only one agent`);
      continue;
    }
    seen.set(key, i);
    const group = groups.get(route.context) ?? [];
    group.push({ index: i, exten: route.extension, agent: route.agent });
    groups.set(route.context, group);
  }
  const adminContexts = [...groups.keys()].sort();
  for (const adminContext of adminContexts) {
    claim(`${prefix}-route-${adminContext}`, `routes (context ${adminContext})`);
    claim(`${prefix}-flow-${adminContext}`, `routes (context ${adminContext})`);
  }

  // ---- dialers
  const dialers = config.dialers ?? [];
  const dialerNames = new Map<string, number>();
  for (const [i, dialer] of dialers.entries()) {
    const path = `dialers[${i}]`;
    if (name(`${path}.name`, dialer.name, 'dialer name')) {
      const first = dialerNames.get(dialer.name);
      if (first !== undefined) fail(`${path}.name`, dialer.name, `duplicates dialers[${first}].name`);
      dialerNames.set(dialer.name, i);
      claim(`${prefix}-dialer-${dialer.name}`, `${path}.name`);
    }
    if (dialer.kind !== 'vicidial' && dialer.kind !== 'osdial') fail(`${path}.kind`, dialer.kind, 'is not "vicidial" or "osdial"');
    if (typeof dialer.extension !== 'string' || !PLAIN_EXTENSION.test(dialer.extension) || dialer.extension.includes('_') || dialer.extension.includes('-')) {
      fail(`${path}.extension`, dialer.extension, 'is not a plain extension (letters, digits, "*", "#", "+")');
    } else if ((SPECIAL_EXTENSIONS as readonly string[]).includes(dialer.extension)) {
      fail(`${path}.extension`, dialer.extension, 'is a special extension (a, e, h, i, o, t, T)');
    }
    if (dialer.context !== undefined) name(`${path}.context`, dialer.context, 'context name');
    const agent = name(`${path}.agent`, dialer.agent, 'agent name') && Object.hasOwn(config.agents, dialer.agent) ? config.agents[dialer.agent] : undefined;
    if (agent === undefined) {
      if (DIALPLAN_NAME.test(String(dialer.agent))) fail(`${path}.agent`, dialer.agent, 'names no agent in agents');
    }
    if (dialer.fallback !== undefined) checkTarget(`${path}.fallback`, dialer.fallback, fail);
    for (const [transferName, target] of Object.entries(dialer.transfers ?? {})) {
      const tpath = `${path}.transfers.${transferName}`;
      if (!name(`${path}.transfers`, transferName, 'transfer name') || !checkTarget(tpath, target, fail) || agent === undefined) continue;
      const agentTarget = Object.hasOwn(agent.transfers, transferName) ? agent.transfers[transferName] : undefined;
      if (agentTarget === undefined) {
        fail(tpath, formatTarget(target), `is not a transfer of agent "${dialer.agent}": the agent chooses among agents.${dialer.agent}.transfers, so add "${transferName}" there first`);
      } else if (formatTarget(agentTarget) !== formatTarget(target)) {
        fail(tpath, formatTarget(target), `differs from agents.${dialer.agent}.transfers.${transferName} (${formatTarget(agentTarget)}): the server hands out the agent's target`);
      }
    }
    for (const [field, source] of Object.entries(dialer.leadFields)) {
      const fpath = `${path}.leadFields.${field}`;
      if (!LEAD_FIELD_NAME.test(field)) fail(fpath, field, 'is not a channel variable name (letters, digits, "_", not starting with AI_)');
      if (typeof source !== 'string' || !(LEAD_FIELD_LITERAL.test(source) || LEAD_FIELD_REFERENCE.test(source))) {
        fail(fpath, source, 'is not VAR, CALLERID(num|name|ani|dnid|rdnis), CONNECTEDLINE(num|name), CHANNEL(accountcode|…), CDR(accountcode|userfield) with an optional :offset[:length], or =literal');
      }
    }
    // Never originate through a dialer's own context: its logging would be bypassed (docs/dialers.md).
    if (config.ami !== undefined && dialerOwnContexts(dialer).includes(config.ami.outboundContext)) {
      fail(
        'ami.outboundContext',
        config.ami.outboundContext,
        `is ${kindLabel(dialer.kind)} dialer "${dialer.name}"'s own context: ai-call never originates through a dialer's contexts, which would bypass its call logging; use a separate outbound context`,
      );
    }
  }

  // ---- AMI user for manager.conf
  const username = config.ami?.username ?? 'ai-call';
  if (typeof username !== 'string' || !AMI_USERNAME.test(username)) {
    fail('ami.username', username, 'cannot be a manager.conf section name (letters, digits, "_", ".", "@", "-")');
  }

  // ---- admin contexts must stay the admin's: no generated context may take their names
  const adminOwned = new Map<string, string>();
  for (const [i, route] of config.routes.entries()) adminOwned.set(route.context, `routes[${i}].context`);
  for (const [i, dialer] of dialers.entries()) for (const c of dialerOwnContexts(dialer)) adminOwned.set(c, `dialers[${i}].context`);
  if (config.ami !== undefined) adminOwned.set(config.ami.outboundContext, 'ami.outboundContext');
  for (const [contextName, path] of adminOwned) {
    const owner = generated.get(contextName);
    if (owner !== undefined) fail(path, contextName, `is also a context ai-call generates (${owner}); ai-call never redefines or routes through its own contexts from there`);
  }

  // ---- targets that point into generated contexts must land on an extension that exists there, at priority 1
  const generatedExtensions = new Map<string, string[]>();
  generatedExtensions.set(agentContextName, agentNames);
  generatedExtensions.set(runContextName, agentNames);
  for (const adminContext of adminContexts) {
    const extens = (groups.get(adminContext) ?? []).map((r) => r.exten);
    generatedExtensions.set(`${prefix}-route-${adminContext}`, extens);
    generatedExtensions.set(`${prefix}-flow-${adminContext}`, extens);
  }
  for (const dialer of dialers) generatedExtensions.set(`${prefix}-dialer-${dialer.name}`, [dialer.extension]);
  const checkInternal = (path: string, target: TransferTarget, isFallback: boolean): void => {
    const parsed = parseTarget(target);
    if (parsed === undefined) return;
    const extens = generatedExtensions.get(parsed.context);
    if (extens === undefined) return;
    if (isFallback) {
      fail(path, formatTarget(target), 'points into a context ai-call generates: a fallback is for when the AI cannot take the call, so it must lead to a human or another system');
    } else if (parsed.priority !== '1' || !extens.some((pattern) => extensionMatches(pattern, parsed.exten))) {
      fail(path, formatTarget(target), `does not exist in ai-call's generated context ${parsed.context} (use an extension defined there, priority 1)`);
    }
  };
  for (const agentName of agentNames) {
    const agent = config.agents[agentName]!;
    if (agent.fallback !== undefined) checkInternal(`agents.${agentName}.fallback`, agent.fallback, true);
    for (const [transferName, target] of Object.entries(agent.transfers)) checkInternal(`agents.${agentName}.transfers.${transferName}`, target, false);
  }
  for (const [i, dialer] of dialers.entries()) {
    if (dialer.fallback !== undefined) checkInternal(`dialers[${i}].fallback`, dialer.fallback, true);
  }

  if (problems.length > 0 || agiHost === undefined) return undefined;

  // ---- the plan (every value below passed a check above)
  const fallbackOf = (agentName: string): string | null => {
    const target = config.agents[agentName]?.fallback;
    return target === undefined ? null : formatTarget(target);
  };
  const flow = (exten: string, agentName: string, description: string): FlowPlan => ({
    exten,
    description,
    agent: agentName,
    wideband: config.agents[agentName]?.wideband ?? false,
    assignUrl: assignUrl(agentName),
    resultUrl,
    fallback: fallbackOf(agentName),
    restrictTransfers: false,
    allowedTransfers: [],
    lead: null,
    leadFields: [],
  });

  const routeGroups: RouteGroupPlan[] = adminContexts.map((adminContext) => ({
    adminContext,
    entryContext: `${prefix}-route-${adminContext}`,
    flowContext: `${prefix}-flow-${adminContext}`,
    routes: (groups.get(adminContext) ?? []).map((r) => ({
      exten: r.exten,
      flow: flow(r.exten, r.agent, `route ${adminContext}/${r.exten} (routes[${r.index}]) to agent ${r.agent}`),
    })),
  }));

  const dialerPlans: DialerPlan[] = dialers.map((dialer) => {
    const allowed = dialer.transfers === undefined ? null : Object.values(dialer.transfers).map(formatTarget).sort();
    const base = flow(dialer.extension, dialer.agent, `${kindLabel(dialer.kind)} dialer ${dialer.name} hands answered calls to agent ${dialer.agent}`);
    return {
      name: dialer.name,
      kind: dialer.kind,
      label: kindLabel(dialer.kind),
      context: `${prefix}-dialer-${dialer.name}`,
      exten: dialer.extension,
      agent: dialer.agent,
      dialerContext: dialerOwnContexts(dialer)[0]!,
      callLog: dialer.callLog ? DIALER_CALL_LOG_AGI : null,
      vicidial: dialer.kind === 'vicidial',
      osdial: dialer.kind === 'osdial',
      flow: {
        ...base,
        fallback: dialer.fallback === undefined ? base.fallback : formatTarget(dialer.fallback),
        restrictTransfers: allowed !== null,
        allowedTransfers: allowed ?? [],
        lead: leadPlan(dialer),
        leadFields: Object.entries(dialer.leadFields)
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([field, source]) => ({ name: field, value: source.startsWith('=') ? source.slice(1) : `\${${source}}` })),
      },
    };
  });

  const permitHost = agiHost;
  const family = isIP(permitHost);
  return {
    prefix,
    agiAddress,
    resultUrl,
    routeGroups,
    agentContext: {
      name: agentContextName,
      flows: agentNames.map((agentName) => flow(agentName, agentName, `originated call for agent ${agentName} (answered already)`)),
    },
    runContext: {
      name: runContextName,
      flows: agentNames.map((agentName) => ({
        exten: agentName,
        description: `one-line run for agent ${agentName}`,
        agent: agentName,
        runUrl: runUrl(agentName),
        fallback: fallbackOf(agentName),
        restrictTransfers: false,
        allowedTransfers: [],
      })),
    },
    dialers: dialerPlans,
    manager: {
      username,
      permit: family === 4 ? `${permitHost}/255.255.255.255` : family === 6 ? `${permitHost}/128` : null,
      denyIpv6: family === 6,
      agiHost: permitHost,
    },
    contexts: [
      ...routeGroups.flatMap((g) => [g.entryContext, g.flowContext]),
      agentContextName,
      runContextName,
      ...dialerPlans.map((d) => d.context),
    ],
  };
}

/** dialplan.agiHost, else agi.host; a wildcard listen address cannot be dialled (protocols.md §2.1). */
function resolveAgiHost(config: Config, fail: (path: string, value: unknown, why: string) => void): string | undefined {
  const explicit = config.dialplan.agiHost;
  const path = explicit === undefined ? 'agi.host' : 'dialplan.agiHost';
  const host = explicit ?? config.agi.host;
  if (typeof host !== 'string' || (isIP(host) === 0 && !HOST_NAME.test(host))) {
    fail(path, host, 'is not an IP address or host name');
    return undefined;
  }
  if (isWildcard(host)) {
    fail(
      path,
      host,
      explicit === undefined
        ? 'is a wildcard listen address, which Asterisk cannot connect to: set dialplan.agiHost to the address Asterisk reaches ai-call at'
        : 'is a wildcard address, which Asterisk cannot connect to: give the address Asterisk reaches ai-call at',
    );
    return undefined;
  }
  return host;
}

function isWildcard(host: string): boolean {
  if (isIP(host) === 4) return host === '0.0.0.0';
  if (isIP(host) === 6) return /^[0:]+$/.test(host);
  return false;
}

function kindLabel(kind: DialerKind): string {
  return kind === 'vicidial' ? 'VICIdial' : 'OSdial';
}

/** The dialer's own contexts: where its answered calls are routed and its carriers dialled (docs/dialers.md). */
function dialerOwnContexts(dialer: DialerConfig): string[] {
  const own = dialer.context ?? (dialer.kind === 'vicidial' ? 'default' : 'osdial');
  // OSdial's servers.ext_context defaults to "default", which includes [osdial].
  return dialer.kind === 'osdial' ? [...new Set([own, 'osdial', 'default'])] : [...new Set([own, 'default'])];
}

/**
 * VICIdial: CALLERID(name) = V|M|Y + 9 date digits (mddhhmmss) + lead_id zero-padded to 10 = 20 characters;
 * Asterisk 13+ may carry it in CONNECTEDLINE(name) instead (agi-VDAD_ALL_outbound.agi falls back to it).
 * OSdial: the Originate's Account (CHANNEL(accountcode)) = V + mmddhhmmss + lead_id zero-padded to 9.
 */
function leadPlan(dialer: DialerConfig): LeadPlan {
  if (dialer.kind === 'vicidial') {
    return {
      sources: ['${CALLERID(name):0:20}', '${CONNECTEDLINE(name):0:20}'],
      regex: '^[VMY][0-9]{19}$',
      offset: 10,
      length: 10,
      leadIdExpr: '$[${AI_LEAD_CODE:10:10} + 0]',
      missing: `dialer ${dialer.name}: no VICIdial caller code in CALLERID(name) or CONNECTEDLINE(name), AI_LEAD_ID stays empty`,
    };
  }
  return {
    sources: ['${CHANNEL(accountcode)}'],
    regex: '^V[0-9]{19}$',
    offset: 11,
    length: 9,
    leadIdExpr: '$[${AI_LEAD_CODE:11:9} + 0]',
    missing: `dialer ${dialer.name}: no OSdial caller code in CHANNEL(accountcode), AI_LEAD_ID stays empty`,
  };
}

function parseTarget(target: TransferTarget): { context: string; exten: string; priority: string } | undefined {
  if (typeof target === 'string') {
    const parts = target.split(',');
    if (parts.length !== 3) return undefined;
    return { context: parts[0]!, exten: parts[1]!, priority: parts[2]! };
  }
  if (target === null || typeof target !== 'object') return undefined;
  return { context: String(target.context), exten: String(target.exten), priority: String(target.priority) };
}

/** A Goto target: context and extension safe to write, priority a positive number. */
function checkTarget(path: string, target: TransferTarget, fail: (path: string, value: unknown, why: string) => void): boolean {
  const shown = typeof target === 'string' ? target : formatTarget(target);
  if (typeof target === 'string' && /[\r\n]/.test(target)) {
    fail(path, shown, 'contains a line break, which would end the dialplan line and inject the rest');
    return false;
  }
  const parsed = parseTarget(target);
  if (parsed === undefined) {
    fail(path, shown, 'is not "context,exten,priority"');
    return false;
  }
  let ok = true;
  if (!DIALPLAN_NAME.test(parsed.context)) {
    fail(path, shown, `has an unsafe context ${JSON.stringify(parsed.context)} (expected 1-64 letters, digits, "_" or "-")`);
    ok = false;
  }
  if (!PLAIN_EXTENSION.test(parsed.exten) || DIALPLAN_UNSAFE.test(parsed.exten)) {
    fail(path, shown, `has an unsafe extension ${JSON.stringify(parsed.exten)} (letters, digits, "*", "#", "+", "_", "-"; not starting with "_")`);
    ok = false;
  }
  if (!PRIORITY.test(parsed.priority)) {
    fail(path, shown, `has an invalid priority ${JSON.stringify(parsed.priority)} (1-9999)`);
    ok = false;
  }
  return ok;
}

function checkRouteExtension(path: string, value: unknown, fail: (path: string, value: unknown, why: string) => void): value is string {
  if (typeof value !== 'string' || !ROUTE_EXTENSION.test(value) || DIALPLAN_UNSAFE.test(value)) {
    fail(path, value, 'is not a safe extension or pattern (digits, letters, * # + - and, after a leading "_", X Z N . ! [ ])');
    return false;
  }
  const isPattern = value.startsWith('_');
  if (!isPattern && /[.!\[\]]/.test(value)) {
    fail(path, value, 'uses pattern characters without the leading "_"');
    return false;
  }
  if (isPattern && !bracketsBalanced(value)) {
    fail(path, value, 'has an unclosed or nested [ ] character set');
    return false;
  }
  const special = SPECIAL_EXTENSIONS.filter((s) => extensionMatches(value, s));
  if (special.length > 0) {
    fail(path, value, `would also match the special extension(s) ${special.join(', ')}: included into your context it would catch hangups or invalid dialling`);
    return false;
  }
  return true;
}

function bracketsBalanced(pattern: string): boolean {
  let open = false;
  for (const ch of pattern) {
    if (ch === '[') {
      if (open) return false;
      open = true;
    } else if (ch === ']') {
      if (!open) return false;
      open = false;
    }
  }
  return !open;
}

/** Asterisk ignores "-" in extensions; used to detect duplicates such as 600 and 6-00. */
function normalizeExtension(exten: string): string {
  return exten.replaceAll('-', '');
}

/**
 * Asterisk extension matching (pbx.c ext_cmp): an exact name, or after "_": X 0-9, Z 1-9, N 2-9,
 * [..] a set with ranges, "." one or more of anything, "!" zero or more; "-" is ignored.
 */
export function extensionMatches(pattern: string, exten: string): boolean {
  if (!pattern.startsWith('_')) return normalizeExtension(pattern) === normalizeExtension(exten);
  let source = '^';
  const body = pattern.slice(1);
  for (let i = 0; i < body.length; i++) {
    const ch = body[i]!;
    if (ch === '-') continue;
    if (ch === 'X' || ch === 'x') source += '[0-9]';
    else if (ch === 'Z' || ch === 'z') source += '[1-9]';
    else if (ch === 'N' || ch === 'n') source += '[2-9]';
    else if (ch === '.') source += '.+';
    else if (ch === '!') source += '.*';
    else if (ch === '[') {
      const end = body.indexOf(']', i);
      if (end < 0) return false;
      const set = body.slice(i + 1, end).replace(/[\\\]^]/g, (c) => `\\${c}`);
      source += `[${set}]`;
      i = end;
    } else source += ch.replace(/[.*+?^${}()|[\]\\]/g, (c) => `\\${c}`);
  }
  return new RegExp(`${source}$`).test(normalizeExtension(exten));
}
