import { describe, expect, it, onTestFinished } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { startServer } from '../../src/main.js';
import { runAgiPeer } from '../../src/simulate/asterisk-peer.js';
import { simulateCall } from '../../src/simulate/simulate.js';
import { runCli } from '../../src/cli.js';
import { FakeAmi } from '../support/fake-ami.js';
import { FakeElevenLabs } from '../support/fake-elevenlabs.js';

const TOKEN = 'token-for-outbound-tests';

async function setup(agentsYaml = '  echo: { provider: echo }\n', env: Record<string, string> = {}) {
  const ami = await FakeAmi.start({ username: 'ai-call', secret: 'ami-secret-xyz' });
  onTestFinished(() => ami.close());
  const yaml = `agi: { port: 0 }
audiosocket: { port: 0 }
status: { port: 0 }
ami: { port: ${ami.port}, username: ai-call, outboundContext: from-internal, agentContext: ai-call-agent }
agents:
${agentsYaml}`;
  const config = parseConfig(yaml, 't.yaml', { AI_CALL_AMI_SECRET: 'ami-secret-xyz', AI_CALL_STATUS_TOKEN: TOKEN, ...env });
  const server = await startServer(config, { logger: silentLogger() });
  onTestFinished(() => server.close());
  const base = `http://127.0.0.1:${server.status!.port}`;
  await waitUntil(async () => ((await (await fetch(`${base}/healthz`)).json()) as { ami: string }).ami === 'connected');
  const post = (path: string, body: unknown, token = TOKEN) =>
    fetch(`${base}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { ami, server, base, post, yaml };
}

async function waitUntil(check: () => Promise<boolean> | boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('originate over AMI', () => {
  it('dials Local/<number>@<outbound context> and lands answered calls in the agent context, with validated variables', async () => {
    const { ami, post } = await setup();
    const res = await post('/calls', { to: '+15551234567', agent: 'echo', callerId: 'Acme Sales <15550001>', vars: { lead_id: '4711', note: 'a, "quoted" \\ value' }, wait: true });
    expect(res.status).toBe(200);
    const result = (await res.json()) as Record<string, unknown>;
    expect(result).toMatchObject({ outcome: 'answered', to: '+15551234567', agent: 'echo' });
    const action = ami.actionsNamed('Originate')[0]!;
    expect(action.get('Channel')).toBe('Local/+15551234567@from-internal');
    expect(action.get('Context')).toBe('ai-call-agent');
    expect(action.get('Exten')).toBe('echo');
    expect(action.get('Priority')).toBe('1');
    expect(action.get('Async')).toBe('true');
    expect(action.get('CallerID')).toBe('"Acme Sales" <15550001>');
    expect(action.get('ChannelId')).toBe(result['id']);
    expect(action.getAll('Variable')).toEqual([`AI_ORIGINATE_ID=${String(result['id'])}`, 'AI_AGENT=echo', 'AI_VAR_lead_id="4711"', 'AI_VAR_note="a, \\"quoted\\" \\\\ value"']);
  });

  it.each([
    ['busy', 'busy', /reason 5 \(busy\).*cause 17 User busy/],
    ['no-answer', 'no-answer', /reason 3/],
    ['congestion', 'congestion', /reason 8 \(congestion\)/],
    ['failed', 'failed', /reason 0 \(failed\)/],
  ] as const)('surfaces a %s originate as a clear result', async (script, outcome, reason) => {
    const { ami, post } = await setup();
    ami.scriptOriginate(/5550000/, script);
    const res = await post('/calls', { to: '5550000', agent: 'echo', wait: true });
    const body = (await res.json()) as Record<string, unknown>;
    expect(body['outcome']).toBe(outcome);
    expect(String(body['reason'])).toMatch(reason);
  });

  it('refuses input that could name another channel or inject AMI headers, before anything reaches AMI', async () => {
    const { ami, post } = await setup();
    const bad = [
      { to: '100\r\nAction: Originate', agent: 'echo' },
      { to: '100@evil-context', agent: 'echo' },
      { to: 'PJSIP/trunk/555', agent: 'echo' },
      { to: '100', agent: 'echo', via: 'from-internal,1' },
      { to: '100', agent: 'nobody' },
      { to: '100', agent: 'echo', vars: { 'X\r\nAction': '1' } },
      { to: '100', agent: 'echo', vars: { system__caller_id: '1' } },
      { to: '100', agent: 'echo', vars: { ok: 'line\r\nAction: Hangup' } },
      { to: '100', agent: 'echo', callerId: 'Eve <100>\r\nAction: Logoff' },
      { to: '100', agent: 'echo', timeoutS: 9999 },
      { to: '100', agent: 'echo', channel: 'PJSIP/x' },
    ];
    for (const body of bad) {
      const res = await post('/calls', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(((await res.json()) as { error: string }).error).toBe('INPUT_INVALID');
    }
    expect(ami.actionsNamed('Originate')).toHaveLength(0);
  });

  it('needs the bearer token; without AMI configured it answers 503', async () => {
    const { post } = await setup();
    expect((await post('/calls', { to: '100', agent: 'echo' }, 'wrong-token-0000000')).status).toBe(401);
    const config = parseConfig('agi: { port: 0 }\naudiosocket: { port: 0 }\nstatus: { port: 0 }\nagents:\n  echo: { provider: echo }\n', 't', { AI_CALL_STATUS_TOKEN: TOKEN });
    const plain = await startServer(config, { logger: silentLogger() });
    onTestFinished(() => plain.close());
    const res = await fetch(`http://127.0.0.1:${plain.status!.port}/calls`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` }, body: '{}' });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: string }).error).toBe('AMI_NOT_CONFIGURED');
  });

  it('an agent at its concurrency limit gets a clear 429, counting calls still ringing', async () => {
    const { ami, post } = await setup('  echo: { provider: echo, maxConcurrent: 1 }\n');
    ami.scriptOriginate(/.*/, 'silent');
    expect((await post('/calls', { to: '100', agent: 'echo' })).status).toBe(202);
    const second = await post('/calls', { to: '101', agent: 'echo' });
    expect(second.status).toBe(429);
    expect(((await second.json()) as { error: string }).error).toBe('CALL_BUSY');
    expect(ami.actionsNamed('Originate')).toHaveLength(1);
  });

  it('the answered call brings its variables to the ElevenLabs agent as dynamic variables', async () => {
    const fake = await FakeElevenLabs.start({ agents: [{ agentId: 'agent_x', private: true, pingIntervalMs: 500 }] });
    onTestFinished(() => fake.close());
    const { post, server } = await setup('  sales: { provider: elevenlabs, agentId: agent_x }\n', { ELEVENLABS_BASE_URL: fake.baseUrl, ELEVENLABS_API_KEY: fake.apiKey });
    const res = await post('/calls', { to: '5551234', agent: 'sales', vars: { first_name: 'Ann', lead_id: 4711 }, wait: true });
    const { id } = (await res.json()) as { id: string };
    // Asterisk now runs the agent context on the originated channel: its uniqueid is our ChannelId.
    const agi = await runAgiPeer({ host: '127.0.0.1', port: server.agi.port, script: 'ai-call?agent=sales', env: { agi_uniqueid: id, agi_channel: 'Local/5551234@from-internal-00000001;1' } });
    expect(agi.variables['AI_STATUS']).toBe('READY');
    const init = await fake.conversations[0]!.initiation;
    expect(init.dynamic_variables).toMatchObject({ first_name: 'Ann', lead_id: '4711', asterisk_uniqueid: id });
    server.registry.hangup(agi.variables['AI_UUID']!, 'test over');
  });
});

describe('call control over AMI', () => {
  it('hangs up, redirects and sets variables on a live call by its ai-call id; status shows the channel', async () => {
    const { ami, post, base, server } = await setup();
    const channel = ami.addChannel({ name: 'Local/simulate@ai-call-sim-00000001;2', uniqueid: '1795534918.7' });
    const ws = new WebSocket(`${base.replace('http', 'ws')}/status`);
    const messages: Array<Record<string, unknown>> = [];
    ws.on('message', (data) => messages.push(JSON.parse(String(data)) as Record<string, unknown>));
    await new Promise((resolve) => ws.once('open', resolve));
    onTestFinished(() => ws.close());

    const call = simulateCall({ agiHost: '127.0.0.1', agiPort: server.agi.port, agent: 'echo', mode: 'assign', audio: Buffer.alloc(0), sampleRateHz: 8000, hangupAfterMs: 4000 });
    await waitUntil(() => server.registry.list().some((c) => c.state === 'live'));
    const callId = server.registry.list()[0]!.callId;
    const uniqueid = server.registry.list()[0]!.uniqueid!;
    channel.uniqueid = uniqueid;
    ami.emitEvent('Newstate', { Channel: channel.name, ChannelState: '6', ChannelStateDesc: 'Up', Uniqueid: uniqueid });
    await waitUntil(async () => {
      const listed = (await (await fetch(`${base}/calls`)).json()) as { calls: Array<{ asterisk?: { stateDesc: string } }> };
      return listed.calls[0]?.asterisk?.stateDesc === 'Up';
    });
    expect(messages.some((m) => m['type'] === 'channel' && m['callId'] === callId && m['stateDesc'] === 'Up')).toBe(true);

    const vars = await post(`/calls/${callId}/variables`, { AI_RESULT: 'COMPLETED', CDR_NOTE: 'ok' });
    expect(vars.status).toBe(200);
    expect(ami.actionsNamed('Setvar').map((a) => [a.get('Channel'), a.get('Variable'), a.get('Value')])).toEqual([
      [channel.name, 'AI_RESULT', 'COMPLETED'],
      [channel.name, 'CDR_NOTE', 'ok'],
    ]);
    expect((await post(`/calls/${callId}/redirect`, { context: 'from-internal', exten: '100' })).status).toBe(200);
    expect(ami.actionsNamed('Redirect')[0]?.get('Context')).toBe('from-internal');
    expect((await post(`/calls/${callId}/redirect`, { context: 'x;Hangup()', exten: '1' })).status).toBe(400);

    const res = await fetch(`${base}/calls/${callId}?channel=1`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    expect(ami.actionsNamed('Hangup')[0]?.get('Channel')).toBe(channel.name);
    server.registry.hangup(callId, 'test over');
    await call;
    const unknown = await fetch(`${base}/calls/00000000-0000-4000-8000-000000000000?channel=1`, { method: 'DELETE', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(unknown.status).toBe(404);
  });

  it('ai-call originate on the command line goes through the running server and prints the outcome', async () => {
    const { ami, yaml, server } = await setup();
    const dir = mkdtempSync(join(tmpdir(), 'ai-call-cli-'));
    const file = join(dir, 'ai-call.yaml');
    writeFileSync(file, yaml);
    let out = '';
    let err = '';
    const io = { env: { AI_CALL_STATUS_TOKEN: TOKEN, AI_CALL_AMI_SECRET: 'x' }, stdout: (t: string) => (out += t), stderr: (t: string) => (err += t) };
    const server2 = `http://127.0.0.1:${server.status!.port}`;
    ami.scriptOriginate(/5559999/, 'busy');
    process.exitCode = 0;
    const code = await runCli(['--config', file, 'originate', '--to', '5559999', '--agent', 'echo', '--var', 'lead_id=42', '--server', server2], io);
    expect(code).toBe(2);
    process.exitCode = 0;
    expect(out).toMatch(/outcome\s+busy/);
    expect(ami.actionsNamed('Originate')[0]?.getAll('Variable')).toContain('AI_VAR_lead_id="42"');
    const bad = await runCli(['--config', file, 'originate', '--to', '12;3', '--agent', 'echo', '--server', server2], io);
    expect(bad).toBe(1);
    expect(err).toContain('INPUT_INVALID');
  });
});
