import { Writable } from 'node:stream';
import { onTestFinished } from 'vitest';
import { systemClock, type Clock } from '../../../src/audio/clock.js';
import { agentSchema, type ElevenLabsAgentConfig } from '../../../src/config/schema.js';
import { createLogger, type Logger } from '../../../src/log.js';
import type { AgentEnd, AgentHandlers, CallContext, ToolCall, TranscriptEntry } from '../../../src/agent/types.js';
import { ElevenLabsProvider, type ElevenLabsProviderOptions } from '../../../src/agent/elevenlabs/provider.js';
import { FakeElevenLabs, type FakeAgent, type FakeConversation } from '../../support/fake-elevenlabs.js';

/** A validated elevenlabs agent config with test-friendly values; `extra` is applied after validation. */
export function agentConfig(input: Record<string, unknown> = {}, extra: Partial<ElevenLabsAgentConfig> = {}): ElevenLabsAgentConfig {
  const parsed = agentSchema.parse({ provider: 'elevenlabs', agentId: 'agent_pub', private: false, connectTimeoutMs: 3_000, ...input });
  if (parsed.provider !== 'elevenlabs') throw new Error('unreachable');
  return { ...parsed, ...extra };
}

export const CALL: CallContext = {
  callId: '0b8f6d3c-2a1e-4c55-9e1f-1234567890ab',
  agentName: 'sales',
  callerId: '+15551234567',
  callerName: 'Alice Smith',
  dnid: '600',
  extension: '600',
  context: 'from-internal',
  channel: 'PJSIP/alice-00000001',
  uniqueid: '1732400000.42',
  args: ['arg one'],
  query: { agent: 'sales', lang: 'en' },
  vars: { ACCOUNT: 'A-17' },
};

export interface Recorded {
  readonly handlers: AgentHandlers;
  /** Every handler call in order. */
  readonly events: { readonly kind: string; readonly eventId?: number; readonly bytes?: number; readonly value?: unknown }[];
  readonly audio: { readonly eventId: number; readonly bytes: number; readonly beforeStart: boolean }[];
  readonly interruptions: number[];
  readonly toolCalls: ToolCall[];
  readonly transcripts: TranscriptEntry[];
  readonly notices: { type: string; detail: string }[];
  readonly ends: AgentEnd[];
  /** Resolves with the first onEnd. */
  readonly ended: Promise<AgentEnd>;
  /** Call once start() has resolved, to mark later audio as after-start. */
  markStarted(): void;
  audioBytes(eventId?: number): number;
}

export function recordHandlers(overrides: Partial<AgentHandlers> = {}): Recorded {
  let started = false;
  let resolveEnd!: (end: AgentEnd) => void;
  const ended = new Promise<AgentEnd>((r) => (resolveEnd = r));
  const rec: Omit<Recorded, 'handlers' | 'markStarted' | 'audioBytes' | 'ended'> = {
    events: [],
    audio: [],
    interruptions: [],
    toolCalls: [],
    transcripts: [],
    notices: [],
    ends: [],
  };
  const handlers: AgentHandlers = {
    onAudio(chunk, eventId) {
      rec.audio.push({ eventId, bytes: chunk.length, beforeStart: !started });
      rec.events.push({ kind: 'audio', eventId, bytes: chunk.length });
      overrides.onAudio?.(chunk, eventId);
    },
    onInterruption(eventId) {
      rec.interruptions.push(eventId);
      rec.events.push({ kind: 'interruption', eventId });
      overrides.onInterruption?.(eventId);
    },
    onToolCall(call) {
      rec.toolCalls.push(call);
      rec.events.push({ kind: 'tool', value: call });
      overrides.onToolCall?.(call);
    },
    onTranscript(entry) {
      rec.transcripts.push(entry);
      rec.events.push({ kind: 'transcript', value: entry });
      overrides.onTranscript?.(entry);
    },
    onNotice(notice) {
      rec.notices.push({ ...notice });
      rec.events.push({ kind: 'notice', value: notice });
      overrides.onNotice?.(notice);
    },
    onEnd(end) {
      rec.ends.push(end);
      rec.events.push({ kind: 'end', value: end });
      resolveEnd(end);
      overrides.onEnd?.(end);
    },
  };
  return {
    ...rec,
    handlers,
    ended,
    markStarted: () => {
      started = true;
    },
    audioBytes: (eventId?: number) => rec.audio.filter((a) => eventId === undefined || a.eventId === eventId).reduce((n, a) => n + a.bytes, 0),
  };
}

/** A logger whose JSON lines are kept in memory. */
export function captureLogger(): { logger: Logger; lines: string[]; text: () => string } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { logger: createLogger('trace', stream), lines, text: () => lines.join('') };
}

export async function startFake(agents: FakeAgent[]): Promise<FakeElevenLabs> {
  const fake = await FakeElevenLabs.start({ agents });
  onTestFinished(() => fake.close());
  return fake;
}

export function makeProvider(
  fake: FakeElevenLabs,
  agent: ElevenLabsAgentConfig,
  options: { clock?: Clock; logger?: Logger; apiKey?: string | undefined } & Partial<ElevenLabsProviderOptions> = {},
): ElevenLabsProvider {
  const { clock, logger, apiKey, ...rest } = options;
  return new ElevenLabsProvider({
    agentName: 'sales',
    agent,
    elevenlabs: { baseUrl: fake.baseUrl, residency: 'default', apiKey: 'apiKey' in options ? apiKey : fake.apiKey },
    clock: clock ?? systemClock,
    logger: logger ?? captureLogger().logger,
    ...rest,
  });
}

/** Waits until the client has processed everything the fake sent before (ping → pong round trip). */
export async function sync(conversation: FakeConversation): Promise<void> {
  const id = conversation.ping();
  await conversation.waitForMessage((m) => m['type'] === 'pong' && m['event_id'] === id);
}

export function until(predicate: () => boolean, timeoutMs = 3_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (predicate()) resolve();
      else if (Date.now() > deadline) reject(new Error('condition not met in time'));
      else setTimeout(check, 5);
    };
    check();
  });
}
