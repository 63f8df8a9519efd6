import { describe, expect, it } from 'vitest';
import { extensionMatches } from '../../src/dialplan/plan.js';
import { lintExtensionsConf, lintPlainConf } from '../../src/dialplan/syntax.js';

describe('lintExtensionsConf', () => {
  const good = [
    '; comment',
    '[ctx]',
    'include => other',
    'exten => 100,1,NoOp(x) ; trailing comment',
    ' same => n(again),GotoIf($["${A}" = "1"]?again:done)',
    ' same => n(done),Hangup()',
    'exten => _X.,1,Goto(ctx,${EXTEN},1)',
  ].join('\n');

  it('accepts valid dialplan', () => {
    expect(lintExtensionsConf(good)).toEqual([]);
  });

  it.each([
    ['exten => 100,1,NoOp(x', 'not "exten =>'],
    ['exten => 100,1,Set(A=${B)', 'unclosed'],
    ['exten => 100,1,Set(A=$[1 + 2)', 'unclosed'],
    ['exten => 100,1,Dial(x))', 'unbalanced ")"'],
    ['exten => 100,2,NoOp()', 'starts at priority 2'],
    ['exten => 100,1,Goto(nowhere)', 'label nowhere does not exist'],
    ['exten => 100,1,GotoIf(1?yes:no)\n same => n(yes),NoOp()', 'label no does not exist'],
    [' same => n,NoOp()', 'without an exten line'],
    ['exten => 100,1,NoOp()\n same => n(a),NoOp()\n same => n(a),NoOp()', 'label a used twice'],
    ['exten => 100,1,NoOp()\nexten => 100,1,NoOp()', 'priority 1 twice'],
    ['[ctx;x]', 'not "exten =>'],
    ['junk', 'not "exten =>'],
  ])('flags %j', (body, problem) => {
    expect(lintExtensionsConf(`[ctx]\n${body}`).join('\n')).toContain(problem);
  });

  it('flags statements outside a context and contexts defined twice', () => {
    expect(lintExtensionsConf('exten => 1,1,NoOp()').join('\n')).toContain('outside a context');
    expect(lintExtensionsConf('[a]\n[a]').join('\n')).toContain('defined twice');
  });
});

describe('lintPlainConf', () => {
  it('accepts manager.conf and modules.conf shapes and flags junk', () => {
    expect(lintPlainConf('[ai-call]\nsecret = x\nload => res_agi.so ; c\n#include x.conf')).toEqual([]);
    expect(lintPlainConf('[ai-call]\nthis is not config')).toHaveLength(1);
  });
});

describe('extensionMatches (Asterisk pattern rules)', () => {
  it.each([
    ['600', '600', true],
    ['6-00', '600', true],
    ['_6XX', '612', true],
    ['_6XX', '6123', false],
    ['_NXX', '123', false],
    ['_ZXX', '012', false],
    ['_[15-7]X', '64', true],
    ['_[15-7]X', '44', false],
    ['_+1555XXXXXXX', '+15551234567', true],
    ['_X.', '1', false],
    ['_X.', '12', true],
    ['_.', 'h', true],
    ['_!', '', true],
  ])('%s vs %s → %s', (pattern, exten, expected) => {
    expect(extensionMatches(pattern, exten)).toBe(expected);
  });
});
