/**
 * Real-Asterisk harness for the end-to-end suites: a private, throw-away Asterisk per suite.
 *
 *   detectAsterisk() ── ASTERISK_BIN (a binary)  ─┐
 *                    └─ ASTERISK_DOCKER_IMAGE + a ├─► AsteriskHarness.start()
 *                       working `docker info`    ─┘      temp tree: etc/ run/ log/ … sounds/ rec/
 *                                                         asterisk -C <tree>/etc/asterisk.conf -f -n -vvv
 *                                                         rx() · originate() · waitForLog() · stop()
 *
 * The harness only RUNS an Asterisk it is given; it never builds one. Everything listens on
 * loopback: AMI binds 127.0.0.1, the control socket lives in the private astrundir, and the
 * dialplan only dials Local channels. stop() always ends the process (core stop now, then SIGTERM,
 * then SIGKILL) and removes the tree, also when a test failed; set E2E_KEEP=1 to keep the tree.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, createWriteStream, existsSync, readdirSync, type WriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { encodeWav, readWav, type Wav } from '../../../src/audio/wav.js';

/** The one line a suite prints when it cannot run. */
export const SKIP_HINT = 'set ASTERISK_BIN to an Asterisk 20.14+/22.4+ binary (or ASTERISK_DOCKER_IMAGE with a running Docker engine)';

/** How to run Asterisk: a local binary, or an image through the docker CLI (host network, same paths). */
export type AsteriskRuntime =
  | { readonly kind: 'binary'; readonly bin: string; readonly moduleDir: string; readonly sbinDir: string; readonly version: string }
  | { readonly kind: 'docker'; readonly image: string; readonly moduleDir: string; readonly sbinDir: string; readonly version: string };

export type Detection = { readonly runtime: AsteriskRuntime; readonly reason?: undefined } | { readonly runtime?: undefined; readonly reason: string };

/**
 * Finds an Asterisk to run. AudioSocket needs 20.14 / 22.4 / 23.0 or later: older releases hang up
 * on `00 00 00` instead of continuing the dialplan (protocols.md §1.9).
 */
export function detectAsterisk(env: NodeJS.ProcessEnv = process.env): Detection {
  const bin = env['ASTERISK_BIN'];
  if (bin !== undefined && bin !== '') {
    try {
      accessSync(bin, fsConstants.X_OK);
    } catch {
      return { reason: `ASTERISK_BIN=${bin} is not an executable file` };
    }
    const probe = spawnSync(bin, ['-V'], { encoding: 'utf8', timeout: 5_000 });
    const version = /Asterisk\s+(\S+)/.exec(probe.stdout ?? '')?.[1];
    if (version === undefined) return { reason: `ASTERISK_BIN=${bin} -V printed no version (${(probe.stderr ?? '').trim().slice(0, 120)})` };
    const tooOld = versionTooOld(version);
    if (tooOld) return { reason: `Asterisk ${version} is too old: ${tooOld}` };
    const prefix = dirname(dirname(bin));
    const moduleDir =
      env['ASTERISK_MODULE_DIR'] ??
      [join(prefix, 'lib/asterisk/modules'), join(prefix, 'lib64/asterisk/modules'), '/usr/lib/asterisk/modules', '/usr/lib64/asterisk/modules'].find((dir) =>
        existsSync(join(dir, 'app_audiosocket.so')),
      );
    if (moduleDir === undefined) return { reason: `no module directory with app_audiosocket.so found for ${bin}; set ASTERISK_MODULE_DIR` };
    return { runtime: { kind: 'binary', bin, moduleDir, sbinDir: dirname(bin), version } };
  }
  const image = env['ASTERISK_DOCKER_IMAGE'];
  if (image !== undefined && image !== '') {
    const info = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8', timeout: 10_000 });
    if (info.status !== 0) return { reason: `ASTERISK_DOCKER_IMAGE is set but \`docker info\` failed (${(info.stderr ?? '').trim().split('\n')[0] ?? ''})` };
    const probe = spawnSync('docker', ['run', '--rm', image, 'asterisk', '-V'], { encoding: 'utf8', timeout: 120_000 });
    const version = /Asterisk\s+(\S+)/.exec(probe.stdout ?? '')?.[1];
    if (version === undefined) return { reason: `docker image ${image} printed no Asterisk version` };
    const tooOld = versionTooOld(version);
    if (tooOld) return { reason: `Asterisk ${version} in ${image} is too old: ${tooOld}` };
    return {
      runtime: { kind: 'docker', image, moduleDir: env['ASTERISK_MODULE_DIR'] ?? '/usr/lib/asterisk/modules', sbinDir: '/usr/sbin', version },
    };
  }
  return { reason: SKIP_HINT };
}

function versionTooOld(version: string): string | undefined {
  const [major, minor] = version.split('.').map((part) => Number.parseInt(part, 10));
  if (major === undefined || minor === undefined || Number.isNaN(major) || Number.isNaN(minor)) return undefined; // e.g. a git build: try it
  const minimum: Record<number, number> = { 20: 14, 22: 4 };
  if (major < 20) return 'AudioSocket needs 20.14, 22.4 or 23.0+';
  const needed = minimum[major];
  if (needed !== undefined && minor < needed) return 'AudioSocket needs 20.14, 22.4 or 23.0+';
  return undefined;
}

/** Prints the suite's single skip line (not through console, so vitest adds no header around it). */
export function announceSkip(suite: string, detection: Detection): void {
  if (detection.runtime) return;
  process.stdout.write(`e2e: skipped ${suite}: ${detection.reason}\n`);
}

export interface AmiUser {
  readonly username: string;
  readonly secret: string;
  readonly read: string;
  readonly write: string;
}

export interface AsteriskStartOptions {
  readonly runtime: AsteriskRuntime;
  /** Directory to build the tree in (created if needed); default a new temp dir that stop() removes. */
  readonly dir?: string;
  /** Module file names to load (`app_audiosocket.so`); ones absent from the module dir are reported, not loaded. */
  readonly modules: readonly string[];
  /** Modules without which the suite cannot run at all: start() fails naming them. */
  readonly requiredModules?: readonly string[];
  /** Files for etc/, by name; extensions.conf must be among them. */
  readonly configFiles: ReadonlyMap<string, string>;
  /** manager.conf: AMI on 127.0.0.1:port with these users (loopback only), plus #include lines. */
  readonly ami?: { readonly port: number; readonly users: readonly AmiUser[]; readonly includeFiles?: readonly string[] };
  readonly bootTimeoutMs?: number;
}

const EMPTY_CONFIGS = ['cdr.conf', 'cel.conf', 'features.conf', 'acl.conf', 'udptl.conf', 'ccss.conf', 'stasis.conf', 'musiconhold.conf'];

/** Minimal tones for ringback while the agent connects (the AGI runs before Answer()). */
const INDICATIONS_CONF = `[general]
country = us

[us]
description = United States / North America
ringcadence = 2000,4000
dial = 350+440
busy = 480+620/500,0/500
ring = 440+480/2000,0/4000
congestion = 480+620/250,0/250
`;

/** Keep at most this much Asterisk output in memory; the full output is in <tree>/asterisk.out. */
const MAX_LOG_CHARS = 8 * 1024 * 1024;

export class AsteriskHarness {
  readonly runtime: AsteriskRuntime;
  readonly dir: string;
  readonly soundsDir: string;
  readonly recordDir: string;
  readonly confPath: string;
  /** Modules asked for but absent from the module directory. */
  readonly missingModules: readonly string[];
  /** `core show version` of the running instance. */
  version = '';

  readonly #ownsDir: boolean;
  readonly #containerName: string;
  #child: ChildProcess | undefined;
  #exited: Promise<number | null> = Promise.resolve(null);
  #output = '';
  #outputFile: WriteStream | undefined;
  #logWaiters = new Set<() => void>();
  #stopping: Promise<void> | undefined;
  #watchdog: ChildProcess | undefined;
  readonly #onProcessExit = (): void => {
    // Last resort when the test process dies with Asterisk still running: never leave one behind.
    if (this.#child?.exitCode === null) this.#child.kill('SIGKILL');
    if (this.runtime.kind === 'docker') spawnSync('docker', ['rm', '-f', this.#containerName], { timeout: 5_000 });
  };

  private constructor(runtime: AsteriskRuntime, dir: string, ownsDir: boolean, missingModules: string[]) {
    this.runtime = runtime;
    this.dir = dir;
    this.#ownsDir = ownsDir;
    this.soundsDir = join(dir, 'sounds');
    this.recordDir = join(dir, 'rec');
    this.confPath = join(dir, 'etc', 'asterisk.conf');
    this.missingModules = missingModules;
    this.#containerName = `ai-call-e2e-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
  }

  /** Writes the tree, starts Asterisk and waits until it is fully booted. Stops and cleans up if that fails. */
  static async start(options: AsteriskStartOptions): Promise<AsteriskHarness> {
    const ownsDir = options.dir === undefined;
    const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'ai-call-e2e-')));
    const runtime = options.runtime;
    const available = runtime.kind === 'binary' ? new Set(readdirSync(runtime.moduleDir)) : undefined;
    const missing = available ? options.modules.filter((m) => !available.has(m)) : [];
    const missingRequired = (options.requiredModules ?? []).filter((m) => missing.includes(m) || (available !== undefined && !available.has(m)));
    const harness = new AsteriskHarness(runtime, dir, ownsDir, missing);
    if (missingRequired.length > 0) {
      await harness.stop();
      throw new Error(`Asterisk at ${runtime.moduleDir} lacks required modules: ${missingRequired.join(', ')}`);
    }
    try {
      await harness.#writeTree(options, options.modules.filter((m) => !missing.includes(m)));
      await harness.#launch(options.bootTimeoutMs ?? 20_000);
      const failed = harness.failedModules;
      const failedRequired = (options.requiredModules ?? []).filter((m) => failed.some((f) => f.startsWith(`${m}:`)));
      if (failedRequired.length > 0) throw new Error(`required modules failed to load: ${failed.join('; ')}`);
      return harness;
    } catch (err) {
      const tail = harness.logTail(40);
      await harness.stop();
      throw new Error(`Asterisk did not start: ${(err as Error).message}\n--- Asterisk output (last lines) ---\n${tail}`, { cause: err });
    }
  }

  async #writeTree(options: AsteriskStartOptions, modules: readonly string[]): Promise<void> {
    const d = (name: string): string => join(this.dir, name);
    for (const sub of ['etc', 'run', 'log', 'lib', 'db', 'keys', 'data', 'agi', 'spool', 'sounds', 'rec']) await mkdir(d(sub), { recursive: true });
    const etc = (name: string, text: string): Promise<void> => writeFile(join(d('etc'), name), text);
    await etc(
      'asterisk.conf',
      [
        '[directories]', // no "(!)" here: that marks a template section, whose paths Asterisk would not apply
        `astetcdir => ${d('etc')}`,
        `astmoddir => ${this.runtime.moduleDir}`,
        `astvarlibdir => ${d('lib')}`,
        `astdbdir => ${d('db')}`,
        `astkeydir => ${d('keys')}`,
        `astdatadir => ${d('data')}`,
        `astagidir => ${d('agi')}`,
        `astspooldir => ${d('spool')}`,
        `astrundir => ${d('run')}`,
        `astlogdir => ${d('log')}`,
        `astsbindir => ${this.runtime.sbinDir}`,
        '',
        '[options]',
        'nofork = yes',
        'nocolor = yes',
        'verbose = 3',
        'maxload = 0',
        '',
      ].join('\n'),
    );
    await etc('modules.conf', ['[modules]', 'autoload = no', ...modules.map((m) => `load => ${m}`), ''].join('\n'));
    await etc('logger.conf', ['[general]', '[logfiles]', 'console => notice,warning,error,verbose,dtmf', ''].join('\n'));
    for (const name of EMPTY_CONFIGS) await etc(name, '');
    await etc('indications.conf', INDICATIONS_CONF);
    if (options.ami) {
      const lines = ['[general]', 'enabled = yes', `port = ${options.ami.port}`, 'bindaddr = 127.0.0.1', 'displayconnects = no', ''];
      for (const user of options.ami.users) {
        lines.push(`[${user.username}]`, `secret = ${user.secret}`, 'deny = 0.0.0.0/0.0.0.0', 'permit = 127.0.0.1/255.255.255.255', `read = ${user.read}`, `write = ${user.write}`, '');
      }
      for (const file of options.ami.includeFiles ?? []) lines.push(`#include ${file}`);
      await etc('manager.conf', `${lines.join('\n')}\n`);
    } else {
      await etc('manager.conf', '[general]\nenabled = no\n');
    }
    for (const [name, text] of options.configFiles) await etc(name, text);
  }

  async #launch(bootTimeoutMs: number): Promise<void> {
    const args = ['-C', this.confPath, '-f', '-n', '-vvv'];
    const [cmd, ...cmdArgs] =
      this.runtime.kind === 'binary'
        ? [this.runtime.bin, ...args]
        : ['docker', 'run', '--rm', '--name', this.#containerName, '--network', 'host', '-v', `${this.dir}:${this.dir}`, this.runtime.image, 'asterisk', ...args];
    this.#outputFile = createWriteStream(join(this.dir, 'asterisk.out'));
    const child = spawn(cmd!, cmdArgs, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    process.once('exit', this.#onProcessExit);
    this.#startWatchdog(child.pid);
    const onData = (chunk: Buffer): void => {
      const text = chunk.toString('utf8');
      this.#outputFile?.write(text);
      this.#output += text;
      if (this.#output.length > MAX_LOG_CHARS) this.#output = this.#output.slice(-MAX_LOG_CHARS / 2);
      for (const wake of [...this.#logWaiters]) wake();
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.#exited = new Promise((resolve) => {
      child.once('error', (err) => {
        onData(Buffer.from(`\n[harness] spawn failed: ${err.message}\n`));
        resolve(null);
      });
      child.once('exit', (code, signal) => {
        onData(Buffer.from(`\n[harness] Asterisk exited (code ${code ?? 'none'}, signal ${signal ?? 'none'})\n`));
        resolve(code);
      });
    });

    const deadline = Date.now() + bootTimeoutMs;
    let lastError = '';
    while (Date.now() < deadline) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error('Asterisk exited during start-up');
      try {
        await this.rx('core waitfullybooted', Math.max(500, Math.min(5_000, deadline - Date.now())));
        this.version = (await this.rx('core show version')).trim();
        return;
      } catch (err) {
        lastError = (err as Error).message;
        await sleep(100);
      }
    }
    throw new Error(`not fully booted within ${bootTimeoutMs} ms (${lastError})`);
  }

  /**
   * A test worker killed by a signal runs no exit handler, and Asterisk would outlive it. A detached
   * shell polls this process once a second; when it is gone, it kills Asterisk and removes the tree.
   */
  #startWatchdog(asteriskPid: number | undefined): void {
    if (asteriskPid === undefined || !/^[A-Za-z0-9/._-]+$/.test(this.dir)) return;
    const kill = this.runtime.kind === 'docker' ? `docker rm -f ${this.#containerName} >/dev/null 2>&1` : `kill -9 ${asteriskPid} 2>/dev/null`;
    const remove = process.env['E2E_KEEP'] === '1' ? 'true' : `rm -rf '${this.dir}'`;
    const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 1; done; ${kill}; ${remove}`;
    const watchdog = spawn('sh', ['-c', script], { detached: true, stdio: 'ignore' });
    watchdog.unref();
    this.#watchdog = watchdog;
  }

  /** Runs one CLI command through the control socket (`asterisk -C … -rx`). */
  rx(command: string, timeoutMs = 5_000): Promise<string> {
    const args = ['-C', this.confPath, '-rx', command];
    const [cmd, ...cmdArgs] = this.runtime.kind === 'binary' ? [this.runtime.bin, ...args] : ['docker', 'exec', this.#containerName, 'asterisk', ...args];
    return new Promise((resolve, reject) => {
      execFile(cmd!, cmdArgs, { timeout: timeoutMs, maxBuffer: 4 << 20 }, (error, stdout, stderr) => {
        if (error) reject(new Error(`asterisk -rx ${JSON.stringify(command)} failed: ${String(stderr).trim() || error.message}`));
        else resolve(String(stdout));
      });
    });
  }

  /**
   * `channel originate <channel> extension <exten>@<context>` (res_clioriginate). Asterisk dials
   * `channel`; once it answers, the originated half runs exten@context.
   */
  async originate(channel: string, exten: string, context: string): Promise<void> {
    const out = await this.rx(`channel originate ${channel} extension ${exten}@${context}`);
    if (/no such|unable|failed|invalid/i.test(out)) throw new Error(`originate ${channel} failed: ${out.trim()}`);
  }

  /** Modules that Asterisk refused at start-up, as `name.so: reason` (e.g. a missing dependency). */
  get failedModules(): string[] {
    return [...this.#output.matchAll(/Error loading module '([^']+)'(?:, )?([^\n]*)/g)].map((m) => `${m[1]}: ${m[2] || 'failed'}`);
  }

  /** Active channels (`core show channels count`). */
  async channelCount(): Promise<number> {
    const out = await this.rx('core show channels count');
    const match = /(\d+) active channels?/.exec(out);
    if (!match) throw new Error(`unexpected "core show channels count" output: ${out}`);
    return Number(match[1]);
  }

  /** Waits until `core show channels count` reports `count` (default 0). */
  async waitChannels(count = 0, timeoutMs = 5_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let seen = -1;
    while (Date.now() < deadline) {
      seen = await this.channelCount();
      if (seen === count) return;
      await sleep(100);
    }
    throw new Error(`Asterisk still has ${seen} active channels after ${timeoutMs} ms (expected ${count}):\n${await this.rx('core show channels').catch(() => '')}`);
  }

  /** Everything Asterisk printed so far (bounded; the full text is in <dir>/asterisk.out). */
  get output(): string {
    return this.#output;
  }

  /** A position in the output for waitForLog({ from }). */
  mark(): number {
    return this.#output.length;
  }

  /** Resolves with the first line matching `pattern` printed after `from` (default: the start). */
  waitForLog(pattern: RegExp, options: { timeoutMs?: number; from?: number } = {}): Promise<string> {
    const timeoutMs = options.timeoutMs ?? 5_000;
    const from = options.from ?? 0;
    const find = (): string | undefined => this.#output.slice(from).split('\n').find((line) => pattern.test(line));
    const found = find();
    if (found !== undefined) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const wake = (): void => {
        const line = find();
        if (line === undefined) return;
        clearTimeout(timer);
        this.#logWaiters.delete(wake);
        resolve(line);
      };
      const timer = setTimeout(() => {
        this.#logWaiters.delete(wake);
        reject(new Error(`no Asterisk log line matching ${pattern} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#logWaiters.add(wake);
    });
  }

  /** WARNING and ERROR lines printed after `from`, for diagnostics and "no errors" assertions. */
  problems(from = 0): string[] {
    return this.#output
      .slice(from)
      .split('\n')
      .filter((line) => /\b(WARNING|ERROR)\[/.test(line));
  }

  logTail(lines: number): string {
    return this.#output.split('\n').slice(-lines).join('\n');
  }

  /**
   * Writes mono s16le PCM as <sounds>/<name>.wav (8 kHz) or .wav16 (16 kHz: format_wav reads .wav as
   * 8 kHz only); returns the path without extension, for Playback().
   */
  async writeSound(name: string, pcm: Buffer, sampleRateHz: 8_000 | 16_000): Promise<string> {
    if (sampleRateHz !== 8_000 && sampleRateHz !== 16_000) throw new RangeError(`writeSound: format_wav plays 8000 or 16000 Hz, not ${String(sampleRateHz)}`);
    const base = join(this.soundsDir, name);
    await writeFile(`${base}.${sampleRateHz === 16_000 ? 'wav16' : 'wav'}`, encodeWav(pcm, sampleRateHz));
    return base;
  }

  /** Reads <rec>/<name> (a WAV Asterisk recorded). */
  async readRecording(name: string): Promise<Wav> {
    return readWav(await readFile(join(this.recordDir, name)));
  }

  /** Ends Asterisk (core stop now → SIGTERM → SIGKILL, each bounded) and removes the tree. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      await this.rx('core stop now', 3_000).catch(() => undefined);
      if (!(await exitsWithin(this.#exited, 5_000))) {
        child.kill('SIGTERM');
        if (!(await exitsWithin(this.#exited, 2_000))) {
          child.kill('SIGKILL');
          await exitsWithin(this.#exited, 2_000);
        }
      }
    }
    if (this.runtime.kind === 'docker' && child) spawnSync('docker', ['rm', '-f', this.#containerName], { timeout: 10_000 });
    process.removeListener('exit', this.#onProcessExit);
    this.#watchdog?.kill('SIGKILL');
    for (const wake of [...this.#logWaiters]) wake();
    await new Promise<void>((resolve) => (this.#outputFile ? this.#outputFile.end(resolve) : resolve()));
    if (this.#ownsDir && process.env['E2E_KEEP'] !== '1') await rm(this.dir, { recursive: true, force: true });
  }
}

async function exitsWithin(exited: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([exited.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
