/**
 * Real Asterisk, AudioSocket pool mode: every call gets a port of its own from audiosocket.pool.
 * Two concurrent echo calls with different tones must each hear only their own tone, on two
 * different ports of the range; a third call while both are up finds the pool full (BUSY); and
 * every port is closed again afterwards.
 */
import { createConnection } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { announceSkip, detectAsterisk } from './support/asterisk.js';
import { E2eStack, freePortRange } from './support/stack.js';
import { composeAudio } from './support/audio.js';
import { expectPacing, expectRealTime, expectTones, heardReport } from './support/checks.js';
import { goertzelPower, powerDb } from '../support/signal.js';

const detection = detectAsterisk();
announceSkip('pool', detection);

const ECHO_DELAY_MS = 200;

describe.skipIf(!detection.runtime)('e2e: AudioSocket pool mode', () => {
  let stack: E2eStack;
  let pool: { from: number; to: number };

  beforeAll(async () => {
    pool = await freePortRange(2);
    stack = await E2eStack.start({
      runtime: detection.runtime!,
      agents: { echo: { provider: 'echo', delayMs: ECHO_DELAY_MS } },
      routes: { '600': 'echo', '611': 'echo' },
      configExtra: { audiosocket: { host: '127.0.0.1', mode: 'pool', pool } },
    });
    process.stdout.write(`${stack.describe()}; pool ${pool.from}-${pool.to}\n`);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  it('carries two calls at once on two ports, each hearing only itself; a third finds the pool full', async () => {
    onTestFailed(() => console.error(stack.diagnostics()));
    const tones = [600, 1_300] as const;
    const calls = Promise.all(tones.map((hz) => stack.call({ exten: '600', callerPcm: composeAudio([{ ms: 300 }, { ms: 2_000, hz }, { ms: 500 }]) })));

    // While both are up: a third call on another route gets AI_STATUS=BUSY and never reaches media.
    await stack.waitFor('both calls to carry media', () => (stack.callEvents.filter((e) => e.type === 'media.connected').length >= 2 ? true : undefined), 10_000);
    const third = stack.nextCallId();
    await stack.prepareCaller(third, composeAudio([{ ms: 500 }]));
    await stack.asterisk.originate('Local/611@e2e-in/n', third, 'e2e-phone');
    const busy = await stack.waitFor('the third call to be refused', () =>
      stack.ami('VarSet').find((m) => (m.get('Channel') ?? '').startsWith('Local/611@e2e-in-') && m.get('Variable') === 'AI_STATUS' && m.get('Value') !== ''),
    );
    const busyChannel = busy.get('Channel')!;
    await stack.waitFor('the refused channel to hang up', () => stack.ami('Hangup', busyChannel)[0]);

    const placed = await calls;
    const ports = placed.map((c) => Number(c.vars['AI_AUDIOSOCKET']?.split(':')[1]));
    for (const [i, call] of placed.entries()) {
      const heard = heardReport(call);
      const own = tones[i]!;
      const other = tones[1 - i]!;
      const crosstalkDb = powerDb(goertzelPower(call.heard.pcm, 8_000, other), goertzelPower(call.heard.pcm, 8_000, own));
      console.log(`e2e pool call ${i + 1} (${own} Hz) on port ${ports[i]}: ${heard.line}; the other call's tone ${crosstalkDb.toFixed(0)} dB below`);
      expectTones(`call ${i + 1} heard`, heard.segments, [{ hz: own, ms: 2_000, startMs: [300 + ECHO_DELAY_MS - 20, 300 + ECHO_DELAY_MS + 250] }], heard.slackMs);
      expect(crosstalkDb).toBeLessThan(-40);
      expectRealTime(call, heard);
      expectPacing(heard);
      expect(call.outcome.result).toBe('CALLER_HANGUP');
    }
    expect(new Set(ports).size).toBe(2);
    for (const port of ports) expect(port >= pool.from && port <= pool.to, `port ${port} in ${pool.from}-${pool.to}`).toBe(true);

    const refused = stack.aiVars(busyChannel);
    console.log(`e2e pool third call: ${JSON.stringify(refused)}`);
    expect(refused['AI_STATUS']).toBe('BUSY');
    expect(refused['AI_ERROR']).toMatch(/AUDIOSOCKET_POOL_EXHAUSTED/);

    await stack.expectIdle();
    // Every port of the pool is closed again once its call ended.
    for (let port = pool.from; port <= pool.to; port++) expect(await refusesConnections(port), `port ${port} closed`).toBe(true);
  }, 40_000);
});

function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.setTimeout(1_000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}
