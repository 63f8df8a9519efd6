import { describe, expect, it } from 'vitest';
import {
  AgiEnvParser,
  AgiLineReader,
  AgiReplyParser,
  MAX_ENV_LINES,
  MAX_USAGE_LINES,
  buildAgiRequest,
  parseEnvLine,
  type AgiParseEvent,
  type AgiRequest,
} from '../../../src/asterisk/agi/parser.js';
import { BridgeError } from '../../../src/errors.js';
import { fixtureBytes, loadFixture, randomSplits, splitAt, type Fixture } from '../../support/fixtures.js';

const assign = loadFixture('agi-session-assign');
const hangup = loadFixture('agi-session-hangup');
const execAudioSocket = loadFixture('agi-session-exec-audiosocket');

const MAX_LINE_BYTES = 8_192;

/** Asterisk's reads of one AGI connection: the env block (up to the read ending in "\n\n"), then the rest. */
function splitRecording(fixture: Fixture, filter: (chunk: Fixture['chunks'][number]) => boolean = () => true) {
  const reads = fixtureBytes(fixture, 'asterisk->server', (chunk) => (chunk.conn ?? 'agi') === 'agi' && filter(chunk));
  const envEnd = reads.findIndex((read) => read.toString().endsWith('\n\n'));
  return { envReads: reads.slice(0, envEnd + 1), replyReads: reads.slice(envEnd + 1) };
}

/** Runs chunks through the reader and env parser; returns the request and the lines after the block. */
function parseEnvChunks(chunks: readonly Buffer[]): { request: AgiRequest | undefined; after: string[] } {
  const reader = new AgiLineReader({ maxLineBytes: MAX_LINE_BYTES });
  const envParser = new AgiEnvParser();
  let request: AgiRequest | undefined;
  const after: string[] = [];
  for (const chunk of chunks) {
    for (const line of reader.push(chunk)) {
      if (request !== undefined) after.push(line);
      else request = envParser.feed(line);
    }
  }
  return { request, after };
}

/** Runs chunks through the reader and reply parser; returns every event. */
function parseReplyChunks(chunks: readonly Buffer[]): AgiParseEvent[] {
  const reader = new AgiLineReader({ maxLineBytes: MAX_LINE_BYTES });
  const parser = new AgiReplyParser();
  const events: AgiParseEvent[] = [];
  for (const chunk of chunks) {
    for (const line of reader.push(chunk)) {
      const event = parser.feed(line);
      if (event !== undefined) events.push(event);
    }
  }
  return events;
}

const reply = (result: number, data?: string, extra: Record<string, string> = {}) =>
  expect.objectContaining({ type: 'reply', reply: expect.objectContaining({ code: 200, result, data, extra }) });

function expectBadLine(action: () => unknown): void {
  let thrown: unknown;
  try {
    action();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(BridgeError);
  expect((thrown as BridgeError).code).toBe('AGI_BAD_LINE');
}

describe('environment block (agi-session-assign.json)', () => {
  const { envReads, replyReads } = splitRecording(assign);
  const envBytes = Buffer.concat(envReads);

  function expectAssignRequest(request: AgiRequest | undefined): void {
    expect(request).toBeDefined();
    const { env, network, script, query, args } = request!;
    // Split at the FIRST colon only: the second colon belongs to the caller's name (§2.2).
    expect(env['agi_calleridname']).toBe('Alice: Smith');
    expect(env['agi_accountcode']).toBe('');
    expect(env['agi_request']).toBe('agi://127.0.0.1:24573/ai-call?agent=sales&lang=en');
    expect(env['agi_network_script']).toBe('ai-call?agent=sales&lang=en');
    expect(env['agi_channel']).toBe('Local/assign@fx-agi-00000000;2');
    expect(env['agi_threadid']).toBe('140678464698048');
    expect(Object.keys(env)).toHaveLength(24);
    expect(network).toBe(true);
    expect(script).toBe('ai-call');
    expect({ ...query }).toEqual({ agent: 'sales', lang: 'en' });
    expect(args).toEqual(['arg one', 'arg:two']);
    expect(request!.request).toBe('agi://127.0.0.1:24573/ai-call?agent=sales&lang=en');
  }

  it('arrives in the two recorded reads, split after agi_context', () => {
    expect(envReads).toHaveLength(2);
    expect(envReads[0]!.toString().endsWith('agi_context: fx-agi\n')).toBe(true);
    const { request, after } = parseEnvChunks(envReads);
    expectAssignRequest(request);
    expect(after).toEqual([]);
  });

  it('matches every line of the recorded agiEnv', () => {
    const { request } = parseEnvChunks(envReads);
    const recorded = assign['agiEnv'] as string[];
    expect(Object.entries(request!.env).map(([key, value]) => `${key}: ${value}`)).toEqual(recorded);
  });

  it('is incomplete until the empty line', () => {
    const withoutTerminator = envBytes.subarray(0, envBytes.length - 1);
    expect(parseEnvChunks([withoutTerminator]).request).toBeUndefined();
  });

  it.each(Array.from({ length: envBytes.length + 1 }, (_, offset) => offset))('parses the same when split at offset %i', (offset) => {
    expectAssignRequest(parseEnvChunks(splitAt(envBytes, [offset])).request);
  });

  it('parses the same from 1-byte pieces', () => {
    const pieces = randomSplits(envBytes, 1, 1);
    expect(pieces.every((piece) => piece.length === 1)).toBe(true);
    expectAssignRequest(parseEnvChunks(pieces).request);
  });

  it.each([7, 42, 1234, 99_999])('parses the same from random pieces (seed %i)', (seed) => {
    expectAssignRequest(parseEnvChunks(randomSplits(envBytes, seed, 9)).request);
  });

  it('parses the block and every reply when the whole session arrives in one chunk', () => {
    const { request, after } = parseEnvChunks([Buffer.concat([envBytes, ...replyReads])]);
    expectAssignRequest(request);
    expect(after).toEqual([
      '200 result=1',
      '200 result=1',
      '200 result=1 (a "quoted" (paren) back\\slash)',
      '200 result=1 (Alice: Smith)',
      '200 result=1 (+15551234567)',
      '510 Invalid or unknown command',
      '520-Invalid command syntax.  Proper usage follows:',
      'Sets a variable to the current channel.',
      '520 End of proper usage.',
      'HANGUP',
    ]);
  });
});

describe('environment block (other recordings)', () => {
  it('reads a script without query or arguments (agi-session-hangup.json)', () => {
    const { envReads } = splitRecording(hangup, (chunk) => chunk.session === 'idle');
    const { request } = parseEnvChunks(envReads);
    expect(request!.script).toBe('hangup-idle');
    expect({ ...request!.query }).toEqual({});
    expect(request!.args).toEqual([]);
    expect(request!.env['agi_callingpres']).toBe('67');
  });

  it('keeps the path of a nested script (agi-session-exec-audiosocket.json)', () => {
    const { envReads } = splitRecording(execAudioSocket);
    const { request } = parseEnvChunks(envReads);
    expect(request!.script).toBe('ai-call/run');
    expect({ ...request!.query }).toEqual({ agent: 'sales' });
  });
});

describe('parseEnvLine', () => {
  it.each([
    ['agi_request: agi://h:4573/x?a=1', 'agi_request', 'agi://h:4573/x?a=1'],
    ['agi_calleridname: Alice: Smith', 'agi_calleridname', 'Alice: Smith'],
    ['agi_accountcode: ', 'agi_accountcode', ''],
    ['agi_accountcode:', 'agi_accountcode', ''],
    ['agi_arg_1:no-space', 'agi_arg_1', 'no-space'],
    ['agi_arg_2:  two spaces', 'agi_arg_2', ' two spaces'],
    ['agi_arg_3: trailing space ', 'agi_arg_3', 'trailing space '],
  ])('%j → %s = %j', (line, key, value) => {
    expect(parseEnvLine(line)).toEqual({ key, value });
  });

  it.each(['no colon here', ': value', 'bad key: x', 'HANGUP', '200 result=1'])('refuses %j', (line) => {
    expectBadLine(() => parseEnvLine(line));
  });
});

describe('buildAgiRequest', () => {
  it('has no script or query when agi_network_script is absent', () => {
    const request = buildAgiRequest({ agi_network: 'yes', agi_request: 'agi://127.0.0.1' });
    expect(request.script).toBe('');
    expect({ ...request.query }).toEqual({});
    expect(request.request).toBe('agi://127.0.0.1');
  });

  it('percent-decodes the query but keeps "+" (E.164 numbers) and malformed escapes', () => {
    const request = buildAgiRequest({
      agi_network_script: 'ai-call?from=+15551234567&name=Zo%C3%AB%20B&flag&bad=%zz&=empty-key&a=1&a=2&&',
    });
    expect({ ...request.query }).toEqual({ from: '+15551234567', name: 'Zoë B', flag: '', bad: '%zz', '': 'empty-key', a: '2' });
  });

  it('leaves the script path verbatim (§2.2: not URL-decoded)', () => {
    expect(buildAgiRequest({ agi_network_script: 'ai%2Dcall/run?x=1' }).script).toBe('ai%2Dcall/run');
  });

  it('makes query and env safe to index with any key', () => {
    const request = buildAgiRequest({ agi_network_script: 'x?__proto__=p&constructor=c' });
    expect(request.query['__proto__']).toBe('p');
    expect(request.query['constructor']).toBe('c');
    expect(request.query['toString']).toBeUndefined();
    expect(request.env['hasOwnProperty']).toBeUndefined();
    expect(Object.isFrozen(request.query)).toBe(true);
    expect(Object.isFrozen(request.env)).toBe(true);
  });

  it('reads agi_arg_N in order, keeps empty ones and stops at the first gap', () => {
    const request = buildAgiRequest({ agi_arg_2: 'b', agi_arg_1: 'a', agi_arg_3: '', agi_arg_5: 'after gap' });
    expect(request.args).toEqual(['a', 'b', '']);
  });

  it('reports a non-network AGI', () => {
    expect(buildAgiRequest({ agi_request: 'script.sh' }).network).toBe(false);
  });
});

describe('AgiEnvParser', () => {
  it(`refuses a block longer than ${MAX_ENV_LINES} lines`, () => {
    const parser = new AgiEnvParser();
    for (let n = 1; n <= MAX_ENV_LINES; n++) expect(parser.feed(`agi_arg_${n}: x`)).toBeUndefined();
    expectBadLine(() => parser.feed('agi_arg_999: x'));
  });
});

describe('AgiLineReader', () => {
  it('keeps a partial line across chunks and strips one trailing \\r', () => {
    const reader = new AgiLineReader({ maxLineBytes: 64 });
    expect(reader.push(Buffer.from('200 res'))).toEqual([]);
    expect(reader.pendingBytes).toBe(7);
    expect(reader.push(Buffer.from('ult=1\r\nHANG'))).toEqual(['200 result=1']);
    expect(reader.push(Buffer.from('UP\n\n'))).toEqual(['HANGUP', '']);
    expect(reader.pendingBytes).toBe(0);
    expect(reader.push(Buffer.from('a\r\r\n'))).toEqual(['a\r']);
  });

  it('decodes a UTF-8 character split between chunks', () => {
    const bytes = Buffer.from('agi_calleridname: Zoë\n', 'utf8');
    const split = bytes.indexOf(0xc3) + 1;
    const reader = new AgiLineReader({ maxLineBytes: 64 });
    expect([...reader.push(bytes.subarray(0, split)), ...reader.push(bytes.subarray(split))]).toEqual(['agi_calleridname: Zoë']);
  });

  it('accepts a line of exactly maxLineBytes', () => {
    const reader = new AgiLineReader({ maxLineBytes: 10 });
    expect(reader.push(Buffer.from('0123456789\n'))).toEqual(['0123456789']);
  });

  it('refuses a complete line longer than maxLineBytes', () => {
    const reader = new AgiLineReader({ maxLineBytes: 10 });
    expectBadLine(() => reader.push(Buffer.from('ok\n01234567890\n')));
  });

  it('refuses an over-long line before its newline arrives', () => {
    const reader = new AgiLineReader({ maxLineBytes: 10 });
    expect(reader.push(Buffer.from('0123456789'))).toEqual([]);
    expectBadLine(() => reader.push(Buffer.from('X')));
  });

  it('refuses an over-long line fed one byte at a time', () => {
    const reader = new AgiLineReader({ maxLineBytes: 100 });
    const line = Buffer.from('x'.repeat(101));
    expectBadLine(() => {
      for (const piece of randomSplits(line, 3, 1)) reader.push(piece);
    });
  });

  it('never writes into the chunks it is given', () => {
    const original = Buffer.from('first par');
    const second = Buffer.from('t\nsecond line\nthird');
    const copies = [Buffer.from(original), Buffer.from(second)];
    const reader = new AgiLineReader({ maxLineBytes: 64 });
    reader.push(original);
    expect(reader.push(second)).toEqual(['first part', 'second line']);
    expect(reader.push(Buffer.from(' line\n'))).toEqual(['third line']);
    expect(original.equals(copies[0]!)).toBe(true);
    expect(second.equals(copies[1]!)).toBe(true);
  });

  it('copes with a long session in tiny pieces', () => {
    const lines = Array.from({ length: 500 }, (_, n) => `200 result=${n} (${'v'.repeat(n % 50)})`);
    const bytes = Buffer.from(lines.map((line) => `${line}\n`).join(''));
    const reader = new AgiLineReader({ maxLineBytes: 128 });
    const out = randomSplits(bytes, 11, 5).flatMap((piece) => reader.push(piece));
    expect(out).toEqual(lines);
  });

  it('rejects a nonsensical maxLineBytes', () => {
    expect(() => new AgiLineReader({ maxLineBytes: 0 })).toThrow(RangeError);
  });
});

describe('AgiReplyParser on recorded replies', () => {
  const assignReplies = [
    reply(1), // SET VARIABLE AI_UUID
    reply(1), // SET VARIABLE AI_QUOTED
    // §2.3: the data runs from the first "(" to the LAST ")" and is not escaped.
    reply(1, 'a "quoted" (paren) back\\slash'),
    reply(1, 'Alice: Smith'),
    reply(1, '+15551234567'),
    { type: 'error', code: 510, message: 'Invalid or unknown command' },
    {
      type: 'error',
      code: 520,
      message: 'Invalid command syntax.  Proper usage follows:',
      usage: ['Sets a variable to the current channel.'],
    },
    { type: 'hangup' }, // the end-of-script notice after the server's FIN
  ];
  const { replyReads } = splitRecording(assign);
  const replyBytes = Buffer.concat(replyReads);

  it('parses agi-session-assign.json at the recorded chunking', () => {
    expect(parseReplyChunks(replyReads)).toEqual(assignReplies);
  });

  it('completes the multi-line 520 only at its final "520 " line, which came in a second read', () => {
    const first520 = replyReads.findIndex((read) => read.toString().startsWith('520-'));
    const reader = new AgiLineReader({ maxLineBytes: MAX_LINE_BYTES });
    const parser = new AgiReplyParser();
    const firstPart = reader.push(replyReads[first520]!).map((line) => parser.feed(line));
    expect(firstPart).toEqual([undefined]);
    const secondPart = reader.push(replyReads[first520 + 1]!).map((line) => parser.feed(line));
    expect(secondPart).toEqual([undefined, assignReplies[6]]);
  });

  it.each(Array.from({ length: replyBytes.length + 1 }, (_, offset) => offset))('parses the same when split at offset %i', (offset) => {
    expect(parseReplyChunks(splitAt(replyBytes, [offset]))).toEqual(assignReplies);
  });

  it('parses the same from 1-byte pieces', () => {
    expect(parseReplyChunks(randomSplits(replyBytes, 5, 1))).toEqual(assignReplies);
  });

  it('parses agi-session-hangup.json "idle": HANGUP while idle, 511 for non-dead-safe commands', () => {
    const { replyReads: reads } = splitRecording(hangup, (chunk) => chunk.session === 'idle');
    const dead = { type: 'error', code: 511, message: 'Command Not Permitted on a dead channel or intercept routine' };
    expect(parseReplyChunks(reads)).toEqual([
      { type: 'hangup' },
      reply(1, 'Local/hangup-idle@fx-agi-00000001;2'),
      dead, // ANSWER
      dead, // STREAM FILE
      reply(0), // EXEC Wait 1 still runs on a dead channel
      reply(1), // VERBOSE
      reply(0), // GET VARIABLE AGISTATUS: unset
      { type: 'hangup' }, // end-of-script notice
    ]);
  });

  it('parses agi-session-hangup.json "exec": the running command replies first, HANGUP after it', () => {
    const { replyReads: reads } = splitRecording(hangup, (chunk) => chunk.session === 'exec');
    expect(parseReplyChunks(reads)).toEqual([
      reply(-1),
      { type: 'hangup' },
      { type: 'error', code: 511, message: 'Command Not Permitted on a dead channel or intercept routine' },
      reply(1, 'Local/hangup-exec@fx-agi-00000002;2'),
      { type: 'hangup' },
    ]);
  });

  it('parses agi-session-exec-audiosocket.json', () => {
    const { replyReads: reads } = splitRecording(execAudioSocket);
    expect(parseReplyChunks(reads)).toEqual([reply(0), reply(0), reply(1, 'Up'), { type: 'hangup' }]);
  });
});

describe('AgiReplyParser grammar', () => {
  it.each([
    ['200 result=0', 0, undefined, {}],
    ['200 result=-1', -1, undefined, {}],
    ['200 result=-2', -2, undefined, {}],
    ['200 result=1 ()', 1, '', {}],
    ['200 result=0 endpos=12345', 0, undefined, { endpos: '12345' }],
    ['200 result=0 (timeout) endpos=0', 0, 'timeout', { endpos: '0' }],
    ['200 result=1 (a) b (c)', 1, 'a) b (c', {}],
    ['200 result=1 (x) k=v=w flag', 1, 'x', { k: 'v=w', flag: '' }],
  ])('%j', (line, result, data, extra) => {
    const event = new AgiReplyParser().feed(line);
    expect(event).toEqual({ type: 'reply', reply: { code: 200, result, data, extra, raw: line } });
  });

  it('reads a one-line 520', () => {
    expect(new AgiReplyParser().feed('520 Invalid command syntax.  Proper usage not available.')).toEqual({
      type: 'error',
      code: 520,
      message: 'Invalid command syntax.  Proper usage not available.',
    });
  });

  it('takes every line inside a 520 block as usage, even one that looks like HANGUP or 200', () => {
    const parser = new AgiReplyParser();
    expect(parser.feed('520-Invalid command syntax.  Proper usage follows:')).toBeUndefined();
    expect(parser.feed(' Usage: SET VARIABLE <name> <value>')).toBeUndefined();
    expect(parser.feed('HANGUP')).toBeUndefined();
    expect(parser.feed('200 result=1')).toBeUndefined();
    expect(parser.feed('520 End of proper usage.')).toEqual({
      type: 'error',
      code: 520,
      message: 'Invalid command syntax.  Proper usage follows:',
      usage: [' Usage: SET VARIABLE <name> <value>', 'HANGUP', '200 result=1'],
    });
    // Back to normal afterwards.
    expect(parser.feed('HANGUP')).toEqual({ type: 'hangup' });
  });

  it('ends a 520 block whose usage text lacks its final newline', () => {
    const parser = new AgiReplyParser();
    parser.feed('520-Invalid command syntax.  Proper usage follows:');
    expect(parser.feed('Sets a variable.520 End of proper usage.')).toEqual(
      expect.objectContaining({ code: 520, usage: ['Sets a variable.'] }),
    );
  });

  it(`refuses a 520 block longer than ${MAX_USAGE_LINES} lines`, () => {
    const parser = new AgiReplyParser();
    parser.feed('520-Invalid command syntax.  Proper usage follows:');
    for (let n = 0; n < MAX_USAGE_LINES; n++) parser.feed(`usage ${n}`);
    expectBadLine(() => parser.feed('one too many'));
  });

  it.each([
    '',
    'hello',
    'HANGUP ',
    'hangup',
    '200',
    '200 result=',
    '200 result=abc',
    '200 result=1x',
    '200 result=1 (unterminated',
    '201 result=1',
    '510',
    'agi_network: yes',
  ])('refuses %j', (line) => {
    expectBadLine(() => new AgiReplyParser().feed(line));
  });
});
