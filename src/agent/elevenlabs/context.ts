import type { ElevenLabsAgentConfig } from '../../config/schema.js';
import type { CallContext } from '../types.js';
import type { InitiationOverrides } from './messages.js';

/**
 * Per-call rendering of an agent's templates (pure). A template is a string with `{{name}}`
 * placeholders taken from the call:
 *
 *   callerId callerName dnid extension context channel uniqueid callId agentName
 *   arg1 … argN (AGI arguments)   query.NAME (AGI URL query)   vars.NAME (channel variables)
 *
 * A known name without a value renders as '' and adds a warning. In dynamic variables an unknown
 * name also renders '' with a warning; in overrides (prompt, first message) unknown names are left
 * as they are, because ElevenLabs fills `{{its_own_variables}}` there from dynamic_variables.
 */

export type DynamicValue = string | number | boolean;

export interface RenderedContext {
  /** Config variables rendered, plus the built-ins the config does not define. */
  readonly dynamicVariables: Record<string, DynamicValue>;
  /** Only overrides that are configured and non-empty after rendering. */
  readonly overrides: InitiationOverrides;
  /** One line per placeholder without a value, for the call log and notices. */
  readonly warnings: string[];
}

const PLACEHOLDER = /\{\{\s*([^{}\s]+)\s*\}\}/g;

type Lookup = { readonly known: false } | { readonly known: true; readonly value: string | undefined };

const FIELDS = ['callerId', 'callerName', 'dnid', 'extension', 'context', 'channel', 'uniqueid', 'callId', 'agentName'] as const;
type Field = (typeof FIELDS)[number];

function isField(name: string): name is Field {
  return (FIELDS as readonly string[]).includes(name);
}

function own(record: Readonly<Record<string, string>>, key: string): string | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** Resolves one placeholder name against the call. */
export function lookupPlaceholder(name: string, ctx: CallContext): Lookup {
  if (isField(name)) return { known: true, value: ctx[name] };
  const arg = /^arg([1-9]\d{0,2})$/.exec(name);
  if (arg) return { known: true, value: ctx.args[Number(arg[1]) - 1] };
  if (name.startsWith('query.') && name.length > 6) return { known: true, value: own(ctx.query, name.slice(6)) };
  if (name.startsWith('vars.') && name.length > 5) return { known: true, value: own(ctx.vars, name.slice(5)) };
  return { known: false };
}

/**
 * Renders one template. `unknown: 'keep'` leaves unrecognised placeholders untouched (overrides),
 * `'empty'` replaces them with ''. `where` names the template in warnings.
 */
export function renderTemplate(
  template: string,
  ctx: CallContext,
  where: string,
  warnings: string[],
  unknown: 'keep' | 'empty' = 'empty',
): string {
  return template.replace(PLACEHOLDER, (whole, name: string) => {
    const found = lookupPlaceholder(name, ctx);
    if (!found.known) {
      if (unknown === 'keep') return whole;
      warnings.push(`${where}: unknown placeholder {{${name}}} rendered as ''`);
      return '';
    }
    if (found.value === undefined) {
      warnings.push(`${where}: {{${name}}} has no value for this call, rendered as ''`);
      return '';
    }
    return found.value;
  });
}

/**
 * Variables every conversation gets (protocols.md §4.4: system__caller_id is filled only by
 * native telephony, so the bridge supplies its own). '' when unknown, so a prompt that uses them
 * never fails with missing_dynamic_variable; asterisk_uniqueid only when known.
 */
export function builtinDynamicVariables(ctx: CallContext): Record<string, string> {
  const vars: Record<string, string> = {
    caller_id: ctx.callerId ?? '',
    caller_name: ctx.callerName ?? '',
    called_number: ctx.dnid ?? '',
    call_id: ctx.callId,
  };
  if (ctx.uniqueid !== undefined && ctx.uniqueid !== '') vars['asterisk_uniqueid'] = ctx.uniqueid;
  return vars;
}

/** Renders the configured dynamic variables and adds the built-ins the config does not define. */
export function renderDynamicVariables(
  templates: Readonly<Record<string, DynamicValue>>,
  ctx: CallContext,
): { variables: Record<string, DynamicValue>; warnings: string[] } {
  const warnings: string[] = [];
  const variables: Record<string, DynamicValue> = {};
  // Precedence: built-ins < values given for this call (originate) < the agent's configured templates.
  const perCall = { ...builtinDynamicVariables(ctx), ...ctx.dynamicVariables };
  for (const [name, value] of Object.entries(perCall)) {
    if (!Object.hasOwn(templates, name)) variables[name] = value;
  }
  for (const [name, template] of Object.entries(templates)) {
    variables[name] = typeof template === 'string' ? renderTemplate(template, ctx, `dynamicVariables.${name}`, warnings) : template;
  }
  return { variables, warnings };
}

/** Renders the configured overrides; one that renders to '' is left out (never send empty fields). */
export function renderOverrides(
  overrides: ElevenLabsAgentConfig['overrides'],
  ctx: CallContext,
): { overrides: InitiationOverrides; warnings: string[] } {
  const warnings: string[] = [];
  const out: { -readonly [K in keyof InitiationOverrides]: InitiationOverrides[K] } = {};
  for (const key of ['firstMessage', 'prompt', 'language', 'voiceId'] as const) {
    const template = overrides[key];
    if (template === undefined) continue;
    const value = renderTemplate(template, ctx, `overrides.${key}`, warnings, 'keep');
    if (value.trim() === '') {
      warnings.push(`overrides.${key}: rendered empty, not sent`);
      continue;
    }
    out[key] = value;
  }
  return { overrides: out, warnings };
}

/** Everything the initiation message needs for one call. */
export function renderCallContext(
  agent: Pick<ElevenLabsAgentConfig, 'dynamicVariables' | 'overrides'>,
  ctx: CallContext,
): RenderedContext {
  const dyn = renderDynamicVariables(agent.dynamicVariables, ctx);
  const ov = renderOverrides(agent.overrides, ctx);
  return { dynamicVariables: dyn.variables, overrides: ov.overrides, warnings: [...dyn.warnings, ...ov.warnings] };
}
