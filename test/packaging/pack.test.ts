/**
 * npm pack: the package carries the built code, the templates, the docs and the install scripts,
 * and nothing of the tests; installed from its tarball, the ai-call bin runs and finds its templates.
 *
 * SLOW-ISH AND NEEDS THE NPM REGISTRY: builds once (`npm run build`, ~10 s), packs, then installs
 * the tarball twice into temp dirs (npm install; scripts/install.sh --prefix with npm ci), ~30 s in
 * all. The install tests skip, saying why, when the registry cannot be reached.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { parseConfig } from '../../src/config/load.js';
import { simulateCall } from '../../src/simulate/simulate.js';
import { DIALPLAN_FILES } from '../../src/dialplan/render.js';
import { cleanEnv, describeRun, isNetworkFailure, packageJson, REPO, run, SCRIPTS_DIR } from './helpers.js';

const pkg = packageJson();
const BIN = pkg.bin['ai-call']!;
let work: string;
let tarball: string;
/** The file list npm pack reports (relative paths). */
let packed: string[];

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'ai-call-pack-'));
  // npm pack runs prepack (the build) itself; building first keeps its JSON output and timing apart.
  const build = await run('npm', ['run', 'build'], { timeoutMs: 120_000 });
  expect(build.code, describeRun('npm run build', build)).toBe(0);
  const pack = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { timeoutMs: 60_000 });
  expect(pack.code, describeRun('npm pack', pack)).toBe(0);
  const [result] = JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string; mode: number }> }>;
  tarball = join(work, result!.filename);
  packed = result!.files.map((f) => f.path);
}, 180_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('npm pack', () => {
  it('lists the same files with --dry-run as it packs', async () => {
    const dry = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { timeoutMs: 60_000 });
    expect(dry.code, describeRun('npm pack --dry-run', dry)).toBe(0);
    const [result] = JSON.parse(dry.stdout) as Array<{ files: Array<{ path: string }> }>;
    expect(result!.files.map((f) => f.path).sort()).toEqual([...packed].sort());
  }, 60_000);

  it('carries the bin, the compiled code, the templates, the docs, the install scripts and the README', () => {
    expect(packed).toContain(BIN);
    expect(BIN).toBe('dist/src/bin/ai-call.js');
    expect(packed).toContain('package.json');
    expect(packed).toContain('README.md');
    for (const template of Object.values(DIALPLAN_FILES)) expect(packed).toContain(`templates/${template}`);
    for (const partial of readdirSync(`${REPO}templates/partials`)) expect(packed).toContain(`templates/partials/${partial}`);
    for (const doc of ['docs/admin-guide.md', 'docs/configuration.md', 'docs/agi-contract.md', 'docs/dialplan.md', 'docs/errors.md']) expect(packed).toContain(doc);
    expect(packed).toContain('scripts/install.sh');
    expect(packed).toContain('scripts/ai-call.service');
    // Every compiled module of src/ is there (a missing one would fail at import time).
    const compiled = packed.filter((p) => p.startsWith('dist/src/') && p.endsWith('.js'));
    expect(compiled.length).toBeGreaterThan(30);
    expect(compiled).toContain('dist/src/cli.js');
    expect(compiled).toContain('dist/src/dialplan/render.js');
  });

  it('carries nothing of the tests, benchmarks, fixtures, sources or secrets', () => {
    for (const path of packed) {
      expect(path).not.toMatch(/^(test|bench|src|docker|coverage|node_modules)\//);
      expect(path).not.toMatch(/^dist\/(test|bench)\//);
      expect(path).not.toMatch(/fixtures?\//);
      expect(path).not.toMatch(/\.test\.|\.env$|\.tgz$|^\.e2e\//);
      expect(path).not.toMatch(/\.ts$/);
    }
    // package-lock.json is never packed by npm (install.sh takes it with --lockfile).
    expect(packed).not.toContain('package-lock.json');
  });

  it('is a package whose bin is a Node script', () => {
    const bin = readFileSync(`${REPO}${BIN}`, 'utf8');
    expect(bin.split('\n')[0]).toBe('#!/usr/bin/env node');
  });
});

describe('installed from the tarball', () => {
  let prefix: string;
  let installed: { ok: true } | { ok: false; reason: string };

  beforeAll(async () => {
    prefix = join(work, 'npm-prefix');
    const result = await run('npm', ['install', tarball, '--prefix', prefix, '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline'], { timeoutMs: 120_000 });
    if (result.code === 0) installed = { ok: true };
    else if (isNetworkFailure(result)) installed = { ok: false, reason: `npm registry unreachable: ${result.stderr.split('\n').find((l) => /ERR/.test(l)) ?? ''}` };
    else throw new Error(describeRun('npm install <tarball>', result));
  }, 150_000);

  const aiCall = (args: string[], cwd: string) =>
    run(join(prefix, 'node_modules', '.bin', 'ai-call'), args, { cwd, env: cleanEnv(), timeoutMs: 30_000 });

  it('runs ai-call --help from node_modules/.bin', async (ctx) => {
    if (!installed.ok) ctx.skip(installed.reason);
    const result = await aiCall(['--help'], work);
    expect(result.code, describeRun('ai-call --help', result)).toBe(0);
    for (const command of ['serve', 'check-config', 'simulate', 'originate', 'dialplan']) expect(result.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
  }, 30_000);

  it('finds the templates inside the installed package: dialplan generate', async (ctx) => {
    if (!installed.ok) ctx.skip(installed.reason);
    const out = join(work, 'dp');
    const result = await aiCall(['dialplan', 'generate', '--out', out], work);
    expect(result.code, describeRun('ai-call dialplan generate', result)).toBe(0);
    for (const name of Object.keys(DIALPLAN_FILES)) expect(existsSync(join(out, name)), name).toBe(true);
    expect(readFileSync(join(out, 'ai-call-extensions.conf'), 'utf8')).toMatch(/^\[ai-call-agent\]$/m);
  }, 30_000);

  it('serve --workers 2: calls spread over two processes, and every result AGI finds its call', async (ctx) => {
    if (!installed.ok) ctx.skip(installed.reason);
    const base = 30_000 + Math.floor(Math.random() * 20_000);
    const config = join(work, 'workers.yaml');
    writeFileSync(config, `agi: { port: ${base} }\naudiosocket: { port: ${base + 1} }\nstatus: { port: ${base + 3} }\nagents:\n  echo: { provider: echo }\n`);
    const child = spawn(join(prefix, 'node_modules', '.bin', 'ai-call'), ['-c', config, 'serve', '--workers', '2'], { env: cleanEnv(), stdio: 'ignore' });
    try {
      let health: { workers?: Array<{ ready: boolean; audiosocket?: { port: number }; nodeFlagsMissing?: string[] }> } = {};
      for (let i = 0; i < 100 && !(health.workers?.length === 2 && health.workers.every((w) => w.ready)); i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        health = await fetch(`http://127.0.0.1:${base + 3}/healthz`).then((r) => r.json() as Promise<typeof health>, () => ({}));
      }
      expect(health.workers?.map((w) => w.ready)).toEqual([true, true]);
      const calls = await Promise.all(
        Array.from({ length: 6 }, () => simulateCall({ agiHost: '127.0.0.1', agiPort: base, agent: 'echo', mode: 'assign', audio: Buffer.alloc(0), sampleRateHz: 8000, hangupAfterMs: 400 })),
      );
      for (const call of calls) expect(call.resultVariables).toMatchObject({ AI_RESULT: 'CALLER_HANGUP', AI_ERROR: '' });
      // Each worker hands out its own AudioSocket port.
      expect(new Set(health.workers!.map((w) => w.audiosocket?.port)).size).toBe(2);
      // The bin ran under plain `node`; the workers still carry calls with ai-call's V8 flags.
      // (Worker details reach /healthz with the primary's next refresh from the workers.)
      for (let i = 0; i < 30 && health.workers?.some((w) => w.nodeFlagsMissing === undefined) !== false; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        health = await fetch(`http://127.0.0.1:${base + 3}/healthz`).then((r) => r.json() as Promise<typeof health>);
      }
      expect(health.workers?.map((w) => w.nodeFlagsMissing)).toEqual([[], []]);
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  }, 60_000);

  it('validates the embedded default: check-config', async (ctx) => {
    if (!installed.ok) ctx.skip(installed.reason);
    const result = await aiCall(['check-config'], work);
    expect(result.code, describeRun('ai-call check-config', result)).toBe(0);
    expect(result.stdout).toMatch(/^\(embedded default\): OK$/m);
  }, 30_000);
});

describe('scripts/install.sh --prefix with the tarball (npm ci, no root)', () => {
  let root: string;
  let first: Awaited<ReturnType<typeof run>>;

  const install = () =>
    run('bash', [`${SCRIPTS_DIR}install.sh`, '--prefix', root, '--no-start', '--lockfile', `${REPO}package-lock.json`, tarball], { timeoutMs: 150_000 });

  beforeAll(async () => {
    root = join(work, 'root');
    first = await install();
  }, 180_000);

  it('installs /opt/ai-call, the config, the secrets template and the unit under the prefix', async (ctx) => {
    if (first.code !== 0 && isNetworkFailure(first)) ctx.skip('npm registry unreachable');
    expect(first.code, describeRun('install.sh', first)).toBe(0);
    const app = join(root, 'opt', 'ai-call');
    expect(existsSync(join(app, BIN))).toBe(true);
    expect(existsSync(join(app, 'node_modules', 'yaml', 'package.json'))).toBe(true);
    expect(existsSync(join(app, 'node_modules', 'typescript')), 'no dev dependencies').toBe(false);
    expect(readFileSync(join(root, 'etc', 'systemd', 'system', 'ai-call.service'), 'utf8')).toBe(readFileSync(`${SCRIPTS_DIR}ai-call.service`, 'utf8'));
    expect(statSync(join(root, 'etc', 'ai-call', 'secrets.env')).mode & 0o777).toBe(0o600);
    expect(statSync(join(root, 'etc', 'ai-call', 'ai-call.yaml')).mode & 0o777).toBe(0o640);
    expect(statSync(join(root, 'usr', 'local', 'bin', 'ai-call')).mode & 0o111).not.toBe(0);

    // The installed code runs with the installed configuration and finds its templates.
    const config = join(root, 'etc', 'ai-call', 'ai-call.yaml');
    const check = await run(process.execPath, [join(app, BIN), '-c', config, 'check-config'], { cwd: work, timeoutMs: 30_000 });
    expect(check.code, describeRun('installed check-config', check)).toBe(0);
    const generate = await run(process.execPath, [join(app, BIN), '-c', config, 'dialplan', 'generate', '--out', join(work, 'dp2')], { cwd: work, timeoutMs: 30_000 });
    expect(generate.code, describeRun('installed dialplan generate', generate)).toBe(0);
    // The secrets template parses as configuration input: every name is one ai-call reads, values empty.
    const secrets = readFileSync(join(root, 'etc', 'ai-call', 'secrets.env'), 'utf8');
    const names = secrets.split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => l.split('=')[0]);
    expect(names).toEqual(['ELEVENLABS_API_KEY', 'AI_CALL_AMI_SECRET', 'AI_CALL_STATUS_TOKEN']);
    expect(secrets).toMatch(/^ELEVENLABS_API_KEY=$/m);
    expect(parseConfig(readFileSync(config, 'utf8'), config, { ELEVENLABS_API_KEY: '', AI_CALL_STATUS_TOKEN: '' }).agents).toHaveProperty('echo');
  }, 60_000);

  it('runs again over an installed copy: keeps the config, moves the old code to /opt/ai-call.previous', async (ctx) => {
    if (first.code !== 0) ctx.skip('the first install did not succeed');
    const config = join(root, 'etc', 'ai-call', 'ai-call.yaml');
    writeFileSync(config, 'agents:\n  mine: { provider: echo }\n');
    const again = await install();
    expect(again.code, describeRun('install.sh (again)', again)).toBe(0);
    expect(readFileSync(config, 'utf8')).toBe('agents:\n  mine: { provider: echo }\n');
    expect(again.stdout).toContain(`keep: ${config} (exists)`);
    expect(again.stdout).toMatch(/keep: .*ai-call\.service \(unchanged\)/);
    expect(existsSync(join(root, 'opt', 'ai-call.previous', BIN))).toBe(true);
    expect(existsSync(join(root, 'opt', 'ai-call', BIN))).toBe(true);
    expect(existsSync(join(root, 'opt', 'ai-call.new'))).toBe(false);
  }, 180_000);
});
