/**
 * Messages between the cluster primary and its workers, over node:cluster's IPC channel (JSON).
 * Requests carry a `requestId` that the answer echoes; every request is answered exactly once,
 * or rejected by its sender's timeout.
 */
import type { Config } from '../config/schema.js';
import type { CallEvent, CallOutcome } from '../call/events.js';
import type { CallSnapshot } from '../call/session.js';

/** Marks our messages: the IPC channel is shared with node:cluster's own internal messages. */
export const CLUSTER_TAG = 'ai-call:cluster';

/** What the primary tells a worker. */
export type PrimaryMessage =
  /** Sent once after fork: the worker's index and its share of the configuration (worker-config.ts). */
  | {
      readonly tag: typeof CLUSTER_TAG;
      readonly type: 'start';
      readonly index: number;
      readonly workers: number;
      readonly config: Config;
      /** Set when audiosocket.port is 0: the free port the primary picked for this worker. */
      readonly audiosocketPort?: number | undefined;
    }
  /** Owner lookup: the worker holding `callId` answers with its outcome (waiting up to waitMs). */
  | { readonly tag: typeof CLUSTER_TAG; readonly type: 'outcome-request'; readonly requestId: number; readonly callId: string; readonly waitMs: number }
  /** The answer to a worker's own outcome-request. */
  | { readonly tag: typeof CLUSTER_TAG; readonly type: 'outcome-reply'; readonly requestId: number; readonly found: OutcomeLookup }
  | { readonly tag: typeof CLUSTER_TAG; readonly type: 'list-request'; readonly requestId: number }
  | { readonly tag: typeof CLUSTER_TAG; readonly type: 'metrics-request'; readonly requestId: number }
  | { readonly tag: typeof CLUSTER_TAG; readonly type: 'hangup-request'; readonly requestId: number; readonly callId: string; readonly reason: string }
  /** Whether to forward every call event (status stream clients connected) or only start and end. */
  | { readonly tag: typeof CLUSTER_TAG; readonly type: 'stream-events'; readonly enabled: boolean }
  | { readonly tag: typeof CLUSTER_TAG; readonly type: 'shutdown'; readonly graceMs: number };

/** What a worker tells the primary. */
export type WorkerMessage =
  /**
   * The worker listens for messages now. node:cluster's 'online' fires before an ESM entry module
   * has run, so anything sent on 'online' could reach a process with no listener and be lost.
   */
  | { readonly tag: typeof CLUSTER_TAG; readonly type: 'hello' }
  | { readonly tag: typeof CLUSTER_TAG; readonly type: 'ready'; readonly index: number; readonly audiosocket: { host: string; port: number } | undefined }
  | { readonly tag: typeof CLUSTER_TAG; readonly type: 'start-failed'; readonly index: number; readonly error: string }
  | { readonly tag: typeof CLUSTER_TAG; readonly type: 'event'; readonly event: CallEvent }
  | { readonly tag: typeof CLUSTER_TAG; readonly type: 'outcome-request'; readonly requestId: number; readonly callId: string; readonly waitMs: number }
  | { readonly tag: typeof CLUSTER_TAG; readonly type: 'outcome-reply'; readonly requestId: number; readonly found: OutcomeLookup }
  | { readonly tag: typeof CLUSTER_TAG; readonly type: 'list-reply'; readonly requestId: number; readonly calls: CallSnapshot[]; readonly health: WorkerHealth }
  | { readonly tag: typeof CLUSTER_TAG; readonly type: 'metrics-reply'; readonly requestId: number; readonly metrics: unknown[] }
  | { readonly tag: typeof CLUSTER_TAG; readonly type: 'hangup-reply'; readonly requestId: number; readonly found: boolean };

/** An outcome lookup across processes: the outcome, "still running", or unknown. */
export type OutcomeLookup =
  | { readonly state: 'ended'; readonly outcome: CallOutcome }
  | { readonly state: 'running' }
  | { readonly state: 'unknown' };

export interface WorkerHealth {
  readonly index: number;
  readonly pid: number;
  readonly calls: number;
  readonly frameClock: Record<string, number>;
  /** ai-call's V8 flags this worker runs without (runtime-flags.ts); empty when all are set. */
  readonly nodeFlagsMissing: string[];
}

export function isClusterMessage(message: unknown): message is { tag: typeof CLUSTER_TAG; type: string } {
  return typeof message === 'object' && message !== null && (message as { tag?: unknown }).tag === CLUSTER_TAG;
}
