/**
 * The fake manager is shared test infrastructure: these checks hold it to what the recorded
 * Asterisk 22 sent (test/fixtures/asterisk22/ami-session.json), over a raw socket.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { describe, expect, it, onTestFinished } from 'vitest';
import { AmiParser, type AmiMessage } from '../../../src/asterisk/ami/parser.js';
import { FakeAmi } from '../../support/fake-ami.js';
import { fixtureBytes, loadFixture } from '../../support/fixtures.js';

const fixture = loadFixture('ami-session');
const recorded = new AmiParser().push(Buffer.concat(fixtureBytes(fixture, 'asterisk->server', (c) => c.conn === 'ami-1')));
const recordedKeys = (pick: (m: AmiMessage) => boolean): string[] => recorded.find(pick)!.headers.map(([k]) => k);

/** A bare AMI peer: raw writes in, parsed messages and raw reads out. */
class RawPeer {
  readonly parser = new AmiParser();
  readonly messages: AmiMessage[] = [];
  readonly reads: Buffer[] = [];
  ended = false;
  #socket: Socket;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('error', () => {});
    socket.on('end', () => (this.ended = true));
    socket.on('data', (chunk: Buffer) => {
      this.reads.push(chunk);
      this.messages.push(...this.parser.push(chunk));
    });
  }

  static async open(fake: FakeAmi): Promise<RawPeer> {
    const socket = connect(fake.port, '127.0.0.1');
    await once(socket, 'connect');
    const peer = new RawPeer(socket);
    onTestFinished(() => {
      socket.destroy();
    });
    return peer;
  }

  write(text: string): void {
    this.#socket.write(text);
  }

  async next(count = 1, timeoutMs = 2_000): Promise<AmiMessage[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.messages.length < count) {
      if (Date.now() > deadline) throw new Error(`got ${this.messages.length} of ${count} messages`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.messages.splice(0, count);
  }

  async login(fake: FakeAmi): Promise<void> {
    this.write(`Action: Login\r\nActionID: l-1\r\nUsername: ${fake.username}\r\nSecret: ${fake.secret}\r\n\r\n`);
    await this.next(2);
  }
}

async function startFake(options: Parameters<typeof FakeAmi.start>[0] = {}): Promise<FakeAmi> {
  const fake = await FakeAmi.start(options);
  onTestFinished(() => fake.close());
  return fake;
}

describe('FakeAmi wire behaviour', () => {
  it('sends the Asterisk 22 banner in its own write', async () => {
    const fake = await startFake();
    const peer = await RawPeer.open(fake);
    await expect.poll(() => peer.parser.banner).toBe('Asterisk Call Manager/11.0.0');
    expect(peer.reads[0]!.toString()).toBe('Asterisk Call Manager/11.0.0\r\n');
  });

  it('answers Permission denied to anything but Login before login', async () => {
    const fake = await startFake();
    const peer = await RawPeer.open(fake);
    peer.write('Action: Ping\r\nActionID: p-1\r\n\r\n');
    const [denied] = await peer.next();
    expect(denied!.toObject()).toEqual({ Response: 'Error', ActionID: 'p-1', Message: 'Permission denied' });
  });

  it('accepts a login with Success and FullyBooted in one write, shaped like the recording', async () => {
    const fake = await startFake();
    const peer = await RawPeer.open(fake);
    await expect.poll(() => peer.reads.length).toBe(1);
    peer.write(`Action: Login\r\nActionID: l-1\r\nUsername: ${fake.username}\r\nSecret: ${fake.secret}\r\n\r\n`);
    const [ok, booted] = await peer.next(2);
    expect(peer.reads).toHaveLength(2);
    expect(ok!.headers.map(([k]) => k)).toEqual(recordedKeys((m) => m.actionId === 'fx-login-1'));
    expect(ok!.get('Message')).toBe('Authentication accepted');
    expect(booted!.headers.map(([k]) => k)).toEqual(recordedKeys((m) => m.event === 'FullyBooted'));
    expect(fake.actionsNamed('Login')[0]!.get('secret')).toBe(fake.secret);
  });

  it('refuses a bad secret after the configured delay, then closes', async () => {
    const fake = await startFake({ loginFailureDelayMs: 120 });
    const peer = await RawPeer.open(fake);
    const sentAt = Date.now();
    peer.write(`Action: Login\r\nActionID: l-1\r\nUsername: ${fake.username}\r\nSecret: wrong\r\n\r\n`);
    const [refused] = await peer.next();
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(100);
    expect(refused!.toObject()).toEqual({ Response: 'Error', ActionID: 'l-1', Message: 'Authentication failed' });
    await expect.poll(() => peer.ended).toBe(true);
  });

  it('answers Ping like Asterisk, and Logoff with Goodbye and a close', async () => {
    const fake = await startFake();
    const peer = await RawPeer.open(fake);
    await peer.login(fake);
    peer.write('action: ping\nactionid: p-1\n\n');
    const [pong] = await peer.next();
    expect(pong!.headers.map(([k]) => k)).toEqual(recordedKeys((m) => m.actionId === 'fx-ping-1'));
    expect(pong!.get('Timestamp')).toMatch(/^\d+\.\d{6}$/);
    peer.write('Action: Logoff\r\nActionID: bye\r\n\r\n');
    const [bye] = await peer.next();
    expect(bye!.toObject()).toEqual({ Response: 'Goodbye', ActionID: 'bye', Message: 'Thanks for all the fish.' });
    await expect.poll(() => peer.ended).toBe(true);
  });

  it('reports unknown channels with the texts Asterisk uses', async () => {
    const fake = await startFake();
    const peer = await RawPeer.open(fake);
    await peer.login(fake);
    const ask = async (text: string): Promise<string | undefined> => {
      peer.write(text);
      return (await peer.next())[0]!.get('Message');
    };
    expect(await ask('Action: Hangup\r\nChannel: Local/nosuch@x-1;1\r\n\r\n')).toBe('No such channel');
    expect(await ask('Action: Getvar\r\nChannel: nosuch\r\nVariable: X\r\n\r\n')).toBe('No such channel');
    expect(await ask('Action: Setvar\r\nChannel: nosuch\r\nVariable: X\r\nValue: 1\r\n\r\n')).toBe('No such channel');
    expect(await ask('Action: PlayDTMF\r\nChannel: nosuch\r\nDigit: 1\r\n\r\n')).toBe('Channel not found');
    expect(await ask('Action: Redirect\r\nChannel: nosuch\r\nContext: c\r\nExten: e\r\nPriority: 1\r\n\r\n')).toBe(
      'Channel does not exist: nosuch',
    );
    expect(await ask('Action: Frobnicate\r\n\r\n')).toMatch(/^Invalid\/unknown command: Frobnicate\./);
  });

  it('lists channels as an event list in one write, shaped like the recording', async () => {
    const fake = await startFake();
    fake.addChannel({ name: 'PJSIP/100-00000001', uniqueid: '1.1' });
    fake.addChannel({ name: 'PJSIP/200-00000002', uniqueid: '1.2' });
    const peer = await RawPeer.open(fake);
    await peer.login(fake);
    const before = peer.reads.length;
    peer.write('Action: CoreShowChannels\r\nActionID: csc\r\n\r\n');
    const list = await peer.next(4);
    expect(peer.reads.length - before).toBe(1);
    expect(list[0]!.headers.map(([k]) => k)).toEqual(recordedKeys((m) => m.actionId === 'fx-csc' && m.response !== undefined));
    expect(list[1]!.headers.map(([k]) => k)).toEqual(recordedKeys((m) => m.event === 'CoreShowChannel'));
    expect(list[3]!.toObject()).toEqual({ Event: 'CoreShowChannelsComplete', ActionID: 'csc', EventList: 'Complete', ListItems: '2' });
  });

  it('scripts Originate outcomes with the recorded OriginateResponse shape', async () => {
    const fake = await startFake();
    fake.scriptOriginate(/busy/, 'busy');
    const peer = await RawPeer.open(fake);
    await peer.login(fake);
    peer.write(
      'Action: Originate\r\nActionID: o-1\r\nChannel: Local/answer@fx\r\nContext: fx\r\nExten: park\r\nPriority: 1\r\n' +
        'CallerID: "Fixture Caller" <+15550001111>\r\nAsync: true\r\nChannelId: chan-1\r\nVariable: A=1\r\n\r\n',
    );
    const [queued] = await peer.next();
    expect(queued!.toObject()).toEqual({ Response: 'Success', ActionID: 'o-1', Message: 'Originate successfully queued' });
    await expect.poll(() => peer.messages.some((m) => m.event === 'OriginateResponse')).toBe(true);
    const events = peer.messages.splice(0);
    const answered = events.find((m) => m.event === 'OriginateResponse')!;
    expect(answered.headers.map(([k]) => k)).toEqual(recordedKeys((m) => m.event === 'OriginateResponse'));
    expect(answered.toObject()).toMatchObject({ ActionID: 'o-1', Response: 'Success', Reason: '4', Uniqueid: 'chan-1', CallerIDName: 'Fixture Caller' });
    expect(events.filter((m) => m.event === 'VarSet')).toHaveLength(2); // both Local halves
    expect(events.find((m) => m.event === 'Newchannel' && m.get('Channel')!.endsWith(';2'))!.get('Uniqueid')).toBe('chan-1;2');
    expect(fake.findChannel('chan-1')).toBeDefined();

    peer.write('Action: Originate\r\nActionID: o-2\r\nChannel: Local/busy@fx\r\nContext: fx\r\nExten: park\r\nPriority: 1\r\nAsync: true\r\n\r\n');
    await expect.poll(() => peer.messages.some((m) => m.event === 'OriginateResponse')).toBe(true);
    const busy = peer.messages.find((m) => m.event === 'OriginateResponse')!;
    expect(busy.toObject()).toMatchObject({ ActionID: 'o-2', Response: 'Failure', Reason: '5', Channel: 'Local/busy@fx' });
    expect(peer.messages.filter((m) => m.event === 'Hangup').map((m) => m.get('Cause-txt'))).toEqual(['Unknown', 'User busy']);
  });

  it('drops a message with a line over 1024 bytes, as Asterisk does, and goes on', async () => {
    const fake = await startFake();
    const peer = await RawPeer.open(fake);
    await peer.login(fake);
    peer.write(`Action: Ping\r\nActionID: long\r\nX: ${'a'.repeat(1020)}\r\n\r\nAction: Ping\r\nActionID: short\r\n\r\n`);
    const [pong] = await peer.next();
    expect(pong!.actionId).toBe('short');
    expect(fake.actionsNamed('Ping').map((a) => a.actionId)).toEqual(['short']);
  });

  it('holds replies and releases them shuffled in one write; splits writes when asked', async () => {
    const fake = await startFake();
    const peer = await RawPeer.open(fake);
    await peer.login(fake);
    fake.holdReplies();
    for (let i = 0; i < 5; i++) peer.write(`Action: Ping\r\nActionID: p-${i}\r\n\r\n`);
    await fake.waitForAction('Ping', 5);
    expect(fake.heldReplies).toBe(5);
    fake.releaseReplies('reverse');
    const replies = await peer.next(5);
    expect(replies.map((m) => m.actionId)).toEqual(['p-4', 'p-3', 'p-2', 'p-1', 'p-0']);

    fake.splitWrites = (bytes) => Array.from({ length: bytes.length - 1 }, (_, i) => i + 1);
    fake.splitDelayMs = 0;
    const before = peer.reads.length;
    fake.emitEvent('UserEvent', { UserEvent: 'Hello' }, 'user,all');
    const [event] = await peer.next();
    expect(event!.toObject()).toEqual({ Event: 'UserEvent', Privilege: 'user,all', UserEvent: 'Hello' });
    expect(peer.reads.length - before).toBeGreaterThan(5);
  });
});
