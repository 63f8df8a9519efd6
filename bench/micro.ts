/**
 * Micro-benchmarks of the per-frame work: the AudioSocket codec (MB/s of payload), G.711 and the
 * resampling converters (× real time: seconds of audio handled per CPU second, on one core), and the
 * ElevenLabs JSON/base64 framing. Rates are per CPU second (process.cpuUsage), not per wall second,
 * so other load on the machine slows the run down without skewing the numbers much.
 *
 * Run alone: node dist/bench/micro.js   (bench/run.ts forks it and reads the results over IPC)
 */
import { encodeAudio, Kind } from '../src/asterisk/audiosocket/protocol.js';
import { AudioSocketParser } from '../src/asterisk/audiosocket/parser.js';
import { ulawDecode, ulawEncode } from '../src/audio/g711.js';
import { createConverter } from '../src/audio/convert.js';
import type { AudioFormat } from '../src/audio/format.js';
import { encodeUserAudio, encodeUserAudioFrame, parseServerMessage } from '../src/agent/elevenlabs/messages.js';
import { EchoProvider } from '../src/agent/echo/echo-agent.js';
import type { AgentHandlers, AgentSession } from '../src/agent/types.js';
import { MediaConnection, type MediaHandler } from '../src/asterisk/audiosocket/server.js';
import type { Clock } from '../src/audio/clock.js';
import { FrameClock } from '../src/audio/frame-clock.js';
import { CallSession } from '../src/call/session.js';
import { parseConfig } from '../src/config/load.js';
import { silentLogger } from '../src/log.js';

export interface MicroResult {
  readonly name: string;
  readonly value: number;
  readonly unit: 'MB/s' | '× real time' | 'frames/s';
  readonly note?: string;
}

/** Runs `op` in batches until `minCpuMs` of CPU time; returns ops per CPU second. */
function opsPerCpuSecond(op: () => void, minCpuMs = 400): number {
  for (let i = 0; i < 2_000; i++) op(); // warm up: let V8 optimise
  let ops = 0;
  let batch = 1_000;
  const start = process.cpuUsage();
  let cpuMs = 0;
  while (cpuMs < minCpuMs) {
    for (let i = 0; i < batch; i++) op();
    ops += batch;
    const used = process.cpuUsage(start);
    cpuMs = (used.user + used.system) / 1000;
    if (cpuMs < minCpuMs / 10) batch *= 2;
  }
  return (ops / cpuMs) * 1000;
}

const pcm = (rateHz: number): AudioFormat => ({ encoding: 'pcm', sampleRateHz: rateHz });
const ULAW: AudioFormat = { encoding: 'ulaw', sampleRateHz: 8_000 };

function tone(rateHz: number, ms: number, bytesPerSample = 2): Buffer {
  const samples = (rateHz * ms) / 1000;
  const out = Buffer.alloc(samples * bytesPerSample);
  if (bytesPerSample === 1) return out.fill(0x7f);
  for (let i = 0; i < samples; i++) out.writeInt16LE(Math.round(8_000 * Math.sin((2 * Math.PI * 440 * i) / rateHz)), i * 2);
  return out;
}

const frame = tone(8_000, 20);

export async function runMicroBenchmarks(): Promise<MicroResult[]> {
  const results: MicroResult[] = [];

  // AudioSocket codec, 20 ms slin 8 kHz frames (320 B payload).
  results.push({ name: 'AudioSocket encodeAudio (320 B frames)', value: round((opsPerCpuSecond(() => encodeAudio(Kind.Slin8, frame)) * 320) / 1e6), unit: 'MB/s' });
  const message = encodeAudio(Kind.Slin8, frame);
  const oneParser = new AudioSocketParser({ maxPayloadBytes: 16_384 });
  results.push({
    name: 'AudioSocket parser, one frame per chunk (as sockets deliver)',
    value: round((opsPerCpuSecond(() => oneParser.push(message)) * 320) / 1e6),
    unit: 'MB/s',
  });
  const burst = Buffer.concat(Array.from({ length: 200 }, () => message));
  const burstParser = new AudioSocketParser({ maxPayloadBytes: 16_384 });
  results.push({
    name: 'AudioSocket parser, 200 frames per chunk',
    value: round((opsPerCpuSecond(() => burstParser.push(burst), 400) * 200 * 320) / 1e6),
    unit: 'MB/s',
  });
  const split = [message.subarray(0, 100), message.subarray(100)];
  const splitParser = new AudioSocketParser({ maxPayloadBytes: 16_384 });
  results.push({
    name: 'AudioSocket parser, every frame split in two chunks',
    value: round((opsPerCpuSecond(() => {
      splitParser.push(split[0]!);
      splitParser.push(split[1]!);
    }) * 320) / 1e6),
    unit: 'MB/s',
  });

  // G.711 (20 ms per op → × real time = ops/s × 0.02).
  const ulawFrame = ulawEncode(frame);
  results.push({ name: 'G.711 µ-law encode (ulawEncode, 20 ms)', value: round(opsPerCpuSecond(() => ulawEncode(frame)) * 0.02), unit: '× real time' });
  results.push({ name: 'G.711 µ-law decode (ulawDecode, 20 ms)', value: round(opsPerCpuSecond(() => ulawDecode(ulawFrame)) * 0.02), unit: '× real time' });

  // Converters as a call uses them: one stateful converter fed 20 ms chunks.
  const pairs: Array<[string, AudioFormat, AudioFormat, Buffer]> = [
    ['slin 8k → pcm_16000 (uplink)', pcm(8_000), pcm(16_000), frame],
    ['pcm_16000 → slin 8k (downlink)', pcm(16_000), pcm(8_000), tone(16_000, 20)],
    ['slin 8k → pcm_24000', pcm(8_000), pcm(24_000), frame],
    ['pcm_24000 → slin 8k', pcm(24_000), pcm(8_000), tone(24_000, 20)],
    ['pcm_48000 → slin 8k', pcm(48_000), pcm(8_000), tone(48_000, 20)],
    ['slin 8k → ulaw_8000', pcm(8_000), ULAW, frame],
    ['ulaw_8000 → slin 8k', ULAW, pcm(8_000), ulawFrame],
    ['ulaw_8000 → slin 16k', ULAW, pcm(16_000), ulawFrame],
  ];
  for (const [name, from, to, input] of pairs) {
    const converter = createConverter(from, to);
    results.push({ name: `convert ${name}, 20 ms chunks`, value: round(opsPerCpuSecond(() => converter.convert(input)) * 0.02), unit: '× real time' });
  }

  // ElevenLabs framing: uplink 20 ms pcm_16000 → JSON text; downlink 100 ms audio message → PCM.
  const uplinkPcm = tone(16_000, 20);
  results.push({
    name: 'EL uplink: base64 + user_audio_chunk JSON (20 ms pcm_16000)',
    value: round(opsPerCpuSecond(() => encodeUserAudio(uplinkPcm.toString('base64'))) * 0.02),
    unit: '× real time',
  });
  results.push({
    name: 'EL uplink: encodeUserAudioFrame, one Buffer (20 ms pcm_8000)',
    value: round(opsPerCpuSecond(() => encodeUserAudioFrame(frame, frame.length)) * 0.02),
    unit: '× real time',
  });
  const downlinkText = JSON.stringify({ type: 'audio', audio_event: { audio_base_64: tone(16_000, 100).toString('base64'), event_id: 7 } });
  results.push({
    name: 'EL downlink: parse audio JSON + base64 decode (100 ms pcm_16000)',
    value: round(
      opsPerCpuSecond(() => {
        const parsed = parseServerMessage(downlinkText);
        if (parsed.type === 'audio') Buffer.from(parsed.audioBase64, 'base64');
      }) * 0.1,
    ),
    unit: '× real time',
  });
  results.push(...(await callPathMicro()));
  return results;
}

/**
 * The whole call path in one process with no I/O, as × real time per core (calls one core's
 * JavaScript could carry, syscalls and ws framing left out): 250 calls of the benchmark's caller
 * pattern, each frame parsed from its own chunk, through CallSession to the agent and back through
 * the playout buffer to an encoded AudioSocket message. The ElevenLabs agent is stood in for by the
 * codec work a real session does per message (messages.ts: uplink JSON+base64, reply parse+decode).
 */
async function callPathMicro(): Promise<MicroResult[]> {
  const config = parseConfig('agents:\n  echo: { provider: echo, delayMs: 0 }\n  el: { provider: elevenlabs, agentId: bench }\n', 'micro.yaml', {});
  const results: MicroResult[] = [];
  for (const [name, agentRateHz] of [
    ['call path, no I/O: echo, per 20 ms frame', 0],
    ['call path, no I/O: ElevenLabs pcm_8000, per 20 ms frame', 8_000],
    ['call path, no I/O: ElevenLabs pcm_16000, per 20 ms frame', 16_000],
  ] as const) {
    let nowMs = 0;
    const clock: Clock = { now: () => nowMs, wallNow: () => nowMs, setTimer: () => ({}), clearTimer: () => undefined };
    const frameClock = new FrameClock({ clock, frameMs: 20, maxCatchUpFrames: 3 });
    const format = pcm(agentRateHz || 8_000);
    const reply = JSON.stringify({ type: 'audio', audio_event: { audio_base_64: tone(format.sampleRateHz, 100).toString('base64'), event_id: 1 } });
    const calls: Array<{ session: CallSession; media: MediaHandler; parser: AudioSocketParser; reply?: (eventId: number, chunks: number) => void; phase: number }> = [];
    for (let i = 0; i < 250; i++) {
      const callId = `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`;
      const agentName = agentRateHz === 0 ? 'echo' : 'el';
      const session = new CallSession({
        callId, agentName, agentConfig: config.agents[agentName]!, context: { callId, agentName, args: [], query: {}, vars: {} }, source: 'agi',
        calls: config.calls, mediaTimeoutMs: 1e9, clock, frameClock, logger: silentLogger(), emit: () => undefined, onEnded: () => undefined,
      });
      let handlers: AgentHandlers | undefined;
      const el: AgentSession = {
        formats: { input: format, output: format }, conversationId: 'c', startMedia: () => undefined, sendText: () => undefined, sendToolResult: () => undefined, close: () => undefined,
        sendAudio: (chunk) => void encodeUserAudioFrame(chunk, chunk.length),
      };
      await session.startAgent(agentRateHz === 0 ? new EchoProvider({ delayMs: 0 }) : { start: async (_c, h) => ((handlers = h), el) }, 1_000);
      const media = session.attachMedia(new MediaConnection({ closed: false, writableLength: 0, write: () => undefined, hangup: () => undefined, close: () => undefined }, callId, '127.0.0.1', 0));
      const replyOf = (eventId: number, chunks: number): void => {
        for (let c = 0; c < chunks; c++) {
          const message = parseServerMessage(reply);
          if (message.type === 'audio') handlers!.onAudio(Buffer.from(message.audioBase64, 'base64'), eventId);
        }
      };
      calls.push({ session, media, parser: new AudioSocketParser({ maxPayloadBytes: 16_384 }), ...(agentRateHz === 0 ? {} : { reply: replyOf }), phase: i % 200 });
    }
    // The caller pattern of bench/asterisk-emulator.ts: speech 0–400 ms and 1500–1700 ms of every 4 s.
    const speech = encodeAudio(Kind.Slin8, frame);
    const silence = encodeAudio(Kind.Slin8, Buffer.alloc(320));
    let step = 0;
    let eventId = 1;
    const oneFrame = (): void => {
      nowMs += 20;
      step++;
      for (const call of calls) {
        const p = (step + call.phase) % 200;
        for (const m of call.parser.push(Buffer.from(p < 20 || (p >= 75 && p < 85) ? speech : silence))) {
          if (m.kind === 'audio') call.media.onAudio(m.payload, m.sampleRateHz);
        }
        if (p === 35) call.reply?.(++eventId, 20); // a 2 s reply, all at once
        if (p === 100) call.reply?.(++eventId, 6);
      }
      for (const call of calls) call.session.onFrame();
    };
    // ops = call-frames: one op of opsPerCpuSecond runs every call once.
    results.push({ name, value: round(opsPerCpuSecond(oneFrame, 600) * 250 * 0.02), unit: '× real time' });
    for (const call of calls) call.session.hangup('micro done');
  }
  return results;
}

function round(value: number): number {
  return value >= 100 ? Math.round(value) : Math.round(value * 10) / 10;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const results = await runMicroBenchmarks();
  if (process.send) process.send({ type: 'micro', results });
  else for (const r of results) process.stdout.write(`${r.name.padEnd(70)} ${String(r.value).padStart(10)} ${r.unit}\n`);
}
