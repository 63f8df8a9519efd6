/**
 * One e2e environment: the fake ElevenLabs, ai-call (in this process, startServer) and a real
 * Asterisk running ai-call's dialplan, plus an AMI observer that records every event.
 *
 *   test ──channel originate──► Asterisk ──Local/<route>@e2e-in;2──► ai-call dialplan ──FastAGI/AudioSocket──► ai-call ──WS──► fake ElevenLabs
 *                                   └──Local;1──► <call>@e2e-phone: MixMonitor r(heard-<call>.wav) + Playback(caller-<call>.wav)
 *   AMI observer (read=all): VarSet (AI_* results), UserEvent (phone and marker steps), Newexten, Hangup, OriginateResponse
 *
 * Results are read from AMI events and ai-call's own call events, never from dialplan-specific log
 * text, so the generated dialplan and the stand-in are measured the same way.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { parseConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { startServer, type RunningServer } from '../../../src/main.js';
import type { CallEvent, CallOutcome } from '../../../src/call/events.js';
import { AmiClient } from '../../../src/asterisk/ami/client.js';
import type { AmiMessage } from '../../../src/asterisk/ami/parser.js';
import { systemClock } from '../../../src/audio/clock.js';
import type { Logger } from '../../../src/log.js';
import { FakeElevenLabs, type FakeAgent, type FakeConversation } from '../../support/fake-elevenlabs.js';
import { AsteriskHarness, type AmiUser, type AsteriskRuntime } from './asterisk.js';
import { aiCallDialplan, e2eExtensions, standInExtensions, STAND_IN_FILE, STAND_IN_PREFIX, INBOUND_CONTEXT, PHONE_CONTEXT, TRANSFER_CONTEXT, TRANSFER_TONE_HZ, type DialplanSource, type RecordingFormat } from './dialplan.js';
import { composeAudio, durationMs } from './audio.js';
import type { Wav } from '../../../src/audio/wav.js';

/** Modules the harness itself uses, beyond what ai-call's dialplan lists. */
const HARNESS_MODULES = [
  'pbx_config.so',
  'res_timing_timerfd.so',
  'res_clioriginate.so',
  'app_playback.so',
  'app_mixmonitor.so',
  'app_userevent.so',
  'app_verbose.so',
  'app_exec.so',
  'app_dial.so',
  'app_senddtmf.so', // phones that press keys (SendDTMF)
  'format_wav.so',
  'format_pcm.so',
  'format_sln.so',
  'codec_ulaw.so',
  'codec_alaw.so',
  'codec_resample.so',
  'func_strings.so',
  'func_channel.so',
  'func_callerid.so',
  'func_logic.so',
  'func_dialplan.so',
  'bridge_simple.so',
  'res_speech.so', // res_agi needs it: with autoload = no it must be listed
  'res_agi.so',
  'res_audiosocket.so',
  'app_audiosocket.so',
  'chan_audiosocket.so',
];
const REQUIRED_MODULES = ['pbx_config.so', 'res_agi.so', 'res_audiosocket.so', 'app_audiosocket.so', 'res_clioriginate.so', 'app_playback.so', 'app_mixmonitor.so', 'app_userevent.so', 'format_wav.so', 'func_strings.so'];

const OBSERVER: AmiUser = { username: 'e2e-observer', secret: 'e2e-observer-secret', read: 'all', write: 'all' };
/** ai-call's AMI user; its permissions come from the generated ai-call-manager.conf when there is one. */
const AI_CALL_AMI_SECRET = 'e2e-ai-call-secret';

export interface StackOptions {
  readonly runtime: AsteriskRuntime;
  /** ai-call `agents:` (YAML shape). Agent ids of ElevenLabs agents must exist in `fakeAgents`. */
  readonly agents: Record<string, Record<string, unknown>>;
  /** Inbound routes in [e2e-in]: extension → agent. */
  readonly routes?: Readonly<Record<string, string>>;
  readonly fakeAgents?: readonly FakeAgent[];
  /** Extra top-level config (e.g. audiosocket: { mode: pool }). */
  readonly configExtra?: Record<string, unknown>;
  /** Extensions in [e2e-transfer]; each plays a TRANSFER_TONE_HZ tone of transferToneMs. */
  readonly transferExtensions?: readonly string[];
  readonly transferToneMs?: number;
  /** The suite's own dialplan, appended to the harness's extensions.conf (see phoneContext(), markerExtension()). */
  readonly extraDialplan?: string;
  /** Extra environment for parseConfig (e.g. AI_CALL_STATUS_TOKEN). */
  readonly env?: Readonly<Record<string, string>>;
}

/** What one call left behind. */
export interface PlacedCall {
  readonly id: string;
  /** The channel that ran ai-call's dialplan (e.g. Local/601@e2e-in-00000002;2). */
  readonly aiChannel: string;
  readonly callId: string;
  readonly outcome: CallOutcome;
  readonly events: CallEvent[];
  /** Last value of each AI_* variable set on the AI channel (AMI VarSet). */
  readonly vars: Readonly<Record<string, string>>;
  /** What the phone heard (MixMonitor r(); 8 kHz unless the phone records wav16). */
  readonly heard: Wav;
  /** What the phone sent. */
  readonly said: Wav;
  /** Wall time from the phone's media start to its hang-up (UserEvent At stamps), ms. */
  readonly phoneMediaMs: number;
  /** The phone's UserEvents in order. */
  readonly phoneEvents: AmiMessage[];
  /** The caller WAV length, ms. */
  readonly callerMs: number;
}

/** Where events land from the moment each source starts; the stack reads them from here. */
interface Observations {
  readonly amiEvents: Array<{ at: number; message: AmiMessage }>;
  readonly callEvents: CallEvent[];
  readonly waiters: Set<() => void>;
}

export class E2eStack {
  readonly config: Config;
  readonly server: RunningServer;
  readonly asterisk: AsteriskHarness;
  readonly fake: FakeElevenLabs | undefined;
  readonly dialplanSource: DialplanSource;
  readonly observer: AmiClient;
  readonly amiPort: number;
  /** ai-call's AMI user (config ami.username) and its secret. */
  readonly aiCallAmi = { username: 'ai-call', secret: AI_CALL_AMI_SECRET } as const;
  /** Every AMI event the observer saw, in order, with the wall time it arrived. */
  readonly amiEvents: Array<{ at: number; message: AmiMessage }>;
  /** Every ai-call call event, in order. */
  readonly callEvents: CallEvent[];
  readonly logger: Logger;
  readonly dir: string;

  readonly #waiters: Set<() => void>;
  readonly #cleanups: Array<() => Promise<unknown>>;
  #nextCall = 1000 + Math.floor(Math.random() * 8000);
  #closed: Promise<void> | undefined;

  private constructor(parts: {
    config: Config;
    server: RunningServer;
    asterisk: AsteriskHarness;
    fake: FakeElevenLabs | undefined;
    source: DialplanSource;
    observer: AmiClient;
    amiPort: number;
    logger: Logger;
    dir: string;
    observations: Observations;
    cleanups: Array<() => Promise<unknown>>;
  }) {
    this.config = parts.config;
    this.server = parts.server;
    this.asterisk = parts.asterisk;
    this.fake = parts.fake;
    this.dialplanSource = parts.source;
    this.observer = parts.observer;
    this.amiPort = parts.amiPort;
    this.logger = parts.logger;
    this.dir = parts.dir;
    this.amiEvents = parts.observations.amiEvents;
    this.callEvents = parts.observations.callEvents;
    this.#waiters = parts.observations.waiters;
    this.#cleanups = parts.cleanups;
  }

  /** Starts everything; on any failure, stops what already runs and rethrows. */
  static async start(o: StackOptions): Promise<E2eStack> {
    const dir = await mkdtemp(join(tmpdir(), 'ai-call-e2e-'));
    const cleanups: Array<() => Promise<unknown>> = [async () => (process.env['E2E_KEEP'] === '1' ? undefined : rm(dir, { recursive: true, force: true }))];
    const observations: Observations = { amiEvents: [], callEvents: [], waiters: new Set() };
    const wake = (): void => {
      for (const waiter of [...observations.waiters]) waiter();
    };
    try {
      const fake = o.fakeAgents ? await FakeElevenLabs.start({ agents: o.fakeAgents }) : undefined;
      if (fake) cleanups.push(() => fake.close());
      const [agiPort, audiosocketPort, amiPort] = (await freePorts(3)) as [number, number, number];
      const yamlConfig: Record<string, unknown> = {
        agi: { host: '127.0.0.1', port: agiPort },
        audiosocket: { host: '127.0.0.1', port: audiosocketPort },
        status: { enabled: false },
        // Asterisk starts after ai-call: a short reconnect delay lets ai-call's AMI client log in soon after.
        ami: { host: '127.0.0.1', port: amiPort, username: 'ai-call', reconnectMinMs: 100, reconnectMaxMs: 500 },
        agents: o.agents,
        routes: Object.entries(o.routes ?? {}).map(([extension, agent]) => ({ context: INBOUND_CONTEXT, extension, agent })),
        log: { level: 'debug' },
        ...o.configExtra,
      };
      const env = {
        AI_CALL_AMI_SECRET,
        ...(fake ? { ELEVENLABS_BASE_URL: fake.baseUrl, ELEVENLABS_API_KEY: fake.apiKey } : {}),
        ...o.env,
      };
      const config = parseConfig(stringify(yamlConfig), 'e2e config', env);
      const logFile = pino.destination({ dest: join(dir, 'ai-call.log'), sync: false });
      const logger = pino({ level: 'debug', base: { app: 'ai-call' } }, logFile);
      cleanups.push(async () => {
        try {
          logFile.flushSync();
        } catch {
          // not open yet: nothing to flush
        }
        logFile.end();
      });

      const server = await startServer(config, {
        logger,
        onEvent: (event) => {
          observations.callEvents.push(event);
          wake();
        },
      });
      cleanups.push(() => server.close());

      const dialplan = await aiCallDialplan(config);
      const configFiles = new Map<string, string>();
      for (const [name, text] of dialplan.files) {
        if (name === 'ai-call-manager.conf') configFiles.set(name, text.replace(/^secret\s*=.*$/m, `secret = ${AI_CALL_AMI_SECRET}`));
        else if (name !== 'ai-call-modules.conf') configFiles.set(name, text);
      }
      const transferExtensions = o.transferExtensions ?? [];
      const soundsDir = join(dir, 'sounds');
      const recordDir = join(dir, 'rec');
      configFiles.set(STAND_IN_FILE, standInExtensions(config, STAND_IN_PREFIX));
      const harnessExtensions = e2eExtensions({ prefix: config.dialplan.prefix, soundsDir, recordDir, transferExtensions, hasRoutes: config.routes.length > 0 });
      configFiles.set('extensions.conf', o.extraDialplan ? `${harnessExtensions}\n; --- the suite's own contexts\n${o.extraDialplan}\n` : harnessExtensions);
      // ai-call's AMI user: the generated ai-call-manager.conf when there is one (its least-privilege
      // permissions are then under test), else the permissions protocols.md §3.6 recommends.
      const generatedManager = configFiles.has('ai-call-manager.conf');
      const aiCallUser: AmiUser = { username: 'ai-call', secret: AI_CALL_AMI_SECRET, read: 'call,dialplan,user,agi,system', write: 'originate,call,reporting,user' };
      const asterisk = await AsteriskHarness.start({
        runtime: o.runtime,
        dir,
        modules: [...new Set([...HARNESS_MODULES, ...dialplan.modules])],
        requiredModules: REQUIRED_MODULES,
        configFiles,
        ami: {
          port: amiPort,
          users: generatedManager ? [OBSERVER] : [OBSERVER, aiCallUser],
          includeFiles: generatedManager ? ['ai-call-manager.conf'] : [],
        },
      });
      cleanups.push(() => asterisk.stop());
      for (const exten of transferExtensions) {
        await asterisk.writeSound(`transfer-${exten}`, composeAudio([{ ms: o.transferToneMs ?? 1_000, hz: TRANSFER_TONE_HZ }]), 8_000);
      }

      const observer = new AmiClient({
        host: '127.0.0.1',
        port: amiPort,
        username: OBSERVER.username,
        secret: OBSERVER.secret,
        actionTimeoutMs: 5_000,
        reconnectMinMs: 100,
        reconnectMaxMs: 1_000,
        pingIntervalMs: 10_000,
        logger: logger.child({ component: 'e2e-observer' }),
        clock: systemClock,
        actionIdPrefix: 'e2e-observer',
      });
      cleanups.push(() => observer.close());
      observer.on('event', (message) => {
        observations.amiEvents.push({ at: Date.now(), message });
        wake();
      });
      observer.start();
      await observer.waitConnected(10_000);

      const stack = new E2eStack({ config, server, asterisk, fake, source: dialplan.source, observer, amiPort, logger, dir, observations, cleanups });
      const probe = await asterisk.rx('core show function DIALPLAN_EXISTS').catch((err: unknown) => (err as Error).message);
      stack.hasDialplanExists = /Info about Function 'DIALPLAN_EXISTS'/.test(probe);
      return stack;
    } catch (err) {
      for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
      throw err;
    }
  }

  /** One line naming the Asterisk and dialplan in use, for the suite's output. */
  describe(): string {
    const missing = this.asterisk.missingModules.length > 0 ? `; modules absent from this Asterisk: ${this.asterisk.missingModules.join(', ')}` : '';
    const noCheck = this.hasDialplanExists ? '' : '; DIALPLAN_EXISTS() unavailable';
    const failed = this.asterisk.failedModules.length > 0 ? `; modules that failed to load: ${this.asterisk.failedModules.join(', ')}` : '';
    return `e2e: ${this.asterisk.version.split(' built')[0]} (${this.asterisk.runtime.kind}), dialplan: ${this.dialplanSource}${missing}${failed}${noCheck}`;
  }

  /** True if DIALPLAN_EXISTS() is registered: the generated dialplan checks transfer and fallback targets with it. */
  hasDialplanExists = false;

  /** Resolves with the first value `probe` returns that is not undefined, re-probing on every event. */
  waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 10_000): Promise<T> {
    const first = probe();
    if (first !== undefined) return Promise.resolve(first);
    return new Promise((resolve, reject) => {
      const wake = (): void => {
        let value: T | undefined;
        try {
          value = probe();
        } catch (err) {
          done();
          reject(err as Error);
          return;
        }
        if (value === undefined) return;
        done();
        resolve(value);
      };
      const done = (): void => {
        clearTimeout(timer);
        clearInterval(poll);
        this.#waiters.delete(wake);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const poll = setInterval(wake, 100); // for conditions that change without an event (registry counts)
      this.#waiters.add(wake);
    });
  }

  /** AMI events of one type (optionally for one channel) seen so far. */
  ami(event: string, channel?: string): AmiMessage[] {
    return this.amiEvents
      .map((e) => e.message)
      .filter((m) => m.event === event && (channel === undefined || m.get('Channel') === channel));
  }

  /** Last value of every AI_* variable set on `channel` (AMI VarSet). */
  aiVars(channel: string): Record<string, string> {
    const vars: Record<string, string> = {};
    for (const m of this.ami('VarSet', channel)) {
      const name = m.get('Variable') ?? '';
      if (name.startsWith('AI_')) vars[name] = m.get('Value') ?? '';
    }
    return vars;
  }

  /** The phone's UserEvents for one call id. */
  phoneEvents(id: string): AmiMessage[] {
    return this.ami('UserEvent').filter((m) => m.get('UserEvent') === 'E2EPhone' && m.get('Call') === id);
  }

  marks(mark: string): AmiMessage[] {
    return this.ami('UserEvent').filter((m) => m.get('UserEvent') === 'E2EMark' && m.get('Mark') === mark);
  }

  /** Call events of one call. */
  eventsOf(callId: string): CallEvent[] {
    return this.callEvents.filter((e) => e.callId === callId);
  }

  nextCallId(): string {
    return String(this.#nextCall++);
  }

  /** Writes the phone's WAV (8 kHz, or 16 kHz for a wideband phone) for call `id`; returns its length, ms. */
  async prepareCaller(id: string, pcm: Buffer, sampleRateHz: 8_000 | 16_000 = 8_000): Promise<number> {
    await this.asterisk.writeSound(`caller-${id}`, pcm, sampleRateHz);
    return durationMs(pcm, sampleRateHz);
  }

  /**
   * An inbound call: `Local/<exten>@<context>` runs ai-call's dialplan, the phone (the originated
   * half, `<id>@<phoneContext>`, default e2e-phone) plays `callerPcm` and records. Resolves once the
   * phone hung up, its recording is closed and ai-call reported the call ended.
   */
  async call(o: { exten: string; context?: string; callerPcm: Buffer; timeoutMs?: number; id?: string; phoneContext?: string }): Promise<PlacedCall> {
    const id = o.id ?? this.nextCallId();
    const callerMs = await this.prepareCaller(id, o.callerPcm);
    const context = o.context ?? INBOUND_CONTEXT;
    const mark = this.asterisk.mark();
    await this.asterisk.originate(`Local/${o.exten}@${context}/n`, id, o.phoneContext ?? PHONE_CONTEXT);
    // The phone runs on the ;1 half; ai-call's dialplan on ;2 of the same Local pair.
    const legs = await this.phoneLegs(id, `Local/${o.exten}@${context}-`);
    return this.collect({ id, ...legs, callerMs, mark, timeoutMs: o.timeoutMs ?? callerMs + 15_000 });
  }

  /**
   * call() with the fake ElevenLabs conversation it opens. While the call runs, `drive` gets that
   * conversation (once ai-call opened it) to act at chosen moments: client tools, speech. Resolves
   * once the call is over and `drive` is done; exactly one conversation must have been opened.
   */
  async callWithConversation(
    o: Parameters<E2eStack['call']>[0],
    drive?: (conversation: FakeConversation) => Promise<void>,
  ): Promise<{ call: PlacedCall; conversation: FakeConversation }> {
    const fake = this.fake;
    if (!fake) throw new Error('callWithConversation needs fakeAgents');
    const before = fake.conversations.length;
    const placed = this.call(o);
    const driven = (async () => {
      const conversation = await this.waitFor(`call ${o.exten}@${o.context ?? INBOUND_CONTEXT} to open an agent conversation`, () => fake.conversations[before], o.timeoutMs ?? 15_000);
      if (drive) await drive(conversation);
      return conversation;
    })();
    // Promise.all observes both promises, so a failure of either is never an unhandled rejection.
    const [call, conversation] = await Promise.all([placed, driven]);
    const opened = fake.conversations.length - before;
    if (opened !== 1) throw new Error(`call ${call.id} opened ${opened} agent conversations, expected 1`);
    return { call, conversation };
  }

  /**
   * ai-call's call whose AGI ran on a channel starting with `channelPrefix`, once its media is
   * connected: its call id and that channel (for the status API while the call is live).
   */
  async liveCall(channelPrefix: string, timeoutMs = 10_000): Promise<{ callId: string; channel: string }> {
    return this.waitFor(`a call on ${channelPrefix}… to connect its media`, () => {
      for (const started of this.callEvents) {
        if (started.type !== 'call.started' || !(started.channel ?? '').startsWith(channelPrefix)) continue;
        if (this.callEvents.some((e) => e.type === 'media.connected' && e.callId === started.callId) && !this.callEvents.some((e) => e.type === 'call.ended' && e.callId === started.callId)) {
          return { callId: started.callId, channel: started.channel! };
        }
      }
      return undefined;
    }, timeoutMs);
  }

  /**
   * Once the phone of call `id` answered: its channel and the other half of its Local pair, which
   * runs ai-call's dialplan (;1 ↔ ;2). `channelPrefix` is what the phone's channel name starts with.
   */
  async phoneLegs(id: string, channelPrefix: string, timeoutMs = 15_000): Promise<{ phoneChannel: string; aiChannel: string }> {
    const media = await this.waitFor(`the phone of call ${id} to answer`, () => this.phoneEvents(id).find((m) => m.get('Phase') === 'media'), timeoutMs);
    const phoneChannel = media.get('Channel') ?? '';
    const half = /;([12])$/.exec(phoneChannel)?.[1];
    if (!phoneChannel.startsWith(channelPrefix) || half === undefined) throw new Error(`unexpected phone channel ${phoneChannel} (expected ${channelPrefix}…;1/;2)`);
    return { phoneChannel, aiChannel: `${phoneChannel.slice(0, -1)}${half === '1' ? '2' : '1'}` };
  }

  /** Waits for the phone's hang-up, its recording and ai-call's end of the call, and gathers the results. */
  async collect(o: { id: string; aiChannel: string; phoneChannel: string; callerMs: number; mark: number; timeoutMs: number; recording?: RecordingFormat }): Promise<PlacedCall> {
    const { id, aiChannel } = o;
    await this.waitFor(`the phone of call ${id} to hang up`, () => this.phoneEvents(id).find((m) => m.get('Phase') === 'hangup'), o.timeoutMs);
    await this.asterisk.waitForLog(new RegExp(`End MixMonitor Recording ${escapeRegExp(o.phoneChannel)}`), { from: o.mark, timeoutMs: 5_000 });
    const started = await this.waitFor(`ai-call to see call ${id} on ${aiChannel}`, () =>
      this.callEvents.find((e): e is Extract<CallEvent, { type: 'call.started' }> => e.type === 'call.started' && e.channel === aiChannel),
    );
    const ended = await this.waitFor(`ai-call to end call ${started.callId}`, () =>
      this.callEvents.find((e): e is Extract<CallEvent, { type: 'call.ended' }> => e.type === 'call.ended' && e.callId === started.callId),
    );
    // Variables the dialplan sets after the media (result AGI, h extension) are final once the AI channel is gone.
    await this.waitFor(`the AI channel ${aiChannel} to hang up`, () => this.ami('Hangup', aiChannel)[0], o.timeoutMs);
    const phoneEvents = this.phoneEvents(id);
    const stamp = (phase: string): number => Number(phoneEvents.find((m) => m.get('Phase') === phase)?.get('At') ?? Number.NaN) * 1000;
    return {
      id,
      aiChannel,
      callId: started.callId,
      outcome: ended.outcome,
      events: this.eventsOf(started.callId),
      vars: this.aiVars(aiChannel),
      heard: await this.asterisk.readRecording(`heard-${id}.${o.recording ?? 'wav'}`),
      said: await this.asterisk.readRecording(`said-${id}.${o.recording ?? 'wav'}`),
      phoneMediaMs: stamp('hangup') - stamp('media'),
      phoneEvents,
      callerMs: o.callerMs,
    };
  }

  /** Everything released: no live call in ai-call, no channel in Asterisk. */
  async expectIdle(timeoutMs = 5_000): Promise<void> {
    await this.waitFor('ai-call to have no live call', () => (this.server.registry.liveCount === 0 ? true : undefined), timeoutMs);
    await this.asterisk.waitChannels(0, timeoutMs);
  }

  /** Asterisk output and ai-call log tail, for a failed test. */
  diagnostics(): string {
    return [
      `--- ${this.describe()}`,
      `--- tree: ${this.dir}${process.env['E2E_KEEP'] === '1' ? ' (kept)' : ' (removed at the end; E2E_KEEP=1 keeps it)'}`,
      '--- Asterisk warnings and errors (last 20) ---',
      ...this.asterisk.problems().slice(-20),
      '--- Asterisk output (last 80 lines) ---',
      this.asterisk.logTail(80),
      '--- ai-call call events (last 30) ---',
      ...this.callEvents.slice(-30).map((e) => JSON.stringify(e)),
    ].join('\n');
  }

  /** Stops everything (Asterisk first, so no call arrives at a closed server). Idempotent. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      // Reverse start order: observer, Asterisk, ai-call, fake ElevenLabs, the tree.
      for (const cleanup of this.#cleanups.reverse()) await cleanup().catch(() => undefined);
      this.#cleanups.length = 0;
    })();
    return this.#closed;
  }
}

/** Free loopback TCP ports (bound then released: the usual small race, fine on a test box). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    return typeof address === 'object' && address !== null ? address.port : 0;
  });
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/** `count` consecutive free ports from a random base in 20000-59999. */
export async function freePortRange(count: number): Promise<{ from: number; to: number }> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const from = 20_000 + Math.floor(Math.random() * 40_000);
    const ok = await Promise.all(Array.from({ length: count }, (_, i) => canBind(from + i)));
    if (ok.every(Boolean)) return { from, to: from + count - 1 };
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export { TRANSFER_CONTEXT, TRANSFER_TONE_HZ };
