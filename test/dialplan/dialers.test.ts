import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { isBridgeError } from '../../src/errors.js';
import { dialplanWarnings } from '../../src/dialplan/plan.js';
import { renderDialplan } from '../../src/dialplan/render.js';
import { fixtureConfig, FIXTURE_ENV, mutable } from './helpers.js';

/** The dialer extension's lines, from exten => to the last same =>. */
function dialerLines(config: Config, dialer: string, exten = '8399'): string[] {
  const text = renderDialplan(config).get('ai-call-extensions.conf')!;
  const lines = text.split('\n');
  const start = lines.indexOf(`[ai-call-dialer-${dialer}]`);
  const first = lines.findIndex((l, i) => i > start && l.startsWith(`exten => ${exten},1,`));
  const out = [lines[first]!];
  for (const line of lines.slice(first + 1)) {
    if (!line.startsWith(' same => ')) break;
    out.push(line);
  }
  return out;
}

/**
 * Runs the generated lead-id lines the way Asterisk would, for the handful of constructs they use:
 * Set(VAR=${SRC:offset:length}), GotoIf(${REGEX("re" ${VAR})}?label), Goto(label) and
 * Set(AI_LEAD_ID=$[${AI_LEAD_CODE:o:l} + 0]). Anything else in that stretch fails the test.
 */
function runLeadExtraction(lines: string[], channel: Record<string, string>): { leadId: string; code: string } {
  const vars: Record<string, string> = { ...channel };
  const labels = new Map<string, number>();
  lines.forEach((l, i) => {
    const m = /^ same => n\(([a-z_]+)\)/.exec(l);
    if (m) labels.set(m[1]!, i);
  });
  const substr = (value: string, offset: number, length?: number): string => value.slice(offset, length === undefined ? undefined : offset + length);
  const expand = (expr: string): string => {
    const m = /^\$\{([A-Za-z_]+(?:\([a-z]+\))?)(?::(\d+)(?::(\d+))?)?\}$/.exec(expr);
    if (!m) throw new Error(`unsupported expression ${expr}`);
    return substr(vars[m[1]!] ?? '', Number(m[2] ?? 0), m[3] === undefined ? undefined : Number(m[3]));
  };
  let pc = lines.findIndex((l) => l.includes('Set(AI_LEAD_ID=)'));
  const end = lines.findIndex((l) => l.startsWith(' same => n(lead_done),'));
  expect(pc).toBeGreaterThan(0);
  expect(end).toBeGreaterThan(pc);
  for (let steps = 0; pc < end; steps++) {
    if (steps > 50) throw new Error('loop');
    const body = lines[pc]!.replace(/^ same => n(?:\([a-z_]+\))?,/, '');
    let m: RegExpExecArray | null;
    if ((m = /^Set\(AI_LEAD_ID=\$\[\$\{AI_LEAD_CODE:(\d+):(\d+)\} \+ 0\]\)$/.exec(body))) {
      // $[x + 0]: Asterisk's expression parser reads the digits as a decimal number (strtod).
      vars['AI_LEAD_ID'] = String(Number(substr(vars['AI_LEAD_CODE'] ?? '', Number(m[1]), Number(m[2]))));
    } else if ((m = /^Set\(([A-Z_]+)=(.*)\)$/.exec(body))) {
      vars[m[1]!] = m[2] === '' ? '' : expand(m[2]!);
    } else if ((m = /^GotoIf\(\$\{REGEX\("([^"]+)" \$\{([A-Z_]+)\}\)\}\?([a-z_]+)\)$/.exec(body))) {
      if (new RegExp(m[1]!).test(vars[m[2]!] ?? '')) {
        pc = labels.get(m[3]!)!;
        continue;
      }
    } else if ((m = /^Goto\(([a-z_]+)\)$/.exec(body))) {
      pc = labels.get(m[1]!)!;
      continue;
    } else if (!/^(?:Verbose|NoOp)\(/.test(body)) {
      throw new Error(`unexpected line in the lead extraction: ${body}`);
    }
    pc++;
  }
  return { leadId: vars['AI_LEAD_ID'] ?? '', code: vars['AI_LEAD_CODE'] ?? '' };
}

describe('VICIdial lead id', () => {
  const lines = dialerLines(fixtureConfig(), 'vici');

  // Caller codes from VICIdial docs/CALLER_ID_NAME_CODES.txt: V auto-dial, M manual dial, Y inbound.
  it.each([
    ['V7152252280000844707', '844707'],
    ['M7152249180000855319', '855319'],
    ['Y7152252510000822239', '822239'],
    // V + mddhhmmss (VICIdial drops the month's first digit: AST_VDauto_dial.pl) + lead_id padded to 10.
    ['V' + '231235959' + '0000000001', '1'],
    ['V' + '102030405' + '9999999999', '9999999999'],
  ])('reads %s from CALLERID(name) as lead %s', (code, lead) => {
    expect(runLeadExtraction(lines, { 'CALLERID(name)': code })).toEqual({ leadId: lead, code });
  });

  it('falls back to CONNECTEDLINE(name), where Asterisk 13+ may carry the code', () => {
    expect(runLeadExtraction(lines, { 'CALLERID(name)': 'unknown', 'CONNECTEDLINE(name)': 'V7152252280000844707' }).leadId).toBe('844707');
  });

  it('ignores what a remote-agent extension appends after the 20-character code', () => {
    expect(runLeadExtraction(lines, { 'CALLERID(name)': 'V7152252280000844707 8600051' }).leadId).toBe('844707');
  });

  it.each([['John Smith'], [''], ['V715225228000084470'], ['X7152252280000844707'], ['V71522522800008447a7']])(
    'leaves AI_LEAD_ID empty for %j (guard)',
    (name) => {
      expect(runLeadExtraction(lines, { 'CALLERID(name)': name, 'CONNECTEDLINE(name)': 'Someone' })).toEqual({ leadId: '', code: '' });
    },
  );

  it('sets the configured lead fields before the agent is requested, then runs the flow', () => {
    const assign = lines.findIndex((l) => l.includes('AGI(agi://10.0.0.5:4573/ai-call?agent=sales)'));
    expect(lines.indexOf(' same => n,Set(LEAD_PHONE=${CALLERID(num)})')).toBeGreaterThan(lines.findIndex((l) => l.startsWith(' same => n(lead_done),')));
    expect(lines.indexOf(' same => n,Set(LEAD_PHONE=${CALLERID(num)})')).toBeLessThan(assign);
    expect(lines.indexOf(' same => n,Set(CAMPAIGN=SURVEY1)')).toBeLessThan(assign);
    expect(lines.findIndex((l) => l.includes('Answer()'))).toBeGreaterThan(assign);
  });

  it("allows only the dialer's transfers, then Goto the target (the dialer's transfer extension)", () => {
    expect(lines).toContain(' same => n,GotoIf($["${AI_TRANSFER_TO}" = "trunkinbound,5550100,1"]?transfer_allowed)');
    expect(lines.indexOf(' same => n,Goto(${AI_TRANSFER_TO})')).toBeGreaterThan(lines.findIndex((l) => l.includes('(transfer_allowed)')));
    expect(lines).toContain(' same => n(fallback),GotoIf(${DIALPLAN_EXISTS(default,8300,1)}?default,8300,1)');
  });

  it("runs VICIdial's hangup logging in the dialer context's own h extension", () => {
    const text = renderDialplan(fixtureConfig()).get('ai-call-extensions.conf')!;
    const context = text.slice(text.indexOf('[ai-call-dialer-vici]'), text.indexOf('[ai-call-dialer-osd]'));
    expect(context).toContain(
      ' same => n,AGI(agi://127.0.0.1:4577/call_log--HVcauses--PRI-----NODEBUG-----${HANGUPCAUSE}-----${DIALSTATUS}-----${DIALEDTIME}-----${ANSWEREDTIME})',
    );
  });
});

describe('OSdial lead id', () => {
  const lines = dialerLines(fixtureConfig(), 'osd');

  it('reads V + mmddhhmmss + 9-digit lead id from CHANNEL(accountcode)', () => {
    expect(runLeadExtraction(lines, { 'CHANNEL(accountcode)': 'V1124153012000001063' }).leadId).toBe('1063');
  });

  it('leaves AI_LEAD_ID empty when the accountcode is not a caller code', () => {
    expect(runLeadExtraction(lines, { 'CHANNEL(accountcode)': 'customer42', 'CALLERID(name)': 'V7152252280000844707' }).leadId).toBe('');
  });

  it('omits the call_log AGI when callLog is false', () => {
    const text = renderDialplan(fixtureConfig()).get('ai-call-extensions.conf')!;
    expect(text.slice(text.indexOf('[ai-call-dialer-osd]'))).not.toContain('call_log');
  });
});

describe('dialer config', () => {
  const refuse = (change: (c: Record<string, any>) => void): string => {
    const c = mutable(fixtureConfig());
    change(c);
    try {
      renderDialplan(c as Config);
    } catch (err) {
      expect(isBridgeError(err, 'DIALPLAN_UNSAFE_VALUE')).toBe(true);
      return (err as Error).message;
    }
    throw new Error('accepted');
  };

  it('is validated by the schema (strict, with the lead-field grammar)', () => {
    const yaml = (dialer: string): string => `agents:\n  a: { provider: echo }\ndialers:\n  - ${dialer}\n`;
    expect(() => parseConfig(yaml('{ name: v, kind: vicidial, extension: "8399", agent: a }'), 't', {})).not.toThrow();
    expect(() => parseConfig(yaml('{ name: v, kind: asterisk, extension: "8399", agent: a }'), 't', {})).toThrow(/dialers\.0\.kind/);
    expect(() => parseConfig(yaml('{ name: v, kind: vicidial, extension: "83;99", agent: a }'), 't', {})).toThrow(/dialers\.0\.extension/);
    expect(() => parseConfig(yaml('{ name: v, kind: vicidial, extension: "8399", agent: a, extra: 1 }'), 't', {})).toThrow(/dialers\.0/);
    expect(() => parseConfig(yaml('{ name: v, kind: vicidial, extension: "8399", agent: a, leadFields: { X: "${SHELL(rm)}" } }'), 't', { SHELL: 'x' })).toThrow(
      /leadFields/,
    );
    expect(() => parseConfig(yaml('{ name: v, kind: vicidial, extension: "8399", agent: a, leadFields: { AI_STATUS: "CALLERID(num)" } }'), 't', {})).toThrow(/leadFields/);
  });

  it('refuses an unknown agent', () => {
    expect(refuse((c) => (c['dialers'][0]['agent'] = 'ghost'))).toContain('dialers[0].agent: "ghost" names no agent');
  });

  it("refuses a dialer transfer the agent cannot choose, or whose target differs from the agent's", () => {
    expect(refuse((c) => (c['dialers'][0]['transfers'] = { other: 'default,8300,1' }))).toContain('is not a transfer of agent "sales"');
    expect(refuse((c) => (c['dialers'][0]['transfers'] = { closer: 'default,8300,1' }))).toContain('differs from agents.sales.transfers.closer');
  });

  it('refuses unsafe lead fields given in code', () => {
    expect(refuse((c) => (c['dialers'][0]['leadFields'] = { X: 'CALLERID(num))\nexten => 1,1,System(x' }))).toContain('dialers[0].leadFields.X');
    expect(refuse((c) => (c['dialers'][0]['leadFields'] = { 'A;B': 'CALLERID(num)' }))).toContain('dialers[0].leadFields.A;B');
  });

  it("never originates through a dialer's own context", () => {
    expect(refuse((c) => (c['ami']['outboundContext'] = 'default'))).toContain('ami.outboundContext: "default" is VICIdial dialer "vici"\'s own context');
    expect(refuse((c) => (c['ami']['outboundContext'] = 'osdial'))).toContain('OSdial dialer "osd"');
  });

  it('refuses duplicate dialer names', () => {
    expect(refuse((c) => (c['dialers'][1]['name'] = 'vici'))).toContain('dialers[1].name: "vici" duplicates dialers[0].name');
  });

  it('warns when the agent does not read the lead variables', () => {
    const config = parseConfig(
      'agents:\n  a: { provider: elevenlabs, agentId: x, channelVariables: [AI_LEAD_ID] }\ndialers:\n  - { name: v, kind: vicidial, extension: "8399", agent: a, leadFields: { PHONE: CALLERID(num) } }\n',
      't',
      FIXTURE_ENV,
    );
    expect(dialplanWarnings(config).join('\n')).toContain('does not list PHONE in channelVariables');
  });
});
