import { describe, expect, it } from 'vitest';
import { AmiMessage, AmiParser } from '../../../src/asterisk/ami/parser.js';
import { originateReason } from '../../../src/asterisk/ami/protocol.js';
import { isBridgeError } from '../../../src/errors.js';
import { fixtureBytes, loadFixture, randomSplits, splitAt } from '../../support/fixtures.js';

const fixture = loadFixture('ami-session');
// "server" in this file is the AMI client: asterisk->server is what Asterisk sent (fixture README).
const ami1Chunks = fixtureBytes(fixture, 'asterisk->server', (c) => c.conn === 'ami-1');
const ami2Chunks = fixtureBytes(fixture, 'asterisk->server', (c) => c.conn === 'ami-2');
const ami1Stream = Buffer.concat(ami1Chunks);
const ids = fixture['ids'] as { answerChannelId: string; busyChannelId: string; liveChannel: string };
const eventCounts = fixture['eventCounts'] as Record<string, number>;

type Headers = Array<[string, string]>;

/** Independent oracle: drop the banner line, split at CRLFCRLF, then each line at the first ": ". */
function oracle(stream: Buffer): Headers[] {
  const text = stream.toString('utf8');
  const body = text.slice(text.indexOf('\r\n') + 2);
  return body
    .split('\r\n\r\n')
    .filter((block) => block !== '')
    .map((block) =>
      block.split('\r\n').map((line): [string, string] => {
        const at = line.indexOf(': ');
        return at === -1 ? [line.slice(0, -1), ''] : [line.slice(0, at), line.slice(at + 2)];
      }),
    );
}

function parseAll(chunks: readonly Buffer[], parser = new AmiParser()): { parser: AmiParser; messages: AmiMessage[] } {
  const messages: AmiMessage[] = [];
  for (const chunk of chunks) messages.push(...parser.push(chunk));
  return { parser, messages };
}

function headersOf(messages: readonly AmiMessage[]): Headers[] {
  return messages.map((m) => m.headers.map(([k, v]): [string, string] => [k, v]));
}

const expected = oracle(ami1Stream);

describe('AmiParser on the recorded Asterisk 22 session (ami-1)', () => {
  it('reads the banner from its own read and frames nothing from it', () => {
    const parser = new AmiParser();
    expect(parser.push(ami1Chunks[0]!)).toEqual([]);
    expect(parser.banner).toBe('Asterisk Call Manager/11.0.0');
  });

  it('gets the login response and FullyBooted from the same read', () => {
    const parser = new AmiParser();
    parser.push(ami1Chunks[0]!);
    const [login, booted, ...rest] = parser.push(ami1Chunks[1]!);
    expect(rest).toEqual([]);
    expect(login!.headers).toEqual([
      ['Response', 'Success'],
      ['ActionID', 'fx-login-1'],
      ['Message', 'Authentication accepted'],
    ]);
    expect(booted!.event).toBe('FullyBooted');
    expect(booted!.get('Privilege')).toBe('system,all');
    expect(booted!.get('Status')).toBe('Fully Booted');
  });

  it('frames the Ping response split across two reads only at the blank line', () => {
    const parser = new AmiParser();
    parseAll(ami1Chunks.slice(0, 2), parser);
    expect(parser.push(ami1Chunks[2]!)).toEqual([]); // "Response: Success\r\n"
    const [pong] = parser.push(ami1Chunks[3]!);
    expect(pong!.toObject()).toMatchObject({ Response: 'Success', ActionID: 'fx-ping-1', Ping: 'Pong' });
    expect(pong!.get('Timestamp')).toMatch(/^\d+\.\d{6}$/);
  });

  it('parses the recorded chunking exactly like the oracle, with every event counted', () => {
    const { messages } = parseAll(ami1Chunks);
    expect(headersOf(messages)).toEqual(expected);
    const counts: Record<string, number> = {};
    for (const m of messages) {
      if (m.event !== undefined) counts[m.event] = (counts[m.event] ?? 0) + 1;
    }
    expect(counts).toEqual(eventCounts);
    // The largest recorded read (6391 bytes) carried several events at once.
    expect(Math.max(...ami1Chunks.map((c) => c.length))).toBeGreaterThan(6000);
  });

  it('parses the whole session handed over as one chunk', () => {
    expect(headersOf(parseAll([ami1Stream]).messages)).toEqual(expected);
  });

  it.each(Array.from({ length: 24 }, (_, i) => i + 1))('parses random re-splits (seed %i)', (seed) => {
    expect(headersOf(parseAll(randomSplits(ami1Stream, seed, 1 + seed * 7)).messages)).toEqual(expected);
  });

  it('parses 1-byte chunks', () => {
    expect(headersOf(parseAll(randomSplits(ami1Stream, 1, 1)).messages)).toEqual(expected);
  });

  const loginRead = Buffer.concat(ami1Chunks.slice(0, 4));
  it.each(Array.from({ length: loginRead.length - 1 }, (_, i) => i + 1))(
    'frames banner + login + FullyBooted + Pong split at byte %i',
    (offset) => {
      const { parser, messages } = parseAll(splitAt(loginRead, [offset]));
      expect(parser.banner).toBe('Asterisk Call Manager/11.0.0');
      expect(messages.map((m) => m.event ?? m.response)).toEqual(['Success', 'FullyBooted', 'Success']);
      expect(messages[2]!.get('Ping')).toBe('Pong');
    },
  );

  it('collects the CoreShowChannels list: start, two items with the ActionID, Complete', () => {
    const list = parseAll(ami1Chunks).messages.filter((m) => m.actionId === 'fx-csc');
    expect(list.map((m) => m.event ?? m.response)).toEqual(['Success', 'CoreShowChannel', 'CoreShowChannel', 'CoreShowChannelsComplete']);
    expect(list[0]!.get('EventList')).toBe('start');
    expect(list[0]!.get('Message')).toBe('Channels will follow');
    expect(list[1]!.get('Channel')).toBe(ids.liveChannel);
    expect(list[1]!.get('BridgeId')).toBe('');
    expect(list[3]!.get('EventList')).toBe('Complete');
    expect(list[3]!.get('ListItems')).toBe('2');
  });

  it('reads OriginateResponse Reason 4 (answered) and 5 (busy)', () => {
    const responses = parseAll(ami1Chunks).messages.filter((m) => m.event === 'OriginateResponse');
    expect(responses).toHaveLength(2);
    const [answer, busy] = responses;
    expect(answer!.actionId).toBe('fx-orig-answer');
    expect(answer!.response).toBe('Success');
    expect(originateReason(answer!.get('Reason'))).toBe('answered');
    expect(answer!.get('Channel')).toBe(ids.liveChannel);
    expect(answer!.get('Uniqueid')).toBe(ids.answerChannelId);
    expect(busy!.actionId).toBe('fx-orig-busy');
    expect(busy!.response).toBe('Failure');
    expect(originateReason(busy!.get('Reason'))).toBe('busy');
    // The dial string, not a channel name, on failure.
    expect(busy!.get('Channel')).toBe('Local/busy@fx-ami');
    expect(busy!.get('Uniqueid')).toBe(ids.busyChannelId);
  });

  it('keeps VarSet backslash escapes raw, and Getvar quotes and colons raw', () => {
    const messages = parseAll(ami1Chunks).messages;
    const varSet = messages.find((m) => m.event === 'VarSet' && m.get('Variable') === 'FX_SET');
    expect(varSet!.get('Value')).toBe('set via AMI: \\"quoted\\", comma');
    const getvar = messages.find((m) => m.actionId === 'fx-getvar-1');
    expect(getvar!.get('Value')).toBe('set via AMI: "quoted", comma');
    const unset = messages.find((m) => m.actionId === 'fx-getvar-3');
    expect(unset!.headers).toContainEqual(['Value', '']);
    const noSuch = messages.find((m) => m.actionId === 'fx-getvar-4');
    expect(noSuch!.response).toBe('Error');
    expect(noSuch!.get('Message')).toBe('No such channel');
  });

  it('keeps empty values and Cause-txt', () => {
    const messages = parseAll(ami1Chunks).messages;
    const hangups = messages.filter((m) => m.event === 'Hangup');
    expect(hangups.map((m) => [m.get('Cause'), m.get('Cause-txt')])).toEqual([
      ['0', 'Unknown'],
      ['17', 'User busy'],
      ['16', 'Normal Clearing'],
      ['16', 'Normal Clearing'],
    ]);
    expect(messages.find((m) => m.event === 'Newchannel')!.get('AccountCode')).toBe('');
  });

  it('reads the failed login of ami-2', () => {
    const { parser, messages } = parseAll(ami2Chunks);
    expect(parser.banner).toBe('Asterisk Call Manager/11.0.0');
    expect(messages).toHaveLength(1);
    expect(messages[0]!.toObject()).toEqual({ Response: 'Error', ActionID: 'fx-login-bad', Message: 'Authentication failed' });
  });
});

describe('AmiParser framing rules', () => {
  it('accepts bare LF and mixed line ends', () => {
    const parser = new AmiParser();
    const messages = parser.push('Asterisk Call Manager/9.0.0\nEvent: A\nX: 1\r\n\nEvent: B\r\n\r\n');
    expect(parser.banner).toBe('Asterisk Call Manager/9.0.0');
    expect(headersOf(messages)).toEqual([
      [['Event', 'A'], ['X', '1']],
      [['Event', 'B']],
    ]);
  });

  it('needs no banner when the stream starts with a message', () => {
    const parser = new AmiParser();
    expect(parser.push('Response: Success\r\n\r\n')).toHaveLength(1);
    expect(parser.banner).toBeUndefined();
  });

  it('splits at the first colon, tolerates a missing space and keeps further leading spaces', () => {
    const [message] = new AmiParser().push('Event: X\r\nA:no-space\r\nB:  two\r\nC: a: b: c\r\nD:\r\n\r\n');
    expect(message!.headers).toEqual([
      ['Event', 'X'],
      ['A', 'no-space'],
      ['B', ' two'],
      ['C', 'a: b: c'],
      ['D', ''],
    ]);
  });

  it('looks headers up case-insensitively, first match, and lists repeats', () => {
    const [message] = new AmiParser().push('Event: X\r\nChanVariable: A=1\r\nchanvariable: B=2\r\n\r\n');
    expect(message!.get('CHANVARIABLE')).toBe('A=1');
    expect(message!.getAll('ChanVariable')).toEqual(['A=1', 'B=2']);
    expect(message!.get('missing')).toBeUndefined();
    expect(message!.getAll('missing')).toEqual([]);
  });

  it('ignores stray blank lines and lines without a colon', () => {
    const messages = new AmiParser().push('Event: A\r\n\r\n\r\n\r\nnonsense\r\nEvent: B\r\n\r\n');
    expect(headersOf(messages)).toEqual([[['Event', 'A']], [['Event', 'B']]]);
  });

  it('keeps a multi-byte UTF-8 character split across chunks', () => {
    const bytes = Buffer.from('Event: X\r\nCallerIDName: Zoë Åberg\r\n\r\n', 'utf8');
    const at = bytes.indexOf(0xc3) + 1; // inside the two-byte "ë"
    const messages = parseAll(splitAt(bytes, [at])).messages;
    expect(messages[0]!.get('CallerIDName')).toBe('Zoë Åberg');
  });

  it('keeps a CR whose LF arrives in the next chunk', () => {
    const parser = new AmiParser({ maxLineBytes: 8 });
    expect(parser.push('Event: X\r')).toEqual([]);
    expect(parser.push('\n\r\n')).toHaveLength(1);
  });

  it('returns the messages of many in one chunk in order', () => {
    const text = Array.from({ length: 200 }, (_, i) => `Event: E${i}\r\nN: ${i}\r\n\r\n`).join('');
    const messages = new AmiParser().push(text);
    expect(messages.map((m) => m.get('N'))).toEqual(Array.from({ length: 200 }, (_, i) => String(i)));
  });

  it('parses the legacy Response: Follows command output', () => {
    const text =
      'Response: Follows\r\nPrivilege: Command\r\nActionID: c-1\r\nline one\nChannel: looks like a header\n\nlast\n--END COMMAND--\r\n\r\nEvent: After\r\n\r\n';
    for (const chunks of [[Buffer.from(text)], randomSplits(Buffer.from(text), 3, 5)]) {
      const messages = parseAll(chunks).messages;
      expect(messages).toHaveLength(2);
      expect(messages[0]!.response).toBe('Follows');
      expect(messages[0]!.actionId).toBe('c-1');
      expect(messages[0]!.getAll('Output')).toEqual(['line one', 'Channel: looks like a header', '', 'last']);
      expect(messages[1]!.event).toBe('After');
    }
  });
});

describe('AmiParser limits', () => {
  function codeOf(fn: () => unknown): string | undefined {
    try {
      fn();
    } catch (err) {
      return isBridgeError(err) ? err.code : 'not a BridgeError';
    }
    return undefined;
  }

  it('accepts a line of exactly maxLineBytes and rejects a longer one', () => {
    expect(new AmiParser({ maxLineBytes: 20 }).push(`X: ${'a'.repeat(17)}\r\n\r\n`)).toHaveLength(1);
    expect(codeOf(() => new AmiParser({ maxLineBytes: 20 }).push(`X: ${'a'.repeat(18)}\r\n\r\n`))).toBe('AMI_BAD_MESSAGE');
  });

  it('rejects an over-long partial line before its line end arrives', () => {
    const parser = new AmiParser({ maxLineBytes: 64 });
    expect(parser.push('X: ' + 'a'.repeat(40))).toEqual([]);
    expect(codeOf(() => parser.push('a'.repeat(40)))).toBe('AMI_BAD_MESSAGE');
  });

  it('defaults to 4096-byte lines', () => {
    expect(new AmiParser().push(`X: ${'a'.repeat(4093)}\r\n\r\n`)).toHaveLength(1);
    expect(codeOf(() => new AmiParser().push(`X: ${'a'.repeat(4094)}\r\n\r\n`))).toBe('AMI_BAD_MESSAGE');
  });

  it('rejects more than maxHeaders headers (default 128)', () => {
    const message = (n: number): string => `${Array.from({ length: n }, (_, i) => `H${i}: v`).join('\r\n')}\r\n\r\n`;
    expect(new AmiParser().push(message(128))[0]!.headers).toHaveLength(128);
    expect(codeOf(() => new AmiParser().push(message(129)))).toBe('AMI_BAD_MESSAGE');
    expect(codeOf(() => new AmiParser({ maxHeaders: 3 }).push(message(4)))).toBe('AMI_BAD_MESSAGE');
  });
});
