import { getEventListeners } from 'node:events';
import { connect } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { AgiReply } from '../../../src/asterisk/agi/parser.js';
import { AgiServer, CLOSE_GRACE_MS, normalizeAddress, type AgiServerOptions, type AgiSession } from '../../../src/asterisk/agi/server.js';
import { BridgeError, isBridgeError, type ErrorCode } from '../../../src/errors.js';
import { LOG_LEVEL, captureLogs } from '../../support/agi-log-capture.js';
import { AGI_REPLY, FakeAgiClient, defaultAgiEnv, encodeAgiEnv } from '../../support/fake-agi-client.js';
import { loadFixture, randomSplits } from '../../support/fixtures.js';
import { ManualClock } from '../../support/manual-clock.js';

const COMMAND_TIMEOUT_MS = 1_000;
const ENV_TIMEOUT_MS = 5_000;

interface Harness {
  server: AgiServer;
  port: number;
  clock: ManualClock;
  logs: ReturnType<typeof captureLogs>;
  /** Sessions in the order the handler received them. */
  sessions: AgiSession[];
  nextSession: () => Promise<AgiSession>;
  connect: (options?: { endOfScriptHangup?: boolean }) => Promise<FakeAgiClient>;
}

/**
 * A server on 127.0.0.1:0 with a manual clock and captured logs. `script` runs as the handler;
 * by default the handler waits until the test releases it via the returned session's close.
 */
async function startServer(
  script: (session: AgiSession) => Promise<void> = (session) => new Promise((resolve) => session.once('close', resolve)),
  overrides: Partial<AgiServerOptions> = {},
): Promise<Harness> {
  const logs = captureLogs();
  const clock = new ManualClock();
  const sessions: AgiSession[] = [];
  const waiters: Array<(session: AgiSession) => void> = [];
  const server = new AgiServer({
    host: '127.0.0.1',
    port: 0,
    allow: ['127.0.0.1'],
    commandTimeoutMs: COMMAND_TIMEOUT_MS,
    maxLineBytes: 1_024,
    envTimeoutMs: ENV_TIMEOUT_MS,
    logger: logs.logger,
    clock,
    handler: (session) => {
      sessions.push(session);
      waiters.shift()?.(session);
      return script(session);
    },
    ...overrides,
  });
  const { port } = await server.listen();
  onTestFinished(async () => {
    // A client that ignores our FIN would hold close() until the grace timer fires.
    const closing = server.close();
    clock.advance(CLOSE_GRACE_MS);
    await closing;
  });
  let taken = 0;
  const nextSession = (): Promise<AgiSession> => {
    const ready = sessions[taken];
    taken++;
    if (ready !== undefined) return Promise.resolve(ready);
    return withTimeout(new Promise<AgiSession>((resolve) => waiters.push(resolve)), 'no FastAGI session');
  };
  const connectClient = async (options: { endOfScriptHangup?: boolean } = {}): Promise<FakeAgiClient> => {
    const client = await FakeAgiClient.connect(port, options);
    onTestFinished(() => {
      client.socket.destroy();
    });
    return client;
  };
  return { server, port, clock, logs, sessions, nextSession, connect: connectClient };
}

function withTimeout<T>(promise: Promise<T>, what: string, waitMs = 2_000): Promise<T> {
  return Promise.race([
    promise,
    delay(waitMs).then(() => {
      throw new Error(`timed out: ${what}`);
    }),
  ]);
}

/** Polls until `predicate` holds (socket events land asynchronously). */
async function waitFor(predicate: () => boolean, what: string, waitMs = 2_000): Promise<void> {
  const deadline = Date.now() + waitMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(2);
  }
}

/** Observes a promise without awaiting it. */
function track<T>(promise: Promise<T>): { settled: boolean; value?: T; error?: unknown; done: Promise<void> } {
  const state: { settled: boolean; value?: T; error?: unknown; done: Promise<void> } = { settled: false, done: Promise.resolve() };
  state.done = promise.then(
    (value) => {
      state.settled = true;
      state.value = value;
    },
    (error: unknown) => {
      state.settled = true;
      state.error = error;
    },
  );
  return state;
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<BridgeError> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(BridgeError);
  expect((error as BridgeError).code).toBe(code);
  return error as BridgeError;
}

async function waitForHangup(session: AgiSession): Promise<void> {
  if (!session.hungUp) await withTimeout(new Promise<void>((resolve) => session.once('hangup', resolve)), 'hangup event');
}

describe('replaying the Asterisk 22 recordings', () => {
  const assign = loadFixture('agi-session-assign');
  const hangup = loadFixture('agi-session-hangup');
  const execAudioSocket = loadFixture('agi-session-exec-audiosocket');

  it.each([
    ['recorded chunking', undefined],
    ['random pieces', (bytes: Buffer) => randomSplits(bytes, 17, 13)],
  ])('agi-session-assign.json, %s: same bytes on the wire, same results', async (_name, split) => {
    const results: unknown[] = [];
    let hangups = 0;
    const harness = await startServer(async (session) => {
      session.on('hangup', () => hangups++);
      results.push(session.request.script, { ...session.request.query }, session.request.args);
      await session.setVariable('AI_UUID', '1fa3a5e8-700d-433f-b02e-f2ebf00385a7');
      await session.setVariable('AI_QUOTED', 'a "quoted" (paren) back\\slash');
      results.push(await session.getVariable('AI_QUOTED'));
      results.push(await session.getVariable('CALLERID(name)'));
      results.push(await session.getFullVariable('${CALLERID(num)}'));
      results.push(await session.command('FOO BAR').catch((err: BridgeError) => [err.code, err.message]));
      results.push(await session.command('SET VARIABLE ONLYNAME').catch((err: BridgeError) => [err.code, err.message]));
    });
    const client = await harness.connect();
    await client.replay(assign, { split });
    await withTimeout(client.closed, 'socket close');
    const session = await harness.nextSession();
    await waitFor(() => harness.server.activeSessions === 0, 'session cleanup');

    expect(results).toEqual([
      'ai-call',
      { agent: 'sales', lang: 'en' },
      ['arg one', 'arg:two'],
      'a "quoted" (paren) back\\slash',
      'Alice: Smith',
      '+15551234567',
      ['AGI_COMMAND_FAILED', expect.stringContaining('510 Invalid or unknown command')],
      ['AGI_COMMAND_FAILED', expect.stringContaining('520 Invalid command syntax.  Proper usage follows: (usage: Sets a variable to the current channel.)')],
    ]);
    // The HANGUP after our FIN is Asterisk's end-of-script notice, not a hangup (§2.6).
    expect(session.hungUp).toBe(false);
    expect(hangups).toBe(0);
    expect(harness.logs.find('FastAGI handler failed')).toEqual([]);
  });

  it('agi-session-hangup.json "idle": HANGUP while idle, then dead-safe commands work and others get 511', async () => {
    const results: unknown[] = [];
    const harness = await startServer(async (session) => {
      await waitForHangup(session);
      results.push(await session.getVariable('CHANNEL'));
      results.push((await expectCode(session.answer(), 'AGI_DEAD_CHANNEL')).code);
      results.push((await expectCode(session.command('STREAM FILE fixture-tone ""'), 'AGI_DEAD_CHANNEL')).code);
      results.push((await session.exec('Wait', '1')).result);
      await session.verbose('still here after hangup', 1);
      results.push(await session.getVariable('AGISTATUS'));
    });
    const client = await harness.connect();
    await client.replay(hangup, { filter: (chunk) => chunk.session === 'idle' });
    await withTimeout(client.closed, 'socket close');
    const session = await harness.nextSession();
    expect(results).toEqual(['Local/hangup-idle@fx-agi-00000001;2', 'AGI_DEAD_CHANNEL', 'AGI_DEAD_CHANNEL', 0, undefined]);
    expect(session.hungUp).toBe(true);
    expect(harness.logs.find('Asterisk reported a hangup (FastAGI HANGUP)')).toHaveLength(1);
  });

  it('agi-session-hangup.json "exec": the EXEC reply comes first, then HANGUP', async () => {
    const results: unknown[] = [];
    const harness = await startServer(async (session) => {
      results.push((await session.exec('Wait', '5')).result);
      await waitForHangup(session);
      results.push((await expectCode(session.answer(), 'AGI_DEAD_CHANNEL')).code);
      results.push(await session.getVariable('CHANNEL'));
    });
    const client = await harness.connect();
    await client.replay(hangup, { filter: (chunk) => chunk.session === 'exec' });
    await withTimeout(client.closed, 'socket close');
    expect(results).toEqual([-1, 'AGI_DEAD_CHANNEL', 'Local/hangup-exec@fx-agi-00000002;2']);
  });

  it('agi-session-exec-audiosocket.json: ANSWER, a long EXEC AudioSocket, then CHANNEL(state)', async () => {
    const results: unknown[] = [];
    const harness = await startServer(async (session) => {
      results.push((await session.answer()).result);
      results.push((await session.exec('AudioSocket', '38101802-54c3-4559-aa19-ebc40c9984c9,127.0.0.1:29092')).result);
      results.push(await session.getVariable('CHANNEL(state)'));
    });
    const client = await harness.connect();
    await client.replay(execAudioSocket);
    await withTimeout(client.closed, 'socket close');
    const session = await harness.nextSession();
    expect(results).toEqual([0, 0, 'Up']);
    expect(session.hungUp).toBe(false);
  });
});

describe('command queue', () => {
  it('keeps strictly one command in flight and settles overlapping commands in order', async () => {
    const harness = await startServer();
    const client = await harness.connect();
    await client.sendEnv();
    const session = await harness.nextSession();

    const order: string[] = [];
    const set = session.setVariable('A', '1').then(() => order.push('set'));
    const get = session.getVariable('B').then((value) => {
      order.push('get');
      return value;
    });
    const exec = session.exec('Wait', '1').then((reply) => {
      order.push('exec');
      return reply;
    });

    expect(await client.nextCommand()).toBe('SET VARIABLE A "1"');
    await delay(30);
    // §2.3: Asterisk reads the next line only after answering; sending early would desync us.
    expect(client.unreadCommands).toEqual([]);
    // A HANGUP between commands is a notification: it must not be taken for the reply.
    await client.sendHangup();
    await delay(10);
    expect(order).toEqual([]);
    await client.reply('200 result=1');
    expect(await client.nextCommand()).toBe('GET VARIABLE B');
    await delay(10);
    expect(client.unreadCommands).toEqual([]);
    await client.reply('200 result=1 (bee)');
    expect(await client.nextCommand()).toBe('EXEC Wait 1');
    await client.reply('200 result=0');

    await set;
    expect(await get).toBe('bee');
    expect((await exec).result).toBe(0);
    expect(order).toEqual(['set', 'get', 'exec']);
    expect(session.hungUp).toBe(true);
    expect(client.commands).toEqual(['SET VARIABLE A "1"', 'GET VARIABLE B', 'EXEC Wait 1']);
  });

  it('answers SET/GET VARIABLE, GET FULL VARIABLE, EXEC, ANSWER and VERBOSE against the fake Asterisk', async () => {
    const harness = await startServer();
    const client = await harness.connect();
    client.actAsAsterisk({ apps: { Wait: () => 0 } });
    await client.sendEnv();
    const session = await harness.nextSession();
    // Fire-and-forget everything at once: the queue must serialise them.
    const results = await Promise.all([
      session.setVariable('AI_QUOTED', 'a "q" value, with comma \\ backslash'),
      session.getVariable('AI_QUOTED'),
      session.getVariable('NEVER_SET'),
      session.getFullVariable('${AI_QUOTED}!'),
      session.exec('Wait', '1'),
      session.exec('NoSuchApp', ''),
      session.answer(),
      session.verbose('hello there', 2),
    ]);
    expect(client.variables.get('AI_QUOTED')).toBe('a "q" value, with comma \\ backslash');
    expect(results.slice(0, 4)).toEqual([undefined, 'a "q" value, with comma \\ backslash', undefined, 'a "q" value, with comma \\ backslash!']);
    expect((results[4] as AgiReply).result).toBe(0);
    expect((results[5] as AgiReply).result).toBe(-2);
    expect((results[6] as AgiReply).result).toBe(0);
    expect(results[7]).toBeUndefined();
  });

  it('refuses unsendable commands without writing anything', async () => {
    const harness = await startServer();
    const client = await harness.connect();
    await client.sendEnv();
    const session = await harness.nextSession();
    await expectCode(session.setVariable('X', 'a"b\nEXEC System evil'), 'AGI_BAD_VALUE');
    await expectCode(session.command('GET VARIABLE X\nEXEC System evil'), 'AGI_BAD_VALUE');
    await expectCode(session.command('failure'), 'AGI_BAD_VALUE');
    await expectCode(session.exec('Bad App', ''), 'AGI_BAD_VALUE');
    await expect(session.command('NOOP', { timeoutMs: 0 })).rejects.toThrow(RangeError);
    await delay(20);
    expect(client.commands).toEqual([]);
    // The session is still usable.
    const noop = session.command('NOOP');
    expect(await client.nextCommand()).toBe('NOOP');
    await client.reply('200 result=0');
    expect((await noop).result).toBe(0);
  });

  it('aborts a queued command before it is sent, and an in-flight one without desyncing the stream', async () => {
    const harness = await startServer();
    const client = await harness.connect();
    await client.sendEnv();
    const session = await harness.nextSession();

    const inFlight = new AbortController();
    const queued = new AbortController();
    const first = track(session.exec('Wait', '10', { signal: inFlight.signal }));
    const second = track(session.setVariable('NEVER', 'sent', { signal: queued.signal }));
    const third = track(session.getVariable('AFTER'));
    expect(await client.nextCommand()).toBe('EXEC Wait 10');

    queued.abort(new Error('not needed'));
    await second.done;
    expect((second.error as Error).message).toBe('not needed');
    expect(getEventListeners(queued.signal, 'abort')).toHaveLength(0);

    inFlight.abort(new Error('caller gone'));
    await first.done;
    expect((first.error as Error).message).toBe('caller gone');
    // Asterisk still owes the EXEC reply; the next command must wait for it and not steal it.
    await delay(20);
    expect(client.unreadCommands).toEqual([]);
    expect(third.settled).toBe(false);
    await client.reply('200 result=0');
    expect(await client.nextCommand()).toBe('GET VARIABLE AFTER');
    await client.reply('200 result=1 (mine)');
    await third.done;
    expect(third.value).toBe('mine');
    expect(client.commands).toEqual(['EXEC Wait 10', 'GET VARIABLE AFTER']);
  });

  it('rejects at once when the signal is already aborted', async () => {
    const harness = await startServer();
    const client = await harness.connect();
    await client.sendEnv();
    const session = await harness.nextSession();
    await expect(session.command('NOOP', { signal: AbortSignal.abort(new Error('early')) })).rejects.toThrow('early');
    expect(client.commands).toEqual([]);
  });

  it('removes the abort listener once the command settles', async () => {
    const harness = await startServer();
    const client = await harness.connect();
    client.actAsAsterisk();
    await client.sendEnv();
    const session = await harness.nextSession();
    const controller = new AbortController();
    await session.setVariable('X', '1', { signal: controller.signal });
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  });
});

describe('timeouts', () => {
  it('times out a command on the injected clock, rejects the queue and closes the session', async () => {
    const harness = await startServer();
    const client = await harness.connect();
    await client.sendEnv();
    const session = await harness.nextSession();
    const first = track(session.getVariable('SLOW'));
    const second = track(session.getVariable('QUEUED'));
    expect(await client.nextCommand()).toBe('GET VARIABLE SLOW');

    harness.clock.advance(COMMAND_TIMEOUT_MS - 1);
    await delay(10);
    expect(first.settled).toBe(false);
    harness.clock.advance(1);
    await first.done;
    await second.done;
    expect((first.error as BridgeError).code).toBe('AGI_COMMAND_TIMEOUT');
    expect((second.error as BridgeError).code).toBe('AGI_CLOSED');
    expect((second.error as BridgeError).cause).toBe(first.error);
    // A late reply would belong to the wrong command: the session is over.
    expect(session.closed).toBe(true);
    await withTimeout(client.serverEnded, 'FIN after timeout');
    await client.reply('200 result=1 (too late)').catch(() => {});
    await withTimeout(client.closed, 'socket close');
    expect(client.commands).toEqual(['GET VARIABLE SLOW']);
    expect(harness.logs.find('FastAGI command timed out; closing the session')).toHaveLength(1);
    await expectCode(session.command('NOOP'), 'AGI_CLOSED');
  });

  it('uses a per-command timeoutMs and never times out EXEC by default (EXEC AudioSocket lasts the call)', async () => {
    const harness = await startServer();
    const client = await harness.connect();
    await client.sendEnv();
    const session = await harness.nextSession();
    const exec = track(session.exec('AudioSocket', 'uuid,127.0.0.1:9092'));
    expect(await client.nextCommand()).toBe('EXEC AudioSocket uuid,127.0.0.1:9092');
    harness.clock.advance(3_600_000);
    await delay(20);
    expect(exec.settled).toBe(false);
    expect(session.closed).toBe(false);
    await client.reply('200 result=0');
    await exec.done;
    expect((exec.value as AgiReply).result).toBe(0);

    const quick = track(session.command('NOOP', { timeoutMs: 50 }));
    expect(await client.nextCommand()).toBe('NOOP');
    harness.clock.advance(50);
    await quick.done;
    expect((quick.error as BridgeError).code).toBe('AGI_COMMAND_TIMEOUT');
  });

  it('closes a client that does not complete its environment block within envTimeoutMs', async () => {
    let handled = 0;
    const harness = await startServer(async () => {
      handled++;
    });
    const client = await harness.connect();
    await client.write('agi_network: yes\nagi_request: agi://127.0.0.1/x\n');
    await waitFor(() => harness.server.activeSessions === 1, 'accepted connection');
    harness.clock.advance(ENV_TIMEOUT_MS - 1);
    await delay(20);
    expect(client.socket.destroyed).toBe(false);
    harness.clock.advance(1);
    await withTimeout(client.closed, 'env timeout close');
    await waitFor(() => harness.server.activeSessions === 0, 'cleanup');
    expect(handled).toBe(0);
    expect(harness.logs.find('FastAGI client did not complete its environment block in time')).toHaveLength(1);
  });

  it('destroys a socket whose peer ignores our FIN after CLOSE_GRACE_MS', async () => {
    const harness = await startServer();
    const client = await harness.connect({ endOfScriptHangup: false });
    await client.sendEnv();
    const session = await harness.nextSession();
    const closed = track(new Promise<void>((resolve) => session.once('close', resolve)));
    session.close();
    await withTimeout(client.serverEnded, 'FIN');
    await delay(20);
    expect(closed.settled).toBe(false);
    harness.clock.advance(CLOSE_GRACE_MS);
    await withTimeout(closed.done, 'session close');
    expect(harness.server.activeSessions).toBe(0);
    // Our side is gone for good: the half-open peer's first write is answered with an RST, so a
    // later one fails (EPIPE/ECONNRESET) and its socket closes.
    await client.write('HANGUP\n').catch(() => {});
    await delay(20);
    await client.write('HANGUP\n').catch(() => {});
    await withTimeout(client.closed, 'peer sees the reset');
  });
});

describe('HANGUP (protocols.md §2.6)', () => {
  it('emits hangup once when it arrives while idle, and the session stays usable for dead-safe commands', async () => {
    const harness = await startServer();
    const client = await harness.connect();
    client.actAsAsterisk({ variables: new Map([['CHANNEL', 'PJSIP/alice-00000001']]) });
    await client.sendEnv();
    const session = await harness.nextSession();
    let hangups = 0;
    session.on('hangup', () => hangups++);
    client.hangUpCall();
    await waitForHangup(session);
    await client.sendHangup(); // a repeated notice is not news
    expect(await session.getVariable('CHANNEL')).toBe('PJSIP/alice-00000001');
    await expectCode(session.answer(), 'AGI_DEAD_CHANNEL');
    expect(hangups).toBe(1);
    expect(session.hungUp).toBe(true);
    expect(session.closed).toBe(false);
  });

  it('does not settle the command in flight on HANGUP; its reply does (the ding-dong defect)', async () => {
    const harness = await startServer();
    const client = await harness.connect();
    await client.sendEnv();
    const session = await harness.nextSession();
    const exec = track(session.exec('Wait', '5'));
    expect(await client.nextCommand()).toBe('EXEC Wait 5');
    await client.sendHangup();
    await waitForHangup(session);
    await delay(10);
    expect(exec.settled).toBe(false);
    await client.reply('200 result=-1');
    await exec.done;
    expect((exec.value as AgiReply).result).toBe(-1);
  });

  it('handles the reply and HANGUP in one read (reply first, as recorded)', async () => {
    const harness = await startServer();
    const client = await harness.connect();
    client.actAsAsterisk({
      apps: { Wait: async ({ hungUp }) => hungUp.then(() => -1) },
    });
    await client.sendEnv();
    const session = await harness.nextSession();
    const exec = track(session.exec('Wait', '5'));
    await waitFor(() => client.commands.length === 1, 'EXEC sent');
    client.hangUpCall();
    await exec.done;
    expect((exec.value as AgiReply).result).toBe(-1);
    await waitForHangup(session);
  });

  it('sees a HANGUP that arrived in the same read as the end of the environment block', async () => {
    let hungUpInHandler: boolean | undefined;
    const harness = await startServer(
      (session) =>
        new Promise<void>((resolve) => {
          session.once('hangup', () => {
            hungUpInHandler = session.hungUp;
            resolve();
          });
        }),
    );
    const client = await harness.connect();
    await client.write(Buffer.concat([encodeAgiEnv(defaultAgiEnv()), Buffer.from('HANGUP\n')]));
    await withTimeout(client.closed, 'session closed after the handler');
    expect(hungUpInHandler).toBe(true);
  });

  it('maps 511 to AGI_DEAD_CHANNEL and 510/520 to AGI_COMMAND_FAILED', async () => {
    const harness = await startServer();
    const client = await harness.connect();
    await client.sendEnv();
    const session = await harness.nextSession();
    const answer = session.answer();
    await client.nextCommand();
    await client.reply(AGI_REPLY.dead);
    const dead = await expectCode(answer, 'AGI_DEAD_CHANNEL');
    expect(dead.message).toContain('511 Command Not Permitted on a dead channel');

    const unknown = session.command('FOO BAR');
    await client.nextCommand();
    await client.reply(AGI_REPLY.invalid);
    await expectCode(unknown, 'AGI_COMMAND_FAILED');

    const usage = session.command('SET VARIABLE ONLYNAME');
    await client.nextCommand();
    // The multi-line 520 split across two writes, as recorded (Nagle on Asterisk's side).
    await client.reply(AGI_REPLY.setVariableUsage[0]);
    await delay(20);
    await client.reply(...AGI_REPLY.setVariableUsage.slice(1));
    const failed = await expectCode(usage, 'AGI_COMMAND_FAILED');
    expect(failed.message).toContain('Sets a variable to the current channel.');
    expect(session.closed).toBe(false);
  });
});

describe('broken clients', () => {
  it('survives a client that resets mid-command; other sessions carry on', async () => {
    const harness = await startServer();
    const vanishing = await harness.connect();
    await vanishing.sendEnv(defaultAgiEnv({ agi_uniqueid: '111.1' }));
    const doomed = await harness.nextSession();
    const steady = await harness.connect();
    steady.actAsAsterisk();
    await steady.sendEnv(defaultAgiEnv({ agi_uniqueid: '222.2' }));
    const survivor = await harness.nextSession();

    const pending = track(doomed.exec('AudioSocket', 'uuid,127.0.0.1:9092'));
    const queued = track(doomed.getVariable('X'));
    await vanishing.nextCommand();
    vanishing.reset(); // RST: ECONNRESET on our side

    await pending.done;
    await queued.done;
    expect((pending.error as BridgeError).code).toBe('AGI_CLOSED');
    expect((queued.error as BridgeError).code).toBe('AGI_CLOSED');
    await waitFor(() => harness.server.activeSessions === 1, 'doomed session cleanup');
    expect(doomed.closed).toBe(true);

    await survivor.setVariable('STILL', 'here');
    expect(await survivor.getVariable('STILL')).toBe('here');
    expect(steady.variables.get('STILL')).toBe('here');
    const closeLog = harness.logs.find('FastAGI session closed').find((record) => record['uniqueid'] === '111.1');
    expect(closeLog).toBeDefined();
  });

  it('survives a client that resets while sending its environment block', async () => {
    const harness = await startServer();
    const client = await harness.connect();
    await client.write('agi_network: yes\n');
    await waitFor(() => harness.server.activeSessions === 1, 'accepted');
    client.reset();
    await waitFor(() => harness.server.activeSessions === 0, 'cleanup');
    const next = await harness.connect();
    next.actAsAsterisk();
    await next.sendEnv();
    const session = await harness.nextSession();
    expect((await session.answer()).result).toBe(0);
  });

  it('closes only the session that sent an unparsable reply', async () => {
    const harness = await startServer();
    const bad = await harness.connect();
    await bad.sendEnv();
    const badSession = await harness.nextSession();
    const good = await harness.connect();
    good.actAsAsterisk();
    await good.sendEnv();
    const goodSession = await harness.nextSession();

    const pending = badSession.getVariable('X');
    await bad.nextCommand();
    await bad.reply('garbage from a confused peer');
    await expectCode(pending, 'AGI_BAD_LINE');
    expect(badSession.closed).toBe(true);
    await withTimeout(bad.closed, 'bad client closed');
    const protocolErrors = harness.logs.find('FastAGI protocol error; closing the session');
    expect(protocolErrors).toHaveLength(1);
    expect(protocolErrors[0]!.level).toBe(LOG_LEVEL.warn);
    expect(await goodSession.getFullVariable('ok')).toBe('ok');
  });

  it('closes a session that gets a reply with no command in flight', async () => {
    const harness = await startServer();
    const client = await harness.connect();
    await client.sendEnv();
    const session = await harness.nextSession();
    await client.reply('200 result=1');
    await withTimeout(client.closed, 'closed');
    expect(session.closed).toBe(true);
    expect(harness.logs.find('FastAGI protocol error; closing the session')[0]?.['code']).toBe('AGI_BAD_LINE');
  });

  it('closes a client whose environment line exceeds maxLineBytes', async () => {
    let handled = 0;
    const harness = await startServer(
      async () => {
        handled++;
      },
      { maxLineBytes: 256 },
    );
    const client = await harness.connect();
    await client.write(`agi_network: yes\nagi_calleridname: ${'x'.repeat(300)}`).catch(() => {});
    await withTimeout(client.closed, 'closed');
    expect(handled).toBe(0);
    const record = harness.logs.find('bad FastAGI environment block')[0];
    expect(record?.['code']).toBe('AGI_BAD_LINE');
    await waitFor(() => harness.server.activeSessions === 0, 'cleanup');
  });

  it('rejects the command whose reply exceeds maxLineBytes and closes the session', async () => {
    const harness = await startServer(undefined, { maxLineBytes: 256 });
    const client = await harness.connect();
    await client.sendEnv();
    const session = await harness.nextSession();
    const pending = session.getVariable('BIG');
    await client.nextCommand();
    await client.reply(`200 result=1 (${'v'.repeat(300)})`).catch(() => {});
    await expectCode(pending, 'AGI_BAD_LINE');
    expect(session.closed).toBe(true);
  });

  it('closes a client that sends something other than an environment block', async () => {
    const harness = await startServer();
    const client = await harness.connect();
    await client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n').catch(() => {});
    await withTimeout(client.closed, 'closed');
    expect(harness.sessions).toHaveLength(0);
  });
});

describe('handler lifecycle', () => {
  it('closes the session when the handler resolves; Asterisk\'s end-of-script HANGUP is ignored', async () => {
    const harness = await startServer(async (session) => {
      await session.setVariable('AI_STATUS', 'OK');
    });
    const client = await harness.connect();
    client.actAsAsterisk();
    await client.sendEnv();
    const session = await harness.nextSession();
    const closed = new Promise<void>((resolve) => session.once('close', resolve));
    await withTimeout(client.serverEnded, 'FIN');
    await withTimeout(closed, 'close event');
    expect(client.variables.get('AI_STATUS')).toBe('OK');
    expect(session.hungUp).toBe(false);
    expect(harness.server.activeSessions).toBe(0);
  });

  it('logs a rejected handler with its call context and closes the session', async () => {
    const harness = await startServer(async (session) => {
      await session.answer();
      throw new Error('registry exploded');
    });
    const client = await harness.connect();
    client.actAsAsterisk();
    await client.sendEnv(defaultAgiEnv({ agi_uniqueid: '1795534918.1' }));
    await withTimeout(client.closed, 'closed');
    const [record] = harness.logs.find('FastAGI handler failed');
    expect(record?.level).toBe(LOG_LEVEL.error);
    expect((record?.['err'] as { message: string }).message).toBe('registry exploded');
    expect(record?.['uniqueid']).toBe('1795534918.1');
    expect(record?.['channel']).toBe('PJSIP/alice-00000001');
    expect(record?.['remoteAddress']).toBe('127.0.0.1');
  });

  it('survives a handler that throws synchronously', async () => {
    const harness = await startServer((() => {
      throw new Error('sync boom');
    }) as unknown as (session: AgiSession) => Promise<void>);
    const client = await harness.connect();
    await client.sendEnv();
    await withTimeout(client.closed, 'closed');
    expect(harness.logs.find('FastAGI handler failed')).toHaveLength(1);
  });

  it('keeps a throwing hangup listener from crashing the process', async () => {
    const harness = await startServer();
    const client = await harness.connect();
    await client.sendEnv();
    const session = await harness.nextSession();
    session.on('hangup', () => {
      throw new Error('listener bug');
    });
    await client.sendHangup();
    await waitFor(() => harness.logs.find('FastAGI session listener threw').length === 1, 'listener error logged');
    expect(session.hungUp).toBe(true);
  });
});

describe('allowlist', () => {
  it('refuses a client outside allow at once, logs its address and counts it', async () => {
    let handled = 0;
    const harness = await startServer(
      async () => {
        handled++;
      },
      { allow: ['10.0.0.1'] },
    );
    const client = await harness.connect();
    await client.sendEnv().catch(() => {});
    await withTimeout(client.closed, 'refused client closed');
    expect(handled).toBe(0);
    expect(harness.server.refusedClients).toBe(1);
    expect(harness.server.activeSessions).toBe(0);
    const [record] = harness.logs.find('refused a FastAGI client not in agi.allow');
    expect(record?.['remoteAddress']).toBe('127.0.0.1');
    expect(record?.['code']).toBe('AGI_CLIENT_REFUSED');
  });

  it.each([[['127.0.0.0/8']], [['10.0.0.0/8', '127.0.0.1/32']], [['::ffff:127.0.0.1']], [['::1', '127.0.0.1']]])(
    'admits 127.0.0.1 with allow %j',
    async (allow) => {
      const harness = await startServer(undefined, { allow });
      const client = await harness.connect();
      client.actAsAsterisk();
      await client.sendEnv();
      const session = await harness.nextSession();
      expect(session.remoteAddress).toBe('127.0.0.1');
      expect(harness.server.refusedClients).toBe(0);
    },
  );

  it.each([[[]], [['127.0.0.2']], [['10.0.0.0/8', '::1']], [['127.0.0.0/32']]])('refuses 127.0.0.1 with allow %j', async (allow) => {
    const harness = await startServer(undefined, { allow });
    const client = await harness.connect();
    await withTimeout(client.closed, 'refused');
    expect(harness.server.refusedClients).toBe(1);
  });

  it.each(['localhost', '10.0.0.0/33', '10.0.0.0/', '1.2.3.4/8/9', '::1/129', ''])('refuses the allow entry %j at construction', (entry) => {
    let thrown: unknown;
    try {
      new AgiServer({
        host: '127.0.0.1',
        port: 0,
        allow: [entry],
        commandTimeoutMs: 1_000,
        maxLineBytes: 1_024,
        logger: captureLogs().logger,
        clock: new ManualClock(),
        handler: async () => {},
      });
    } catch (err) {
      thrown = err;
    }
    expect(isBridgeError(thrown, 'CONFIG_INVALID')).toBe(true);
  });

  it('normalizes IPv4-mapped IPv6 addresses', () => {
    expect(normalizeAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeAddress('::FFFF:10.1.2.3')).toBe('10.1.2.3');
    expect(normalizeAddress('::1')).toBe('::1');
    expect(normalizeAddress('10.0.0.1')).toBe('10.0.0.1');
  });
});

describe('server lifecycle', () => {
  it('reports its ephemeral port', async () => {
    const harness = await startServer();
    expect(harness.port).toBeGreaterThan(0);
    expect(harness.server.port).toBe(harness.port);
  });

  it('close() settles every pending command, closes every connection and is idempotent', async () => {
    const harness = await startServer();
    const first = await harness.connect();
    await first.sendEnv();
    const firstSession = await harness.nextSession();
    const second = await harness.connect();
    await second.sendEnv();
    const secondSession = await harness.nextSession();
    const envOnly = await harness.connect();
    await envOnly.write('agi_network: yes\n');
    await waitFor(() => harness.server.activeSessions === 3, 'three connections');

    const longExec = track(firstSession.exec('AudioSocket', 'uuid,127.0.0.1:9092'));
    const queued = track(firstSession.getVariable('QUEUED'));
    const other = track(secondSession.getVariable('OTHER'));
    await first.nextCommand();
    await second.nextCommand();

    const closing = harness.server.close();
    expect(harness.server.close()).toBe(closing);
    await withTimeout(closing, 'server close');

    for (const pending of [longExec, queued, other]) {
      await pending.done;
      expect((pending.error as BridgeError).code).toBe('AGI_CLOSED');
    }
    expect(harness.server.activeSessions).toBe(0);
    await withTimeout(Promise.all([first.closed, second.closed, envOnly.closed]), 'clients closed');
    // The listener is gone too.
    const refused = connect({ port: harness.port, host: '127.0.0.1' });
    const error = await new Promise<NodeJS.ErrnoException>((resolve) => refused.once('error', resolve));
    expect(error.code).toBe('ECONNREFUSED');
    await expect(harness.server.listen()).rejects.toThrow('closed');
  });

  it('close() before listen() resolves', async () => {
    const server = new AgiServer({
      host: '127.0.0.1',
      port: 0,
      allow: ['127.0.0.1'],
      commandTimeoutMs: 1_000,
      maxLineBytes: 1_024,
      logger: captureLogs().logger,
      clock: new ManualClock(),
      handler: async () => {},
    });
    await withTimeout(server.close(), 'close');
  });

  it('rejects listen() on a port in use', async () => {
    const harness = await startServer();
    const clash = new AgiServer({
      host: '127.0.0.1',
      port: harness.port,
      allow: ['127.0.0.1'],
      commandTimeoutMs: 1_000,
      maxLineBytes: 1_024,
      logger: captureLogs().logger,
      clock: new ManualClock(),
      handler: async () => {},
    });
    await expect(clash.listen()).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await clash.close();
  });
});
