import { describe, expect, it } from 'vitest';
import { AmiParser } from '../../../src/asterisk/ami/parser.js';
import {
  AMI_MAX_HEADERS,
  AMI_MAX_LINE_BYTES,
  encodeAction,
  hangupCauseText,
  originateReason,
  type AmiFields,
} from '../../../src/asterisk/ami/protocol.js';
import { BridgeError, isBridgeError } from '../../../src/errors.js';
import { fixtureBytes, loadFixture } from '../../support/fixtures.js';

const fixture = loadFixture('ami-session');

function rejection(fn: () => unknown): BridgeError {
  try {
    fn();
  } catch (err) {
    if (isBridgeError(err)) return err;
    throw err;
  }
  throw new Error('expected a BridgeError');
}

describe('encodeAction', () => {
  // "server->asterisk" = what the recorded AMI client wrote (fixture README).
  const writes = fixtureBytes(fixture, 'server->asterisk').map((b) => b.toString('utf8'));

  it.each(writes.map((text) => [text.split('\r\n', 2).join(' / '), text]))(
    'reproduces the recorded write byte for byte: %s',
    (_label, text) => {
      const lines = text.slice(0, -4).split('\r\n');
      const fields: Record<string, string | string[]> = {};
      for (const line of lines.slice(2)) {
        const at = line.indexOf(': ');
        const [name, value] = [line.slice(0, at), line.slice(at + 2)];
        const previous = fields[name];
        fields[name] = previous === undefined ? value : [...(Array.isArray(previous) ? previous : [previous]), value];
      }
      const action = lines[0]!.replace('Action: ', '');
      const actionId = lines[1]!.replace('ActionID: ', '');
      expect(encodeAction(action, fields, actionId)).toBe(text);
    },
  );

  it('covers every recorded write, including Originate with two Variable headers', () => {
    expect(writes).toHaveLength(15);
    const originate = writes.find((w) => w.includes('fx-orig-answer'))!;
    expect(originate.match(/^Variable: /gm)).toHaveLength(2);
  });

  it('writes Action first, then ActionID, repeated headers for arrays, CRLF line ends and a blank line', () => {
    const text = encodeAction(
      'Originate',
      { Channel: 'Local/1000@ai-agent/n', Priority: 1, Async: true, EarlyMedia: false, Account: undefined, Variable: ['A=1', 'B=two words'], Codecs: [] },
      'ai-call-7',
    );
    expect(text).toBe(
      'Action: Originate\r\nActionID: ai-call-7\r\nChannel: Local/1000@ai-agent/n\r\nPriority: 1\r\nAsync: true\r\n' +
        'EarlyMedia: false\r\nVariable: A=1\r\nVariable: B=two words\r\n\r\n',
    );
    const [parsed] = new AmiParser().push(text);
    expect(parsed!.getAll('Variable')).toEqual(['A=1', 'B=two words']);
  });

  it('keeps colons, quotes, backslashes and non-ASCII text as they are', () => {
    expect(encodeAction('Setvar', { Value: 'set via AMI: "quoted", comma \\ Zoë' }, 'x-1')).toBe(
      'Action: Setvar\r\nActionID: x-1\r\nValue: set via AMI: "quoted", comma \\ Zoë\r\n\r\n',
    );
  });

  it.each([
    ['CRLF CRLF Action smuggling', { Value: 'a\r\n\r\nAction: Originate\r\nChannel: Local/evil@x' }],
    ['bare LF', { Value: 'a\nAction: Originate' }],
    ['bare CR', { Value: 'a\rb' }],
    ['NUL', { Value: 'a\0b' }],
    ['LF inside an array element', { Variable: ['A=1', 'B=2\r\nAction: Originate'] }],
  ] satisfies Array<[string, AmiFields]>)('rejects %s in a value', (_label, fields) => {
    const err = rejection(() => encodeAction('Setvar', fields, 'x-1'));
    expect(err.code).toBe('AMI_BAD_VALUE');
    expect(err.message).not.toContain('Originate');
  });

  it.each([
    ['X\r\nAction: Originate'],
    ['Bad Name'],
    ['Colon:'],
    [''],
    ['Ünicode'],
    ['a\0'],
  ])('rejects the header name %j', (name) => {
    expect(rejection(() => encodeAction('Setvar', { [name]: 'v' }, 'x-1')).code).toBe('AMI_BAD_VALUE');
  });

  it('rejects bad action names and ActionIDs', () => {
    expect(rejection(() => encodeAction('Ping\r\nAction: Originate', {}, 'x-1')).code).toBe('AMI_BAD_VALUE');
    expect(rejection(() => encodeAction('', {}, 'x-1')).code).toBe('AMI_BAD_VALUE');
    expect(rejection(() => encodeAction('Ping', {}, 'x-1\r\nAction: Originate')).code).toBe('AMI_BAD_VALUE');
    expect(rejection(() => encodeAction('Ping', {}, '')).code).toBe('AMI_BAD_VALUE');
  });

  it('refuses Action and ActionID as fields, in any case', () => {
    expect(rejection(() => encodeAction('Ping', { action: 'Originate' }, 'x-1')).code).toBe('AMI_BAD_VALUE');
    expect(rejection(() => encodeAction('Ping', { ACTIONID: 'other' }, 'x-1')).code).toBe('AMI_BAD_VALUE');
  });

  it('refuses non-finite numbers', () => {
    expect(rejection(() => encodeAction('Hangup', { Cause: Number.NaN }, 'x-1')).code).toBe('AMI_BAD_VALUE');
    expect(rejection(() => encodeAction('Hangup', { Cause: Infinity }, 'x-1')).code).toBe('AMI_BAD_VALUE');
  });

  it(`accepts lines up to ${AMI_MAX_LINE_BYTES} bytes, which Asterisk can read, and no longer`, () => {
    const fits = 'v'.repeat(AMI_MAX_LINE_BYTES - 'Value: '.length);
    expect(encodeAction('Setvar', { Value: fits }, 'x-1')).toContain(fits);
    const err = rejection(() => encodeAction('Setvar', { Value: `${fits}v` }, 'x-1'));
    expect(err.code).toBe('AMI_BAD_VALUE');
    expect(err.message).not.toContain(fits);
    // Bytes, not characters: "é" is two bytes.
    expect(rejection(() => encodeAction('Setvar', { Value: `${fits.slice(1)}é` }, 'x-1')).code).toBe('AMI_BAD_VALUE');
  });

  it(`accepts ${AMI_MAX_HEADERS} header lines and no more`, () => {
    const variables = (n: number): string[] => Array.from({ length: n }, (_, i) => `V${i}=1`);
    expect(encodeAction('Originate', { Variable: variables(AMI_MAX_HEADERS - 2) }, 'x-1')).toContain('V125=1');
    expect(rejection(() => encodeAction('Originate', { Variable: variables(AMI_MAX_HEADERS - 1) }, 'x-1')).code).toBe('AMI_BAD_VALUE');
  });

  it('never puts a rejected value into the error message', () => {
    const secret = 'hunter2-very-secret';
    const err = rejection(() => encodeAction('Login', { Username: 'u', Secret: `${secret}\r\n` }, 'x-1'));
    expect(err.message).toContain('Secret');
    expect(err.message).not.toContain(secret);
  });
});

describe('originateReason', () => {
  it.each([
    [0, 'failed'],
    [1, 'hangup'],
    [2, 'ringing'],
    [3, 'no-answer'],
    [4, 'answered'],
    [5, 'busy'],
    [8, 'congestion'],
    [6, 'unknown'],
    [99, 'unknown'],
  ] as const)('maps Reason %i to %s', (reason, outcome) => {
    expect(originateReason(reason)).toBe(outcome);
    expect(originateReason(String(reason))).toBe(outcome);
  });

  it('maps a missing or garbled Reason to unknown', () => {
    expect(originateReason(undefined)).toBe('unknown');
    expect(originateReason('x')).toBe('unknown');
  });
});

describe('hangupCauseText', () => {
  it('matches every Cause-txt Asterisk 22 sent in the fixture', () => {
    const messages = new AmiParser().push(Buffer.concat(fixtureBytes(fixture, 'asterisk->server', (c) => c.conn === 'ami-1')));
    const hangups = messages.filter((m) => m.get('Cause-txt') !== undefined);
    expect(hangups.length).toBeGreaterThan(0);
    for (const m of hangups) expect(hangupCauseText(Number(m.get('Cause')))).toBe(m.get('Cause-txt'));
  });

  it('names the causes protocols.md §3.5 lists, and Unknown otherwise', () => {
    expect(hangupCauseText(16)).toBe('Normal Clearing');
    expect(hangupCauseText(17)).toBe('User busy');
    expect(hangupCauseText(18)).toBe('No user responding');
    expect(hangupCauseText(19)).toBe('User alerting, no answer');
    expect(hangupCauseText(21)).toBe('Call Rejected');
    expect(hangupCauseText(34)).toBe('Circuit/channel congestion');
    expect(hangupCauseText(0)).toBe('Unknown');
    expect(hangupCauseText(4)).toBe('Unknown');
    expect(hangupCauseText(1000)).toBe('Unknown');
  });
});
