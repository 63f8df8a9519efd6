/**
 * Messages between the runner (bench/run.ts) and the load generator process (bench/loadgen.ts),
 * over the child_process IPC channel. Every request carries an `id`; the answer echoes it.
 */
import type { Distribution, SlotLatencyEstimate } from './stats.js';

/** What the calls do: `echo` = caller pattern only; `elevenlabs` = the same, answered by the lean fake. */
export type Scenario = 'echo' | 'elevenlabs';

/** Where the calls go: the server's FastAGI address and the agent they ask for. */
export interface AgiTarget {
  readonly agiHost: string;
  readonly agiPort: number;
  /** Agent name in the AGI request (`ai-call?agent=NAME`). */
  readonly agent: string;
}

/** `calls` calls started evenly over rampMs, each streaming until the hang-up. */
export interface RampOptions extends AgiTarget {
  readonly scenario: Scenario;
  readonly calls: number;
  readonly rampMs: number;
}

/** New calls arriving one by one while the step's calls are live: AGI, then its result AGI at once. */
export interface ProbeOptions extends AgiTarget {
  readonly probes: number;
  readonly intervalMs: number;
}

export type LoadgenRequest =
  | { readonly id: number; readonly type: 'start-fake' }
  | ({ readonly id: number; readonly type: 'ramp' } & RampOptions)
  | { readonly id: number; readonly type: 'measure-start' }
  | { readonly id: number; readonly type: 'measure-stop' }
  | ({ readonly id: number; readonly type: 'probe' } & ProbeOptions)
  | { readonly id: number; readonly type: 'hangup' }
  | { readonly id: number; readonly type: 'exit' };

export type LoadgenReply =
  | {
      readonly id: number;
      readonly type: 'fake-ready';
      readonly baseUrl: string;
      readonly apiKey: string;
      /** The fake's agent with pcm_8000 both ways, and the one with pcm_16000 both ways. */
      readonly agentId: string;
      readonly agentId16k: string;
    }
  | { readonly id: number; readonly type: 'ramped'; readonly ramp: RampResult }
  | { readonly id: number; readonly type: 'measuring' }
  | { readonly id: number; readonly type: 'measured'; readonly window: WindowResult }
  | { readonly id: number; readonly type: 'probed'; readonly probe: ProbeResult }
  | { readonly id: number; readonly type: 'hung-up'; readonly hangup: HangupResult }
  | { readonly id: number; readonly type: 'error'; readonly message: string };

export interface RampResult {
  readonly requested: number;
  /** Calls whose AudioSocket is connected and streaming. */
  readonly live: number;
  readonly failed: number;
  /** First few failure reasons, with counts. */
  readonly failures: Readonly<Record<string, number>>;
  /** AGI connect → `SET VARIABLE AI_STATUS` received, for every call of the ramp. */
  readonly agiToStatus: Distribution;
  /**
   * ElevenLabs targets: the fake agent sent `conversation_initiation_metadata` → `AI_STATUS` received.
   * AGI → AI_STATUS minus the agent's own connect time: what the bridge adds (empty for echo/floor;
   * absent in results written before it was measured).
   */
  readonly agentReadyToStatus?: Distribution;
  readonly rampMs: number;
}

/** AGI → AI_STATUS of single calls arriving at a server that carries the step's calls (no ramp around them). */
export interface ProbeResult {
  readonly probes: number;
  readonly failed: number;
  readonly agiToStatus: Distribution;
  /** ElevenLabs targets: the fake agent ready → AI_STATUS, i.e. without the agent's own connect time. */
  readonly agentReadyToStatus: Distribution;
}

export interface WindowResult {
  readonly durationMs: number;
  readonly calls: number;
  /** Calls the server ended (00 00 00 or close) inside the window. */
  readonly endedByServer: number;
  /** Inter-arrival of consecutive frames on each call, as the Asterisk side sees them. */
  readonly interFrame: Distribution;
  readonly gapsOver40Ms: number;
  readonly framesReceived: number;
  /** Per call: whole 20 ms slots between its first and last frame in the window that brought no frame. */
  readonly framesLost: number;
  /**
   * Gaps over 40 ms grouped into stalls (gaps ending within 10 ms of each other), biggest first,
   * at most 20: a stall that hits every call at once is a process-wide pause (server or load
   * generator, see loadgen.tickLateMs), one that hits a single call is that call's own.
   */
  readonly stalls: ReadonlyArray<{ readonly atMs: number; readonly calls: number; readonly maxGapMs: number; readonly cause: 'server' | 'loadgen' }>;
  /** Gaps over 40 ms not explained by a stall of the load generator itself. */
  readonly serverGapsOver40Ms: number;
  /** Caller frame sent → first audio of that utterance at the fake (elevenlabs only). */
  readonly uplink: Distribution;
  /** Reply's first `audio` sent → first agent frame at the Asterisk side, slot wait included. */
  readonly downlinkRaw: Distribution;
  /** The bridge's own part of it, estimated from next-slot hits (see stats.ts). */
  readonly downlinkAdded: SlotLatencyEstimate;
  readonly bargeIn: {
    readonly count: number;
    /** `interruption` sent → last agent frame that still arrived after it (0 when none did). */
    readonly flushMs: Distribution;
    /** Agent frames that arrived after the interruption, worst call. */
    readonly staleFramesMax: number;
    /** Barge-ins followed by more than one agent frame (the target is one at most). */
    readonly overOneFrame: number;
  };
  /** Health of the instrument itself. */
  readonly loadgen: {
    /** How late the load generator's own clock tick fired (it ticks every 5 ms, see asterisk-emulator.ts). */
    readonly tickLateMs: Distribution;
    /** How long one tick took to write its calls' frames. */
    readonly tickBusyMs: Distribution;
    readonly skippedFrames: number;
    /** perf_hooks event-loop delay of the load generator (1 ms resolution): bounds its share of any latency. */
    readonly loopDelayMs: { readonly p50: number; readonly p99: number; readonly max: number };
  };
  readonly fake: Readonly<Record<string, number>> | undefined;
}

export interface HangupResult {
  readonly calls: number;
  /** Result AGIs that answered AI_RESULT=CALLER_HANGUP, as the hang-up should produce. */
  readonly resultsOk: number;
  readonly results: Readonly<Record<string, number>>;
  readonly durationMs: number;
}
