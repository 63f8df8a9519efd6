import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, parseConfig, redactConfig } from '../../src/config/load.js';
import { BridgeError } from '../../src/errors.js';

function configError(fn: () => unknown): BridgeError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BridgeError);
    return err as BridgeError;
  }
  throw new Error('expected a config error');
}

describe('loadConfig', () => {
  it('runs the embedded default with no file: loopback ports and the echo agent', () => {
    const { config, source } = loadConfig({ env: {} });
    expect(source).toBe('(embedded default)');
    expect(config.agi).toMatchObject({ host: '127.0.0.1', port: 4573 });
    expect(config.audiosocket).toMatchObject({ host: '127.0.0.1', port: 9092, mode: 'shared' });
    expect(config.status).toMatchObject({ host: '127.0.0.1', port: 9093 });
    expect(Object.keys(config.agents)).toEqual(['echo']);
    expect(config.agents['echo']?.provider).toBe('echo');
  });

  it('returns a deeply frozen object', () => {
    const { config } = loadConfig({ env: {} });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.agi.allow)).toBe(true);
    expect(() => {
      (config.agi as { port: number }).port = 1;
    }).toThrow(TypeError);
  });

  it('reads the file named by AI_CALL_CONFIG', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ai-call-config-'));
    const file = join(dir, 'ai-call.yaml');
    writeFileSync(file, 'agi: { port: 14573 }\nagents:\n  a: { provider: echo, delayMs: 0 }\n');
    const { config, source } = loadConfig({ env: { AI_CALL_CONFIG: file } });
    expect(source).toBe(file);
    expect(config.agi.port).toBe(14573);
  });

  it('names a missing file', () => {
    const err = configError(() => loadConfig({ file: '/nonexistent/ai-call.yaml', env: {} }));
    expect(err.code).toBe('CONFIG_NOT_FOUND');
    expect(err.message).toContain('/nonexistent/ai-call.yaml');
  });
});

describe('parseConfig errors name file, line:col, key path and expectation', () => {
  it('reports a wrong type at its line', () => {
    const err = configError(() => parseConfig('agents:\n  echo: { provider: echo }\naudiosocket:\n  port: "ninety"\n', 'x.yaml', {}));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toMatch(/x\.yaml:4:9 audiosocket\.port: .*number/);
  });

  it('refuses unknown keys (typos do not pass silently)', () => {
    const err = configError(() => parseConfig('agents:\n  echo: { provider: echo }\nagi: { prot: 1 }\n', 'x.yaml', {}));
    expect(err.message).toMatch(/x\.yaml:3:\d+ agi: .*prot/);
  });

  it('refuses a route to an agent that does not exist', () => {
    const yaml = 'agents:\n  echo: { provider: echo }\nroutes:\n  - { context: from-pstn, extension: "600", agent: sales }\n';
    const err = configError(() => parseConfig(yaml, 'x.yaml', {}));
    expect(err.message).toContain('routes.0.agent: no agent named "sales"');
    expect(err.message).toMatch(/x\.yaml:4:\d+/);
  });

  it('refuses an empty agent list and a YAML syntax error', () => {
    expect(configError(() => parseConfig('agents: {}\n', 'x.yaml', {})).message).toContain('at least one agent');
    expect(configError(() => parseConfig('agents: [\n', 'x.yaml', {})).message).toMatch(/x\.yaml:\d+:\d+: YAML syntax error/);
  });

  it('refuses an agent name that could not appear in dialplan', () => {
    const err = configError(() => parseConfig('agents:\n  "bad;name": { provider: echo }\n', 'x.yaml', {}));
    expect(err.message).toContain('agents.bad;name');
  });
});

describe('secrets and ${VAR} references', () => {
  it('loads an ami: section without its secret (dialplan commands need none); serve refuses it', async () => {
    const config = parseConfig('agi: { port: 0 }\naudiosocket: { port: 0 }\nstatus: { enabled: false }\nami: { username: u }\nagents:\n  echo: { provider: echo }\n', 'x.yaml', {});
    expect(config.ami?.secret).toBeUndefined();
    const { startServer } = await import('../../src/main.js');
    const { silentLogger } = await import('../../src/log.js');
    await expect(startServer(config, { logger: silentLogger() })).rejects.toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringContaining('AI_CALL_AMI_SECRET') });
  });

  const elevenlabsAgent = 'agents:\n  sales: { provider: elevenlabs, agentId: agent_123 }\n';

  it('takes secrets from the environment', () => {
    const yaml = `${elevenlabsAgent}ami: { username: ai-call }\n`;
    const config = parseConfig(yaml, 'x.yaml', {
      ELEVENLABS_API_KEY: 'sk_test_key',
      AI_CALL_AMI_SECRET: 'ami-secret-value',
      AI_CALL_STATUS_TOKEN: 'status-token-123',
      ELEVENLABS_BASE_URL: 'http://127.0.0.1:9999',
    });
    expect(config.elevenlabs.apiKey).toBe('sk_test_key');
    expect(config.elevenlabs.baseUrl).toBe('http://127.0.0.1:9999');
    expect(config.ami?.secret).toBe('ami-secret-value');
    expect(config.status.token).toBe('status-token-123');
  });

  it('substitutes ${VAR} in any string and names an unset one with its line', () => {
    const yaml = `${elevenlabsAgent}ami: { username: "\${AMI_USER}", secret: "\${MY_SECRET}" }\n`;
    const config = parseConfig(yaml, 'x.yaml', { AMI_USER: 'bridge', MY_SECRET: 's3cret' });
    expect(config.ami).toMatchObject({ username: 'bridge', secret: 's3cret' });
    const err = configError(() => parseConfig(yaml, 'x.yaml', { AMI_USER: 'bridge' }));
    expect(err.message).toBe('x.yaml:3:41: environment variable MY_SECRET is not set');
  });

  it('never prints a secret: redactConfig and validation errors', () => {
    const config = parseConfig(`${elevenlabsAgent}ami: { username: u }\n`, 'x.yaml', { ELEVENLABS_API_KEY: 'sk_live_abcdef', AI_CALL_AMI_SECRET: 'ami-pass-xyz' });
    const printed = JSON.stringify(redactConfig(config));
    expect(printed).not.toContain('sk_live_abcdef');
    expect(printed).not.toContain('ami-pass-xyz');
    expect(printed).toContain('[redacted]');
    const err = configError(() => parseConfig('agents:\n  echo: { provider: echo }\nstatus: { token: short }\n', 'x.yaml', {}));
    expect(err.message).not.toContain('short');
  });
});
