/**
 * The composition root: the only place that constructs and wires things (style.md rule 11).
 *
 *   FastAGI server ─► AGI handler ─► call registry ◄─ AudioSocket listener(s) / pool
 *                                        │  ▲
 *                     agent providers ◄──┘  └── shared 20 ms FrameClock
 *                                        └─► events ─► status server, metrics, call records
 */
import type { Config } from './config/schema.js';
import type { Logger } from './log.js';
import { systemClock, type Clock } from './audio/clock.js';
import { FrameClock } from './audio/frame-clock.js';
import { AgiServer } from './asterisk/agi/server.js';
import { AudioSocketListener } from './asterisk/audiosocket/server.js';
import { AudioSocketPool } from './asterisk/audiosocket/pool.js';
import type { AgentProvider } from './agent/types.js';
import { EchoProvider } from './agent/echo/echo-agent.js';
import { ElevenLabsProvider } from './agent/elevenlabs/provider.js';
import { CallRegistry, type MediaEndpoints } from './call/registry.js';
import { createAgiHandler } from './call/agi-handler.js';
import { CallRecorder } from './call/record.js';
import type { CallEvent, CallOutcome } from './call/events.js';
import { StatusServer, type ApiReply, type CallControlApi } from './status/server.js';
import { AmiClient } from './asterisk/ami/client.js';
import { OutboundCalls, parseOriginateRequest } from './call/outbound.js';
import { ChannelTracker } from './call/channels.js';
import { Metrics } from './status/metrics.js';
import { BridgeError, describeError } from './errors.js';
import { missingServerFlags } from './runtime-flags.js';

/** Catch-up burst after an event-loop stall (protocols.md §1.7: "a few frames at most"). */
const MAX_CATCH_UP_FRAMES = 3;
/** Calls are spread over 4 slots of the 20 ms period (a 5 ms tick): a tick writes a quarter of the frames. */
const FRAME_PHASES = 4;

export interface RunningServer {
  readonly agi: { host: string; port: number };
  readonly audiosocket: { host: string; port: number } | undefined;
  readonly status: { host: string; port: number } | undefined;
  readonly registry: CallRegistry;
  readonly frameClock: FrameClock;
  /** Present when the config has an ami: section. */
  readonly outbound: OutboundCalls | undefined;
  /** Prometheus metrics of this server's calls (worker mode gathers them in the primary). */
  readonly metrics: Metrics;
  /** Stops taking calls, waits up to graceMs for live calls, then closes everything (idempotent). */
  close(graceMs?: number): Promise<void>;
}

export interface ServerDeps {
  readonly logger: Logger;
  readonly clock?: Clock;
  /** Extra listener for every call event (tests, the benchmark, worker mode). */
  readonly onEvent?: (event: CallEvent) => void;
  /** Worker mode: asks the other workers for the outcome of a call this one did not carry. */
  readonly remoteOutcome?: (callId: string, waitMs: number) => Promise<CallOutcome | 'running' | undefined>;
}

export function buildProviders(config: Config, clock: Clock, logger: Logger): Map<string, AgentProvider> {
  const providers = new Map<string, AgentProvider>();
  for (const [name, agent] of Object.entries(config.agents)) {
    if (agent.provider === 'echo') providers.set(name, new EchoProvider({ delayMs: agent.delayMs }));
    else providers.set(name, new ElevenLabsProvider({ agentName: name, agent, elevenlabs: config.elevenlabs, clock, logger }));
  }
  return providers;
}

export async function startServer(config: Config, deps: ServerDeps): Promise<RunningServer> {
  const clock = deps.clock ?? systemClock;
  const logger = deps.logger;
  const cleanups: Array<() => Promise<void> | void> = [];
  const frameClock = new FrameClock({
    clock,
    frameMs: config.calls.frameMs,
    maxCatchUpFrames: MAX_CATCH_UP_FRAMES,
    phases: FRAME_PHASES,
    onError: (err: unknown) => logger.error({ err: describeError(err) }, 'a call failed on the 20 ms clock'),
  });
  cleanups.push(() => frameClock.close());

  const metrics = new Metrics();
  const recorder = config.calls.recordDir ? new CallRecorder({ dir: config.calls.recordDir, logger }) : undefined;
  if (recorder) cleanups.push(() => recorder.close());
  let status: StatusServer | undefined;
  const emit = (event: CallEvent): void => {
    metrics.observe(event);
    recorder?.write(event);
    status?.publish(event);
    deps.onEvent?.(event);
  };

  const advertise = config.audiosocket.advertise ?? config.audiosocket.host;
  const listenerOptions = {
    uuidTimeoutMs: config.audiosocket.uuidTimeoutMs,
    maxPayloadBytes: config.audiosocket.maxPayloadBytes,
    logger,
    clock,
  };
  // The registry and the listeners need each other; the listeners call through this reference.
  let registry!: CallRegistry;
  let endpoints: MediaEndpoints;
  let sharedAddress: { host: string; port: number } | undefined;

  try {
    if (config.audiosocket.mode === 'pool') {
      const pool = new AudioSocketPool({
        ...listenerOptions,
        host: config.audiosocket.host,
        from: config.audiosocket.pool.from,
        to: config.audiosocket.pool.to,
        accept: (uuid, connection) => registry.acceptMedia(uuid, connection),
      });
      cleanups.push(() => pool.close());
      const ports = new Map<string, number>();
      endpoints = {
        async reserve(callId) {
          const port = await pool.allocate(callId);
          ports.set(callId, port);
          return `${hostPort(advertise)}:${port}`;
        },
        release(callId) {
          const port = ports.get(callId);
          if (port === undefined) return;
          ports.delete(callId);
          pool.release(port).catch((err: unknown) => logger.warn({ err: describeError(err), port }, 'releasing a pool port failed'));
        },
      };
    } else {
      const listener = new AudioSocketListener({
        ...listenerOptions,
        host: config.audiosocket.host,
        port: config.audiosocket.port,
        accept: (uuid, connection) => registry.acceptMedia(uuid, connection),
      });
      sharedAddress = await listener.listen();
      cleanups.push(() => listener.close());
      const address = `${hostPort(advertise)}:${sharedAddress.port}`;
      endpoints = { reserve: async () => address, release() {} };
    }

    const providers = buildProviders(config, clock, logger);
    registry = new CallRegistry({ config, clock, frameClock, logger, providers, endpoints, emit });

    for (const binding of config.audiosocket.bindings) {
      const listener = new AudioSocketListener({
        ...listenerOptions,
        host: binding.host ?? config.audiosocket.host,
        port: binding.port,
        accept: (uuid, connection) => registry.acceptBound(binding.agent, uuid, connection),
      });
      await listener.listen();
      cleanups.push(() => listener.close());
      logger.info({ port: listener.port, agent: binding.agent }, 'static AudioSocket binding listening');
    }

    let outbound: OutboundCalls | undefined;
    let ami: AmiClient | undefined;
    const channels = new ChannelTracker(clock);
    if (config.ami) {
      if (config.ami.secret === undefined) {
        throw new BridgeError('CONFIG_INVALID', 'ami.secret is not set: export AI_CALL_AMI_SECRET (or remove the ami: section)');
      }
      ami = new AmiClient({
        host: config.ami.host,
        port: config.ami.port,
        username: config.ami.username,
        secret: config.ami.secret,
        actionTimeoutMs: config.ami.actionTimeoutMs,
        reconnectMinMs: config.ami.reconnectMinMs,
        reconnectMaxMs: config.ami.reconnectMaxMs,
        pingIntervalMs: config.ami.pingIntervalMs,
        logger,
        clock,
      });
      const amiClient = ami;
      outbound = new OutboundCalls({ config, ami, registry, clock, logger, publish: (type, payload) => status?.publishRaw(type, payload) });
      const outboundCalls = outbound;
      const ourCall = new Map<string, string>();
      ami.on('event', (event) => {
        outboundCalls.onAmiEvent(event);
        const changed = channels.onEvent(event);
        if (!changed) return;
        // Only channels of ai-call's own calls go to the status stream, not the whole PBX.
        const call = registry.byUniqueid(changed.uniqueid);
        if (call) ourCall.set(changed.uniqueid, call.callId);
        const callId = ourCall.get(changed.uniqueid);
        if (callId === undefined) return;
        if (event.event === 'Hangup') ourCall.delete(changed.uniqueid);
        status?.publishRaw('channel', { callId, event: event.event, ...changed });
      });
      ami.on('connected', () => status?.publishRaw('ami', { state: 'connected' }));
      ami.on('disconnected', (reason) => {
        channels.clear();
        ourCall.clear();
        status?.publishRaw('ami', { state: 'disconnected', reason });
      });
      ami.on('loginFailed', (err) => status?.publishRaw('ami', { state: 'login-failed', error: err.code }));
      ami.start();
      cleanups.push(() => amiClient.close());
    }

    const agi = new AgiServer({
      host: config.agi.host,
      port: config.agi.port,
      allow: config.agi.allow,
      commandTimeoutMs: config.agi.commandTimeoutMs,
      maxLineBytes: config.agi.maxLineBytes,
      logger,
      clock,
      handler: createAgiHandler({ config, registry, logger, outbound, remoteOutcome: deps.remoteOutcome }),
    });
    const agiAddress = await agi.listen();
    cleanups.push(() => agi.close());

    let statusAddress: { host: string; port: number } | undefined;
    if (config.status.enabled) {
      status = new StatusServer({
        host: config.status.host,
        port: config.status.port,
        token: config.status.token,
        logger,
        source: {
          // /calls shows Asterisk's view of each call (channel, state, age) next to ai-call's own.
          list: () => registry.list().map((call) => ({ ...call, asterisk: channels.get(call.uniqueid) })),
          get: (callId) => {
            const snapshot = registry.snapshot(callId);
            return snapshot && { ...snapshot, asterisk: channels.get(snapshot.uniqueid) };
          },
          hangup: (callId, reason) => registry.hangup(callId, reason),
        },
        health: () => ({
          status: registry.draining ? 'draining' : 'ok',
          calls: registry.liveCount,
          ami: ami ? ami.state : 'disabled',
          originatesPending: outbound?.pendingCount ?? 0,
          frameClock: { listeners: frameClock.size, ...frameClock.stats },
          nodeFlagsMissing: missingServerFlags(),
        }),
        metrics: () => metrics.render(),
        control: outbound && createControlApi(config, outbound),
      });
      statusAddress = await status.listen();
      const statusServer = status;
      cleanups.push(() => statusServer.close());
    }

    logger.info(
      { agi: agiAddress, audiosocket: sharedAddress ?? `pool ${config.audiosocket.pool.from}-${config.audiosocket.pool.to}`, status: statusAddress, agents: Object.keys(config.agents) },
      'ai-call is ready',
    );

    let closing: Promise<void> | undefined;
    return {
      agi: agiAddress,
      audiosocket: sharedAddress,
      status: statusAddress,
      registry,
      frameClock,
      outbound,
      metrics,
      close(graceMs = 0) {
        closing ??= (async () => {
          registry.drain();
          if (graceMs > 0) await registry.waitIdle(graceMs);
          registry.close();
          await runCleanups(cleanups, logger);
        })();
        return closing;
      },
    };
  } catch (err) {
    await runCleanups(cleanups, logger);
    throw err;
  }
}

/** The status API's write endpoints, over AMI. */
function createControlApi(config: Config, outbound: OutboundCalls): CallControlApi {
  return {
    async originate(body): Promise<ApiReply> {
      const request = parseOriginateRequest(body, config);
      const wait = typeof body === 'object' && body !== null && (body as Record<string, unknown>)['wait'] === true;
      const { id, result } = await outbound.originate(request);
      if (!wait) return { status: 202, body: { id, outcome: 'queued' } };
      return { status: 200, body: await result };
    },
    async hangupChannel(callId): Promise<ApiReply> {
      await outbound.hangupChannel(callId);
      return { status: 200, body: { ok: true } };
    },
    async redirect(callId, body): Promise<ApiReply> {
      return { status: 200, body: { ok: true, target: await outbound.redirect(callId, body) } };
    },
    async setVariables(callId, body): Promise<ApiReply> {
      return { status: 200, body: { ok: true, variables: await outbound.setVariables(callId, body) } };
    },
  };
}

async function runCleanups(cleanups: Array<() => Promise<void> | void>, logger: Logger): Promise<void> {
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch (err) {
      logger.warn({ err: describeError(err) }, 'cleanup step failed');
    }
  }
  cleanups.length = 0;
}

/** IPv6 literals need brackets in host:port (protocols.md §1.1). */
export function hostPort(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}
