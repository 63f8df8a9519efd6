import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { AmiClient, reconnectDelayMs, type AmiClientOptions } from '../../../src/asterisk/ami/client.js';
import type { AmiMessage } from '../../../src/asterisk/ami/parser.js';
import { originateReason } from '../../../src/asterisk/ami/protocol.js';
import { systemClock } from '../../../src/audio/clock.js';
import { BridgeError, isBridgeError, type ErrorCode } from '../../../src/errors.js';
import { createLogger, silentLogger } from '../../../src/log.js';
import { FakeAmi, type FakeAmiOptions } from '../../support/fake-ami.js';
import { ManualClock } from '../../support/manual-clock.js';

const SECRET = 'S3cr3t-do-not-log-4711';

interface Setup {
  readonly fake: FakeAmi;
  readonly client: AmiClient;
}

async function setup(options: { fake?: FakeAmiOptions; client?: Partial<AmiClientOptions>; start?: boolean } = {}): Promise<Setup> {
  const fake = await FakeAmi.start({ secret: SECRET, ...options.fake });
  const client = new AmiClient({
    host: '127.0.0.1',
    port: fake.port,
    username: fake.username,
    secret: SECRET,
    actionTimeoutMs: 400,
    reconnectMinMs: 50,
    reconnectMaxMs: 300,
    pingIntervalMs: 60_000,
    logger: silentLogger(),
    clock: systemClock,
    actionIdPrefix: 't',
    ...options.client,
  });
  onTestFinished(async () => {
    await client.close();
    await fake.close();
  });
  if (options.start !== false) {
    client.start();
    await client.waitConnected(3_000);
  }
  return { fake, client };
}

async function codeOf(promise: Promise<unknown>): Promise<ErrorCode | string> {
  try {
    await promise;
  } catch (err) {
    return isBridgeError(err) ? err.code : `not a BridgeError: ${String(err)}`;
  }
  return 'resolved';
}

function collect<T>(client: AmiClient, name: 'event' | 'disconnected' | 'loginFailed' | 'connected'): T[] {
  const seen: T[] = [];
  client.on(name, (...args: unknown[]) => seen.push((name === 'connected' ? true : args[0]) as T));
  return seen;
}

describe('AmiClient login', () => {
  it('logs in, emits connected, and passes FullyBooted on as an event', async () => {
    const { fake, client } = await setup({ start: false });
    const connected = collect<boolean>(client, 'connected');
    const events = collect<AmiMessage>(client, 'event');
    expect(client.state).toBe('disconnected');
    client.start();
    client.start(); // idempotent
    expect(client.state).toBe('connecting');
    await client.waitConnected(2_000);
    expect(client.state).toBe('connected');
    expect(connected).toHaveLength(1);
    await expect.poll(() => events.map((e) => e.event)).toContain('FullyBooted');
    const [login] = fake.actionsNamed('Login');
    expect(login!.get('Username')).toBe(fake.username);
    expect(login!.get('Secret')).toBe(SECRET);
    expect(login!.actionId).toBe('t-1');
    expect(fake.connectionCount).toBe(1);
  });

  it('waits for a slow banner before logging in', async () => {
    const { fake, client } = await setup({ fake: { bannerDelayMs: 250 } });
    expect(client.state).toBe('connected');
    expect(fake.actionsNamed('Login')).toHaveLength(1);
  });

  it('logs in over 1-byte writes', async () => {
    const { client } = await setup({
      fake: { splitWrites: (b) => Array.from({ length: b.length }, (_, i) => i), splitDelayMs: 0 },
      client: { actionTimeoutMs: 5_000 }, // ~1 ms per byte, slower under load
    });
    const pong = await client.action('Ping');
    expect(pong.get('Ping')).toBe('Pong');
  });

  it('reports a refused login, keeps retrying at reconnectMaxMs, and connects once the secret is right', async () => {
    const { fake, client } = await setup({ start: false, fake: { loginFailureDelayMs: 30 } });
    fake.secret = 'something-else';
    const failures = collect<BridgeError>(client, 'loginFailed');
    client.start();
    const waited = client.waitConnected(5_000);
    expect(await codeOf(waited)).toBe('AMI_AUTH_FAILED');
    expect(failures).toHaveLength(1);
    expect(failures[0]!.code).toBe('AMI_AUTH_FAILED');
    expect(failures[0]!.message).toContain('Authentication failed');
    expect(failures[0]!.message).not.toContain(SECRET);
    expect(client.state).not.toBe('connected');
    const firstAt = Date.now();
    await fake.waitForAction('Login', 2);
    expect(Date.now() - firstAt).toBeGreaterThanOrEqual(250); // reconnectMaxMs = 300
    expect(fake.connectionCount).toBe(2);
    await expect.poll(() => failures.length).toBe(2);
    fake.secret = SECRET;
    await client.waitConnected(3_000);
    expect(fake.actionsNamed('Login')).toHaveLength(3);
  });

  it('rejects waitConnected with AMI_DISCONNECTED when nothing listens', async () => {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    await new Promise((r) => server.close(r));
    const client = new AmiClient({
      host: '127.0.0.1', port, username: 'u', secret: SECRET, actionTimeoutMs: 200, reconnectMinMs: 20, reconnectMaxMs: 50,
      pingIntervalMs: 60_000, logger: silentLogger(), clock: systemClock,
    });
    onTestFinished(() => client.close());
    client.start();
    const err = await client.waitConnected(300).catch((e: unknown) => e);
    expect(isBridgeError(err, 'AMI_DISCONNECTED')).toBe(true);
    expect((err as Error).message).toContain('ECONNREFUSED');
    expect(await codeOf(client.action('Ping'))).toBe('AMI_DISCONNECTED');
  });

  it('refuses credentials that cannot be sent safely at construction', () => {
    const make = (username: string, secret: string): unknown => {
      try {
        return new AmiClient({
          host: '127.0.0.1', port: 1, username, secret, actionTimeoutMs: 100, reconnectMinMs: 10, reconnectMaxMs: 20,
          pingIntervalMs: 1_000, logger: silentLogger(), clock: systemClock,
        });
      } catch (err) {
        return err;
      }
    };
    const err = make('u', `${SECRET}\r\nAction: Originate`);
    expect(isBridgeError(err, 'AMI_BAD_VALUE')).toBe(true);
    expect((err as Error).message).not.toContain(SECRET);
    expect(isBridgeError(make('u\n', 'x'), 'AMI_BAD_VALUE')).toBe(true);
  });
});

describe('AmiClient actions', () => {
  it('correlates 50 concurrent actions answered in shuffled order', async () => {
    const { fake, client } = await setup({ fake: { splitWrites: (b) => [7, 100, 333, 1000, 2000].filter((o) => o < b.length), splitDelayMs: 1 } });
    const vars = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`V${i}`, `value-${i}`]));
    fake.addChannel({ name: 'PJSIP/100-00000001', vars });
    fake.holdReplies();
    const replies = Array.from({ length: 50 }, (_, i) => client.action('Getvar', { Channel: 'PJSIP/100-00000001', Variable: `V${i}` }));
    await fake.waitForAction('Getvar', 50);
    fake.releaseReplies('shuffle', 7);
    const results = await Promise.all(replies);
    results.forEach((reply, i) => {
      expect(reply.get('Variable')).toBe(`V${i}`);
      expect(reply.get('Value')).toBe(`value-${i}`);
    });
    const ids = fake.actionsNamed('Getvar').map((a) => a.actionId);
    expect(new Set(ids).size).toBe(50);
    expect(ids.every((id) => /^t-\d+$/.test(id!))).toBe(true);
  });

  it('rejects Response: Error with AMI_ACTION_FAILED carrying the Message and the response', async () => {
    const { client } = await setup();
    const err = await client.action('Hangup', { Channel: 'Local/nosuch@x-00000099;1' }).catch((e: unknown) => e);
    expect(isBridgeError(err, 'AMI_ACTION_FAILED')).toBe(true);
    expect((err as Error).message).toContain('No such channel');
    expect(((err as Error).cause as AmiMessage).get('Message')).toBe('No such channel');
  });

  it('times an unanswered action out, and ignores its late reply', async () => {
    const { fake, client } = await setup();
    fake.holdReplies();
    const startedAt = Date.now();
    expect(await codeOf(client.action('Getvar', { Variable: 'X' }))).toBe('AMI_ACTION_TIMEOUT');
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(350);
    fake.releaseReplies();
    expect((await client.action('Ping')).get('Ping')).toBe('Pong');
    expect(client.state).toBe('connected');
  });

  it('rejects at once, writing nothing, when not connected', async () => {
    const { fake, client } = await setup({ start: false });
    expect(await codeOf(client.action('Ping'))).toBe('AMI_DISCONNECTED');
    expect(await codeOf(client.listAction('CoreShowChannels'))).toBe('AMI_DISCONNECTED');
    expect(await codeOf(client.originate({ Channel: 'Local/1@x' }))).toBe('AMI_DISCONNECTED');
    expect(fake.connectionCount).toBe(0);
  });

  it('bounds the number of pending actions', async () => {
    const { fake, client } = await setup({ client: { maxPendingActions: 2 } });
    fake.ignore('Getvar');
    const a = client.action('Getvar', { Variable: 'A' });
    const b = client.action('Getvar', { Variable: 'B' });
    expect(await codeOf(client.action('Getvar', { Variable: 'C' }))).toBe('AMI_ACTION_FAILED');
    expect(await codeOf(a)).toBe('AMI_ACTION_TIMEOUT');
    expect(await codeOf(b)).toBe('AMI_ACTION_TIMEOUT');
    expect(fake.actionsNamed('Getvar')).toHaveLength(2);
  });

  it('refuses injection before writing anything', async () => {
    const { fake, client } = await setup();
    fake.addChannel({ name: 'PJSIP/100-00000001' });
    const smuggle = 'a\r\n\r\nAction: Originate\r\nChannel: Local/evil@default\r\nApplication: System\r\nData: rm -rf /';
    expect(await codeOf(client.action('Setvar', { Channel: 'PJSIP/100-00000001', Variable: 'X', Value: smuggle }))).toBe('AMI_BAD_VALUE');
    expect(await codeOf(client.action('Setvar', { 'X\r\n\r\nAction: Originate\r\nChannel': 'Local/evil@default' }))).toBe('AMI_BAD_VALUE');
    expect(await codeOf(client.action('Ping\r\n\r\nAction: Originate', {}))).toBe('AMI_BAD_VALUE');
    expect(await codeOf(client.originate({ Channel: 'Local/1@x', Variable: ['A=1', 'B=2\nAction: Originate'] }))).toBe('AMI_BAD_VALUE');
    // A round trip after the attempts proves nothing slipped through before it.
    await client.action('Ping');
    expect(fake.actionsNamed('Originate')).toEqual([]);
    expect(fake.actionsNamed('Setvar')).toEqual([]);
    expect(fake.actions.map((a) => a.name)).toEqual(['Login', 'Ping']);
  });

  it('keeps working when an event listener throws', async () => {
    const { fake, client } = await setup();
    client.on('event', () => {
      throw new Error('listener bug');
    });
    fake.emitEvent('UserEvent', { UserEvent: 'boom' }, 'user,all');
    await delay(30);
    expect((await client.action('Ping')).get('Ping')).toBe('Pong');
  });
});

describe('AmiClient list actions', () => {
  it('collects a list whose response and Complete share one chunk', async () => {
    const { fake, client } = await setup();
    fake.addChannel({ name: 'PJSIP/100-00000001', uniqueid: '1.1' });
    fake.addChannel({ name: 'PJSIP/200-00000002', uniqueid: '1.2' });
    const events = collect<AmiMessage>(client, 'event');
    const { response, items, complete } = await client.listAction('CoreShowChannels');
    expect(response.get('EventList')).toBe('start');
    expect(items.map((i) => i.get('Channel'))).toEqual(['PJSIP/100-00000001', 'PJSIP/200-00000002']);
    expect(items.every((i) => i.event === 'CoreShowChannel' && i.actionId === response.actionId)).toBe(true);
    expect(complete.get('EventList')).toBe('Complete');
    expect(complete.get('ListItems')).toBe('2');
    // List items belong to the action, not to the event stream.
    expect(events.filter((e) => e.event?.startsWith('CoreShowChannel'))).toEqual([]);
  });

  it('collects a list delivered in small pieces, and an empty list', async () => {
    const { fake, client } = await setup({
      fake: { splitWrites: (b) => Array.from({ length: Math.floor(b.length / 5) }, (_, i) => (i + 1) * 5), splitDelayMs: 0 },
      client: { actionTimeoutMs: 5_000 }, // the timeout restarts per item, but the response alone takes ~20 writes
    });
    expect((await client.listAction('CoreShowChannels')).items).toEqual([]);
    fake.addChannel({ name: 'PJSIP/100-00000001' });
    const { items, complete } = await client.listAction('CoreShowChannels');
    expect(items).toHaveLength(1);
    expect(complete.get('ListItems')).toBe('1');
  });

  it('rejects a list answered with an error, or never completed', async () => {
    const { fake, client } = await setup();
    fake.handle('CoreShowChannels', (_action, reply) => reply.respond('Error', { Message: 'Permission denied' }));
    expect(await codeOf(client.listAction('CoreShowChannels'))).toBe('AMI_ACTION_FAILED');
    fake.handle('CoreShowChannels', (action, reply) => {
      reply.respond('Success', { EventList: 'start', Message: 'Channels will follow' });
      reply.event('CoreShowChannel', { ActionID: action.actionId ?? '', Channel: 'X' });
    });
    expect(await codeOf(client.listAction('CoreShowChannels'))).toBe('AMI_ACTION_TIMEOUT');
  });
});

describe('AmiClient originate', () => {
  const base = { Context: 'ai-call-agent', Exten: 's', Priority: 1, CallerID: '"AI" <100>' } as const;

  it('forces Async, acknowledges, and resolves the result with the OriginateResponse (answered)', async () => {
    const { fake, client } = await setup();
    const events = collect<AmiMessage>(client, 'event');
    const { response, result } = await client.originate({ Channel: 'Local/answer@fx', ...base, async: 'false', ChannelId: 'c-1', Variable: ['A=1', 'B=two'] });
    expect(response.get('Message')).toBe('Originate successfully queued');
    const done = await result;
    expect(done.event).toBe('OriginateResponse');
    expect(done.response).toBe('Success');
    expect(originateReason(done.get('Reason'))).toBe('answered');
    expect(done.get('Uniqueid')).toBe('c-1');
    const sent = fake.actionsNamed('Originate')[0]!;
    expect(sent.getAll('Async')).toEqual(['true']);
    expect(sent.getAll('Variable')).toEqual(['A=1', 'B=two']);
    expect(events.map((e) => e.event)).toContain('Newchannel');
  });

  it.each([
    ['busy', 'busy'],
    ['no-answer', 'no-answer'],
    ['congestion', 'congestion'],
    ['failed', 'failed'],
  ] as const)('resolves the result of a %s call with Response: Failure', async (outcome, expected) => {
    const { fake, client } = await setup();
    fake.scriptOriginate(/./, outcome);
    const { result } = await client.originate({ Channel: 'Local/x@fx', ...base });
    const done = await result;
    expect(done.response).toBe('Failure');
    expect(originateReason(done.get('Reason'))).toBe(expected);
    expect(done.get('Channel')).toBe('Local/x@fx');
  });

  it('correlates by Uniqueid = ChannelId when the OriginateResponse lacks the ActionID', async () => {
    const { fake, client } = await setup();
    fake.scriptOriginate(/./, { outcome: 'answered', omitActionId: true, responseFirst: true });
    const { result } = await client.originate({ Channel: 'Local/answer@fx', ...base, ChannelId: 'pre-assigned-1' });
    const done = await result;
    expect(done.actionId).toBeUndefined();
    expect(done.get('Uniqueid')).toBe('pre-assigned-1');
  });

  it('times the result out after Timeout + actionTimeoutMs', async () => {
    const { fake, client } = await setup();
    fake.scriptOriginate(/./, 'silent');
    const startedAt = Date.now();
    const { result } = await client.originate({ Channel: 'Local/answer@fx', ...base, Timeout: 200 });
    expect(await codeOf(result)).toBe('AMI_ACTION_TIMEOUT');
    expect(Date.now() - startedAt).toBeGreaterThanOrEqual(590); // Timeout 200 + actionTimeoutMs 400
  });

  it('rejects the originate itself on Response: Error, leaving no unhandled result', async () => {
    const { fake, client } = await setup();
    fake.handle('Originate', (_action, reply) => reply.respond('Error', { Message: 'Originate failed' }));
    expect(await codeOf(client.originate({ Channel: 'Local/answer@fx', ...base }))).toBe('AMI_ACTION_FAILED');
  });
});

describe('AmiClient connection loss', () => {
  it('rejects pending work on an abrupt drop, then reconnects within a second and logs in again', async () => {
    const { fake, client } = await setup({ client: { reconnectMinMs: 250, reconnectMaxMs: 5_000 } });
    const disconnected = collect<string>(client, 'disconnected');
    const connected = collect<boolean>(client, 'connected');
    fake.ignore('Getvar');
    fake.scriptOriginate(/./, 'silent');
    const pending = client.action('Getvar', { Variable: 'X' });
    const { result } = await client.originate({ Channel: 'Local/answer@fx', Context: 'c', Exten: 's', Priority: 1 });
    await fake.waitForAction('Getvar');
    const droppedAt = Date.now();
    fake.dropConnections();
    expect(await codeOf(pending)).toBe('AMI_DISCONNECTED');
    expect(await codeOf(result)).toBe('AMI_DISCONNECTED');
    expect(disconnected).toHaveLength(1);
    expect(client.state).not.toBe('connected');
    expect(await codeOf(client.action('Ping'))).toBe('AMI_DISCONNECTED');
    await client.waitConnected(2_000);
    const reconnectMs = Date.now() - droppedAt;
    expect(reconnectMs).toBeGreaterThanOrEqual(200);
    expect(reconnectMs).toBeLessThan(1_000);
    expect(connected).toHaveLength(1);
    expect(fake.actionsNamed('Login').map((a) => a.conn)).toEqual([1, 2]);
    expect((await client.action('Ping')).get('Ping')).toBe('Pong');
  });

  it('pings every pingIntervalMs, and reconnects when a Ping goes unanswered', async () => {
    const { fake, client } = await setup({ client: { pingIntervalMs: 40, actionTimeoutMs: 150 } });
    await fake.waitForAction('Ping', 3);
    const disconnected = collect<string>(client, 'disconnected');
    fake.ignore('Ping');
    await fake.waitForConnections(2);
    expect(disconnected).toEqual(['ping timeout']);
    await client.waitConnected(2_000);
  });

  it('drops and reconnects on unparsable input without crashing', async () => {
    const { fake, client } = await setup();
    const disconnected = collect<string>(client, 'disconnected');
    fake.writeRaw(`X: ${'a'.repeat(5_000)}`);
    await fake.waitForConnections(2);
    expect(disconnected[0]).toContain('AMI_BAD_MESSAGE');
    await client.waitConnected(2_000);
  });

  it('backs off from reconnectMinMs, doubling up to reconnectMaxMs, on the injected clock', async () => {
    expect([0, 1, 2, 3, 4, 5].map((n) => reconnectDelayMs(n, 250, 5_000))).toEqual([250, 500, 1_000, 2_000, 4_000, 5_000]);
    expect(reconnectDelayMs(1_000, 250, 5_000)).toBe(5_000);
    // A peer that hangs up at once, before any banner: every attempt fails.
    let accepted = 0;
    const server = createServer((socket) => {
      accepted += 1;
      socket.destroy();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
    const clock = new ManualClock();
    const client = new AmiClient({
      host: '127.0.0.1', port: (server.address() as AddressInfo).port, username: 'u', secret: SECRET, actionTimeoutMs: 400,
      reconnectMinMs: 250, reconnectMaxMs: 1_000, pingIntervalMs: 60_000, logger: silentLogger(), clock,
    });
    onTestFinished(() => client.close());
    client.start();
    await expect.poll(() => accepted).toBe(1);
    await expect.poll(() => client.state).toBe('disconnected');
    for (const [i, delayMs] of [250, 500, 1_000, 1_000, 1_000].entries()) {
      clock.advance(delayMs - 1);
      await delay(20);
      expect(accepted).toBe(i + 1);
      clock.advance(1);
      expect(client.state).toBe('connecting');
      await expect.poll(() => accepted).toBe(i + 2);
      await expect.poll(() => client.state).toBe('disconnected');
    }
  });

  it('pings on the injected clock and reconnects after reconnectMinMs when a Ping times out', async () => {
    const clock = new ManualClock();
    const { fake, client } = await setup({ start: false, client: { clock, pingIntervalMs: 20_000, actionTimeoutMs: 400, reconnectMinMs: 250 } });
    const disconnected = collect<string>(client, 'disconnected');
    client.start();
    await expect.poll(() => client.state).toBe('connected');
    clock.advance(19_999);
    await delay(20);
    expect(fake.actionsNamed('Ping')).toHaveLength(0);
    clock.advance(1);
    await fake.waitForAction('Ping', 1);
    await delay(20); // the Pong comes back and the next Ping is scheduled
    fake.ignore('Ping');
    clock.advance(20_000);
    await fake.waitForAction('Ping', 2);
    clock.advance(399);
    expect(client.state).toBe('connected');
    clock.advance(1);
    await expect.poll(() => disconnected).toEqual(['ping timeout']);
    clock.advance(249);
    await delay(20);
    expect(fake.connectionCount).toBe(1);
    clock.advance(1);
    await fake.waitForConnections(2);
    await expect.poll(() => client.state).toBe('connected');
  });

  it('gives up on a peer that is not an Asterisk manager and retries', async () => {
    const accepted: number[] = [];
    const server = createServer((socket) => {
      accepted.push(Date.now());
      socket.on('error', () => {});
      socket.write('HTTP/1.1 400 Bad Request\r\n\r\n');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
    const client = new AmiClient({
      host: '127.0.0.1', port: (server.address() as AddressInfo).port, username: 'u', secret: SECRET, actionTimeoutMs: 200,
      reconnectMinMs: 20, reconnectMaxMs: 40, pingIntervalMs: 60_000, logger: silentLogger(), clock: systemClock,
    });
    onTestFinished(() => client.close());
    client.start();
    await expect.poll(() => accepted.length).toBeGreaterThanOrEqual(2);
    expect(await codeOf(client.waitConnected(50))).toBe('AMI_DISCONNECTED');
  });
});

describe('AmiClient close', () => {
  it('settles everything, logs off, and never reconnects', async () => {
    const { fake, client } = await setup();
    const disconnected = collect<string>(client, 'disconnected');
    fake.ignore('Getvar');
    fake.scriptOriginate(/./, 'silent');
    const pending = client.action('Getvar', { Variable: 'X' });
    const list = client.listAction('CoreShowChannels');
    const { result } = await client.originate({ Channel: 'Local/answer@fx', Context: 'c', Exten: 's', Priority: 1 });
    await fake.waitForAction('Getvar');
    const outcomes = Promise.all([codeOf(pending), codeOf(result), codeOf(list)]);
    const closing = client.close();
    expect(client.close()).toBe(closing);
    expect(client.state).toBe('closed');
    const [pendingCode, resultCode, listCode] = await outcomes;
    expect(pendingCode).toBe('AMI_DISCONNECTED');
    expect(resultCode).toBe('AMI_DISCONNECTED');
    // The list was answered before close() or was rejected by it: either way it settled.
    expect(['resolved', 'AMI_DISCONNECTED']).toContain(listCode);
    await closing;
    expect(fake.actionsNamed('Logoff')).toHaveLength(1);
    expect(disconnected).toEqual(['closed']);
    await expect.poll(() => fake.openConnections).toBe(0);
    await delay(150);
    expect(fake.connectionCount).toBe(1);
    expect(await codeOf(client.action('Ping'))).toBe('AMI_DISCONNECTED');
    expect(await codeOf(client.waitConnected(100))).toBe('AMI_DISCONNECTED');
    client.start();
    expect(client.state).toBe('closed');
  });

  it('settles waitConnected and stops retrying when closed while connecting', async () => {
    const { fake, client } = await setup({ start: false, fake: { bannerDelayMs: 500 } });
    client.start();
    const waiting = client.waitConnected(5_000);
    await fake.waitForConnections(1);
    await client.close();
    expect(await codeOf(waiting)).toBe('AMI_DISCONNECTED');
    expect(fake.actionsNamed('Login')).toEqual([]);
  });
});

describe('AmiClient timers', () => {
  it('leaves no timer behind after close', async () => {
    const clock = new ManualClock();
    const { fake, client } = await setup({ start: false, client: { clock, pingIntervalMs: 20_000 } });
    client.start();
    const waiting = client.waitConnected(10_000);
    await waiting;
    fake.ignore('Getvar');
    fake.scriptOriginate(/./, 'silent');
    const pending = client.action('Getvar', { Variable: 'X' });
    const { result } = await client.originate({ Channel: 'Local/answer@fx', Context: 'c', Exten: 's', Priority: 1 });
    expect(clock.pendingTimers).toBe(3); // ping, Getvar timeout, OriginateResponse timeout
    const settled = Promise.all([codeOf(pending), codeOf(result)]);
    await client.close();
    expect(await settled).toEqual(['AMI_DISCONNECTED', 'AMI_DISCONNECTED']);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('AmiClient logging', () => {
  it('never writes the secret to the log, whatever happens', async () => {
    let output = '';
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        output += chunk.toString();
        callback();
      },
    });
    const logger = createLogger('trace', sink);
    const { fake, client } = await setup({ client: { logger, pingIntervalMs: 30 }, fake: { loginFailureDelayMs: 10 } });
    await fake.waitForAction('Ping', 2);
    await client.action('Setvar', { Variable: 'X', Value: `${SECRET}\n` }).catch(() => {});
    await client.action('Getvar', { Channel: 'nosuch', Variable: 'X' }).catch(() => {});
    fake.dropConnections();
    await client.waitConnected(2_000);
    fake.secret = 'rotated';
    fake.dropConnections();
    await new Promise((resolve) => client.once('loginFailed', resolve));
    await client.close();
    sink.end();
    expect(output).toContain('AMI login refused');
    expect(output).toContain('AMI connected');
    expect(output).toContain('AMI action sent');
    expect(output).not.toContain(SECRET);
  });
});
