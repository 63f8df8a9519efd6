/**
 * scripts/: the systemd unit and the bare-server installer, without root and without systemd.
 * `install.sh --dry-run --prefix DIR` prints its plan and changes nothing; the real install into a
 * prefix (npm ci included) is in pack.test.ts, which has the package it needs.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { buildCli } from '../../src/cli.js';
import { EMBEDDED_DEFAULT_YAML, parseConfig } from '../../src/config/load.js';
import { describeRun, packageJson, parseUnit, run, SCRIPTS_DIR, unitSeconds } from './helpers.js';
import { SERVER_NODE_FLAGS } from '../../src/runtime-flags.js';

const INSTALL = `${SCRIPTS_DIR}install.sh`;
const unitText = readFileSync(`${SCRIPTS_DIR}ai-call.service`, 'utf8');
const unit = parseUnit(unitText);
const service = unit.get('Service')!;
const one = (key: string): string | undefined => service.get(key)?.at(-1);

function serveGraceMs(): number {
  const serve = buildCli({ env: {}, stdout: () => {}, stderr: () => {} }).commands.find((c) => c.name() === 'serve')!;
  return Number(serve.options.find((o) => o.long === '--grace-ms')!.defaultValue);
}

describe('scripts/ai-call.service', () => {
  it('runs package.json\'s bin from /opt/ai-call as the dedicated user ai-call', () => {
    expect(one('User')).toBe('ai-call');
    expect(one('Group')).toBe('ai-call');
    expect(one('ExecStart')).toBe(`/usr/bin/env node ${SERVER_NODE_FLAGS.join(' ')} /opt/ai-call/${packageJson().bin['ai-call']} serve`);
    expect(one('ExecStart')).toBe('/usr/bin/env node --single-threaded-gc --max-semi-space-size=8 /opt/ai-call/dist/src/bin/ai-call.js serve');
    expect(one('Type')).toBe('simple');
    expect(unit.get('Install')?.get('WantedBy')).toEqual(['multi-user.target']);
  });

  it('reads the config from /etc/ai-call/ai-call.yaml and the secrets from an optional secrets.env', () => {
    expect(service.get('Environment')).toContain('AI_CALL_CONFIG=/etc/ai-call/ai-call.yaml');
    expect(service.get('EnvironmentFile')).toEqual(['-/etc/ai-call/secrets.env']);
  });

  it('restarts on failure and stops with SIGTERM, waiting longer than serve --grace-ms', () => {
    expect(one('Restart')).toBe('on-failure');
    expect(one('KillSignal')).toBe('SIGTERM');
    expect(unitSeconds(one('TimeoutStopSec')!) * 1000).toBeGreaterThan(serveGraceMs());
    expect(Number(one('LimitNOFILE'))).toBeGreaterThanOrEqual(65_536);
  });

  it('is hardened, with the record directory as the only writable path', () => {
    expect(one('NoNewPrivileges')).toBe('yes');
    expect(one('ProtectSystem')).toBe('strict');
    expect(one('ProtectHome')).toBe('yes');
    expect(one('PrivateTmp')).toBe('yes');
    expect(service.get('ReadWritePaths')).toEqual(['-/var/lib/ai-call']);
    expect(one('StateDirectory')).toBe('ai-call');
    expect(one('CapabilityBoundingSet')).toBe('');
    // Node's JIT needs writable executable memory.
    expect(service.has('MemoryDenyWriteExecute')).toBe(false);
  });

  it.skipIf(!existsSync('/usr/bin/systemd-analyze'))('passes systemd-analyze verify without unknown or invalid settings', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ai-call-unit-'));
    try {
      writeFileSync(join(dir, 'ai-call.service'), unitText);
      const result = await run('systemd-analyze', ['verify', join(dir, 'ai-call.service')], { timeoutMs: 20_000 });
      const problems = `${result.stdout}${result.stderr}`.split('\n').filter((line) => /Unknown|Invalid|Failed to parse|bad-setting|not executable/i.test(line));
      expect(problems, describeRun('systemd-analyze verify', result)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe('scripts/install.sh', () => {
  let prefix: string;
  beforeEach(() => {
    prefix = mkdtempSync(join(tmpdir(), 'ai-call-install-'));
  });
  afterEach(() => rmSync(prefix, { recursive: true, force: true }));

  const install = (...args: string[]) => run('bash', [INSTALL, ...args], { timeoutMs: 30_000 });

  it('is valid bash with strict mode', async () => {
    const result = await run('bash', ['-n', INSTALL]);
    expect(result.code, describeRun('bash -n', result)).toBe(0);
    expect(readFileSync(INSTALL, 'utf8')).toMatch(/^set -euo pipefail$/m);
  });

  it('--dry-run --prefix prints the whole plan and changes nothing', async () => {
    const result = await install('--dry-run', '--prefix', prefix);
    expect(result.code, describeRun('install.sh --dry-run', result)).toBe(0);
    expect(readdirSync(prefix), 'nothing written under the prefix').toEqual([]);
    const out = result.stdout;
    const { version } = packageJson();
    expect(out).toMatch(/^node \d+\.\d+\.\d+ at .*: ok$/m);
    expect(out).toContain(`package: ai-call@${version} from the checkout`);
    // The steps, in order.
    const steps = [
      /\[skip\] useradd --system .* ai-call {3}\(--prefix/,
      /\[dry-run\] run: npm pack --pack-destination/,
      new RegExp(`\\[dry-run\\] run: tar -xzf \\S+ai-call-${version.replace(/\./g, '\\.')}\\.tgz -C ${prefix}/opt/ai-call\\.new --strip-components=1`),
      /\[dry-run\] run: npm ci --prefix \S+\/opt\/ai-call\.new --omit=dev/,
      /\[dry-run\] check: node \S+\/opt\/ai-call\.new\/dist\/src\/bin\/ai-call\.js --help, and dialplan generate/,
      new RegExp(`\\[dry-run\\] run: mv ${prefix}/opt/ai-call\\.new ${prefix}/opt/ai-call$`),
      new RegExp(`\\[dry-run\\] write: ${prefix}/usr/local/bin/ai-call \\(0755`),
      new RegExp(`\\[dry-run\\] write: ${prefix}/etc/ai-call/ai-call\\.yaml \\(0640, default configuration\\)`),
      new RegExp(`\\[dry-run\\] write: ${prefix}/etc/ai-call/secrets\\.env \\(0600`),
      new RegExp(`\\[dry-run\\] write: ${prefix}/etc/systemd/system/ai-call\\.service \\(0644, systemd unit\\)`),
      /\[skip\] systemctl daemon-reload/,
      /\[skip\] systemctl enable ai-call\.service/,
      /\[skip\] systemctl restart ai-call\.service/,
    ];
    let from = 0;
    for (const step of steps) {
      const lines = out.split('\n');
      const at = lines.findIndex((line, i) => i >= from && step.test(line));
      expect(at, `step ${step} after line ${from}:\n${out}`).toBeGreaterThanOrEqual(0);
      from = at + 1;
    }
    // Actions never touch Asterisk's files; the dialplan is a printed next step.
    const actions = out.split('\n').filter((line) => /^\[(dry-run|skip)\]/.test(line));
    for (const line of actions) expect(line).not.toMatch(/asterisk/i);
    expect(out).toMatch(/would be installed \(dry run: nothing was changed\)/);
    expect(out).toContain('ai-call dialplan install --asterisk-dir /etc/asterisk --reload');
  });

  it('--no-start enables the service without starting it', async () => {
    const result = await install('--dry-run', '--no-start', '--prefix', prefix);
    expect(result.code, describeRun('install.sh --dry-run --no-start', result)).toBe(0);
    expect(result.stdout).toMatch(/\[skip\] systemctl enable ai-call\.service/);
    const actions = result.stdout.split('\n').filter((line) => /^\[(dry-run|skip)\]/.test(line));
    expect(actions.filter((line) => /systemctl (re)?start/.test(line))).toEqual([]);
    expect(result.stdout).toContain('not started (--no-start)');
  });

  it('keeps an existing configuration and secrets file', async () => {
    const etc = join(prefix, 'etc', 'ai-call');
    rmSync(etc, { recursive: true, force: true });
    await run('mkdir', ['-p', etc]);
    writeFileSync(join(etc, 'ai-call.yaml'), 'agents: { mine: { provider: echo } }\n');
    writeFileSync(join(etc, 'secrets.env'), 'AI_CALL_STATUS_TOKEN=abcdefgh\n', { mode: 0o600 });
    const result = await install('--dry-run', '--prefix', prefix);
    expect(result.code, describeRun('install.sh', result)).toBe(0);
    expect(result.stdout).toContain(`keep: ${etc}/ai-call.yaml (exists)`);
    expect(result.stdout).toContain(`keep: ${etc}/secrets.env (exists)`);
    expect(result.stdout).not.toMatch(/write: .*ai-call\.yaml/);
    expect(readFileSync(join(etc, 'ai-call.yaml'), 'utf8')).toBe('agents: { mine: { provider: echo } }\n');
  });

  it('refuses a missing package, a second package and unknown options', async () => {
    const missing = await install('--dry-run', '--prefix', prefix, join(prefix, 'nope.tgz'));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/nope\.tgz is not a readable file/);
    const two = await install('--dry-run', '--prefix', prefix, 'a.tgz', 'b.tgz');
    expect(two.code).toBe(1);
    expect(two.stderr).toMatch(/one package only/);
    const unknown = await install('--frobnicate');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown option --frobnicate/);
  });

  it('needs root to install into / (and says how to try it without)', async () => {
    if (process.getuid?.() === 0) return; // as root the check does not apply; the dry-run tests cover the rest
    const result = await install();
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/run it as root \(sudo\), or try it with --dry-run or --prefix DIR/);
  });

  it('--help prints the usage', async () => {
    const result = await install('--help');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: install\.sh \[options\] \[PACKAGE\.tgz\]$/m);
    for (const option of ['--prefix DIR', '--dry-run', '--no-start', '--lockfile FILE', '--print-config']) expect(result.stdout).toContain(option);
  });

  it('--print-config is the embedded default with comments: same configuration, loopback only', async () => {
    const result = await install('--print-config');
    expect(result.code, describeRun('install.sh --print-config', result)).toBe(0);
    const printed = parseConfig(result.stdout, 'install.sh --print-config', {});
    expect(printed).toEqual(parseConfig(EMBEDDED_DEFAULT_YAML, '(embedded default)', {}));
    expect(printed.agi.host).toBe('127.0.0.1');
    expect(result.stdout).toMatch(/^# .*secrets\.env/m);
    // Every commented-out example parses too once uncommented (keys stay valid as the schema changes).
    const uncommented = result.stdout
      .split('\n')
      .map((line) => line.replace(/^(\s*)# ?(?=\s*(?:[A-Za-z_][\w-]*:(?:\s|$)|- ))/, '$1'))
      .join('\n');
    const full = parseConfig(uncommented, 'uncommented', { AI_CALL_AMI_SECRET: 'x' });
    expect(Object.keys(full.agents).sort()).toEqual(['echo', 'sales']);
    expect(full.routes).toHaveLength(1);
    expect(full.ami?.username).toBe('ai-call');
  });
});
