/**
 * `npm run bench`: ramps concurrent calls against the floor and ai-call (echo agent, ElevenLabs agent,
 * one process and worker mode) and reports cost, memory, pacing and latency per step and target.
 *
 *   runner (this process, idle while measuring)
 *     ├─ load generator (bench/loadgen.ts): Asterisk side + lean fake ElevenLabs, one 20 ms clock
 *     ├─ micro-benchmarks (bench/micro.ts), before the load
 *     └─ per step and target, a fresh server process: floor, `ai-call serve`, or worker mode
 *
 * Per step: start the server → idle RSS and live heap (forced GC through --inspect) → ramp N calls →
 * settle → measure a window (CPU from /proc, frame timing and latency from the load generator) →
 * hang every call up and ask each result AGI → RSS and live heap after → stop the server.
 * Targets run interleaved per step (floor, echo, …) so the comparison at one step is close in time;
 * a target stops at its first step that is not clean. The whole run is bounded by --max-minutes.
 *
 * Options: --quick (steps 50,100,250, 5 s windows) · --steps 50,100,… · --window-s 10 ·
 *   --targets floor,echo,elevenlabs,elevenlabs-16k,echo-workers,elevenlabs-workers · --workers N (default: cores) ·
 *   --ai-call dist/src/bin/ai-call.js (another build, e.g. a fix under test) · --cpu-prof ·
 *   --label text · --no-docs · --no-micro · --max-minutes 10 · --log-level warn · --heap-histogram ·
 *   --alloc-sampling (what outlives a scavenge, per allocating function: bench/alloc-sampling.ts) ·
 *   --no-warmup (idle = a server that never carried a call) ·
 *   --uplink-chunk-ms 20 (the elevenlabs agent's uplinkChunkMs) · --server-node-options '--max-semi-space-size=8'
 *   (node/V8 flags of the servers, floor included; default: ai-call's shipped flags, '' = V8 defaults) · --render <results.json> (re-render
 *   the tables into docs/BENCHMARKS.md from a saved run, no load)
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir, totalmem, type as osType, release } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { histogram, takeSnapshot } from './heap-histogram.js';
import { startPromotionSampling } from './alloc-sampling.js';
import { collectAndMeasureHeap, inspectorUrls } from './inspector.js';
import type { MicroResult } from './micro.js';
import { cpuPressureSeconds, cpuSeconds, processTree, rssBytes, runqueueWaitSeconds } from './proc.js';
import type { LoadgenReply, LoadgenRequest } from './protocol.js';
import { computeVerdicts, renderMarkdown, type BenchResults, type StepRecord } from './results.js';
import { fetchJson, fetchText, launchTarget, sleep, targetSpecs, type TargetName, type TargetSpec } from './targets.js';
import { SERVER_NODE_FLAGS } from '../src/runtime-flags.js';

const HERE = dirname(fileURLToPath(import.meta.url)); // dist/bench
const ROOT = findRoot(HERE);
const DOCS_FILE = join(ROOT, 'docs', 'BENCHMARKS.md');
const DOCS_START = '<!-- bench:results:start -->';
const DOCS_END = '<!-- bench:results:end -->';
const ALL_TARGETS: TargetName[] = ['floor', 'echo', 'elevenlabs', 'elevenlabs-16k', 'echo-workers', 'elevenlabs-workers'];
/** Calls started per second during a ramp. */
const RAMP_CALLS_PER_S = 250;
const SETTLE_MS = 1_000;
/** After the hang-up, before "after" is measured: lets close timers (ws close grace 2 s) run out. */
const AFTER_MS = 3_000;
/**
 * Before the idle measurement, this many calls (at most the step's) run for WARMUP_MS and hang up:
 * "idle" is then a server that has carried calls, with the code for them compiled, as in production,
 * and "after − idle" shows what the step's calls left behind rather than V8's one-off compiled code.
 */
const WARMUP_CALLS = 20;
const WARMUP_MS = 2_000;
/** New calls probed one at a time while the step's calls are live: AGI → AI_STATUS with no ramp around it. */
const PROBES = 100;
const PROBE_INTERVAL_MS = 30;

interface Options {
  readonly steps: number[];
  readonly windowS: number;
  readonly targets: TargetName[];
  readonly workers: number;
  readonly aiCallBin: string;
  readonly cpuProf: boolean;
  readonly label: string | undefined;
  readonly docs: boolean;
  readonly micro: boolean;
  readonly maxMinutes: number;
  readonly logLevel: string;
  readonly quick: boolean;
  readonly heapHistogram: boolean;
  readonly allocSampling: boolean;
  /** Run WARMUP_CALLS calls before measuring idle (--no-warmup: measure a server that never had a call). */
  readonly warmup: boolean;
  readonly uplinkChunkMs: number;
  /** Node/V8 options for the server processes only (NODE_OPTIONS), e.g. `--max-semi-space-size=8`. */
  readonly serverNodeOptions: string | undefined;
  /** Re-render docs/BENCHMARKS.md from this results file instead of running. */
  readonly render: string | undefined;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      steps: { type: 'string' },
      'window-s': { type: 'string' },
      targets: { type: 'string' },
      workers: { type: 'string' },
      'ai-call': { type: 'string' },
      'cpu-prof': { type: 'boolean', default: false },
      label: { type: 'string' },
      'no-docs': { type: 'boolean', default: false },
      'no-micro': { type: 'boolean', default: false },
      'max-minutes': { type: 'string' },
      'log-level': { type: 'string', default: 'warn' },
      'heap-histogram': { type: 'boolean', default: false },
      'alloc-sampling': { type: 'boolean', default: false },
      'no-warmup': { type: 'boolean', default: false },
      'uplink-chunk-ms': { type: 'string', default: '20' },
      'server-node-options': { type: 'string' },
      render: { type: 'string' },
    },
  });
  const quick = values.quick === true;
  const list = (text: string): string[] => text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  const steps = (values.steps ? list(values.steps).map(Number) : quick ? [50, 100, 250] : [50, 100, 250, 500, 1000, 2000, 4000]).filter((n) => Number.isInteger(n) && n > 0);
  const targets = (values.targets ? list(values.targets) : ALL_TARGETS) as TargetName[];
  for (const target of targets) if (!ALL_TARGETS.includes(target)) throw new Error(`unknown target ${target}; known: ${ALL_TARGETS.join(', ')}`);
  const workers = values.workers ? Number(values.workers) : Math.max(2, availableParallelism());
  return {
    steps,
    windowS: values['window-s'] ? Number(values['window-s']) : quick ? 5 : 10,
    targets,
    workers,
    aiCallBin: values['ai-call'] ?? join(HERE, '..', 'src', 'bin', 'ai-call.js'),
    cpuProf: values['cpu-prof'] === true,
    label: values.label,
    docs: values['no-docs'] !== true,
    micro: values['no-micro'] !== true,
    maxMinutes: values['max-minutes'] ? Number(values['max-minutes']) : 10,
    logLevel: values['log-level'] ?? 'warn',
    quick,
    heapHistogram: values['heap-histogram'] === true,
    allocSampling: values['alloc-sampling'] === true,
    warmup: values['no-warmup'] !== true,
    uplinkChunkMs: Number(values['uplink-chunk-ms'] ?? 20),
    serverNodeOptions: values['server-node-options'],
    render: values.render,
  };
}

/** Request/answer over the load generator's IPC channel. */
class Loadgen {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, (reply: LoadgenReply) => void>();
  #nextId = 1;

  constructor() {
    this.#child = fork(join(HERE, 'loadgen.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.#child.on('message', (reply: LoadgenReply) => {
      const resolve = this.#pending.get(reply.id);
      this.#pending.delete(reply.id);
      resolve?.(reply);
    });
    this.#child.on('exit', (code) => {
      for (const resolve of this.#pending.values()) resolve({ id: -1, type: 'error', message: `load generator exited with ${code}` });
      this.#pending.clear();
    });
  }

  get pid(): number {
    return this.#child.pid!;
  }

  async call<T extends LoadgenReply['type']>(request: DistributiveOmitId<LoadgenRequest>, expect: T): Promise<Extract<LoadgenReply, { type: T }>> {
    const id = this.#nextId++;
    const reply = await new Promise<LoadgenReply>((resolve) => {
      this.#pending.set(id, resolve);
      this.#child.send({ ...request, id });
    });
    if (reply.type === 'error') throw new Error(`load generator: ${reply.message}`);
    if (reply.type !== expect) throw new Error(`load generator answered ${reply.type}, expected ${expect}`);
    return reply as Extract<LoadgenReply, { type: T }>;
  }

  exit(): void {
    if (this.#child.connected) this.#child.send({ id: 0, type: 'exit' });
  }
}

type DistributiveOmitId<T> = T extends unknown ? Omit<T, 'id'> : never;

async function runMicro(): Promise<MicroResult[]> {
  return new Promise((resolve) => {
    const child = fork(join(HERE, 'micro.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let results: MicroResult[] = [];
    child.on('message', (message: { type: string; results: MicroResult[] }) => {
      if (message.type === 'micro') results = message.results;
    });
    child.on('exit', () => resolve(results));
  });
}

function metricValue(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm').exec(text);
  return match ? Number(match[1]) : undefined;
}

async function runStep(
  spec: TargetSpec,
  calls: number,
  options: Options,
  loadgen: Loadgen,
  fake: { baseUrl: string; apiKey: string; agentId: string; agentId16k: string },
  workRoot: string,
  profileDir: string | undefined,
): Promise<StepRecord> {
  const startedAt = new Date().toISOString();
  const target = await launchTarget({
    spec,
    aiCallBin: options.aiCallBin,
    benchDir: HERE,
    workDir: join(workRoot, `${spec.name}-${calls}`),
    fake,
    cpuProfDir: profileDir !== undefined && options.cpuProf ? join(profileDir, `${spec.name}-${calls}`) : undefined,
    logLevel: options.logLevel,
    uplinkChunkMs: options.uplinkChunkMs,
    serverNodeOptions: options.serverNodeOptions,
  });
  try {
    const tree = processTree(target.pid);
    await sleep(300);
    const agiTarget = { agiHost: target.agi.host, agiPort: target.agi.port, agent: spec.agent };
    const rampUp = (count: number, rampMs: number) => loadgen.call({ type: 'ramp', ...agiTarget, scenario: spec.scenario, calls: count, rampMs }, 'ramped');
    const warmupCalls = options.warmup ? Math.min(WARMUP_CALLS, calls) : 0;
    if (warmupCalls > 0) {
      await rampUp(warmupCalls, Math.round((warmupCalls / RAMP_CALLS_PER_S) * 1000));
      await sleep(WARMUP_MS);
      await loadgen.call({ type: 'hangup' }, 'hung-up');
      await sleep(AFTER_MS);
    }
    const heap = async (): Promise<number | undefined> =>
      target.inspectable ? (await collectAndMeasureHeap(inspectorUrls(target.stderrFile))).usedBytes || undefined : undefined;
    const heapIdle = await heap();
    const rssIdle = rssBytes(tree);
    // Optional: what each live call holds, by constructor (two heap snapshots: idle and loaded).
    const snapshotUrl = options.heapHistogram && target.inspectable ? inspectorUrls(target.stderrFile)[0] : undefined;
    const idleHistogram = snapshotUrl ? histogram(await takeSnapshot(snapshotUrl)) : undefined;
    const { ramp } = await rampUp(calls, Math.max(1_000, Math.round((calls / RAMP_CALLS_PER_S) * 1000)));
    // Scrape now, not at the window start: it resets the event-loop lag histogram, and its own
    // cost must not land inside the window.
    if (target.statusUrl) await fetchText(`${target.statusUrl}/metrics`);
    await sleep(SETTLE_MS);
    const healthBefore = target.statusUrl ? await fetchJson(`${target.statusUrl}/healthz`) : undefined;
    // The same /proc counters at both ends of the window; the step's figures are their differences.
    const counters = () => ({
      server: cpuSeconds(tree),
      loadgen: cpuSeconds([loadgen.pid]),
      serverWait: runqueueWaitSeconds(tree),
      loadgenWait: runqueueWaitSeconds([loadgen.pid]),
      pressure: cpuPressureSeconds(),
      atMs: performance.now(),
    });
    // (Started before the window so that connecting the profiler is not counted as the server's CPU.)
    const samplingUrl = options.allocSampling && target.inspectable ? inspectorUrls(target.stderrFile)[0] : undefined;
    const sampling = samplingUrl ? await startPromotionSampling(samplingUrl) : undefined;
    const before = counters();
    await loadgen.call({ type: 'measure-start' }, 'measuring');
    await sleep(options.windowS * 1000);
    const after = counters();
    const rssActive = rssBytes(tree);
    const { window } = await loadgen.call({ type: 'measure-stop' }, 'measured');
    if (sampling && profileDir !== undefined) {
      const dir = join(profileDir, `${spec.name}-${calls}`);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'promoted.heapprofile'), JSON.stringify(await sampling.stop()));
    }
    const liveHistogram = snapshotUrl ? histogram(await takeSnapshot(snapshotUrl)) : undefined;
    const metrics = target.statusUrl ? await fetchText(`${target.statusUrl}/metrics`) : undefined;
    const health = target.statusUrl ? await fetchJson(`${target.statusUrl}/healthz`) : undefined;
    const { probe } = await loadgen.call({ type: 'probe', ...agiTarget, probes: PROBES, intervalMs: PROBE_INTERVAL_MS }, 'probed');
    const { hangup } = await loadgen.call({ type: 'hangup' }, 'hung-up');
    await sleep(AFTER_MS);
    const heapAfter = await heap();
    const afterHistogram = snapshotUrl ? histogram(await takeSnapshot(snapshotUrl)) : undefined;
    const rssAfter = rssBytes(tree);
    const wallS = (after.atMs - before.atMs) / 1000;
    const liveCalls = Math.max(1, window.calls);
    const lagP99 = metricValue(metrics, 'aicall_nodejs_eventloop_lag_p99_seconds');
    const lagMax = metricValue(metrics, 'aicall_nodejs_eventloop_lag_max_seconds');
    const problems: string[] = [];
    const notes: string[] = [];
    if (ramp.failed > 0) problems.push(`${ramp.failed} calls failed (${Object.keys(ramp.failures).slice(0, 2).join(', ')})`);
    if (window.serverGapsOver40Ms > 0) problems.push(`${window.serverGapsOver40Ms} gaps > 40 ms`);
    else if (window.gapsOver40Ms > 0) notes.push(`${window.gapsOver40Ms} gaps > 40 ms, all during stalls of the load generator`);
    if (window.framesLost > 0) problems.push(`${window.framesLost} frames lost`);
    if (window.endedByServer > 0) problems.push(`${window.endedByServer} calls ended by the server`);
    const loadgenCpuCores = (after.loadgen - before.loadgen) / wallS;
    if (loadgenCpuCores > 0.95) problems.push('load generator saturated');
    return {
      target: spec.name,
      workers: spec.workers,
      calls,
      startedAt,
      ramp,
      window,
      hangup,
      probe,
      warmupCalls,
      server: {
        cpuPerCallSecond: (after.server - before.server) / (liveCalls * wallS),
        cpuCores: (after.server - before.server) / wallS,
        rssIdleBytes: rssIdle,
        rssActiveBytes: rssActive,
        rssPerCallBytes: (rssActive - rssIdle) / liveCalls,
        rssAfterBytes: rssAfter,
        heapIdleBytes: heapIdle,
        heapAfterBytes: heapAfter,
        eventLoopLagP99Ms: lagP99 === undefined ? undefined : lagP99 * 1000,
        eventLoopLagMaxMs: lagMax === undefined ? undefined : lagMax * 1000,
        frameClock: frameClockDelta(healthBefore, health),
        runqueueWaitShare: (after.serverWait - before.serverWait) / wallS,
      },
      heapPerCall: idleHistogram && liveHistogram ? perCallHistogram(idleHistogram, liveHistogram, Math.max(1, window.calls)) : undefined,
      heapAfterPerCall: idleHistogram && afterHistogram ? perCallHistogram(idleHistogram, afterHistogram, Math.max(1, window.calls)) : undefined,
      loadgenCpuCores,
      loadgenRunqueueWaitShare: (after.loadgenWait - before.loadgenWait) / wallS,
      machineCpuPressure: before.pressure !== undefined && after.pressure !== undefined ? (after.pressure - before.pressure) / wallS : undefined,
      cpuRatioToFloor: undefined,
      clean: problems.length === 0,
      problems,
      notes,
      attempt: 1,
    };
  } finally {
    await target.stop();
  }
}

/** (loaded − idle) ÷ calls per heap class: the 15 biggest per-call costs. */
function perCallHistogram(
  idle: ReturnType<typeof histogram>,
  live: ReturnType<typeof histogram>,
  calls: number,
): Array<{ key: string; bytesPerCall: number; objectsPerCall: number }> {
  const before = new Map(idle.map((row) => [row.key, row]));
  return live
    .map((row) => ({
      key: row.key,
      bytesPerCall: Math.round((row.bytes - (before.get(row.key)?.bytes ?? 0)) / calls),
      objectsPerCall: Math.round(((row.count - (before.get(row.key)?.count ?? 0)) / calls) * 10) / 10,
    }))
    .sort((a, b) => b.bytesPerCall - a.bytesPerCall)
    .slice(0, 15);
}

/** The server's FrameClock counters over the window (single process: /healthz frameClock). */
function frameClockDelta(before: Record<string, unknown> | undefined, after: Record<string, unknown> | undefined): Record<string, number> | undefined {
  const a = before?.['frameClock'] as Record<string, number> | undefined;
  const b = after?.['frameClock'] as Record<string, number> | undefined;
  if (!a || !b) return undefined;
  const delta: Record<string, number> = {};
  for (const key of ['ticks', 'lateTicks', 'catchUpFrames', 'skippedFrames', 'listenerErrors']) delta[key] = (b[key] ?? 0) - (a[key] ?? 0);
  return delta;
}

function machineInfo(): BenchResults['machine'] {
  return {
    cores: availableParallelism(),
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    node: process.versions.node,
    memoryGiB: Math.round(totalmem() / 1024 ** 3),
    os: `${osType()} ${release()}`,
    loadAverageBefore: loadavg()[0] ?? 0,
    loadAverageAfter: 0,
  };
}

function findRoot(from: string): string {
  let dir = from;
  for (let i = 0; i < 6; i++) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'ai-call') return dir;
    dir = dirname(dir);
  }
  throw new Error(`cannot find the ai-call package root above ${from}`);
}

function updateDocs(markdown: string): boolean {
  if (!existsSync(DOCS_FILE)) return false;
  const text = readFileSync(DOCS_FILE, 'utf8');
  const start = text.indexOf(DOCS_START);
  const end = text.indexOf(DOCS_END);
  if (start < 0 || end < start) return false;
  writeFileSync(DOCS_FILE, `${text.slice(0, start + DOCS_START.length)}\n${markdown}\n${text.slice(end)}`);
  return true;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options.render !== undefined) {
    // Verdicts and tables are recomputed with this version of results.ts; the numbers are the file's.
    const results = JSON.parse(readFileSync(options.render, 'utf8')) as BenchResults;
    results.verdicts = computeVerdicts(results);
    const markdown = renderMarkdown(results, relative(ROOT, options.render));
    process.stdout.write(`${markdown}\n`);
    if (options.docs) process.stdout.write(updateDocs(markdown) ? `updated ${relative(process.cwd(), DOCS_FILE)}\n` : 'docs not updated\n');
    return;
  }
  if (!existsSync(options.aiCallBin)) throw new Error(`${options.aiCallBin} does not exist: run npm run build first`);
  const startedMs = performance.now();
  const stamp = new Date().toISOString().replace(/:/g, '-').replace(/\..+$/, '');
  const resultsDir = join(ROOT, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const workRoot = join(tmpdir(), `ai-call-bench-${stamp}`);
  const profileDir = options.cpuProf || options.allocSampling ? join(resultsDir, 'profiles', stamp) : undefined;
  const specs = targetSpecs(options.workers);
  const log = (text: string): void => {
    process.stdout.write(`[bench ${((performance.now() - startedMs) / 1000).toFixed(0).padStart(4)} s] ${text}\n`);
  };

  const results: BenchResults = {
    label: options.label,
    startedAt: new Date().toISOString(),
    finishedAt: '',
    machine: machineInfo(),
    options: { ...options, aiCallBin: relative(ROOT, options.aiCallBin) },
    aiCallBin: relative(ROOT, options.aiCallBin),
    serverNodeFlags: options.serverNodeOptions ?? SERVER_NODE_FLAGS.join(' '),
    micro: [],
    steps: [],
    capacity: {},
    verdicts: [],
    notes: [],
  };
  log(`${results.machine.cores} cores, ${results.machine.cpuModel}, Node ${results.machine.node}, load average ${results.machine.loadAverageBefore.toFixed(1)}`);
  if (results.machine.loadAverageBefore > results.machine.cores * 0.5) {
    results.notes.push(`The machine was busy before the run (load average ${results.machine.loadAverageBefore.toFixed(1)} on ${results.machine.cores} cores): treat these numbers as preliminary.`);
  }

  if (options.micro) {
    log('micro-benchmarks…');
    results.micro = await runMicro();
  }

  const loadgen = new Loadgen();
  try {
    const fake = await loadgen.call({ type: 'start-fake' }, 'fake-ready');
    const active = new Set(options.targets);
    const budgetMs = options.maxMinutes * 60_000;
    outer: for (const calls of options.steps) {
      for (const name of options.targets) {
        if (!active.has(name)) continue;
        // A step takes about ramp + settle + window + teardown; do not start one that cannot finish.
        const estimateMs = (calls / RAMP_CALLS_PER_S) * 1000 + SETTLE_MS + options.windowS * 1000 + AFTER_MS + 4_000 + calls * 4;
        if (performance.now() - startedMs + estimateMs > budgetMs) {
          results.notes.push(`Stopped before ${name} at ${calls} calls: the ${options.maxMinutes}-minute budget would be exceeded.`);
          break outer;
        }
        log(`${name} × ${calls} calls…`);
        // A step that is not clean runs once more: one stall from other work on a shared machine
        // must not end a target's ramp. Both attempts are kept; the target stops after two.
        let clean = false;
        for (let attempt = 1; attempt <= 2 && !clean; attempt++) {
          let record: StepRecord;
          try {
            record = await runStep(specs[name], calls, options, loadgen, fake, workRoot, profileDir);
          } catch (err) {
            results.notes.push(`${name} at ${calls} calls failed to run: ${err instanceof Error ? err.message : String(err)}`);
            log(`  failed: ${err instanceof Error ? err.message : String(err)}`);
            break;
          }
          record.attempt = attempt;
          const floor = [...results.steps].reverse().find((s) => s.target === 'floor' && s.calls === calls && s.clean) ?? results.steps.find((s) => s.target === 'floor' && s.calls === calls);
          if (floor && name !== 'floor' && floor.server.cpuPerCallSecond > 0) record.cpuRatioToFloor = record.server.cpuPerCallSecond / floor.server.cpuPerCallSecond;
          results.steps.push(record);
          const w = record.window;
          log(
            `  ${attempt > 1 ? '(retry) ' : ''}${record.ramp.live}/${calls} live, cpu ${(record.server.cpuPerCallSecond * 1000).toFixed(2)} ms/call·s (${record.server.cpuCores.toFixed(2)} cores` +
              `${record.cpuRatioToFloor !== undefined ? `, ${record.cpuRatioToFloor.toFixed(2)}× floor` : ''}), inter-frame p99 ${w.interFrame.p99} max ${w.interFrame.max} ms, ` +
              `gaps>40 ${w.gapsOver40Ms} (server ${w.serverGapsOver40Ms}), lost ${w.framesLost}, loadgen ${record.loadgenCpuCores.toFixed(2)} cores, server CPU wait ${(record.server.runqueueWaitShare * 100).toFixed(0)} %` +
              `${record.clean ? '' : ` — NOT CLEAN: ${record.problems.join('; ')}`}`,
          );
          clean = record.clean;
        }
        if (clean) results.capacity[name] = calls;
        else active.delete(name);
      }
      if (active.size === 0) break;
    }
  } finally {
    loadgen.exit();
    rmSync(workRoot, { recursive: true, force: true });
  }

  results.machine.loadAverageAfter = loadavg()[0] ?? 0;
  results.finishedAt = new Date().toISOString();
  results.verdicts = computeVerdicts(results);
  const fileName = `${stamp}${options.label ? `-${options.label.replace(/[^A-Za-z0-9_-]+/g, '-')}` : ''}.json`;
  const resultFile = join(resultsDir, fileName);
  writeFileSync(resultFile, `${JSON.stringify(results, null, 2)}\n`);
  const markdown = renderMarkdown(results, relative(ROOT, resultFile));
  process.stdout.write(`\n${markdown}\n\n`);
  log(`results: ${relative(process.cwd(), resultFile)}`);
  if (options.docs) log(updateDocs(markdown) ? `updated ${relative(process.cwd(), DOCS_FILE)}` : `${DOCS_FILE} has no ${DOCS_START} block: not updated`);
  if (profileDir) log(`CPU profiles: ${relative(process.cwd(), profileDir)} (summarise with node dist/bench/profile-summary.js <file>)`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
