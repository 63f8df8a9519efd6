import { readFileSync, writeFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { loadConfig, redactConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { createLogger } from './log.js';
import { hostPort, startServer } from './main.js';
import { closeOnSignals } from './shutdown.js';
import { simulateCall } from './simulate/simulate.js';
import { encodeWav, readWav } from './audio/wav.js';
import { Resampler } from './audio/resample.js';
import { BridgeError, ERROR_CODES, describeError, type ErrorCode } from './errors.js';
import { registerDialplanCommands } from './dialplan/commands.js';
import { registerAgentCommands } from './agent/elevenlabs/commands.js';
import { SERVER_NODE_FLAGS, missingServerFlags } from './runtime-flags.js';

/** What a CLI command needs from the environment; injected so tests can run commands in-process. */
export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

/** The package version, found from src/ (tests) or dist/src/ (installed). */
function packageVersion(): string {
  for (const path of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(path, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'ai-call' && pkg.version) return pkg.version;
    } catch {
      // not at this level
    }
  }
  return 'unknown';
}

export function buildCli(io: CliIo): Command {
  const program = new Command('ai-call')
    .description('ElevenLabs conversational AI agents on Asterisk calls (FastAGI + AudioSocket + AMI).')
    .version(packageVersion(), '-V, --version')
    .option('-c, --config <file>', 'YAML configuration file (default: $AI_CALL_CONFIG, else the embedded default with the echo agent)')
    .showHelpAfterError()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });

  const configOf = (): { config: Config; source: string } => loadConfig({ file: program.opts<{ config?: string }>().config, env: io.env });

  program
    .command('serve')
    .description('Start the FastAGI, AudioSocket and status servers and carry calls until SIGTERM/SIGINT')
    .option('--grace-ms <ms>', 'on shutdown, how long live calls may finish before they are ended', '10000')
    .option('--workers <n>', 'processes to carry calls (use one per core); the FastAGI port is shared, each worker gets its own AudioSocket port', '1')
    .action(async (opts: { graceMs: string; workers: string }) => {
      const { config, source } = configOf();
      const logger = createLogger(config.log.level);
      logger.info({ config: source }, 'configuration loaded');
      const missingFlags = missingServerFlags();
      if (missingFlags.length > 0 && Number(opts.workers) <= 1) {
        logger.info({ missing: missingFlags, recommended: SERVER_NODE_FLAGS.join(' ') }, 'node runs without ai-call\'s V8 flags: frame timing under load is better with them (docs/admin-guide.md)');
      }
      const graceMs = Number(opts.graceMs);
      const workers = Number(opts.workers);
      if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new BridgeError('INPUT_INVALID', '--workers must be a whole number from 1 to 64');
      if (workers > 1) {
        if (config.ami) throw new BridgeError('INPUT_INVALID', 'worker mode does not carry AMI (originate, call control) yet: run one process, or remove the ami: section');
        const { serveCluster } = await import('./cluster/serve.js');
        await serveCluster({ config, workers, graceMs, logger });
        return;
      }
      const server = await startServer(config, { logger });
      closeOnSignals(server, graceMs, logger);
    });

  program
    .command('check-config')
    .description('Validate the configuration and print it with secrets redacted')
    .action(() => {
      const { config, source } = configOf();
      io.stdout(`${source}: OK\n${JSON.stringify(redactConfig(config), null, 2)}\n`);
    });

  program
    .command('simulate')
    .description('Act as Asterisk against a running ai-call: FastAGI request, AudioSocket media at real time, result AGI; prints a summary')
    .requiredOption('-a, --agent <name>', 'agent to request')
    .option('--host <host>', 'ai-call FastAGI host', '127.0.0.1')
    .option('--port <port>', 'ai-call FastAGI port', '4573')
    .addOption(new Option('--mode <mode>', 'dialplan shape to imitate').choices(['assign', 'run']).default('assign'))
    .option('--wav <file>', 'caller audio: 16-bit PCM WAV (default: a 1 kHz tone)')
    .option('--tone-hz <hz>', 'frequency of the default caller tone', '1000')
    .option('--seconds <s>', 'caller hangs up after this many seconds of media', '3')
    .option('--wideband', 'carry 16 kHz (slin16, like Dial(AudioSocket/…/c(slin16)))')
    .option('--dtmf <list>', 'key presses as DIGIT@MS, comma separated, e.g. 1@500,#@900')
    .option('--caller-id <number>', 'caller number to present')
    .option('--record <file>', 'write what the agent said to this WAV file')
    .option('--json', 'print the summary as JSON')
    .action(async (opts: SimulateCliOptions) => {
      const sampleRateHz = opts.wideband ? 16_000 : 8_000;
      const seconds = Number(opts.seconds);
      if (!Number.isFinite(seconds) || seconds <= 0) throw new BridgeError('INPUT_INVALID', '--seconds must be a positive number');
      const audio = opts.wav ? loadWavAt(opts.wav, sampleRateHz) : tone(Number(opts.toneHz), Math.min(seconds, 2) * 1000, sampleRateHz);
      const summary = await simulateCall({
        agiHost: opts.host,
        agiPort: Number(opts.port),
        agent: opts.agent,
        mode: opts.mode,
        audio,
        sampleRateHz,
        hangupAfterMs: seconds * 1000,
        dtmf: parseDtmfList(opts.dtmf),
        ...(opts.callerId ? { callerId: opts.callerId } : {}),
      });
      if (opts.record && summary.media) writeFileSync(opts.record, encodeWav(summary.media.received, summary.media.receivedSampleRateHz));
      const printable = { ...summary, media: summary.media && { endedBy: summary.media.endedBy, framesSent: summary.media.framesSent, framesReceived: summary.media.framesReceived, hangupMessageReceived: summary.media.hangupMessageReceived } };
      if (opts.json) {
        io.stdout(`${JSON.stringify(printable, null, 2)}\n`);
      } else {
        io.stdout(
          [
            `status      ${summary.status}${summary.assignVariables['AI_ERROR'] ? ` (${summary.assignVariables['AI_ERROR']})` : ''}`,
            `uuid        ${summary.uuid}`,
            `audiosocket ${summary.audiosocket}`,
            `result      ${summary.resultVariables['AI_RESULT'] ?? '-'}${summary.resultVariables['AI_ERROR'] ? ` (${summary.resultVariables['AI_ERROR']})` : ''}`,
            `transfer    ${summary.resultVariables['AI_TRANSFER_TO'] || '-'}`,
            `duration    ${summary.resultVariables['AI_DURATION'] ?? '-'} s`,
            summary.media ? `frames      sent ${summary.media.framesSent}, received ${summary.media.framesReceived}, ended by ${summary.media.endedBy}` : 'frames      no media',
            summary.timing ? `timing      inter-frame p50 ${summary.timing.p50Ms} ms, p99 ${summary.timing.p99Ms} ms, max ${summary.timing.maxMs} ms, gaps > 40 ms: ${summary.timing.gapsOver40Ms}` : '',
            `first audio ${summary.firstAudioMs === undefined ? '-' : `${summary.firstAudioMs} ms after media start`}`,
            '',
          ].filter((line) => line !== '').join('\n') + '\n',
        );
      }
      if (summary.status !== 'READY') process.exitCode = 2;
    });

  program
    .command('originate')
    .description('Call a number and put an agent on it when answered (through the running server\'s status API and AMI)')
    .requiredOption('--to <number>', 'number to call, dialled through the outbound context')
    .requiredOption('-a, --agent <name>', 'agent that takes the answered call')
    .option('--via <context>', 'your dialplan context that dials out (default: ami.outboundContext)')
    .option('--caller-id <callerid>', 'caller ID to present: a number or "Name <number>"')
    .option('--var <key=value...>', 'variable for the agent (dynamic variable and channel variable AI_VAR_<KEY>); repeatable')
    .option('--timeout <s>', 'seconds to ring before giving up', '30')
    .option('--server <url>', 'status API of the running ai-call (default: from the config status host and port)')
    .option('--no-wait', 'return once the call is queued instead of waiting for the answer')
    .action(async (opts: OriginateCliOptions) => {
      const { config } = configOf();
      const token = config.status.token;
      if (!token) throw new BridgeError('UNAUTHORIZED', 'set AI_CALL_STATUS_TOKEN (the running server must have the same token)');
      const vars: Record<string, string> = {};
      for (const item of opts.var ?? []) {
        const eq = item.indexOf('=');
        if (eq <= 0) throw new BridgeError('INPUT_INVALID', `--var "${item}" is not KEY=VALUE`);
        vars[item.slice(0, eq)] = item.slice(eq + 1);
      }
      const server = opts.server ?? `http://${hostPort(config.status.host)}:${config.status.port}`;
      const response = await fetch(`${server.replace(/\/+$/, '')}/calls`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({ to: opts.to, agent: opts.agent, via: opts.via, callerId: opts.callerId, vars, timeoutS: Number(opts.timeout), wait: opts.wait }),
      }).catch((cause: unknown) => {
        throw new BridgeError('INPUT_INVALID', `cannot reach ai-call at ${server}: is it running?`, { cause });
      });
      const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
      if (!response.ok) {
        const code = String(body['error'] ?? '');
        throw new BridgeError(Object.hasOwn(ERROR_CODES, code) ? (code as ErrorCode) : 'INPUT_INVALID', String(body['message'] ?? `HTTP ${response.status}`));
      }
      io.stdout(`${Object.entries(body).map(([k, v]) => `${k.padEnd(8)} ${String(v)}`).join('\n')}\n`);
      if (opts.wait && body['outcome'] !== 'answered') process.exitCode = 2;
    });

  registerDialplanCommands(program, { configOf, stdout: io.stdout, stderr: io.stderr });
  registerAgentCommands(program, { configOf, stdout: io.stdout, stderr: io.stderr });
  return program;
}

interface OriginateCliOptions {
  to: string;
  agent: string;
  via?: string;
  callerId?: string;
  var?: string[];
  timeout: string;
  server?: string;
  wait: boolean;
}

interface SimulateCliOptions {
  agent: string;
  host: string;
  port: string;
  mode: 'assign' | 'run';
  wav?: string;
  toneHz: string;
  seconds: string;
  wideband?: boolean;
  dtmf?: string;
  callerId?: string;
  record?: string;
  json?: boolean;
}

function loadWavAt(file: string, sampleRateHz: number): Buffer {
  const wav = readWav(readFileSync(file));
  if (wav.sampleRateHz === sampleRateHz) return wav.pcm;
  const resampler = new Resampler(wav.sampleRateHz, sampleRateHz);
  const input = new Int16Array(wav.pcm.buffer, wav.pcm.byteOffset, wav.pcm.length >> 1);
  const output = resampler.process(input);
  return Buffer.from(output.buffer, output.byteOffset, output.byteLength);
}

function tone(freqHz: number, durationMs: number, sampleRateHz: number): Buffer {
  if (!Number.isFinite(freqHz) || freqHz <= 0 || freqHz >= sampleRateHz / 2) throw new BridgeError('INPUT_INVALID', '--tone-hz must be between 0 and half the sample rate');
  const samples = Math.round((sampleRateHz * durationMs) / 1000);
  const pcm = Buffer.alloc(samples * 2);
  for (let i = 0; i < samples; i++) pcm.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * freqHz * i) / sampleRateHz)), i * 2);
  return pcm;
}

export function parseDtmfList(list: string | undefined): Array<{ atMs: number; digit: string }> {
  if (!list) return [];
  return list.split(',').map((item) => {
    const match = /^([0-9*#A-D])@(\d{1,7})$/.exec(item.trim());
    if (!match) throw new BridgeError('INPUT_INVALID', `--dtmf item "${item}" is not DIGIT@MS`);
    return { digit: match[1]!, atMs: Number(match[2]) };
  });
}

/** Runs the CLI; errors print as one line with their code, never a stack, and set the exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const program = buildCli(io).exitOverride();
  try {
    await program.parseAsync(argv as string[], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err && typeof err === 'object' && 'exitCode' in err && 'code' in err && String((err as { code: unknown }).code).startsWith('commander.')) {
      return (err as { exitCode: number }).exitCode;
    }
    io.stderr(`ai-call: ${describeError(err)}\n`);
    return 1;
  }
}
