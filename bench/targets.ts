/**
 * The servers a benchmark run measures, and how to start, probe and stop each one as its own
 * process: the floor (bench/floor.ts), and ai-call itself (`ai-call serve`, one process or a
 * cluster of workers) with the echo agent or an ElevenLabs agent pointed at the lean fake.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import type { Scenario } from './protocol.js';
import { SERVER_NODE_FLAGS } from '../src/runtime-flags.js';

export type TargetName = 'floor' | 'echo' | 'elevenlabs' | 'elevenlabs-16k' | 'echo-workers' | 'elevenlabs-workers';

export interface TargetSpec {
  readonly name: TargetName;
  readonly kind: 'floor' | 'ai-call';
  /** Agent requested in the AGI (`ai-call?agent=…`). */
  readonly agent: string;
  readonly scenario: Scenario;
  /** 1 = `ai-call serve`; more = worker mode. */
  readonly workers: number;
}

export function targetSpecs(workers: number): Record<TargetName, TargetSpec> {
  return {
    floor: { name: 'floor', kind: 'floor', agent: 'echo', scenario: 'echo', workers: 1 },
    echo: { name: 'echo', kind: 'ai-call', agent: 'echo', scenario: 'echo', workers: 1 },
    // The recommended setup with the 8 kHz AudioSocket app: pcm_8000 both ways, no DSP (protocols.md §4.7).
    elevenlabs: { name: 'elevenlabs', kind: 'ai-call', agent: 'el', scenario: 'elevenlabs', workers: 1 },
    // ElevenLabs' default pcm_16000 on the same 8 kHz line: resampled 8 k ↔ 16 k both ways.
    'elevenlabs-16k': { name: 'elevenlabs-16k', kind: 'ai-call', agent: 'el16', scenario: 'elevenlabs', workers: 1 },
    'echo-workers': { name: 'echo-workers', kind: 'ai-call', agent: 'echo', scenario: 'echo', workers },
    'elevenlabs-workers': { name: 'elevenlabs-workers', kind: 'ai-call', agent: 'el', scenario: 'elevenlabs', workers },
  };
}

export interface LaunchOptions {
  readonly spec: TargetSpec;
  /** dist/src/bin/ai-call.js of the build under test. */
  readonly aiCallBin: string;
  /** dist/bench/floor.js lives here. */
  readonly benchDir: string;
  readonly workDir: string;
  readonly fake: { readonly baseUrl: string; readonly apiKey: string; readonly agentId: string; readonly agentId16k: string };
  /** Write a V8 CPU profile per process into this directory. */
  readonly cpuProfDir?: string | undefined;
  readonly logLevel: string;
  /** elevenlabs agent `uplinkChunkMs`: caller audio batched per message (20 = every frame). */
  readonly uplinkChunkMs: number;
  /**
   * Node/V8 flags of the server processes (ai-call and the floor alike; not the load generator).
   * Default: ai-call's shipped flags (src/runtime-flags.ts); '' runs V8's defaults.
   */
  readonly serverNodeOptions?: string | undefined;
}

export interface RunningTarget {
  readonly pid: number;
  readonly agi: { host: string; port: number };
  readonly statusUrl: string | undefined;
  readonly stderrFile: string;
  /** Whether the heap can be read through the inspector (single-process targets). */
  readonly inspectable: boolean;
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const READY_TIMEOUT_MS = 20_000;

/** Starts the target and resolves once it accepts calls. */
export async function launchTarget(options: LaunchOptions): Promise<RunningTarget> {
  const { spec } = options;
  mkdirSync(options.workDir, { recursive: true });
  const agiPort = await freePort();
  const statusPort = await freePort();
  const audiosocketPort = await freeConsecutivePorts(spec.workers);
  const stdoutFile = join(options.workDir, `${spec.name}.stdout.log`);
  const stderrFile = join(options.workDir, `${spec.name}.stderr.log`);
  const out = openSync(stdoutFile, 'w');
  const err = openSync(stderrFile, 'w');
  // Cluster workers inherit execArgv; with --inspect=…:0 node:cluster would give them ports 1, 2, …
  const inspectable = spec.workers === 1;
  const nodeArgs = [...(inspectable ? ['--inspect=127.0.0.1:0'] : []), ...(options.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfDir}`] : [])];
  const flags = (options.serverNodeOptions ?? SERVER_NODE_FLAGS.join(' ')).split(/\s+/).filter((flag) => flag !== '');
  let args: string[];
  if (spec.kind === 'floor') {
    args = [...nodeArgs, ...flags, join(options.benchDir, 'floor.js'), '--host', HOST, '--agi-port', String(agiPort), '--audiosocket-port', String(audiosocketPort)];
  } else {
    const configFile = join(options.workDir, `${spec.name}.yaml`);
    writeFileSync(configFile, productConfig({ agiPort, audiosocketPort, statusPort, agentId: options.fake.agentId, agentId16k: options.fake.agentId16k, logLevel: options.logLevel, uplinkChunkMs: options.uplinkChunkMs }));
    args = [...nodeArgs, ...flags, options.aiCallBin, '--config', configFile, 'serve', '--grace-ms', '1000', ...(spec.workers === 1 ? [] : ['--workers', String(spec.workers)])];
  }
  const child = spawn(process.execPath, args, {
    stdio: ['ignore', out, err],
    env: {
      ...process.env,
      ELEVENLABS_BASE_URL: options.fake.baseUrl,
      ELEVENLABS_API_KEY: options.fake.apiKey,
      AI_CALL_CONFIG: '',
    },
  });
  closeSync(out);
  closeSync(err);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const statusUrl = spec.kind === 'ai-call' ? `http://${HOST}:${statusPort}` : undefined;
  try {
    await waitReady(child, agiPort, statusUrl, spec.workers);
  } catch (error) {
    child.kill('SIGKILL');
    throw new Error(`${spec.name} did not start: ${error instanceof Error ? error.message : String(error)} (see ${stderrFile})`);
  }
  return {
    pid: child.pid!,
    agi: { host: HOST, port: agiPort },
    statusUrl,
    stderrFile,
    inspectable,
    stop: () => stopChild(child, exited),
  };
}

function productConfig(o: { agiPort: number; audiosocketPort: number; statusPort: number; agentId: string; agentId16k: string; logLevel: string; uplinkChunkMs: number }): string {
  return `# generated by bench/run.ts for one benchmark step
agi: { host: ${HOST}, port: ${o.agiPort} }
audiosocket: { host: ${HOST}, port: ${o.audiosocketPort} }
status: { host: ${HOST}, port: ${o.statusPort} }
calls: { maxConcurrent: 100000 }
log: { level: ${o.logLevel} }
agents:
  echo: { provider: echo, delayMs: 0 }
  el: { provider: elevenlabs, agentId: ${o.agentId}, connectTimeoutMs: 10000, silenceTimeoutMs: 60000, uplinkChunkMs: ${o.uplinkChunkMs} }
  el16: { provider: elevenlabs, agentId: ${o.agentId16k}, connectTimeoutMs: 10000, silenceTimeoutMs: 60000, uplinkChunkMs: ${o.uplinkChunkMs} }
`;
}

async function waitReady(child: ChildProcess, agiPort: number, statusUrl: string | undefined, workers: number): Promise<void> {
  const deadline = performance.now() + READY_TIMEOUT_MS;
  while (performance.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited with ${child.exitCode ?? child.signalCode}`);
    if (statusUrl === undefined) {
      if (await canConnect(agiPort)) return;
    } else {
      const health = await fetchJson(`${statusUrl}/healthz`);
      const okWorkers = workers === 1 || (Array.isArray(health?.['workers']) && (health['workers'] as Array<{ ready?: boolean }>).filter((w) => w.ready).length === workers);
      if (health?.['status'] === 'ok' && okWorkers && (await canConnect(agiPort))) return;
    }
    await sleep(100);
  }
  throw new Error(`not ready within ${READY_TIMEOUT_MS} ms`);
}

async function stopChild(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 8_000);
  await exited;
  clearTimeout(timer);
}

export async function fetchJson(url: string): Promise<Record<string, unknown> | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    if (!response.ok) return undefined;
    return (await response.json()) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

export async function fetchText(url: string): Promise<string | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    return response.ok ? await response.text() : undefined;
  } catch {
    return undefined;
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen({ host: HOST, port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ host: HOST, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** The first of `count` consecutive free ports (worker i listens on base + i). */
async function freeConsecutivePorts(count: number): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    let free = true;
    for (let i = 0; i < count && free; i++) free = await canBind(base + i);
    if (free) return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
