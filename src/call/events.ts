/**
 * What a call reports outward: to the status stream, the per-call JSON Lines record and the logs.
 * Events point outward only (style.md rule 12): nothing listens to these to drive a call.
 */
export const CALL_RESULTS = ['COMPLETED', 'CALLER_HANGUP', 'AGENT_HANGUP', 'TRANSFER', 'AGENT_ERROR', 'TIMEOUT'] as const;
export type CallResult = (typeof CALL_RESULTS)[number];

export const ASSIGN_STATUSES = ['READY', 'UNKNOWN_AGENT', 'BUSY', 'AGENT_UNAVAILABLE', 'DRAINING', 'ERROR'] as const;
export type AssignStatus = (typeof ASSIGN_STATUSES)[number];

/** The outcome the dialplan reads through the result AGI. */
export interface CallOutcome {
  readonly result: CallResult;
  /** "context,exten,priority" for TRANSFER, else empty. */
  readonly transferTo: string;
  readonly conversationId: string;
  /** Seconds from media start to end (0 if media never started). */
  readonly durationS: number;
  /** Short reason (an error code and detail) for AGENT_ERROR and TIMEOUT; empty otherwise. */
  readonly error: string;
}

export type CallSource = 'agi' | 'originate' | 'binding';

interface EventBase {
  readonly callId: string;
  /** Wall-clock milliseconds since the epoch. */
  readonly at: number;
}

export type CallEvent = EventBase &
  (
    | { readonly type: 'call.started'; readonly agent: string; readonly source: CallSource; readonly uniqueid?: string | undefined; readonly callerId?: string | undefined; readonly channel?: string | undefined }
    | { readonly type: 'agent.ready'; readonly conversationId?: string | undefined; readonly inputFormat: string; readonly outputFormat: string; readonly connectMs: number }
    | { readonly type: 'media.connected'; readonly remoteAddress: string; readonly sampleRateHz: number }
    | { readonly type: 'media.format'; readonly sampleRateHz: number }
    | { readonly type: 'greeting'; readonly msAfterMedia: number }
    | { readonly type: 'turn'; readonly latencyMs: number; readonly eventId: number }
    | { readonly type: 'transcript'; readonly role: 'user' | 'agent' | 'agent_correction'; readonly text: string; readonly eventId?: number | undefined; readonly original?: string | undefined }
    | { readonly type: 'interruption'; readonly eventId: number; readonly droppedMs: number }
    | { readonly type: 'dtmf'; readonly digits: string; readonly forwardedAs: string }
    | { readonly type: 'tool'; readonly toolName: string; readonly toolCallId: string; readonly parameters: unknown; readonly result: string; readonly isError: boolean }
    | { readonly type: 'notice'; readonly notice: string; readonly detail: string }
    | { readonly type: 'call.ending'; readonly result: CallResult; readonly reason: string }
    | { readonly type: 'call.ended'; readonly outcome: CallOutcome; readonly stats: CallStats }
  );

export interface CallStats {
  readonly framesOut: number;
  readonly agentFramesOut: number;
  readonly silenceFramesOut: number;
  readonly framesIn: number;
  readonly bytesToAgent: number;
  readonly droppedAgentBytes: number;
  readonly interruptions: number;
  /** Longest time between two frames we sent. */
  readonly maxOutGapMs: number;
}

export type CallEventSink = (event: CallEvent) => void;
