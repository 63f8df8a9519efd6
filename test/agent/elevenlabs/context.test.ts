import { describe, expect, it } from 'vitest';
import type { CallContext } from '../../../src/agent/types.js';
import {
  builtinDynamicVariables,
  renderCallContext,
  renderDynamicVariables,
  renderOverrides,
  renderTemplate,
} from '../../../src/agent/elevenlabs/context.js';

const ctx: CallContext = {
  callId: '0b8f6d3c-2a1e-4c55-9e1f-1234567890ab',
  agentName: 'sales',
  callerId: '+15551234567',
  callerName: 'Alice: Smith',
  dnid: '600',
  extension: '600',
  context: 'from-internal',
  channel: 'PJSIP/alice-00000001',
  uniqueid: '1732400000.42',
  args: ['arg one', 'arg:two'],
  query: { agent: 'sales', lang: 'en' },
  vars: { ACCOUNT: 'A-17', EMPTY: '' },
};

describe('renderTemplate', () => {
  it('substitutes every call field', () => {
    const warnings: string[] = [];
    const out = renderTemplate(
      '{{callerId}}|{{callerName}}|{{dnid}}|{{extension}}|{{context}}|{{channel}}|{{uniqueid}}|{{callId}}|{{agentName}}',
      ctx,
      't',
      warnings,
    );
    expect(out).toBe('+15551234567|Alice: Smith|600|600|from-internal|PJSIP/alice-00000001|1732400000.42|0b8f6d3c-2a1e-4c55-9e1f-1234567890ab|sales');
    expect(warnings).toEqual([]);
  });

  it('substitutes args, query and vars, with spaces inside the braces', () => {
    const warnings: string[] = [];
    expect(renderTemplate('{{ arg1 }}/{{arg2}}/{{query.lang}}/{{vars.ACCOUNT}}/{{vars.EMPTY}}.', ctx, 't', warnings)).toBe('arg one/arg:two/en/A-17/.');
    expect(warnings).toEqual([]);
  });

  it('renders a missing value as "" and warns', () => {
    const warnings: string[] = [];
    expect(renderTemplate('[{{arg3}}][{{query.nope}}][{{vars.NOPE}}]', { ...ctx, callerName: undefined }, 'dynamicVariables.x', warnings)).toBe('[][][]');
    expect(warnings).toEqual([
      "dynamicVariables.x: {{arg3}} has no value for this call, rendered as ''",
      "dynamicVariables.x: {{query.nope}} has no value for this call, rendered as ''",
      "dynamicVariables.x: {{vars.NOPE}} has no value for this call, rendered as ''",
    ]);
  });

  it('does not read inherited properties', () => {
    const warnings: string[] = [];
    expect(renderTemplate('{{query.constructor}}{{vars.toString}}', ctx, 't', warnings)).toBe('');
    expect(warnings).toHaveLength(2);
  });

  it('unknown names: "" with a warning, or kept for ElevenLabs', () => {
    const warnings: string[] = [];
    expect(renderTemplate('a{{customer_name}}b', ctx, 't', warnings)).toBe('ab');
    expect(warnings).toEqual(["t: unknown placeholder {{customer_name}} rendered as ''"]);
    const kept: string[] = [];
    expect(renderTemplate('Hi {{customer_name}}, {{callerName}}', ctx, 't', kept, 'keep')).toBe('Hi {{customer_name}}, Alice: Smith');
    expect(kept).toEqual([]);
  });

  it('does not re-expand values that contain braces', () => {
    const warnings: string[] = [];
    expect(renderTemplate('{{vars.X}}', { ...ctx, vars: { X: '{{callerId}}' } }, 't', warnings)).toBe('{{callerId}}');
  });
});

describe('renderDynamicVariables', () => {
  it('renders templates, passes numbers and booleans, adds built-ins', () => {
    const { variables, warnings } = renderDynamicVariables({ customer: '{{vars.ACCOUNT}}', tries: 3, vip: false, lang: '{{query.lang}}' }, ctx);
    expect(variables).toEqual({
      caller_id: '+15551234567',
      caller_name: 'Alice: Smith',
      called_number: '600',
      call_id: ctx.callId,
      asterisk_uniqueid: '1732400000.42',
      customer: 'A-17',
      tries: 3,
      vip: false,
      lang: 'en',
    });
    expect(warnings).toEqual([]);
  });

  it('lets config override a built-in name', () => {
    const { variables } = renderDynamicVariables({ caller_id: 'withheld' }, ctx);
    expect(variables['caller_id']).toBe('withheld');
  });

  it('built-ins are "" when unknown and asterisk_uniqueid only when known', () => {
    expect(builtinDynamicVariables({ callId: 'c1', agentName: 'a', args: [], query: {}, vars: {} })).toEqual({
      caller_id: '',
      caller_name: '',
      called_number: '',
      call_id: 'c1',
    });
  });
});

describe('renderOverrides / renderCallContext', () => {
  it('renders first message and prompt, keeps ElevenLabs placeholders, drops empty results', () => {
    const { overrides, warnings } = renderOverrides(
      { firstMessage: 'Hello {{callerName}}, about {{topic}}?', prompt: 'Account {{vars.ACCOUNT}}', voiceId: '{{vars.NOPE}}' },
      ctx,
    );
    expect(overrides).toEqual({ firstMessage: 'Hello Alice: Smith, about {{topic}}?', prompt: 'Account A-17' });
    expect(warnings).toEqual([
      "overrides.voiceId: {{vars.NOPE}} has no value for this call, rendered as ''",
      'overrides.voiceId: rendered empty, not sent',
    ]);
  });

  it('returns nothing for an agent without overrides or variables, except built-ins', () => {
    const rendered = renderCallContext({ dynamicVariables: {}, overrides: {} }, ctx);
    expect(rendered.overrides).toEqual({});
    expect(Object.keys(rendered.dynamicVariables)).toEqual(['caller_id', 'caller_name', 'called_number', 'call_id', 'asterisk_uniqueid']);
    expect(rendered.warnings).toEqual([]);
  });
});
