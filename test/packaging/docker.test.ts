/**
 * docker/: the Dockerfile, compose.yaml, the lab's Asterisk configuration and its entrypoint.
 *
 * There is no Docker engine here, so nothing is built or run: these tests check what can be
 * checked without one. Every path the Dockerfile copies and compose.yaml mounts exists, the image's
 * entrypoint is package.json's bin, published ports are bound to 127.0.0.1, the addresses in
 * docker/ai-call.yaml agree with compose.yaml's private network, the committed generated dialplan
 * is current, and the healthcheck command and the Asterisk entrypoint script work.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { buildCli } from '../../src/cli.js';
import { EMBEDDED_DEFAULT_YAML, parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { checkDialplan } from '../../src/dialplan/render.js';
import { lintExtensionsConf, lintPlainConf } from '../../src/dialplan/syntax.js';
import { silentLogger } from '../../src/log.js';
import { startServer, type RunningServer } from '../../src/main.js';
import { cleanEnv, describeRun, DOCKER_DIR, execForm, packageJson, parseDockerfile, REPO, run, type DockerInstruction } from './helpers.js';
import { SERVER_NODE_FLAGS } from '../../src/runtime-flags.js';

const dockerfileText = readFileSync(`${DOCKER_DIR}Dockerfile`, 'utf8');
const dockerfile = parseDockerfile(dockerfileText);
const compose = parseYaml(readFileSync(`${DOCKER_DIR}compose.yaml`, 'utf8')) as Record<string, any>;
const services = compose['services'] as Record<string, Record<string, any>>;
const envExample = readFileSync(`${DOCKER_DIR}.env.example`, 'utf8');
/** Secrets are never in the YAML; any value satisfies the schema. */
const FAKE_SECRETS = { AI_CALL_AMI_SECRET: 'test-ami-secret', AI_CALL_STATUS_TOKEN: 'test-status-token' };
const labConfig: Config = parseConfig(readFileSync(`${DOCKER_DIR}ai-call.yaml`, 'utf8'), 'docker/ai-call.yaml', FAKE_SECRETS);
const defaults: Config = parseConfig(EMBEDDED_DEFAULT_YAML, '(embedded default)', {});

const stages = (): string[] => [...new Set(dockerfile.map((i) => i.stage))];
const inStage = (stage: string, keyword: string): DockerInstruction[] => dockerfile.filter((i) => i.stage === stage && i.keyword === keyword);
const finalStage = (): string => stages().at(-1)!;

/** COPY/ADD arguments without flags: sources…, destination. */
function copyParts(args: string): { from: string | undefined; sources: string[]; destination: string } {
  const words = args.split(/\s+/);
  let from: string | undefined;
  const rest: string[] = [];
  for (const word of words) {
    if (word.startsWith('--from=')) from = word.slice('--from='.length);
    else if (!word.startsWith('--')) rest.push(word);
  }
  return { from, sources: rest.slice(0, -1), destination: rest.at(-1)! };
}

/** WORKDIR in effect at the end of a stage. */
function workdir(stage: string): string {
  return inStage(stage, 'WORKDIR').at(-1)?.args ?? '/';
}

/** Short or long syntax of a compose port → { hostIp, published, target }. */
function parsePort(port: unknown): { hostIp: string | undefined; published: string | undefined; target: string } {
  if (typeof port === 'object' && port !== null) {
    const p = port as Record<string, unknown>;
    return { hostIp: p['host_ip'] as string | undefined, published: p['published'] === undefined ? undefined : String(p['published']), target: String(p['target']) };
  }
  const text = String(port).replace(/\/(tcp|udp)$/, '');
  const parts = text.split(':');
  if (parts.length === 3) return { hostIp: parts[0], published: parts[1], target: parts[2]! };
  if (parts.length === 2) return { hostIp: undefined, published: parts[0], target: parts[1]! };
  return { hostIp: undefined, published: undefined, target: parts[0]! };
}

/** A compose volume in short syntax → { source, target, mode }, sources relative to docker/. */
function parseVolume(volume: unknown): { source: string; target: string; mode: string | undefined } {
  if (typeof volume === 'object' && volume !== null) {
    const v = volume as Record<string, unknown>;
    return { source: String(v['source']), target: String(v['target']), mode: v['read_only'] === true ? 'ro' : undefined };
  }
  const [source, target, mode] = String(volume).split(':');
  return { source: source!, target: target!, mode };
}

function serviceAddress(name: string): string {
  const networks = services[name]!['networks'] as Record<string, { ipv4_address?: string }>;
  const [network] = Object.values(networks);
  expect(network?.ipv4_address, `${name} has a fixed address on the private network`).toBeDefined();
  return network!.ipv4_address!;
}

describe('docker/Dockerfile', () => {
  const pkg = packageJson();

  it('builds in a node:20-bookworm-slim stage with npm ci + npm run build, and runs in another with npm ci --omit=dev', () => {
    const froms = dockerfile.filter((i) => i.keyword === 'FROM').map((i) => i.args);
    expect(froms).toEqual(['node:20-bookworm-slim AS build', 'node:20-bookworm-slim AS runtime']);
    const buildRuns = inStage('build', 'RUN').map((i) => i.args).join('\n');
    expect(buildRuns).toMatch(/\bnpm ci\b/);
    expect(buildRuns).toMatch(/\bnpm run build\b/);
    const runtimeRuns = inStage('runtime', 'RUN').map((i) => i.args).join('\n');
    expect(runtimeRuns).toMatch(/\bnpm ci --omit=dev\b/);
    expect(runtimeRuns).not.toMatch(/npm run build|\bnpm install\b/);
    expect(finalStage()).toBe('runtime');
  });

  it('copies only files that exist in the repository, and the build context admits each of them', () => {
    const ignore = readFileSync(`${DOCKER_DIR}Dockerfile.dockerignore`, 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    expect(ignore[0], 'an allowlist: everything is excluded first').toBe('*');
    const admitted = new Set(ignore.filter((line) => line.startsWith('!')).map((line) => line.slice(1)));
    const copies = dockerfile.filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD');
    expect(copies.length).toBeGreaterThan(0);
    for (const copy of copies) {
      const { from, sources } = copyParts(copy.args);
      if (from !== undefined) continue;
      for (const source of sources) {
        expect(existsSync(`${REPO}${source}`), `COPY source ${source} exists in the repository`).toBe(true);
        expect(admitted.has(source.replace(/\/$/, '')), `Dockerfile.dockerignore admits ${source}`).toBe(true);
      }
    }
    // Nothing secret or bulky is admitted.
    for (const entry of admitted) expect(entry).not.toMatch(/\.env|node_modules|dist|\.git|test/);
  });

  it('copies the compiled code and the templates where findTemplatesDir looks for them', () => {
    const runtimeDir = workdir('runtime');
    const buildDir = workdir('build');
    const fromBuild = inStage('runtime', 'COPY').map((i) => copyParts(i.args)).filter((c) => c.from === 'build');
    expect(fromBuild).toEqual([{ from: 'build', sources: [posix.join(buildDir, 'dist/src')], destination: './dist/src' }]);
    const templates = inStage('runtime', 'COPY').map((i) => copyParts(i.args)).find((c) => c.sources.includes('templates'));
    expect(templates?.destination).toBe('./templates');
    // src/dialplan/render.ts: dist/src/dialplan/../../../templates is the package root's templates/.
    const renderJs = posix.join(runtimeDir, 'dist/src/dialplan/render.js');
    expect(posix.resolve(posix.dirname(renderJs), '../../../templates')).toBe(posix.join(runtimeDir, 'templates'));
    expect(existsSync(`${REPO}src/dialplan/render.ts`)).toBe(true);
  });

  it('runs package.json\'s bin as ENTRYPOINT, with ai-call\'s V8 flags, and serve as the default command', () => {
    const entrypoint = inStage(finalStage(), 'ENTRYPOINT').at(-1);
    const cmd = inStage(finalStage(), 'CMD').at(-1);
    expect(execForm(entrypoint!.args)).toEqual(['node', ...SERVER_NODE_FLAGS, pkg.bin['ai-call']]);
    expect(pkg.bin['ai-call']).toMatch(/^dist\/src\//);
    expect(existsSync(`${REPO}${pkg.bin['ai-call']!.replace(/^dist\//, '').replace(/\.js$/, '.ts')}`), 'the bin is compiled from src/bin/ai-call.ts').toBe(true);
    expect(execForm(cmd!.args)).toEqual(['serve']);
  });

  it('reads its config from /etc/ai-call/ai-call.yaml, runs as a non-root user and exposes the default ports', () => {
    const env = inStage(finalStage(), 'ENV').map((i) => i.args).join(' ');
    expect(env).toMatch(/\bAI_CALL_CONFIG=\/etc\/ai-call\/ai-call\.yaml\b/);
    const user = inStage(finalStage(), 'USER').at(-1)?.args;
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)(:|$)/);
    const exposed = inStage(finalStage(), 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map(Number);
    expect(exposed.sort()).toEqual([defaults.agi.port, defaults.audiosocket.port, defaults.status.port].sort());
    expect(exposed).toEqual(expect.arrayContaining([4573, 9092, 9093]));
  });

  describe('HEALTHCHECK', () => {
    const healthcheck = inStage(finalStage(), 'HEALTHCHECK').at(-1);
    const command = execForm(healthcheck?.args.replace(/^(--\S+\s+)*CMD\s+/, '') ?? '');
    let server: RunningServer | undefined;

    beforeAll(async () => {
      const config = parseConfig('agi: { port: 0 }\naudiosocket: { port: 0 }\nstatus: { port: 0 }\nagents: { echo: { provider: echo } }\n', 'test', {});
      server = await startServer(config, { logger: silentLogger() });
    });
    afterAll(async () => {
      await server?.close();
    });

    it('is an exec-form node command (slim images have no curl)', () => {
      expect(healthcheck?.args).toMatch(/--interval=\S+/);
      expect(command?.[0]).toBe('node');
      expect(command?.join(' ')).toContain('/healthz');
    });

    it('exits 0 against a running ai-call\'s /healthz and 1 when nothing answers', async () => {
      const [cmd, ...args] = command!;
      const healthy = await run(cmd === 'node' ? process.execPath : cmd!, args, {
        env: cleanEnv({ AI_CALL_HEALTH_URL: `http://127.0.0.1:${server!.status!.port}/healthz` }),
        timeoutMs: 15_000,
      });
      expect(healthy.code, describeRun('healthcheck', healthy)).toBe(0);
      const down = await run(process.execPath, args, { env: cleanEnv({ AI_CALL_HEALTH_URL: 'http://127.0.0.1:1/healthz' }), timeoutMs: 15_000 });
      expect(down.code).toBe(1);
    }, 30_000);
  });
});

describe('docker/compose.yaml', () => {
  it('has the ai-call service built from this repository and the andrius/asterisk image', () => {
    expect(Object.keys(services).sort()).toEqual(['ai-call', 'asterisk']);
    const build = services['ai-call']!['build'] as { context: string; dockerfile: string };
    const context = resolve(DOCKER_DIR, build.context);
    expect(`${context}/`).toBe(REPO);
    expect(existsSync(join(context, build.dockerfile))).toBe(true);
    expect(readFileSync(join(context, build.dockerfile), 'utf8')).toBe(dockerfileText);
    expect(services['asterisk']!['image']).toBe('andrius/asterisk:22.5.2_debian-trixie');
  });

  it('publishes ports on the host\'s 127.0.0.1 only, and never FastAGI, AudioSocket or AMI', () => {
    let published = 0;
    for (const [name, service] of Object.entries(services)) {
      for (const port of (service['ports'] ?? []) as unknown[]) {
        const { hostIp, target } = parsePort(port);
        expect(hostIp, `${name} port ${JSON.stringify(port)} is bound to 127.0.0.1`).toBe('127.0.0.1');
        expect([String(labConfig.agi.port), String(labConfig.audiosocket.port), '5038']).not.toContain(target);
        published++;
      }
    }
    expect(published).toBeGreaterThan(0);
    expect(services['ai-call']!['ports'].map((p: unknown) => parsePort(p).target)).toEqual([String(labConfig.status.port)]);
  });

  it('mounts only files and directories that exist in docker/', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const volume of (service['volumes'] ?? []) as unknown[]) {
        const { source, mode } = parseVolume(volume);
        expect(source, `${name}: bind mounts are relative to docker/`).toMatch(/^\.\.?\//);
        const path = resolve(DOCKER_DIR, source);
        expect(path.startsWith(DOCKER_DIR), `${name}: ${source} stays inside docker/`).toBe(true);
        expect(existsSync(path), `${name}: ${source} exists`).toBe(true);
        expect(mode, `${name}: ${source} is mounted read-only`).toBe('ro');
      }
    }
  });

  it('mounts docker/ai-call.yaml where AI_CALL_CONFIG points, in compose and in the image', () => {
    const service = services['ai-call']!;
    const configPath = (service['environment'] as Record<string, string>)['AI_CALL_CONFIG'];
    expect(configPath).toBe('/etc/ai-call/ai-call.yaml');
    const mount = (service['volumes'] as unknown[]).map(parseVolume).find((v) => v.target === configPath);
    expect(mount?.source).toBe('./ai-call.yaml');
    expect(dockerfileText).toContain(`AI_CALL_CONFIG=${configPath}`);
  });

  it('takes secrets from .env (not committed), documented in .env.example', () => {
    const names = ['ELEVENLABS_API_KEY', 'AI_CALL_AMI_SECRET', 'AI_CALL_STATUS_TOKEN'];
    for (const name of names) expect(envExample).toMatch(new RegExp(`^${name}=$`, 'm'));
    expect(services['ai-call']!['env_file']).toEqual(['.env']);
    // The asterisk container gets only the AMI secret, by interpolation from .env.
    const asteriskEnv = services['asterisk']!['environment'] as Record<string, string>;
    expect(Object.keys(asteriskEnv)).toEqual(['AI_CALL_AMI_SECRET']);
    expect(asteriskEnv['AI_CALL_AMI_SECRET']).toMatch(/^\$\{AI_CALL_AMI_SECRET:\?/);
    // No secret value is written into compose.yaml itself.
    for (const service of Object.values(services)) {
      for (const [key, value] of Object.entries((service['environment'] ?? {}) as Record<string, string>)) {
        if (names.includes(key)) expect(value).toMatch(/^\$\{/);
      }
    }
    // Every ${VAR} compose interpolates is one .env.example names.
    const interpolated = [...readFileSync(`${DOCKER_DIR}compose.yaml`, 'utf8').matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!);
    for (const name of interpolated) expect(envExample).toMatch(new RegExp(`^${name}=`, 'm'));
    // docker/.env is ignored by git.
    const ignored = execFileSync('git', ['check-ignore', '--no-index', 'docker/.env'], { cwd: REPO, encoding: 'utf8' }).trim();
    expect(ignored).toBe('docker/.env');
  });

  it('puts both services on one private network with fixed addresses inside its subnet', () => {
    const networks = compose['networks'] as Record<string, { ipam?: { config?: Array<{ subnet: string }> }; internal?: boolean }>;
    const names = Object.keys(networks);
    expect(names).toHaveLength(1);
    const subnet = networks[names[0]!]!.ipam!.config![0]!.subnet;
    const [base, bits] = subnet.split('/');
    expect(Number(bits)).toBeGreaterThanOrEqual(16);
    const prefix = base!.split('.').slice(0, Number(bits) / 8).join('.');
    for (const name of Object.keys(services)) {
      expect(Object.keys(services[name]!['networks'])).toEqual(names);
      expect(serviceAddress(name).startsWith(`${prefix}.`), `${name}'s address is in ${subnet}`).toBe(true);
    }
    expect(serviceAddress('ai-call')).not.toBe(serviceAddress('asterisk'));
  });

  it('gives ai-call longer to stop than serve --grace-ms, so live calls may finish', () => {
    const serve = buildCli({ env: {}, stdout: () => {}, stderr: () => {} }).commands.find((c) => c.name() === 'serve')!;
    const graceMs = Number(serve.options.find((o) => o.long === '--grace-ms')!.defaultValue);
    const stop = String(services['ai-call']!['stop_grace_period']);
    const match = /^(\d+)s$/.exec(stop);
    expect(match, `stop_grace_period ${stop} in seconds`).not.toBeNull();
    expect(Number(match![1]) * 1000).toBeGreaterThan(graceMs);
  });

  it('starts Asterisk through entrypoint.sh, which is mounted where the entrypoint looks', () => {
    const asterisk = services['asterisk']!;
    const entrypoint = asterisk['entrypoint'] as string[];
    expect(entrypoint[0]).toBe('/bin/bash');
    const mount = (asterisk['volumes'] as unknown[]).map(parseVolume).find((v) => v.target === entrypoint[1]);
    expect(mount?.source).toBe('./asterisk/entrypoint.sh');
    // An entrypoint resets the image's command: compose must give it back.
    expect(asterisk['command']?.[0]).toBe('/usr/sbin/asterisk');
    expect(asterisk['command']).toContain('-f');
    expect(asterisk['depends_on']?.['ai-call']?.['condition']).toBe('service_healthy');
  });
});

describe('docker/ai-call.yaml', () => {
  it('listens on 0.0.0.0 and names the addresses of the private network for Asterisk', () => {
    const aiCall = serviceAddress('ai-call');
    const asterisk = serviceAddress('asterisk');
    expect(labConfig.agi.host).toBe('0.0.0.0');
    expect(labConfig.audiosocket.host).toBe('0.0.0.0');
    expect(labConfig.status.host).toBe('0.0.0.0');
    expect(labConfig.audiosocket.advertise).toBe(aiCall);
    expect(labConfig.dialplan.agiHost).toBe(aiCall);
    expect(labConfig.agi.allow).toContain(asterisk);
    expect(labConfig.ami?.host).toBe(asterisk);
  });

  it('reaches only contexts that docker/asterisk/extensions.conf defines', () => {
    const extensions = readFileSync(`${DOCKER_DIR}asterisk/extensions.conf`, 'utf8');
    const contexts = new Set([...extensions.matchAll(/^\[([A-Za-z0-9_-]+)\]/gm)].map((m) => m[1]!));
    for (const route of labConfig.routes) {
      expect(contexts.has(route.context), `route context ${route.context}`).toBe(true);
      expect(extensions).toMatch(new RegExp(`^include => ${labConfig.dialplan.prefix}-route-${route.context}$`, 'm'));
    }
    expect(contexts.has(labConfig.ami!.outboundContext)).toBe(true);
    for (const agent of Object.values(labConfig.agents)) {
      const fallback = agent.fallback;
      if (fallback === undefined) continue;
      const context = typeof fallback === 'string' ? fallback.split(',')[0]! : fallback.context;
      expect(contexts.has(context), `fallback context ${context}`).toBe(true);
    }
  });

  it('has its generated dialplan committed and current in docker/asterisk/generated', () => {
    const result = checkDialplan(labConfig, `${DOCKER_DIR}asterisk/generated`);
    expect(result.differences, 'regenerate: ai-call -c docker/ai-call.yaml dialplan generate --out docker/asterisk/generated').toEqual([]);
    const manager = readFileSync(`${DOCKER_DIR}asterisk/generated/ai-call-manager.conf`, 'utf8');
    expect(manager).toContain(`permit = ${serviceAddress('ai-call')}/255.255.255.255`);
    expect(manager).not.toContain(FAKE_SECRETS.AI_CALL_AMI_SECRET);
  });
});

describe('docker/asterisk', () => {
  const etc = `${DOCKER_DIR}asterisk/`;

  it('extensions.conf includes the generated dialplan and passes the dialplan syntax check', () => {
    const text = readFileSync(`${etc}extensions.conf`, 'utf8');
    expect(text).toMatch(/^#include generated\/ai-call-extensions\.conf$/m);
    // The checker knows dialplan contexts, not [general]'s settings.
    const dialplan = text.replace(/^\[general\][\s\S]*?(?=^#include)/m, '');
    expect(lintExtensionsConf(dialplan)).toEqual([]);
  });

  it('modules.conf includes the generated module list inside [modules]', () => {
    const text = readFileSync(`${etc}modules.conf`, 'utf8');
    const lines = text.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith(';'));
    expect(lines[0]).toBe('[modules]');
    expect(lines).toContain('#include generated/ai-call-modules.conf');
    expect(lintPlainConf(text)).toEqual([]);
  });

  it('manager.conf enables AMI and includes the rendered ai-call user last', () => {
    const text = readFileSync(`${etc}manager.conf`, 'utf8');
    const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith(';'));
    expect(lines.slice(0, 2)).toEqual(['[general]', 'enabled = yes']);
    expect(lines).toContain(`port = ${labConfig.ami!.port}`);
    expect(lines.at(-1)).toBe('#include ai-call-manager.conf');
    expect(readFileSync(`${etc}entrypoint.sh`, 'utf8')).toContain('target="$etc/ai-call-manager.conf"');
    expect(lintPlainConf(text)).toEqual([]);
  });

  describe('entrypoint.sh', () => {
    let dir: string;
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), 'ai-call-entrypoint-'));
      mkdirSync(join(dir, 'generated'));
      writeFileSync(join(dir, 'generated', 'ai-call-manager.conf'), readFileSync(`${etc}generated/ai-call-manager.conf`));
    });
    afterAll(() => rmSync(dir, { recursive: true, force: true }));

    const entrypoint = (env: Record<string, string>, ...command: string[]) =>
      run('bash', [`${etc}entrypoint.sh`, ...command], { env: cleanEnv({ AI_CALL_ASTERISK_ETC: dir, ...env }), timeoutMs: 10_000 });

    it('is valid bash', async () => {
      const result = await run('bash', ['-n', `${etc}entrypoint.sh`]);
      expect(result.code, describeRun('bash -n', result)).toBe(0);
    });

    it('writes the AMI user with the secret from AI_CALL_AMI_SECRET (0600), then runs the command', async () => {
      const secret = 'a1b2c3d4e5f6-._~+/=';
      const result = await entrypoint({ AI_CALL_AMI_SECRET: secret }, 'sh', '-c', 'echo asterisk would start');
      expect(result.code, describeRun('entrypoint.sh', result)).toBe(0);
      expect(result.stdout).toContain('asterisk would start');
      const rendered = readFileSync(join(dir, 'ai-call-manager.conf'), 'utf8');
      expect(rendered).toMatch(new RegExp(`^secret = ${secret.replace(/[.+/=~-]/g, '\\$&')}$`, 'm'));
      expect(rendered).not.toContain('REPLACE_WITH');
      expect(rendered.replace(/^secret = .*$/m, '')).toBe(
        readFileSync(`${etc}generated/ai-call-manager.conf`, 'utf8').replace(/^secret = .*$/m, ''),
      );
      expect(statSync(join(dir, 'ai-call-manager.conf')).mode & 0o777).toBe(0o600);
      expect(lintPlainConf(rendered)).toEqual([]);
    });

    it('refuses to start Asterisk without a secret, or with one manager.conf would misread', async () => {
      for (const secret of ['', 'abc;def', 'has space', 'a\nb']) {
        const result = await entrypoint({ AI_CALL_AMI_SECRET: secret }, 'sh', '-c', 'echo started');
        expect(result.code, JSON.stringify(secret)).toBe(1);
        expect(result.stdout).not.toContain('started');
        expect(result.stderr).toMatch(/AI_CALL_AMI_SECRET/);
      }
    });
  });
});
