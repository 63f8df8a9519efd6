import { Command } from 'commander';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import type { ElevenLabsAgentConfig } from '../../../src/config/schema.js';
import {
  checkAgents,
  checkAgentSettings,
  formatAgentCheckReport,
  readRemoteAgent,
  type AgentCheckFinding,
  type AgentCheckReport,
} from '../../../src/agent/elevenlabs/agents-check.js';
import { registerAgentCommands, type AgentCheckJson } from '../../../src/agent/elevenlabs/commands.js';
import { FakeElevenLabs, PLATFORM_DEFAULT_CLIENT_EVENTS, type FakeAgent } from '../../support/fake-elevenlabs.js';

const CLIENT_TOOLS: FakeAgent['tools'] = [
  { name: 'transfer_call', type: 'client' },
  { name: 'hangup_call', type: 'client' },
  { name: 'send_dtmf', type: 'client' },
  { name: 'end_call', type: 'system' },
];

/** An agent set up the way docs/elevenlabs.md asks, for the 8 kHz AudioSocket() app. */
const GOOD_AGENT: FakeAgent = {
  agentId: 'agent_good',
  name: 'Front desk',
  private: true,
  userInputAudioFormat: 'pcm_8000',
  agentOutputAudioFormat: 'pcm_8000',
  tools: CLIENT_TOOLS,
  allowedOverrides: { firstMessage: true },
};

async function startFake(...agents: FakeAgent[]): Promise<FakeElevenLabs> {
  const fake = await FakeElevenLabs.start({ agents });
  onTestFinished(() => fake.close());
  return fake;
}

function configFor(agentsYaml: string, env: Record<string, string>) {
  return parseConfig(`agents:\n  echo: { provider: echo }\n${agentsYaml}`, 'test.yaml', env);
}

function envOf(fake: FakeElevenLabs, apiKey = fake.apiKey): Record<string, string> {
  return { ELEVENLABS_BASE_URL: fake.baseUrl, ELEVENLABS_API_KEY: apiKey };
}

const pick = (findings: readonly AgentCheckFinding[], severity: AgentCheckFinding['severity'], topic?: AgentCheckFinding['topic']) =>
  findings.filter((f) => f.severity === severity && (topic === undefined || f.topic === topic));

describe('checkAgents against the REST API', () => {
  it('reports a correctly set up agent as ok on every topic, with one GET per agent and the key only in the header', async () => {
    const fake = await startFake(GOOD_AGENT);
    const config = configFor(
      `  front:\n    provider: elevenlabs\n    agentId: agent_good\n    transfers: { operator: "from-internal,100,1" }\n    overrides: { firstMessage: "Hello {{callerName}}" }\n`,
      envOf(fake),
    );
    const reports = await checkAgents(config);
    expect(reports).toHaveLength(1); // the echo agent is not an ElevenLabs agent
    const [report] = reports as [AgentCheckReport];
    expect(report).toMatchObject({ agent: 'front', agentId: 'agent_good', remoteName: 'Front desk', origin: fake.baseUrl, severity: 'ok' });
    expect(pick(report.findings, 'error')).toEqual([]);
    expect(pick(report.findings, 'warning')).toEqual([]);
    expect(new Set(report.findings.map((f) => f.topic))).toEqual(new Set(['audio', 'events', 'overrides', 'tools', 'auth']));
    expect(report.findings.find((f) => f.topic === 'audio')?.message).toContain('passes through');
    expect(fake.restRequests).toEqual([{ method: 'GET', path: '/v1/convai/agents/agent_good', query: {}, apiKeyValid: true, status: 200 }]);
    expect(JSON.stringify(reports)).not.toContain(fake.apiKey);
  });

  it('finds what breaks calls on an agent left at the platform defaults', async () => {
    const fake = await startFake({
      agentId: 'agent_default',
      private: true, // enable_auth on
      clientEvents: PLATFORM_DEFAULT_CLIENT_EVENTS,
      tools: [{ name: 'hangup_call', type: 'client' }, { name: 'transfer_call', type: 'webhook' }, { name: 'lookup_order', type: 'client' }],
      allowedOrigins: ['https://pbx.example.com'],
      allowedOverrides: { firstMessage: true },
    });
    const config = configFor(
      `  sales:\n    provider: elevenlabs\n    agentId: agent_default\n    private: false\n    transfers: { operator: "from-internal,100,1" }\n    overrides: { firstMessage: "Hi", language: en, voiceId: v1 }\n`,
      envOf(fake),
    );
    const [report] = (await checkAgents(config)) as [AgentCheckReport];
    expect(report.severity).toBe('error');
    const errors = pick(report.findings, 'error');
    const messages = errors.map((f) => f.message).join('\n');
    // client_tool_call is missing while the agent has client tools and transfers are configured.
    expect(messages).toMatch(/client event client_tool_call is not enabled/);
    // Overrides used but not enabled: one error each, none for the enabled first message.
    expect(errors.filter((f) => f.topic === 'overrides').map((f) => f.message.split(' ')[0])).toEqual(['overrides.language', 'overrides.voiceId']);
    expect(messages).toContain('AGENT_OVERRIDE_REJECTED');
    expect(messages).toMatch(/transfer_call is a webhook tool/);
    expect(messages).toMatch(/requires authentication but the config has private: false/);
    expect(messages).toMatch(/allowlist \(pbx\.example\.com\) and requires an Origin header/);
    const warnings = pick(report.findings, 'warning');
    // pcm_16000 both ways on the 8 kHz line: a resample, with the wideband alternative.
    expect(pick(report.findings, 'warning', 'audio')).toHaveLength(2);
    expect(pick(report.findings, 'warning', 'audio')[1]!.message).toContain('16000 → 8000 Hz');
    expect(pick(report.findings, 'warning', 'audio')[1]!.fix).toContain('wideband: true');
    expect(warnings.map((f) => f.message).join('\n')).toMatch(/agent_tool_response is not enabled[^\n]*end_call/);
    expect(warnings.map((f) => f.message).join('\n')).toMatch(/agent_response_correction is not enabled/);
    expect(warnings.map((f) => f.message).join('\n')).toMatch(/no send_dtmf tool/);
    expect(warnings.map((f) => f.message).join('\n')).toMatch(/client tool lookup_order is not one ai-call executes/);
    // interruption, user_transcript and agent_response are in the platform default: nothing said.
    expect(report.findings.some((f) => /\binterruption\b/.test(f.message))).toBe(false);
  });

  it('sends nothing without an API key and says so for every ElevenLabs agent', async () => {
    const fake = await startFake(GOOD_AGENT);
    const config = configFor(`  a: { provider: elevenlabs, agentId: agent_good }\n  b: { provider: elevenlabs, agentId: agent_good, private: false }\n`, {
      ELEVENLABS_BASE_URL: fake.baseUrl,
    });
    const reports = await checkAgents(config);
    expect(reports.map((r) => [r.agent, r.severity, r.findings.length])).toEqual([
      ['a', 'error', 1],
      ['b', 'error', 1],
    ]);
    expect(reports[0]!.findings[0]).toMatchObject({ topic: 'api', fix: 'set ELEVENLABS_API_KEY in the environment of ai-call' });
    expect(reports[0]!.findings[0]!.message).toContain('private agent');
    expect(fake.restRequests).toEqual([]);
  });

  it.each([
    [401, 'wrong-key', /refused the API key \(HTTP 401: invalid_api_key: Invalid API key\)/, /ELEVENLABS_API_KEY/],
    [404, undefined, /no agent agent_missing at .* \(HTTP 404: agent_not_found: Agent not found\)/, /residency/],
    [403, undefined, /may not read agent agent_missing \(HTTP 403/, /permission/],
    [500, undefined, /GET agent agent_missing failed \(HTTP 500/, /try again later/],
  ] as const)('maps HTTP %i to a clear error without the key', async (status, key, message, fix) => {
    const fake = await startFake(GOOD_AGENT);
    if (status === 403 || status === 500) fake.failAgentConfig(status);
    const secret = key === undefined ? fake.apiKey : 'sk_wrong_key_0123456789';
    const config = configFor(`  x: { provider: elevenlabs, agentId: agent_missing }\n`, envOf(fake, secret));
    const [report] = (await checkAgents(config)) as [AgentCheckReport];
    expect(report.severity).toBe('error');
    expect(report.findings).toHaveLength(1);
    expect(report.findings[0]!.topic).toBe('api');
    expect(report.findings[0]!.message).toMatch(message);
    expect(report.findings[0]!.fix).toMatch(fix);
    expect(JSON.stringify(report)).not.toContain(secret);
  });

  it('reports an unreachable API and a timeout as findings, never as a rejection', async () => {
    const fake = await startFake(GOOD_AGENT);
    const config = configFor(`  x: { provider: elevenlabs, agentId: agent_good }\n`, envOf(fake));
    await fake.close();
    const [down] = (await checkAgents(config)) as [AgentCheckReport];
    expect(down.findings[0]!.message).toMatch(/cannot reach http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    const hang: typeof fetch = (_url, init) =>
      new Promise((_resolve, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal?.reason)));
    const [slow] = (await checkAgents(config, { fetch: hang, timeoutMs: 50 })) as [AgentCheckReport];
    expect(slow.findings[0]!.message).toMatch(/did not answer within 50 ms/);
  });

  it('reports a base URL that is not http(s) without printing it', async () => {
    const config = configFor(`  x: { provider: elevenlabs, agentId: agent_good }\n`, { ELEVENLABS_BASE_URL: 'ftp://user:hunter2@proxy.example', ELEVENLABS_API_KEY: 'k' });
    const [report] = (await checkAgents(config)) as [AgentCheckReport];
    expect(report).toMatchObject({ origin: '(invalid elevenlabs.baseUrl)', severity: 'error' });
    expect(report.findings[0]!.message).toContain('CONFIG_INVALID');
    expect(JSON.stringify(report)).not.toContain('hunter2');
  });

  it('checks the allowlist against the configured origin', async () => {
    const fake = await startFake(
      { ...GOOD_AGENT, agentId: 'agent_allow', allowedOrigins: ['https://pbx.example.com'] },
      { ...GOOD_AGENT, agentId: 'agent_loose', allowedOrigins: ['https://pbx.example.com'], requireOriginHeader: false },
    );
    const config = configFor(
      `  match: { provider: elevenlabs, agentId: agent_allow, origin: "https://pbx.example.com/x" }\n` +
        `  other: { provider: elevenlabs, agentId: agent_allow, origin: "https://evil.example.net" }\n` +
        `  loose: { provider: elevenlabs, agentId: agent_loose }\n`,
      envOf(fake),
    );
    const reports = await checkAgents(config);
    const origin = (name: string) => reports.find((r) => r.agent === name)!.findings.filter((f) => f.topic === 'origin');
    expect(origin('match')).toEqual([{ severity: 'ok', topic: 'origin', message: "origin https://pbx.example.com is in the agent's allowlist" }]);
    expect(origin('other')[0]).toMatchObject({ severity: 'error', fix: expect.stringContaining('add evil.example.net to the allowlist') });
    expect(origin('loose')[0]).toMatchObject({ severity: 'warning', fix: 'set origin: https://pbx.example.com (any allowlisted host) on this agent in ai-call\'s config' });
  });

  it('cannot verify tools listed only by id, and says so', async () => {
    const fake = await startFake({ ...GOOD_AGENT, omitToolDefinitions: true });
    const config = configFor(`  x: { provider: elevenlabs, agentId: agent_good }\n`, envOf(fake));
    const [report] = (await checkAgents(config)) as [AgentCheckReport];
    expect(report.findings.filter((f) => f.topic === 'tools')).toEqual([
      expect.objectContaining({ severity: 'warning', message: expect.stringContaining('4 tool(s) only by id') }),
    ]);
  });
});

describe('checkAgentSettings: audio formats', () => {
  const agent = (wideband: boolean): ElevenLabsAgentConfig =>
    configFor(`  x: { provider: elevenlabs, agentId: a, wideband: ${wideband} }\n`, {}).agents['x'] as ElevenLabsAgentConfig;
  const remote = (format: string) =>
    readRemoteAgent({ conversation_config: { asr: { user_input_audio_format: format }, tts: { agent_output_audio_format: format } } });
  const audio = (format: string, wideband: boolean) => checkAgentSettings(agent(wideband), remote(format)).filter((f) => f.topic === 'audio');

  it.each([
    ['pcm_8000', false, 'ok', /passes through the 8 kHz AudioSocket\(\) line unchanged/],
    ['pcm_16000', true, 'ok', /passes through the 16 kHz line/],
    ['pcm_16000', false, 'warning', /resampling 8000 → 16000 Hz/],
    ['pcm_8000', true, 'warning', /resampling 16000 → 8000 Hz/],
    ['ulaw_8000', false, 'warning', /G\.711 µ-law coding \(lossy\)/],
    ['pcm_24000', false, 'warning', /resampling 8000 → 24000 Hz on every frame of the 8 kHz AudioSocket\(\) line$/],
    ['pcm_22050', false, 'warning', /non-integer ratio/],
    ['opus_48000', false, 'error', /cannot carry: every call fails at start with AGENT_UNSUPPORTED_FORMAT/],
  ] as const)('%s with wideband %s: %s', (format, wideband, severity, message) => {
    const [input, output] = audio(format, wideband);
    expect(input!.severity).toBe(severity);
    expect(output!.severity).toBe(severity);
    expect(input!.message).toMatch(message);
    if (severity !== 'ok') expect(input!.fix).toContain(wideband ? 'pcm_16000' : 'pcm_8000');
  });

  it('an agent without interruption has barge-in off: an error', () => {
    const findings = checkAgentSettings(agent(false), readRemoteAgent({ conversation_config: { conversation: { client_events: ['audio', 'ping', 'conversation_initiation_metadata'] } } }));
    const events = findings.filter((f) => f.topic === 'events');
    expect(events.filter((f) => f.severity === 'error').map((f) => f.message.split(' ')[2])).toEqual(['interruption']);
    // No transfers and no client tools: a missing client_tool_call is only a warning.
    expect(events.find((f) => f.message.includes('client_tool_call'))?.severity).toBe('warning');
  });
});

describe('formatAgentCheckReport and the agents check command', () => {
  it('prints one block per agent with fixes, and a summary', () => {
    const text = formatAgentCheckReport([
      {
        agent: 'sales',
        agentId: 'agent_1',
        remoteName: 'Sales',
        origin: 'https://api.elevenlabs.io',
        severity: 'error',
        findings: [
          { severity: 'ok', topic: 'audio', message: 'fine' },
          { severity: 'error', topic: 'events', message: 'broken', fix: 'mend it' },
        ],
      },
    ]);
    expect(text).toBe(
      [
        'sales: agent_1 "Sales" at https://api.elevenlabs.io',
        '  ok       audio      fine',
        '  error    events     broken',
        '                      fix: mend it',
        '  => 1 error, 0 warnings',
        '',
        '1 agent checked: 1 with errors, 0 with warnings only, 0 ok',
        '',
      ].join('\n'),
    );
    expect(formatAgentCheckReport([])).toBe('no elevenlabs agents configured: nothing to check\n');
  });

  async function run(args: string[], fake: FakeElevenLabs, yaml: string) {
    const out: string[] = [];
    const codes: number[] = [];
    const program = new Command('ai-call').exitOverride();
    registerAgentCommands(program, {
      configOf: () => ({ config: configFor(yaml, envOf(fake)), source: 'test.yaml' }),
      stdout: (t) => out.push(t),
      stderr: (t) => out.push(t),
      setExitCode: (c) => codes.push(c),
    });
    await program.parseAsync(['agents', 'check', ...args], { from: 'user' });
    return { out: out.join(''), codes };
  }

  it('exits 1 on an error finding and prints JSON with --json', async () => {
    const fake = await startFake(GOOD_AGENT, { ...GOOD_AGENT, agentId: 'agent_bad', clientEvents: PLATFORM_DEFAULT_CLIENT_EVENTS });
    const yaml = `  good: { provider: elevenlabs, agentId: agent_good, transfers: { op: "from-internal,100,1" } }\n  bad: { provider: elevenlabs, agentId: agent_bad, transfers: { op: "from-internal,100,1" } }\n`;
    const human = await run([], fake, yaml);
    expect(human.codes).toEqual([1]);
    expect(human.out).toMatch(/^agents check of test\.yaml\n\ngood: agent_good "Front desk" at http/);
    expect(human.out).toContain('2 agents checked: 1 with errors, 0 with warnings only, 1 ok');
    const json = await run(['--json'], fake, yaml);
    expect(json.codes).toEqual([1]);
    const doc = JSON.parse(json.out) as AgentCheckJson;
    expect(doc).toMatchObject({ source: 'test.yaml', ok: false, errors: 1, warnings: 2 });
    expect(doc.agents.map((a) => [a.agent, a.severity])).toEqual([
      ['good', 'ok'],
      ['bad', 'error'],
    ]);
    expect(json.out).not.toContain(fake.apiKey);
    // Warnings alone (transfer_call on the agent, no transfers here) do not fail the command.
    const warned = await run([], fake, `  good: { provider: elevenlabs, agentId: agent_good }\n`);
    expect(warned.out).toContain('1 agent checked: 0 with errors, 1 with warnings only, 0 ok');
    expect(warned.codes).toEqual([]);
  });
});
