/**
 * The dialplan an e2e Asterisk runs:
 *
 *   extensions.conf (the harness's, plays the admin's file)
 *     [globals]        E2E_SOUNDS, E2E_REC
 *     #include ai-call-extensions.conf  ◄── `ai-call dialplan generate` (renderDialplan), or the stand-in below
 *     #include e2e-standin-extensions.conf  ◄── the stand-in again, as e2e-standin-*: the README flow, always there
 *     [e2e-in]         include => ai-call-route-e2e-in      (inbound routes, as an admin wires them)
 *     [e2e-phone]      the far phone: answers, records what it hears (MixMonitor r()), plays its WAV, hangs up
 *     [e2e-transfer]   transfer targets: announce themselves with a UserEvent and a tone
 *     [e2e-fallback]   the agents' fallback
 *     …                a suite's own contexts (StackOptions.extraDialplan: dialer entries, phones that
 *                      send DTMF, marker extensions), built with phoneContext() / markerExtension()
 *
 * The source is chosen by E2E_DIALPLAN: `generated` (src/dialplan/render.ts), `stand-in` (the
 * README/agi-contract flow written here), or `auto` (default): generated when render.ts exists.
 * Both use the same context names, so a scenario does not care which one runs.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Config } from '../../../src/config/schema.js';

/** The inbound context the scenarios call into (routes[].context). */
export const INBOUND_CONTEXT = 'e2e-in';
/** The far phone, for both directions: `Local/<route>@e2e-in` → `<call>@e2e-phone`, or Originate `Local/<call>@e2e-phone`. */
export const PHONE_CONTEXT = 'e2e-phone';
export const TRANSFER_CONTEXT = 'e2e-transfer';
export const FALLBACK_CONTEXT = 'e2e-fallback';
/** The target extension plays this tone, so the caller's recording proves where it landed. */
export const TRANSFER_TONE_HZ = 1_500;

export type DialplanSource = 'generated' | 'stand-in';

/**
 * The stand-in flow under its own prefix, always loaded next to ai-call's dialplan, so a scenario can
 * also run the README/agi-contract shape (e.g. a transfer where DIALPLAN_EXISTS is not available).
 */
export const STAND_IN_PREFIX = 'e2e-standin';
export const STAND_IN_FILE = 'e2e-standin-extensions.conf';

export interface AiCallDialplan {
  readonly source: DialplanSource;
  /** ai-call-extensions.conf (and, when generated, ai-call-manager.conf and ai-call-modules.conf). */
  readonly files: ReadonlyMap<string, string>;
  /** Modules the dialplan loads (from ai-call-modules.conf when generated). */
  readonly modules: readonly string[];
}

const RENDER_MODULE = new URL('../../../src/dialplan/render.ts', import.meta.url);

/** Builds ai-call's dialplan for `config` from the chosen source. */
export async function aiCallDialplan(config: Config, env: NodeJS.ProcessEnv = process.env): Promise<AiCallDialplan> {
  const wanted = env['E2E_DIALPLAN'] ?? 'auto';
  if (wanted !== 'auto' && wanted !== 'generated' && wanted !== 'stand-in') throw new Error(`E2E_DIALPLAN must be auto, generated or stand-in, got ${wanted}`);
  const canGenerate = existsSync(fileURLToPath(RENDER_MODULE));
  if (wanted === 'generated' && !canGenerate) throw new Error('E2E_DIALPLAN=generated but src/dialplan/render.ts does not exist');
  if (wanted === 'stand-in' || !canGenerate) {
    return { source: 'stand-in', files: new Map([['ai-call-extensions.conf', standInExtensions(config)]]), modules: STAND_IN_MODULES };
  }
  // Imported by path so this file type-checks while the generator is still being written.
  const render = (await import(/* @vite-ignore */ new URL('../../../src/dialplan/render.js', import.meta.url).href)) as {
    renderDialplan(config: Config): Map<string, string>;
  };
  const files = render.renderDialplan(config);
  const modulesConf = files.get('ai-call-modules.conf') ?? '';
  const modules = [...modulesConf.matchAll(/^\s*load\s*=>\s*(\S+\.so)/gm)].map((m) => m[1]!);
  return { source: 'generated', files, modules };
}

const STAND_IN_MODULES = ['pbx_config.so', 'res_agi.so', 'res_audiosocket.so', 'app_audiosocket.so', 'chan_audiosocket.so', 'app_dial.so', 'app_verbose.so'];

/**
 * The flow of README.md / docs/agi-contract.md, with the context names `ai-call dialplan generate`
 * uses (<prefix>-route-<ctx>, <prefix>-flow-<ctx>, <prefix>-agent, <prefix>-run). The h extension
 * reads the outcome when the caller hung up, so AI_RESULT is set on every path.
 */
export function standInExtensions(config: Config, prefix = config.dialplan.prefix): string {
  const agi = `agi://${config.dialplan.agiHost ?? config.agi.host}:${config.agi.port}`;
  const agentContext = prefix === config.dialplan.prefix ? (config.ami?.agentContext ?? `${prefix}-agent`) : `${prefix}-agent`;
  const lines: string[] = [`; e2e stand-in for \`ai-call dialplan generate\` (test/e2e/support/dialplan.ts), prefix ${prefix}`, ''];
  const fallbackOf = (agent: string): string | undefined => {
    const target = config.agents[agent]?.fallback;
    return target === undefined ? undefined : typeof target === 'string' ? target : `${target.context},${target.exten},${target.priority}`;
  };
  const flow = (exten: string, agent: string, answer: boolean): void => {
    // agi-contract.md: 8 kHz with the AudioSocket() app; wideband agents 16 kHz with the channel driver.
    const media = config.agents[agent]?.wideband ? 'Dial(AudioSocket/${AI_AUDIOSOCKET}/${AI_UUID}/c(slin16),,g)' : 'AudioSocket(${AI_UUID},${AI_AUDIOSOCKET})';
    lines.push(
      `exten => ${exten},1,AGI(${agi}/ai-call?agent=${agent})`,
      ' same => n,GotoIf($["${AI_STATUS}" != "READY"]?unavailable)',
      ...(answer ? [' same => n,Answer()'] : []),
      ` same => n,${media}`,
      ` same => n,AGI(${agi}/ai-call/result?uuid=\${AI_UUID})`,
      ' same => n,GotoIf($["${AI_RESULT}" = "TRANSFER"]?${AI_TRANSFER_TO})',
      ' same => n,Hangup()',
      ` same => n(unavailable),Verbose(1,ai-call stand-in: agent ${agent} unavailable: \${AI_STATUS} \${AI_ERROR})`,
      fallbackOf(agent) ? ` same => n,Goto(${fallbackOf(agent)})` : ' same => n,Hangup()',
      '',
    );
  };
  const hangup = (): void => {
    lines.push(
      'exten => h,1,GotoIf($["${AI_UUID}" = "" | "${AI_RESULT}" != ""]?done)',
      ` same => n,AGI(${agi}/ai-call/result?uuid=\${AI_UUID})`,
      ' same => n(done),Verbose(2,ai-call stand-in: ${CHANNEL} hung up: result=${AI_RESULT} uuid=${AI_UUID})',
      '',
    );
  };
  const byContext = new Map<string, Array<{ extension: string; agent: string }>>();
  for (const route of config.routes) byContext.set(route.context, [...(byContext.get(route.context) ?? []), route]);
  for (const [context, routes] of byContext) {
    lines.push(`[${prefix}-route-${context}]`);
    for (const r of routes) lines.push(`exten => ${r.extension},1,Goto(${prefix}-flow-${context},\${EXTEN},1)`);
    lines.push('', `[${prefix}-flow-${context}]`);
    for (const r of routes) flow(r.extension, r.agent, true);
    hangup();
  }
  lines.push(`[${agentContext}]`);
  for (const agent of Object.keys(config.agents)) flow(agent, agent, false);
  hangup();
  lines.push(`[${prefix}-run]`);
  for (const agent of Object.keys(config.agents)) {
    lines.push(
      `exten => ${agent},1,AGI(${agi}/ai-call/run?agent=${agent})`,
      ' same => n,GotoIf($["${AI_RESULT}" = "TRANSFER"]?${AI_TRANSFER_TO})',
      ' same => n,Hangup()',
      '',
    );
  }
  hangup();
  return `${lines.join('\n')}\n`;
}

export interface E2eDialplanOptions {
  readonly prefix: string;
  readonly soundsDir: string;
  readonly recordDir: string;
  /** Transfer target extensions in [e2e-transfer]. */
  readonly transferExtensions: readonly string[];
  /** Whether the config has routes in [e2e-in] (else there is no route context to include). */
  readonly hasRoutes: boolean;
}

/** UserEvent field: the wall time, epoch seconds with ms. */
export const AT = 'At: ${STRFTIME(,,%s.%3q)}';

/** The phone's default script: play caller-<id>.wav once. */
export const PLAY_CALLER = 'Playback(${E2E_SOUNDS}/caller-${E2E_CALL})';

/**
 * The harness's own extensions.conf: the far phone, transfer targets and fallback. The phone
 * reports each step with a UserEvent `E2EPhone` (Call, Phase, At = epoch seconds with ms).
 */
export function e2eExtensions(o: E2eDialplanOptions): string {
  return [
    '; e2e harness dialplan (test/e2e/support/dialplan.ts): plays the admin\'s extensions.conf',
    '[globals]',
    `E2E_SOUNDS=${o.soundsDir}`,
    `E2E_REC=${o.recordDir}`,
    '',
    '#include ai-call-extensions.conf',
    `#include ${STAND_IN_FILE}`,
    '',
    `[${INBOUND_CONTEXT}]`,
    ...(o.hasRoutes ? [`include => ${o.prefix}-route-${INBOUND_CONTEXT}`] : []),
    '',
    phoneContext(PHONE_CONTEXT),
    `[${TRANSFER_CONTEXT}]`,
    ...o.transferExtensions.flatMap((exten) => [
      `exten => ${exten},1,UserEvent(E2EMark,Mark: transfer-landed,Exten: \${EXTEN},AiResult: \${AI_RESULT},${AT})`,
      ` same => n,Playback(\${E2E_SOUNDS}/transfer-${exten})`,
      ' same => n,Hangup()',
    ]),
    '',
    `[${FALLBACK_CONTEXT}]`,
    `exten => s,1,UserEvent(E2EMark,Mark: fallback,Status: \${AI_STATUS},Result: \${AI_RESULT},Error: \${AI_ERROR},${AT})`,
    ' same => n,Hangup()',
    '',
  ].join('\n');
}

/** What a phone records in: `wav` (8 kHz, the default) or `wav16` (16 kHz, for a wideband phone). */
export type RecordingFormat = 'wav' | 'wav16';

/**
 * A far-phone context: `<call id>`: answer, record what this phone hears (r) and says (t), run
 * `steps` (dialplan applications, default: play caller-<id>.wav), hang up. It reports `media` before
 * the steps, `played` after them and `hangup` from h, so E2eStack.call() and collect() work with any
 * phone context built here (suites add their own through StackOptions.extraDialplan).
 */
export function phoneContext(name: string, steps: readonly string[] = [PLAY_CALLER], o: { recording?: RecordingFormat } = {}): string {
  const ext = o.recording ?? 'wav';
  return [
    `[${name}]`,
    '; <call id>: answer, record what this phone hears (r) and says (t), run its steps, hang up.',
    'exten => _X.,1,Set(E2E_CALL=${EXTEN})',
    ' same => n,Answer()',
    ` same => n,MixMonitor(\${E2E_REC}/mix-\${E2E_CALL}.${ext},r(\${E2E_REC}/heard-\${E2E_CALL}.${ext})t(\${E2E_REC}/said-\${E2E_CALL}.${ext}))`,
    ` same => n,UserEvent(E2EPhone,Call: \${E2E_CALL},Phase: media,${AT})`,
    ...steps.map((step) => ` same => n,${step}`),
    ` same => n,UserEvent(E2EPhone,Call: \${E2E_CALL},Phase: played,${AT})`,
    ' same => n,Hangup()',
    `exten => h,1,UserEvent(E2EPhone,Call: \${E2E_CALL},Phase: hangup,Cause: \${HANGUPCAUSE},${AT})`,
    '',
  ].join('\n');
}

/**
 * A marker extension: announces itself with UserEvent `E2EMark` (Mark, Exten, AiResult, plus
 * `fields`: `Name: ${VAR}` pairs), plays <sounds>/<sound>.wav if given, and hangs up.
 */
export function markerExtension(exten: string, mark: string, o: { sound?: string; fields?: readonly string[] } = {}): string[] {
  const fields = ['Exten: ${EXTEN}', 'AiResult: ${AI_RESULT}', ...(o.fields ?? []), AT].join(',');
  return [
    `exten => ${exten},1,UserEvent(E2EMark,Mark: ${mark},${fields})`,
    ...(o.sound ? [` same => n,Playback(\${E2E_SOUNDS}/${o.sound})`] : []),
    ' same => n,Hangup()',
  ];
}
