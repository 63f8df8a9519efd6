import { describe, expect, it, onTestFinished } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { parseConfig } from '../../src/config/load.js';
import { createLogger, silentLogger } from '../../src/log.js';
import { startServer } from '../../src/main.js';
import { simulateCall } from '../../src/simulate/simulate.js';
import { runAgiPeer } from '../../src/simulate/asterisk-peer.js';
import { Kind } from '../../src/asterisk/audiosocket/protocol.js';
import { FakeAudioSocketClient } from '../support/fake-audiosocket-client.js';
import { FakeAgiClient, defaultAgiEnv } from '../support/fake-agi-client.js';
import { sine } from '../support/signal.js';

function captureLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: createLogger('debug', stream), lines };
}

async function start(yaml: string, logger = silentLogger()) {
  const config = parseConfig(`agi: { port: 0 }\nstatus: { enabled: false }\nagents:\n  echo: { provider: echo, delayMs: 0 }\n${yaml}`, 't.yaml', {});
  const server = await startServer(config, { logger });
  onTestFinished(() => server.close());
  return server;
}

async function assign(agiPort: number, agent = 'echo') {
  const { variables } = await runAgiPeer({ host: '127.0.0.1', port: agiPort, script: `ai-call?agent=${agent}` });
  return variables;
}

describe('AudioSocket admission: the UUID is a single-use capability', () => {
  it('refuses and logs an unknown UUID, and a second connection with a used one', async () => {
    const { logger, lines } = captureLogger();
    const server = await start('audiosocket: { port: 0 }\n', logger);
    const stranger = await FakeAudioSocketClient.open({ port: server.audiosocket!.port, uuid: randomUUID() });
    await stranger.waitFor(() => stranger.closed, 2000, 'refusal');
    expect(stranger.received).toHaveLength(0);
    expect(lines.some((l) => JSON.stringify(l).includes('AUDIOSOCKET_UNKNOWN_UUID'))).toBe(true);

    const vars = await assign(server.agi.port);
    const first = await FakeAudioSocketClient.open({ port: server.audiosocket!.port, uuid: vars['AI_UUID']! });
    await first.waitFor(() => first.received.length > 2, 2000, 'audio');
    const second = await FakeAudioSocketClient.open({ port: server.audiosocket!.port, uuid: vars['AI_UUID']!.toUpperCase() });
    await second.waitFor(() => second.closed, 2000, 'reuse refusal');
    expect(second.received).toHaveLength(0);
    expect(first.closed).toBe(false);
    first.destroy();
  });

  it('a call that ended before its media connected gets 00 00 00 on its one connection, then the result', async () => {
    const server = await start('audiosocket: { port: 0 }\n');
    const vars = await assign(server.agi.port);
    const uuid = vars['AI_UUID']!;
    expect(server.registry.hangup(uuid, 'ended by the admin before media')).toBe(true);
    expect(server.registry.get(uuid)).toBeUndefined();

    const late = await FakeAudioSocketClient.open({ port: server.audiosocket!.port, uuid });
    await late.waitForClose(2000);
    // Exactly a hang-up message and nothing else: AudioSocket() returns and the dialplan goes on.
    expect(late.receivedBytes()).toEqual(Buffer.from([0x00, 0x00, 0x00]));
    expect((await server.registry.outcome(uuid, 100))?.result).toBe('COMPLETED');

    const again = await FakeAudioSocketClient.open({ port: server.audiosocket!.port, uuid });
    await again.waitForClose(2000);
    expect(again.received).toHaveLength(0);
  });

  it('garbage bytes close only their own connection; a call beside them goes on', async () => {
    const server = await start('audiosocket: { port: 0 }\n');
    const vars = await assign(server.agi.port);
    const good = await FakeAudioSocketClient.open({ port: server.audiosocket!.port, uuid: vars['AI_UUID']! });
    const vars2 = await assign(server.agi.port);
    const bad = await FakeAudioSocketClient.open({ port: server.audiosocket!.port, uuid: vars2['AI_UUID']! });
    await bad.waitFor(() => bad.received.length > 0, 2000, 'accepted');
    bad.sendRaw(Buffer.from([0x42, 0xff, 0xff, 1, 2, 3]));
    await bad.waitFor(() => bad.closed, 2000, 'bad connection closed');
    const before = good.received.length;
    good.sendAudio(Kind.Slin8, sine(1000, 20, 8000));
    await good.waitFor(() => good.received.length > before + 5, 2000, 'good call keeps getting frames');
    expect(good.closed).toBe(false);
    const outcome = await server.registry.outcome(vars2['AI_UUID']!, 1000);
    expect(outcome?.result).toBe('AGENT_ERROR');
    expect(outcome?.error).toContain('AUDIOSOCKET_BAD_FRAME');
    good.destroy();
  });

  it('an oversize length field closes that connection with a logged error', async () => {
    const { logger, lines } = captureLogger();
    const server = await start('audiosocket: { port: 0, maxPayloadBytes: 4096 }\n', logger);
    const vars = await assign(server.agi.port);
    const client = await FakeAudioSocketClient.open({ port: server.audiosocket!.port, uuid: vars['AI_UUID']! });
    client.sendRaw(Buffer.from([0x10, 0xff, 0x00]));
    await client.waitFor(() => client.closed, 2000, 'closed');
    expect(lines.some((l) => JSON.stringify(l).includes('AUDIOSOCKET_BAD_FRAME'))).toBe(true);
  });
});

describe('pool mode: a port per call', () => {
  it('hands out distinct ports, answers BUSY when exhausted, releases on hang-up and on never-connect', async () => {
    const from = 20_000 + Math.floor(Math.random() * 20_000);
    const server = await start(`audiosocket: { mode: pool, pool: { from: ${from}, to: ${from + 1} }, uuidTtlMs: 600 }\n`);
    const a = await assign(server.agi.port);
    const b = await assign(server.agi.port);
    expect(a['AI_STATUS']).toBe('READY');
    expect(b['AI_STATUS']).toBe('READY');
    const portA = Number(a['AI_AUDIOSOCKET']!.split(':')[1]);
    const portB = Number(b['AI_AUDIOSOCKET']!.split(':')[1]);
    expect(new Set([portA, portB])).toEqual(new Set([from, from + 1]));
    const c = await assign(server.agi.port);
    expect(c['AI_STATUS']).toBe('BUSY');
    expect(c['AI_ERROR']).toContain('AUDIOSOCKET_POOL_EXHAUSTED');

    // Call A connects and hangs up: its port comes back.
    const media = await FakeAudioSocketClient.open({ port: portA, uuid: a['AI_UUID']! });
    await media.waitFor(() => media.received.length > 2, 2000, 'audio on the pool port');
    media.end();
    expect((await server.registry.outcome(a['AI_UUID']!, 2000))?.result).toBe('CALLER_HANGUP');
    // Call B never connects: after uuidTtlMs it times out and its port comes back too.
    expect((await server.registry.outcome(b['AI_UUID']!, 2000))?.result).toBe('TIMEOUT');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const d = await assign(server.agi.port);
    const e = await assign(server.agi.port);
    expect([d['AI_STATUS'], e['AI_STATUS']]).toEqual(['READY', 'READY']);
  });
});

describe('static bindings (dialers without AGI)', () => {
  it('a connection on a bound port gets the agent with the dialer UUID as call id', async () => {
    const port = 40_000 + Math.floor(Math.random() * 10_000);
    const server = await start(`audiosocket: { port: 0, bindings: [{ port: ${port}, agent: echo }] }\n`);
    const uuid = randomUUID();
    const client = await FakeAudioSocketClient.open({ port, uuid });
    // The agent starts while silence already flows; the caller keeps talking as a phone line does.
    const talking = setInterval(() => client.sendAudio(Kind.Slin8, sine(1000, 20, 8000)), 20);
    onTestFinished(() => clearInterval(talking));
    await client.waitFor(() => client.received.some((m) => m.payload.some((b) => b !== 0)), 2000, 'echo');
    expect(server.registry.get(uuid)?.source).toBe('binding');
    client.end();
    expect((await server.registry.outcome(uuid, 2000))?.result).toBe('CALLER_HANGUP');
  });
});

describe('caller hang-up at any point releases everything', () => {
  it('during the AGI, before media, during media: no live call, no clock slot left', async () => {
    const server = await start('audiosocket: { port: 0, uuidTtlMs: 500 }\n');
    // 1. The AGI client vanishes right after its environment block.
    const vanishing = await FakeAgiClient.connect(server.agi.port);
    await vanishing.sendEnv(defaultAgiEnv({ agi_network_script: 'ai-call?agent=echo' }));
    vanishing.reset();
    // 2. Assigned, but Asterisk never connects the media.
    const orphan = await assign(server.agi.port);
    // 3. Connected media, then the caller hangs up mid-call.
    const summary = await simulateCall({ agiHost: '127.0.0.1', agiPort: server.agi.port, agent: 'echo', mode: 'assign', audio: sine(1000, 200, 8000), sampleRateHz: 8000, hangupAfterMs: 300 });
    expect(summary.resultVariables['AI_RESULT']).toBe('CALLER_HANGUP');
    expect((await server.registry.outcome(orphan['AI_UUID']!, 2000))?.result).toBe('TIMEOUT');
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(server.registry.liveCount).toBe(0);
    expect(server.frameClock.size).toBe(0);
    // The server still takes calls.
    expect((await assign(server.agi.port))['AI_STATUS']).toBe('READY');
  });
});

describe('limits and draining', () => {
  it('answers BUSY past calls.maxConcurrent and an agent maxConcurrent, DRAINING after drain()', async () => {
    const server = await start('audiosocket: { port: 0 }\ncalls: { maxConcurrent: 2 }\n');
    expect((await assign(server.agi.port))['AI_STATUS']).toBe('READY');
    expect((await assign(server.agi.port))['AI_STATUS']).toBe('READY');
    const third = await assign(server.agi.port);
    expect(third['AI_STATUS']).toBe('BUSY');
    expect(third['AI_ERROR']).toContain('calls.maxConcurrent');
    server.registry.drain();
    expect((await assign(server.agi.port))['AI_STATUS']).toBe('DRAINING');
  });

  it('per-agent maxConcurrent', async () => {
    const config = parseConfig('agi: { port: 0 }\naudiosocket: { port: 0 }\nstatus: { enabled: false }\nagents:\n  echo: { provider: echo, maxConcurrent: 1 }\n', 't', {});
    const server = await startServer(config, { logger: silentLogger() });
    onTestFinished(() => server.close());
    expect((await assign(server.agi.port))['AI_STATUS']).toBe('READY');
    const second = await assign(server.agi.port);
    expect(second['AI_STATUS']).toBe('BUSY');
    expect(second['AI_ERROR']).toContain('agent echo');
  });

  it('a result request for a call whose media never connected ends it at once with TIMEOUT', async () => {
    const server = await start('audiosocket: { port: 0 }\n');
    const assigned = await assign(server.agi.port);
    const startedMs = Date.now();
    const { variables } = await runAgiPeer({ host: '127.0.0.1', port: server.agi.port, script: `ai-call/result?uuid=${assigned['AI_UUID']}` });
    expect(Date.now() - startedMs).toBeLessThan(1000);
    expect(variables).toMatchObject({ AI_RESULT: 'TIMEOUT', AI_ERROR: expect.stringContaining('AudioSocket never connected') });
    expect(server.registry.liveCount).toBe(0);
  });

  it('the result AGI reports CALL_NOT_FOUND for an unknown UUID', async () => {
    const server = await start('audiosocket: { port: 0 }\n');
    const { variables } = await runAgiPeer({ host: '127.0.0.1', port: server.agi.port, script: `ai-call/result?uuid=${randomUUID()}` });
    expect(variables).toMatchObject({ AI_RESULT: 'AGENT_ERROR', AI_DURATION: '0', AI_ERROR: expect.stringContaining('CALL_NOT_FOUND') });
  });
});
