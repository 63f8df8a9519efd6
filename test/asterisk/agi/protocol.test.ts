import { describe, expect, it } from 'vitest';
import {
  MAX_COMMAND_BYTES,
  encodeAnswer,
  encodeExec,
  encodeGetFullVariable,
  encodeGetVariable,
  encodeHangup,
  encodeSetVariable,
  encodeVerbose,
  normalizeCommandLine,
  quoteAgiArg,
  quoteAgiArgIfNeeded,
} from '../../../src/asterisk/agi/protocol.js';
import { BridgeError } from '../../../src/errors.js';
import { parseAgiArgs } from '../../../src/asterisk/agi/parse-args.js';
import { fixtureBytes, loadFixture, randomSplits } from '../../support/fixtures.js';

const assign = loadFixture('agi-session-assign');
const hangup = loadFixture('agi-session-hangup');
const execAudioSocket = loadFixture('agi-session-exec-audiosocket');

function expectBadValue(action: () => unknown): void {
  let thrown: unknown;
  try {
    action();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(BridgeError);
  expect((thrown as BridgeError).code).toBe('AGI_BAD_VALUE');
}

/** What Asterisk's parse_args makes of one encoded line (without its "\n"). */
function asteriskArgv(line: string): string[] {
  expect(line.endsWith('\n')).toBe(true);
  expect(line.indexOf('\n')).toBe(line.length - 1);
  return parseAgiArgs(line.slice(0, -1));
}

/** Values that stress parse_args: quotes, backslashes, whitespace, parentheses, commas, UTF-8. */
const TRICKY_VALUES = [
  '',
  ' ',
  '\t',
  '"',
  '""',
  '\\',
  '\\\\',
  '\\"',
  'trailing\\',
  'a "quoted" (paren) back\\slash',
  'a "q" value, with comma \\ backslash',
  '  leading and trailing  ',
  '${CALLERID(num)}',
  'Zoë ☎ 東京',
  'failure',
  'HANGUP',
];

/** Deterministic random strings over parse_args' special characters. */
function randomValues(count: number): string[] {
  const alphabet = ['a', 'Z', '0', ' ', '\t', '"', '\\', '(', ')', ',', '$', '{', '}', '|', 'é', "'"];
  const bytes = Buffer.alloc(count * 12, 0);
  for (let n = 0; n < bytes.length; n++) bytes[n] = n;
  return randomSplits(bytes, 2026, 12).map((piece) =>
    [...piece].map((byte, index) => alphabet[(byte * 7 + index * 13 + piece.length) % alphabet.length]).join(''),
  );
}

describe('recorded command bytes', () => {
  const sent = fixtureBytes(assign, 'server->asterisk');

  it('reproduces agi-session-assign.json byte for byte', () => {
    const encoded = [
      encodeSetVariable('AI_UUID', '1fa3a5e8-700d-433f-b02e-f2ebf00385a7'),
      encodeSetVariable('AI_QUOTED', 'a "quoted" (paren) back\\slash'),
      encodeGetVariable('AI_QUOTED'),
      encodeGetVariable('CALLERID(name)'),
      encodeGetFullVariable('${CALLERID(num)}'),
      normalizeCommandLine('FOO BAR'),
      normalizeCommandLine('SET VARIABLE ONLYNAME'),
    ];
    expect(sent).toHaveLength(encoded.length);
    encoded.forEach((line, index) => expect(Buffer.from(line, 'utf8').equals(sent[index]!)).toBe(true));
  });

  it('produces the recorded value bytes for a value with quotes, parentheses and a backslash', () => {
    expect(Buffer.from(encodeSetVariable('AI_QUOTED', 'a "quoted" (paren) back\\slash')).toString('hex')).toBe(sent[1]!.toString('hex'));
    expect(encodeSetVariable('AI_QUOTED', 'a "quoted" (paren) back\\slash')).toBe('SET VARIABLE AI_QUOTED "a \\"quoted\\" (paren) back\\\\slash"\n');
  });

  it('reproduces agi-session-hangup.json', () => {
    const sentIdle = fixtureBytes(hangup, 'server->asterisk', (chunk) => chunk.session === 'idle').map(String);
    expect(sentIdle).toEqual([
      encodeGetVariable('CHANNEL'),
      encodeAnswer(),
      normalizeCommandLine('STREAM FILE fixture-tone ""'),
      encodeExec('Wait', '1'),
      encodeVerbose('still here after hangup', 1),
      encodeGetVariable('AGISTATUS'),
    ]);
    const sentExec = fixtureBytes(hangup, 'server->asterisk', (chunk) => chunk.session === 'exec').map(String);
    expect(sentExec).toEqual([encodeExec('Wait', '5'), encodeAnswer(), encodeGetVariable('CHANNEL')]);
  });

  it('reproduces agi-session-exec-audiosocket.json', () => {
    const sentAgi = fixtureBytes(execAudioSocket, 'server->asterisk', (chunk) => chunk.conn === 'agi').map(String);
    expect(sentAgi).toEqual([
      encodeAnswer(),
      encodeExec('AudioSocket', '38101802-54c3-4559-aa19-ebc40c9984c9,127.0.0.1:29092'),
      encodeGetVariable('CHANNEL(state)'),
    ]);
  });
});

describe('quoteAgiArg (protocols.md §2.4)', () => {
  it.each([
    ['', '""'],
    ['abc', '"abc"'],
    ['a b', '"a b"'],
    ['a\tb', '"a\tb"'],
    ['a"b', '"a\\"b"'],
    ['a\\b', '"a\\\\b"'],
    ['\\"', '"\\\\\\""'],
    ['a "q" value, with comma \\ backslash', '"a \\"q\\" value, with comma \\\\ backslash"'],
    ['Zoë', '"Zoë"'],
  ])('%j → %s', (value, quoted) => {
    expect(quoteAgiArg(value)).toBe(quoted);
  });

  it.each(['\n', '\r', '\0', 'a\nb', 'a"b\nEXEC System evil', 'end\r'])('refuses %j', (value) => {
    expectBadValue(() => quoteAgiArg(value));
  });

  it.each([...TRICKY_VALUES, ...randomValues(300)].map((value) => [value]))('round-trips %j through parse_args', (value) => {
    expect(parseAgiArgs(`X ${quoteAgiArg(value)}`)).toEqual(['X', value]);
    expect(parseAgiArgs(`X ${quoteAgiArgIfNeeded(value)} Y`)).toEqual(['X', value, 'Y']);
  });
});

describe('quoteAgiArgIfNeeded', () => {
  it.each([
    ['abc', 'abc'],
    ['${CALLERID(num)}', '${CALLERID(num)}'],
    ['uuid,127.0.0.1:29092', 'uuid,127.0.0.1:29092'],
    ['', '""'],
    ['a b', '"a b"'],
    ['a\tb', '"a\tb"'],
    ['a"b', '"a\\"b"'],
    ['a\\b', '"a\\\\b"'],
  ])('%j → %s', (value, encoded) => {
    expect(quoteAgiArgIfNeeded(value)).toBe(encoded);
  });

  it('refuses a bare word with a newline', () => {
    expectBadValue(() => quoteAgiArgIfNeeded('abc\nNOOP'));
  });
});

describe('encoders', () => {
  it.each([...TRICKY_VALUES, ...randomValues(100)].map((value) => [value]))('SET VARIABLE carries %j as exactly one 4th word', (value) => {
    // §2.4: SET VARIABLE needs exactly 4 words; anything else is a 520.
    expect(asteriskArgv(encodeSetVariable('AI_X', value))).toEqual(['SET', 'VARIABLE', 'AI_X', value]);
  });

  it.each([
    ['AI_UUID', 'SET VARIABLE AI_UUID "v"\n'],
    ['_INHERITED', 'SET VARIABLE _INHERITED "v"\n'],
    ['__ALWAYS', 'SET VARIABLE __ALWAYS "v"\n'],
    ['CDR(userfield)', 'SET VARIABLE CDR(userfield) "v"\n'],
    ['CALLERID(name)', 'SET VARIABLE CALLERID(name) "v"\n'],
    ['CUT(x, ,1)', 'SET VARIABLE "CUT(x, ,1)" "v"\n'],
  ])('accepts the name %j', (name, line) => {
    expect(encodeSetVariable(name, 'v')).toBe(line);
    expect(asteriskArgv(encodeGetVariable(name))).toEqual(['GET', 'VARIABLE', name]);
  });

  it.each(['', 'A B', '${X}', 'A(B(C))', 'X)', 'A(', 'A\nB', 'A"B', '-X', 'A;B'])('refuses the name %j', (name) => {
    expectBadValue(() => encodeSetVariable(name, 'v'));
    expectBadValue(() => encodeGetVariable(name));
  });

  it('refuses CR/LF injection in every value position', () => {
    const injected = 'a"b\nEXEC System evil';
    expectBadValue(() => encodeSetVariable('X', injected));
    expectBadValue(() => encodeSetVariable('X', 'a\r'));
    expectBadValue(() => encodeGetFullVariable(injected));
    expectBadValue(() => encodeExec('Playback', injected));
    expectBadValue(() => encodeVerbose(injected, 1));
  });

  it('encodes GET FULL VARIABLE as one word', () => {
    expect(encodeGetFullVariable('${CALLERID(num)}')).toBe('GET FULL VARIABLE ${CALLERID(num)}\n');
    expect(encodeGetFullVariable('${A} and ${B}')).toBe('GET FULL VARIABLE "${A} and ${B}"\n');
    expect(asteriskArgv(encodeGetFullVariable('${A} "and" ${B}'))).toEqual(['GET', 'FULL', 'VARIABLE', '${A} "and" ${B}']);
    expectBadValue(() => encodeGetFullVariable(''));
  });

  it('encodes EXEC with one options word (§2.5)', () => {
    expect(encodeExec('Answer', '')).toBe('EXEC Answer\n');
    expect(encodeExec('Wait', '5')).toBe('EXEC Wait 5\n');
    expect(encodeExec('Playback', 'hello world')).toBe('EXEC Playback "hello world"\n');
    expect(asteriskArgv(encodeExec('Set', 'X=a "b" c,d'))).toEqual(['EXEC', 'Set', 'X=a "b" c,d']);
  });

  it.each(['', 'Audio Socket', 'Wait;System', '1App', 'App(', 'App\n'])('refuses the app name %j', (app) => {
    expectBadValue(() => encodeExec(app, ''));
  });

  it('encodes VERBOSE with its level and refuses levels outside 1..4', () => {
    expect(encodeVerbose('still here after hangup', 1)).toBe('VERBOSE "still here after hangup" 1\n');
    expect(encodeVerbose('x', 4)).toBe('VERBOSE "x" 4\n');
    for (const level of [0, 5, 1.5, Number.NaN]) expectBadValue(() => encodeVerbose('x', level));
  });

  it('encodes ANSWER and HANGUP', () => {
    expect(encodeAnswer()).toBe('ANSWER\n');
    expect(encodeHangup()).toBe('HANGUP\n');
  });

  it('never produces a line starting with "failure" (§2.3), whatever the input', () => {
    const lines = [
      encodeSetVariable('failure', 'failure'),
      encodeGetVariable('failure'),
      encodeGetFullVariable('failure'),
      encodeExec('failure', 'failure'),
      encodeVerbose('failure', 1),
    ];
    for (const line of lines) expect(line.toLowerCase().startsWith('failure')).toBe(false);
  });
});

describe('normalizeCommandLine', () => {
  it('adds the "\\n" when missing and keeps exactly one', () => {
    expect(normalizeCommandLine('NOOP')).toBe('NOOP\n');
    expect(normalizeCommandLine('NOOP\n')).toBe('NOOP\n');
  });

  it.each(['', '\n', '   ', 'NOOP\n\n', 'GET VARIABLE X\nEXEC System x', 'NOOP\r\n', 'NO\0OP'])('refuses %j', (line) => {
    expectBadValue(() => normalizeCommandLine(line));
  });

  it.each(['failure', 'FAILURE', 'Failure to launch', 'failure\n'])('refuses %j, which would end the AGI with FAILURE', (line) => {
    expectBadValue(() => normalizeCommandLine(line));
  });

  it(`accepts ${MAX_COMMAND_BYTES} bytes with the newline and refuses one more (§2.3)`, () => {
    expect(normalizeCommandLine('x'.repeat(MAX_COMMAND_BYTES - 1))).toHaveLength(MAX_COMMAND_BYTES);
    expectBadValue(() => normalizeCommandLine('x'.repeat(MAX_COMMAND_BYTES)));
    // Counted in UTF-8 bytes: "é" is two.
    expect(() => normalizeCommandLine('é'.repeat((MAX_COMMAND_BYTES - 1) / 2))).not.toThrow();
    expectBadValue(() => normalizeCommandLine(`${'é'.repeat((MAX_COMMAND_BYTES - 1) / 2)}x`));
  });
});
