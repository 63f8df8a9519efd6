/**
 * The shape of bench/results/<date>.json, the verdicts against the issue's targets, and the
 * Markdown rendered from it into docs/BENCHMARKS.md.
 */
import type { MicroResult } from './micro.js';
import type { HangupResult, ProbeResult, RampResult, WindowResult } from './protocol.js';
import type { TargetName } from './targets.js';

export interface MachineInfo {
  readonly cores: number;
  readonly cpuModel: string;
  readonly node: string;
  readonly memoryGiB: number;
  readonly os: string;
  /** 1-minute load average before and after the run: other work on the machine makes numbers noisy. */
  readonly loadAverageBefore: number;
  loadAverageAfter: number;
}

export interface ServerMeasurements {
  /** CPU seconds (user + system, /proc) per call-second during the window. */
  readonly cpuPerCallSecond: number;
  /** Share of one core the server used during the window (all its processes). */
  readonly cpuCores: number;
  readonly rssIdleBytes: number;
  readonly rssActiveBytes: number;
  readonly rssPerCallBytes: number;
  readonly rssAfterBytes: number;
  /** Live heap after a forced full GC (inspector); undefined for cluster targets. */
  readonly heapIdleBytes: number | undefined;
  readonly heapAfterBytes: number | undefined;
  readonly eventLoopLagP99Ms: number | undefined;
  readonly eventLoopLagMaxMs: number | undefined;
  readonly frameClock: Readonly<Record<string, unknown>> | undefined;
  /** Time the server's threads waited for a CPU, per wall second (schedstat): the machine's share of any delay. */
  readonly runqueueWaitShare: number;
}

export interface StepRecord {
  readonly target: TargetName;
  readonly workers: number;
  readonly calls: number;
  readonly startedAt: string;
  readonly ramp: RampResult;
  readonly window: WindowResult;
  readonly hangup: HangupResult;
  /** New calls arriving one at a time while the step's calls are live (absent in older results). */
  readonly probe?: ProbeResult;
  /** Calls run and hung up before the idle measurement, so idle includes code compiled for calls (0 = none). */
  readonly warmupCalls?: number;
  readonly server: ServerMeasurements;
  /** With --heap-histogram: live heap per call by constructor (snapshot with calls − idle snapshot). */
  readonly heapPerCall: Array<{ key: string; bytesPerCall: number; objectsPerCall: number }> | undefined;
  /** --heap-histogram: what is still on the heap per call once the calls ended (after − idle). */
  readonly heapAfterPerCall?: Array<{ key: string; bytesPerCall: number; objectsPerCall: number }> | undefined;
  /** Share of one core the load generator used (if near 1, it limits the step, not the server). */
  readonly loadgenCpuCores: number;
  readonly loadgenRunqueueWaitShare: number;
  /** Share of the window in which some task on the machine waited for a CPU (PSI); high = noisy. */
  readonly machineCpuPressure: number | undefined;
  /** Server CPU per call-second ÷ the floor's at the same step, same run. */
  cpuRatioToFloor: number | undefined;
  /** Every call streamed, no gap over 40 ms, no frame lost, no call ended by the server. */
  readonly clean: boolean;
  readonly problems: string[];
  /** Things worth knowing that do not make the step unclean (gaps caused by the load generator). */
  readonly notes: string[];
  /** 2 = the retry of a step that was not clean. */
  attempt: number;
}

export interface BenchResults {
  readonly label: string | undefined;
  readonly startedAt: string;
  finishedAt: string;
  readonly machine: MachineInfo;
  readonly options: Readonly<Record<string, unknown>>;
  readonly aiCallBin: string;
  /** Node/V8 flags the servers ran with (absent in results from before they were recorded: V8 defaults). */
  readonly serverNodeFlags?: string;
  micro: MicroResult[];
  readonly steps: StepRecord[];
  /** Largest clean step per target. */
  capacity: Partial<Record<TargetName, number>>;
  verdicts: Verdict[];
  notes: string[];
}

export interface Verdict {
  readonly target: string;
  readonly check: string;
  readonly measured: string;
  readonly pass: boolean | undefined;
}

const KIB = 1024;
const MIB = 1024 * 1024;

/** The issue's targets, checked on the steps of this run. */
export function computeVerdicts(results: BenchResults): Verdict[] {
  const verdicts: Verdict[] = [];
  const steps = results.steps;
  // With retries a step may appear twice: judge each (target, calls) by its last attempt.
  const of = (target: TargetName): StepRecord[] => {
    const last = new Map<number, StepRecord>();
    for (const s of steps) if (s.target === target) last.set(s.calls, s);
    return [...last.values()];
  };
  const fmt = (value: number | undefined, digits = 2): string => (value === undefined ? 'n/a' : value.toFixed(digits));
  const worst = <T>(list: StepRecord[], pick: (s: StepRecord) => T | undefined, cmp: (a: T, b: T) => boolean): { step: StepRecord; value: T } | undefined => {
    let best: { step: StepRecord; value: T } | undefined;
    for (const step of list) {
      const value = pick(step);
      if (value === undefined) continue;
      if (!best || cmp(value, best.value)) best = { step, value };
    }
    return best;
  };
  const capacity = results.capacity;

  for (const [target, limit] of [
    ['echo', 1.5],
    ['elevenlabs', 3],
    ['elevenlabs-16k', 3],
  ] as const) {
    if (target === 'elevenlabs-16k' && of(target).length === 0) continue;
    const list = of(target).filter((s) => s.clean);
    const w = worst(list, (s) => s.cpuRatioToFloor, (a, b) => a > b);
    verdicts.push({
      target,
      check: `CPU per call-second ≤ ${limit}× floor (every clean step)`,
      measured: w ? `worst ${fmt(w.value)}× at ${w.step.calls} calls` : 'no clean step with a floor to compare',
      pass: w ? w.value <= limit : undefined,
    });
  }
  verdicts.push({
    target: 'echo',
    check: 'as many calls with no gap > 40 ms as the floor',
    measured: `echo ${capacity.echo ?? 0}, floor ${capacity.floor ?? 0}`,
    pass: capacity.floor === undefined ? undefined : (capacity.echo ?? 0) >= capacity.floor,
  });
  // The ElevenLabs targets: pcm_8000 (the recommended setup, the issue's target) and pcm_16000 beside it.
  const elTargets = (['elevenlabs', 'elevenlabs-16k'] as const).filter((t) => t === 'elevenlabs' || of(t).length > 0);
  for (const target of elTargets) {
    const el250 = of(target).find((s) => s.calls === 250);
    verdicts.push({
      target,
      check: '250 calls: no gap > 40 ms, p99 inter-frame ≤ 25 ms',
      measured: el250 ? `gaps ${el250.window.gapsOver40Ms}, p99 ${el250.window.interFrame.p99} ms, lost ${el250.window.framesLost}` : 'step not run',
      pass: el250 ? el250.clean && el250.window.interFrame.p99 <= 25 : undefined,
    });
  }
  for (const target of ['echo', 'elevenlabs', 'elevenlabs-16k', 'echo-workers', 'elevenlabs-workers'] as const) {
    const list = of(target);
    if (list.length === 0) continue;
    // Small steps are dominated by V8's fixed growth under load (young generation), not per-call state.
    const largest = Math.max(...list.map((s) => s.calls));
    const rss = worst(list.filter((s) => s.calls >= Math.min(250, largest)), (s) => s.server.rssPerCallBytes, (a, b) => a > b);
    verdicts.push({
      target,
      check: 'RSS ≤ 256 KiB per active call (steps ≥ 250 calls)',
      measured: rss ? `worst ${fmt(rss.value / KIB, 0)} KiB at ${rss.step.calls} calls` : 'n/a',
      pass: rss ? rss.value <= 256 * KIB : undefined,
    });
    const retained = worst(list, (s) => (s.server.heapAfterBytes !== undefined && s.server.heapIdleBytes !== undefined ? s.server.heapAfterBytes - s.server.heapIdleBytes : undefined), (a, b) => a > b);
    if (retained) {
      verdicts.push({
        target,
        check: 'back to idle after the calls end (live heap after GC ≤ idle + 2 MiB)',
        measured: `worst +${fmt(retained.value / MIB, 1)} MiB after ${retained.step.calls} calls (${fmt(retained.value / retained.step.calls / KIB, 1)} KiB per call)`,
        pass: retained.value <= 2 * MIB,
      });
    }
  }
  for (const target of elTargets) {
    const elSteps = of(target).filter((s) => s.clean);
    const up = worst(elSteps, (s) => (s.window.uplink.count > 0 ? s.window.uplink.p99 : undefined), (a, b) => a > b);
    verdicts.push({
      target,
      check: 'uplink added latency p99 ≤ 2 ms (clean steps)',
      measured: up ? `worst p99 ${fmt(up.value)} ms at ${up.step.calls} calls` : 'n/a',
      pass: up ? up.value <= 2 : undefined,
    });
    const down = worst(elSteps, (s) => s.window.downlinkAdded.p99 ?? (s.window.downlinkAdded.samples > 0 ? Infinity : undefined), (a, b) => a > b);
    verdicts.push({
      target,
      check: 'downlink added latency p99 ≤ 2 ms (clean steps)',
      measured: down ? `worst p99 ${down.value === Infinity ? '> 20' : fmt(down.value)} ms at ${down.step.calls} calls` : 'n/a',
      pass: down ? down.value <= 2 : undefined,
    });
    const barge = worst(elSteps, (s) => (s.window.bargeIn.count > 0 ? s.window.bargeIn.staleFramesMax : undefined), (a, b) => a > b);
    verdicts.push({
      target,
      check: 'barge-in flushed within one frame (≤ 1 agent frame after the interruption)',
      measured: barge ? `worst ${barge.value} frame(s) at ${barge.step.calls} calls` : 'n/a',
      pass: barge ? barge.value <= 1 : undefined,
    });
  }
  // A new call arriving while the step's calls stream (the probe); the ramp's figure, taken while
  // 250 calls per second arrive at once, is in the latency table beside it.
  const agi = worst(of('echo').filter((s) => s.clean), (s) => (s.probe?.agiToStatus.count ? s.probe.agiToStatus.p99 : undefined), (a, b) => a > b);
  verdicts.push({
    target: 'echo',
    check: 'AGI request → AI_STATUS p99 ≤ 5 ms (a new call while the step\'s calls are live; clean steps)',
    measured: agi ? `worst p99 ${fmt(agi.value)} ms at ${agi.step.calls} calls` : 'n/a',
    pass: agi ? agi.value <= 5 : undefined,
  });
  for (const target of ['elevenlabs', 'elevenlabs-16k'] as const) {
    const ready = worst(of(target).filter((s) => s.clean), (s) => (s.probe?.agentReadyToStatus.count ? s.probe.agentReadyToStatus.p99 : undefined), (a, b) => a > b);
    verdicts.push({
      target,
      check: "AGI request → AI_STATUS p99 ≤ the agent's connect time + 5 ms (agent ready → AI_STATUS p99 ≤ 5 ms, a new call while the step's calls are live; clean steps)",
      measured: ready ? `worst p99 ${fmt(ready.value)} ms at ${ready.step.calls} calls` : 'n/a',
      pass: ready ? ready.value <= 5 : undefined,
    });
  }
  for (const [single, multi] of [
    ['echo', 'echo-workers'],
    ['elevenlabs', 'elevenlabs-workers'],
  ] as const) {
    if (of(multi).length === 0) continue;
    verdicts.push({
      target: multi,
      check: `capacity grows with workers (vs ${single})`,
      measured: `${multi} ${capacity[multi] ?? 0} calls, ${single} ${capacity[single] ?? 0} calls`,
      pass: (capacity[multi] ?? 0) > (capacity[single] ?? 0) ? true : (capacity[multi] ?? 0) === (capacity[single] ?? 0) ? undefined : false,
    });
  }
  return verdicts;
}

// ── Markdown ───────────────────────────────────────────────────────────────────────────────────

function pct(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? '–' : `${(value * 100).toFixed(0)} %`;
}

function n(value: number | undefined, digits = 1): string {
  if (value === undefined || !Number.isFinite(value)) return '–';
  return value.toFixed(digits);
}

/** "2 (20×41 ms)": stalls that hit at least half the calls at once, and the biggest one. */
function stallText(w: StepRecord['window'], calls: number): string {
  const wide = w.stalls.filter((stall) => stall.calls * 2 >= calls);
  if (w.stalls.length === 0) return '0';
  const top = w.stalls[0]!;
  const loadgen = wide.filter((stall) => stall.cause === 'loadgen').length;
  return `${wide.length}${loadgen > 0 ? ` (${loadgen} load gen.)` : ''}, top ${top.calls}×${top.maxGapMs.toFixed(0)} ms`;
}

function lateTicks(s: StepRecord): string {
  const late = s.server.frameClock?.['lateTicks'];
  return typeof late === 'number' ? String(late) : '–';
}

export function renderMarkdown(results: BenchResults, resultFile: string): string {
  const m = results.machine;
  const lines: string[] = [];
  lines.push(
    `Run \`${results.startedAt}\`${results.label ? ` (${results.label})` : ''}: ${m.cores} cores, ${m.cpuModel}, ${m.memoryGiB} GiB, Node ${m.node}, ${m.os}; ` +
      `load average ${m.loadAverageBefore.toFixed(1)} before, ${m.loadAverageAfter.toFixed(1)} after; server flags: ${results.serverNodeFlags ? `\`${results.serverNodeFlags}\`` : 'V8 defaults'}. Raw data: [\`${resultFile}\`](../${resultFile}).`,
  );
  lines.push('');
  for (const note of results.notes) lines.push(`> ${note}`);
  if (results.notes.length > 0) lines.push('');
  lines.push('**Cost and pacing** (CPU = user+system from /proc, all server processes; RSS above idle; heap = live heap after a forced GC; gaps > 40 ms: all, and in brackets those not explained by a stall of the load generator itself (its own 20 ms tick late by > 10 ms at that moment); stalls = gaps that hit at least half the calls at once, with the biggest as calls × gap; server late ticks = FrameClock ticks that found a frame overdue; CPU wait = time runnable but not running, per second (schedstat), i.e. held back by other work on the machine; machine CPU pressure = PSI "some")');
  lines.push('');
  lines.push('| target | calls | live | CPU ms per call·s | × floor | server cores | RSS KiB/call | heap after − idle | inter-frame p50 / p99 / p99.9 / max ms | gaps > 40 ms | lost | stalls | server late ticks | server / loadgen CPU wait | machine CPU pressure | loadgen cores | clean |');
  lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- | ---: | --- | ---: | :---: |');
  for (const s of results.steps) {
    const w = s.window;
    const heap = s.server.heapAfterBytes !== undefined && s.server.heapIdleBytes !== undefined ? `${n((s.server.heapAfterBytes - s.server.heapIdleBytes) / MIB)} MiB` : '–';
    lines.push(
      `| ${s.target}${s.attempt > 1 ? ' (retry)' : ''} | ${s.calls} | ${s.ramp.live} | ${n(s.server.cpuPerCallSecond * 1000, 2)} | ${n(s.cpuRatioToFloor, 2)} | ${n(s.server.cpuCores, 2)} | ${n(s.server.rssPerCallBytes / KIB, 0)} | ${heap} | ` +
        `${n(w.interFrame.p50, 2)} / ${n(w.interFrame.p99, 2)} / ${n(w.interFrame.p999, 2)} / ${n(w.interFrame.max, 1)} | ${w.gapsOver40Ms}${w.gapsOver40Ms !== w.serverGapsOver40Ms ? ` (server ${w.serverGapsOver40Ms})` : ''} | ${w.framesLost} | ${stallText(w, s.ramp.live)} | ${lateTicks(s)} | ${pct(s.server.runqueueWaitShare)} / ${pct(s.loadgenRunqueueWaitShare)} | ${pct(s.machineCpuPressure)} | ${n(s.loadgenCpuCores, 2)} | ${s.clean ? 'yes' : `no: ${s.problems.join('; ')}`} |`,
    );
  }
  lines.push('');
  lines.push('**Latency** (ms; uplink = caller frame sent → its audio at the fake ElevenLabs; downlink added = the bridge\'s delay beyond the wait for the next 20 ms slot, estimated as in "Method"; raw = reply sent → first agent frame, slot wait included; new call = one of 100 calls arriving 30 ms apart after the window, while the calls of the step stream; ramp = every call of the ramp (250 calls per second arriving); agent ready = the fake agent sent its metadata, so that column is AGI → AI_STATUS without the time the agent itself took to connect; barge-in = interruption sent → last agent frame still played; every latency includes the load generator\'s own event-loop delay, shown last)');
  lines.push('');
  lines.push('| target | calls | AGI → AI_STATUS p50 / p99: new call / during the ramp | agent ready → AI_STATUS p50 / p99: new call / ramp | uplink p50 / p99 | downlink added p50 / p99 (next-slot rate, n) | downlink raw p50 / p99 | barge-ins | flush p99 / max | > 1 frame | result AGIs ok | load gen. loop delay p99 |');
  lines.push('| --- | ---: | --- | --- | --- | --- | --- | ---: | --- | ---: | ---: | ---: |');
  for (const s of results.steps) {
    const w = s.window;
    const el = s.target.startsWith('elevenlabs');
    if (s.attempt > 1 && s.clean === false) continue;
    const added = w.downlinkAdded;
    const ready = s.ramp.agentReadyToStatus;
    const probeAgi = s.probe?.agiToStatus;
    const probeReady = s.probe?.agentReadyToStatus;
    const addedText = added.samples === 0 ? '–' : `${added.p50 === undefined ? '> 20' : (added.p99IsBound && added.p50 === added.p99 ? '≤ ' : '') + n(added.p50, 2)} / ${added.p99 === undefined ? '> 20' : (added.p99IsBound ? '≤ ' : '') + n(added.p99, 2)} (${(added.nextSlotRate * 100).toFixed(1)} %, ${added.samples})`;
    lines.push(
      `| ${s.target} | ${s.calls} | ${probeAgi?.count ? `${n(probeAgi.p50, 2)} / ${n(probeAgi.p99, 2)}` : '–'} · ${n(s.ramp.agiToStatus.p50, 2)} / ${n(s.ramp.agiToStatus.p99, 2)} | ${probeReady?.count ? `${n(probeReady.p50, 2)} / ${n(probeReady.p99, 2)}` : '–'} · ${ready?.count ? `${n(ready.p50, 2)} / ${n(ready.p99, 2)}` : '–'} | ${el ? `${n(w.uplink.p50, 2)} / ${n(w.uplink.p99, 2)}` : '–'} | ${el ? addedText : '–'} | ${el ? `${n(w.downlinkRaw.p50, 1)} / ${n(w.downlinkRaw.p99, 1)}` : '–'} | ${el ? w.bargeIn.count : '–'} | ${el ? `${n(w.bargeIn.flushMs.p99, 1)} / ${n(w.bargeIn.flushMs.max, 1)}` : '–'} | ${el ? w.bargeIn.overOneFrame : '–'} | ${s.hangup.resultsOk}/${s.hangup.calls} | ${n(w.loadgen.loopDelayMs.p99, 1)} |`,
    );
  }
  lines.push('');
  lines.push('**Targets**');
  lines.push('');
  lines.push('| target | check | measured | pass |');
  lines.push('| --- | --- | --- | :---: |');
  for (const v of results.verdicts) lines.push(`| ${v.target} | ${v.check} | ${v.measured} | ${v.pass === undefined ? '?' : v.pass ? 'yes' : '**no**'} |`);
  lines.push('');
  lines.push(`Capacity (largest clean step): ${Object.entries(results.capacity).map(([t, c]) => `${t} ${c}`).join(', ') || 'none'}.`);
  if (results.micro.length > 0) {
    lines.push('');
    lines.push('**Micro-benchmarks** (one core; per CPU second)');
    lines.push('');
    lines.push('| operation | rate |');
    lines.push('| --- | ---: |');
    for (const r of results.micro) lines.push(`| ${r.name} | ${r.value} ${r.unit} |`);
  }
  return lines.join('\n');
}
