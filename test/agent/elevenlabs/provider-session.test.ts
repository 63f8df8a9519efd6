import { describe, expect, it, onTestFinished } from 'vitest';
import type { AgentSession } from '../../../src/agent/types.js';
import type { ElevenLabsSession } from '../../../src/agent/elevenlabs/session.js';
import { SLIN_8K } from '../../../src/audio/format.js';
import { isBridgeError } from '../../../src/errors.js';
import { makeSilence, makeTone, type FakeAgent } from '../../support/fake-elevenlabs.js';
import { ManualClock } from '../../support/manual-clock.js';
import { agentConfig, CALL, captureLogger, makeProvider, recordHandlers, startFake, sync, until, type Recorded } from './helpers.js';

const never = (): AbortSignal => new AbortController().signal;

async function connect(
  fakeAgent: Partial<FakeAgent>,
  config: Parameters<typeof agentConfig>[0] = {},
  options: Parameters<typeof makeProvider>[2] & { rec?: Recorded; extra?: Parameters<typeof agentConfig>[1] } = {},
) {
  const fake = await startFake([{ agentId: 'agent_pub', ...fakeAgent }]);
  const rec = options.rec ?? recordHandlers();
  const session = await makeProvider(fake, agentConfig(config, options.extra ?? {}), options).start(CALL, rec.handlers, never());
  rec.markStarted();
  onTestFinished(() => session.close('test finished'));
  const conversation = fake.conversations[0]!;
  return { fake, rec, session, conversation, stats: (session as ElevenLabsSession).stats };
}

/** Feeds `audio` to the session in `frameBytes` pieces, as the call layer would. */
function feed(session: AgentSession, audio: Buffer, frameBytes: number): void {
  for (let offset = 0; offset < audio.length; offset += frameBytes) session.sendAudio(audio.subarray(offset, offset + frameBytes));
}

describe('greeting audio', () => {
  it('reaches onAudio before and after start resolves, with no loss', async () => {
    const { rec, conversation } = await connect({ greetingMs: 1_000, chunkMs: 40 });
    await sync(conversation);
    // 1000 ms of pcm_16000 = 32000 bytes, all with the greeting's event id.
    expect(rec.audioBytes()).toBe(32_000);
    expect(rec.audio.every((a) => a.eventId === 1)).toBe(true);
    expect(rec.audio).toHaveLength(25);
    // Metadata and greeting leave in one write: the greeting is handled before start() resolves.
    expect(rec.audio.some((a) => a.beforeStart)).toBe(true);
    expect(rec.transcripts[0]).toEqual({ role: 'agent', text: 'Hello, how can I help?', eventId: 1 });
  });

  it('delivers µ-law agent audio as-is', async () => {
    const { rec, conversation } = await connect({ agentOutputAudioFormat: 'ulaw_8000', userInputAudioFormat: 'ulaw_8000', greetingMs: 500 });
    await sync(conversation);
    expect(rec.audioBytes()).toBe(4_000);
  });

  it('skips empty audio and delivers the legacy shape with event id 0', async () => {
    const { rec, conversation } = await connect({ firstMessage: null });
    conversation.sendRaw('{"type":"audio","audio_event":{"audio_base_64":"","event_id":5}}');
    conversation.sendRaw(JSON.stringify({ type: 'audio', audio: { chunk: Buffer.alloc(320).toString('base64') } }));
    await sync(conversation);
    expect(rec.audio).toEqual([{ eventId: 0, bytes: 320, beforeStart: false }]);
  });

  it('ignores unknown message types and unparsable frames without ending', async () => {
    const { rec, conversation, stats } = await connect({ firstMessage: null });
    conversation.sendRaw('{"type":"vad_score","vad_score_event":{"vad_score":0.9}}');
    conversation.sendRaw('{"type":"something_new","something_new_event":{}}');
    conversation.sendRaw('not json at all');
    conversation.sendRaw('not json either');
    await sync(conversation);
    expect(rec.ends).toEqual([]);
    expect(stats.unparsable).toBe(2);
    expect(rec.notices.filter((n) => n.type === 'agent_protocol')).toHaveLength(1);
  });
});

describe('uplink', () => {
  it.each([
    [20, 640, 856, 50],
    [100, 3_200, 4_268, 10],
  ])('uplinkChunkMs %i batches pcm_16000 into %i-byte chunks (%i base64 chars)', async (uplinkChunkMs, bytes, chars, count) => {
    const { session, conversation } = await connect({ firstMessage: null }, { uplinkChunkMs });
    // 1 s of audio in awkward pieces (333 bytes: not even whole samples).
    feed(session, makeSilence('pcm_16000', 1_000), 333);
    await conversation.waitForUserAudioBytes(32_000);
    await sync(conversation);
    expect(conversation.userAudio.messages).toBe(count);
    expect(conversation.userAudio.bytes).toBe(count * bytes);
    expect(new Set(conversation.userAudio.base64Lengths)).toEqual(new Set([chars]));
    const frames = conversation.messagesOfType('user_audio');
    expect(Object.keys(frames[0]!)).toEqual(['user_audio_chunk']);
  });

  it('keeps the remainder for the next batch and preserves byte order', async () => {
    const { session, conversation } = await connect({ firstMessage: null, userInputAudioFormat: 'pcm_8000' }, { uplinkChunkMs: 20 });
    const audio = Buffer.alloc(800);
    for (let i = 0; i < audio.length; i++) audio[i] = i & 0xff;
    feed(session, audio, 7);
    await conversation.waitForUserAudioBytes(640);
    await sync(conversation);
    // 800 bytes = 2 whole 320-byte batches; 160 bytes wait for more audio.
    expect(conversation.userAudio.bytes).toBe(640);
    const sent = Buffer.concat(conversation.messagesOfType('user_audio').map((m) => Buffer.from(String(m['user_audio_chunk']), 'base64')));
    expect(sent.equals(audio.subarray(0, 640))).toBe(true);
    session.sendAudio(audio.subarray(0, 160));
    await conversation.waitForUserAudioBytes(960);
  });

  it('whole 20 ms frames go out straight from the caller\'s buffer, which may be reused at once; a split frame still batches', async () => {
    const { session, conversation } = await connect({ firstMessage: null, userInputAudioFormat: 'pcm_8000' }, { uplinkChunkMs: 20 });
    const frames = Array.from({ length: 4 }, (_, k) => {
      const frame = Buffer.alloc(320);
      for (let i = 0; i < frame.length; i++) frame[i] = (k * 37 + i) & 0xff;
      return frame;
    });
    const scratch = Buffer.alloc(320);
    for (const frame of frames.slice(0, 2)) {
      frame.copy(scratch);
      session.sendAudio(scratch); // whole frame: encoded straight from it
      scratch.fill(0xee); // the caller reuses its buffer at once (AudioSocket payloads are not, but converters may be)
    }
    session.sendAudio(frames[2]!.subarray(0, 100)); // a split frame goes through the batch …
    session.sendAudio(frames[2]!.subarray(100)); // … and completes it
    session.sendAudio(frames[3]!);
    await conversation.waitForUserAudioBytes(4 * 320);
    await sync(conversation);
    const sent = conversation.messagesOfType('user_audio').map((m) => Buffer.from(String(m['user_audio_chunk']), 'base64'));
    expect(sent).toEqual(frames);
  });

  it('µ-law input: 20 ms = 160 bytes = 216 base64 chars', async () => {
    const { session, conversation } = await connect({ firstMessage: null, userInputAudioFormat: 'ulaw_8000' }, { uplinkChunkMs: 20 });
    feed(session, makeSilence('ulaw_8000', 200), 160);
    await conversation.waitForUserAudioBytes(1_600);
    expect(new Set(conversation.userAudio.base64Lengths)).toEqual(new Set([216]));
  });

  it('drops and counts caller audio when the socket backs up, warning once', async () => {
    const { session, conversation, rec, stats } = await connect({ firstMessage: null }, { uplinkChunkMs: 100 }, { maxUplinkBufferedBytes: 64 * 1024 });
    conversation.pauseReading();
    const second = makeSilence('pcm_16000', 100);
    // Push far more than kernel buffers hold: 3000 × 100 ms ≈ 12.8 MB of JSON.
    for (let i = 0; i < 3_000; i++) session.sendAudio(second);
    expect(stats.uplinkDropped).toBeGreaterThan(0);
    expect(stats.uplinkChunks + stats.uplinkDropped).toBe(3_000);
    expect(rec.notices.filter((n) => n.type === 'uplink_backpressure')).toHaveLength(1);
    conversation.resumeReading();
    await conversation.waitForUserAudioBytes(stats.uplinkChunks * 3_200, 10_000);
    await sync(conversation);
    expect(conversation.userAudio.messages).toBe(stats.uplinkChunks);
  });

  it('sends nothing after close', async () => {
    const { session, conversation } = await connect({ firstMessage: null });
    session.close('done');
    feed(session, makeSilence('pcm_16000', 100), 640);
    session.sendText('user_message', 'late');
    await conversation.closed;
    expect(conversation.userAudio.messages).toBe(0);
    expect(conversation.messagesOfType('user_message')).toEqual([]);
  });
});

describe('ping / pong', () => {
  it('answers every ping at once with its event id', async () => {
    const { conversation } = await connect({ firstMessage: null, pingIntervalMs: 20 });
    await until(() => conversation.pongs.length >= 5);
    const ids = conversation.pongs.slice(0, 5).map((p) => p.eventId);
    expect(ids).toEqual([1, 2, 3, 4, 5]);
    for (const pong of conversation.pongs) expect(pong.latencyMs).toBeLessThan(250);
    expect(conversation.messagesOfType('pong')[0]).toEqual({ type: 'pong', event_id: 1 });
  });
});

describe('barge-in', () => {
  it('interruption: onInterruption, stale chunks with the old id dropped, next response delivered', async () => {
    const { session, rec, conversation, stats } = await connect({
      greetingMs: 3_000,
      bargeIn: { staleChunks: 3 },
      turns: [{ userTranscript: 'wait, I have a question', agentResponse: 'Sure, go ahead.', replyMs: 300 }],
    });
    await sync(conversation);
    const greetingBytes = rec.audioBytes(1);
    expect(greetingBytes).toBe(96_000);
    // The caller talks over the greeting: 200 ms loud, then 400 ms of silence ends the utterance.
    feed(session, makeTone('pcm_16000', 200, 300), 640);
    await until(() => rec.interruptions.length === 1);
    expect(rec.interruptions).toEqual([1]);
    feed(session, makeSilence('pcm_16000', 400), 640);
    await until(() => rec.transcripts.some((t) => t.role === 'agent' && t.text === 'Sure, go ahead.'));
    await sync(conversation);
    // The 3 stale chunks (event id 1) never reached onAudio.
    expect(rec.audioBytes(1)).toBe(greetingBytes);
    expect(stats.downlinkDropped).toBe(3);
    // user_transcript got id 2, the reply id 3; its 300 ms arrived.
    expect(rec.transcripts.filter((t) => t.role !== 'agent')).toEqual([
      { role: 'agent_correction', text: 'Hello, how ', original: 'Hello, how can I help?', eventId: 1 },
      { role: 'user', text: 'wait, I have a question', eventId: 2 },
    ]);
    expect(rec.audioBytes(3)).toBe(9_600);
    // Order: interruption before the reply's audio.
    const kinds = rec.events.filter((e) => e.kind === 'interruption' || (e.kind === 'audio' && e.eventId === 3)).map((e) => e.kind);
    expect(kinds[0]).toBe('interruption');
  });

  it('a stale interruption (below the response playing) is ignored; a current one drops that response', async () => {
    const { rec, conversation, stats } = await connect({ manual: true, script: async (c) => {
      await c.initiation;
      c.sendMetadata();
    } });
    conversation.speak('first', 100, 1);
    conversation.speak('second', 100, 3);
    await sync(conversation);
    conversation.interrupt(1); // stale: response 3 is playing (elevenlabs/packages#685)
    conversation.sendAudio(makeTone('pcm_16000', 100), 3);
    await sync(conversation);
    expect(rec.interruptions).toEqual([]);
    expect(stats.staleInterruptions).toBe(1);
    expect(rec.audioBytes(3)).toBe(6_400);
    conversation.interrupt(3);
    conversation.sendAudio(makeTone('pcm_16000', 100), 3); // late chunk of the interrupted response
    conversation.sendAudio(makeTone('pcm_16000', 100), 2); // even older
    conversation.sendAudio(makeTone('pcm_16000', 100), 4); // the next response
    await sync(conversation);
    expect(rec.interruptions).toEqual([3]);
    expect(rec.audioBytes(3)).toBe(6_400);
    expect(rec.audioBytes(2)).toBe(0);
    expect(rec.audioBytes(4)).toBe(3_200);
    // A later, lower interruption does not lower the drop threshold.
    conversation.interrupt(4);
    conversation.interrupt(2);
    conversation.sendAudio(makeTone('pcm_16000', 100), 4);
    await sync(conversation);
    expect(rec.interruptions).toEqual([3, 4]);
    expect(rec.audioBytes(4)).toBe(3_200);
    // An interruption ahead of the audio (6 while 5 plays), then one for 5: the threshold stays 6.
    conversation.sendAudio(makeTone('pcm_16000', 100), 5);
    conversation.interrupt(6);
    conversation.interrupt(5);
    conversation.sendAudio(makeTone('pcm_16000', 100), 6);
    conversation.sendAudio(makeTone('pcm_16000', 100), 7);
    await sync(conversation);
    expect(rec.interruptions).toEqual([3, 4, 6, 5]);
    expect(rec.audioBytes(6)).toBe(0);
    expect(rec.audioBytes(7)).toBe(3_200);
  });
});

describe('barge-in edge cases', () => {
  it('an interruption without event_id interrupts the response playing; none before any audio', async () => {
    const { rec, conversation } = await connect({ firstMessage: null });
    conversation.sendRaw('{"type":"interruption","interruption_event":{}}');
    conversation.sendAudio(makeTone('pcm_16000', 100), 4);
    conversation.sendRaw('{"type":"interruption"}');
    conversation.sendAudio(makeTone('pcm_16000', 100), 4);
    await sync(conversation);
    expect(rec.interruptions).toEqual([4]);
    expect(rec.audioBytes(4)).toBe(3_200);
  });
});

describe('client tools', () => {
  it('client_tool_call → onToolCall; the result is sent exactly once', async () => {
    let current: AgentSession | undefined;
    const { session, rec, conversation } = await connect(
      {
        firstMessage: null,
        turns: [{ userTranscript: 'transfer me', toolCall: { toolName: 'transfer_call', parameters: { destination: 'sales' } }, agentResponse: 'Transferring you now.' }],
      },
      {},
      {
        rec: recordHandlers({
          onToolCall: (call) => {
            // Answer twice on purpose: only the first may reach the wire.
            setImmediate(() => {
              current?.sendToolResult(call.toolCallId, JSON.stringify({ ok: true }), false);
              current?.sendToolResult(call.toolCallId, 'again', false);
            });
          },
        }),
      },
    );
    current = session;
    feed(session, makeTone('pcm_16000', 200, 300), 640);
    feed(session, makeSilence('pcm_16000', 400), 640);
    await until(() => rec.transcripts.some((t) => t.text === 'Transferring you now.'));
    expect(rec.toolCalls).toEqual([{ toolName: 'transfer_call', toolCallId: expect.stringMatching(/^toolu_/), parameters: { destination: 'sales' } }]);
    await sync(conversation);
    expect(conversation.toolResults).toEqual([
      { type: 'client_tool_result', tool_call_id: rec.toolCalls[0]!.toolCallId, result: '{"ok":true}', is_error: false },
    ]);
    session.sendToolResult('never-called', 'x', true);
    await sync(conversation);
    expect(conversation.toolResults).toHaveLength(1);
  });

  it('a repeated tool_call_id is delivered once; a call without an id is a notice', async () => {
    const { rec, conversation } = await connect({ firstMessage: null });
    const call = { type: 'client_tool_call', client_tool_call: { tool_name: 'hangup', tool_call_id: 'same', parameters: {}, event_id: 1 } } as const;
    conversation.send(call);
    conversation.send(call);
    conversation.sendRaw('{"type":"client_tool_call","client_tool_call":{"tool_name":"hangup","parameters":{},"event_id":2}}');
    await sync(conversation);
    expect(rec.toolCalls).toEqual([{ toolName: 'hangup', toolCallId: 'same', parameters: {} }]);
    expect(rec.notices).toEqual([{ type: 'agent_protocol', detail: 'client_tool_call for "hangup" has no tool_call_id; ignored' }]);
  });

  it('a close with an unanswered call needs nothing more', async () => {
    const { session, rec, conversation } = await connect({ firstMessage: null });
    const result = conversation.callClientTool('send_dtmf', { digits: '1' }, 500).catch((e: unknown) => e);
    await until(() => rec.toolCalls.length === 1);
    conversation.close(1000, '');
    await rec.ended;
    session.sendToolResult(rec.toolCalls[0]!.toolCallId, 'late', false);
    expect(await result).toBeInstanceOf(Error);
    expect(conversation.toolResults).toEqual([]);
  });
});

describe('text', () => {
  it('sendText sends user_message and contextual_update', async () => {
    const { session, conversation } = await connect({ firstMessage: null });
    session.sendText('contextual_update', 'Caller pressed 1');
    session.sendText('user_message', '1 2 3 #');
    await conversation.waitForMessage((m) => m['type'] === 'user_message');
    expect(conversation.messagesOfType('contextual_update')).toEqual([{ type: 'contextual_update', text: 'Caller pressed 1' }]);
    expect(conversation.messagesOfType('user_message')).toEqual([{ type: 'user_message', text: '1 2 3 #' }]);
  });
});

describe('endings', () => {
  it('end_call then close 1000: all farewell audio first, then agent_hangup', async () => {
    const { session, rec } = await connect({
      firstMessage: null,
      turns: [{ userTranscript: 'bye', agentResponse: 'Thanks for calling, goodbye!', replyMs: 1_500, endCall: true }],
    });
    session.startMedia(SLIN_8K);
    feed(session, makeTone('pcm_16000', 200, 300), 640);
    feed(session, makeSilence('pcm_16000', 400), 640);
    const end = await rec.ended;
    expect(end.kind).toBe('agent_hangup');
    expect(end.kind === 'agent_hangup' && end.detail).toMatch(/^end_call \(close=1000\)$/);
    // The server closed long before 1.5 s of farewell could play; every byte still arrived before onEnd.
    const farewellId = rec.transcripts.find((t) => t.text === 'Thanks for calling, goodbye!')!.eventId!;
    expect(rec.audioBytes(farewellId)).toBe(48_000);
    expect(rec.events.at(-1)!.kind).toBe('end');
    expect(rec.ends).toHaveLength(1);
  });

  it('close 1000 without end_call (e.g. max duration) is an agent hangup too', async () => {
    const { rec, conversation } = await connect({ firstMessage: null });
    conversation.send({ type: 'error', error_event: { code: 1000, error_type: 'max_duration_exceeded', message: 'Max duration exceeded' } });
    conversation.close(1000, 'max duration');
    const end = await rec.ended;
    expect(end).toEqual({
      kind: 'agent_hangup',
      detail: 'max_duration_exceeded (error_type=max_duration_exceeded message="Max duration exceeded" close=1000 close_reason="max duration")',
    });
  });

  it.each([
    ['quota', 'AGENT_QUOTA_EXCEEDED', 1002, 'quota limit'],
    ['crash', 'AGENT_CLOSED', 1011, 'error_type=unknown_websocket_crash'],
    ['override_error', 'AGENT_OVERRIDE_REJECTED', 1008, 'error_type=override_error'],
    ['missing_dynamic_variable', 'AGENT_MISSING_VARIABLE', 1008, 'error_type=missing_dynamic_variable'],
    ['drop', 'AGENT_CLOSED', 1006, 'close=1006'],
  ] as const)('mid-call %s → onEnd error %s, close %i', async (fault, code, closeCode, text) => {
    const { rec, conversation } = await connect({ firstMessage: null });
    conversation.fault(fault);
    const end = await rec.ended;
    expect(end.kind).toBe('error');
    if (end.kind !== 'error') return;
    expect(isBridgeError(end.error, code)).toBe(true);
    expect(end.closeCode).toBe(closeCode);
    expect(end.error.message).toContain(text);
    expect(end.error.message).toContain(`close=${closeCode}`);
    if (fault !== 'drop') expect(rec.notices.some((n) => n.type === 'agent_error')).toBe(true);
    expect(rec.ends).toHaveLength(1);
  });

  it('an error without a close is a notice, and is named in the end detail', async () => {
    const { rec, conversation } = await connect({ firstMessage: null });
    conversation.send({ type: 'error', error_event: { code: 1002, error_type: 'llm_timeout', message: 'LLM took too long' } });
    await sync(conversation);
    expect(rec.ends).toEqual([]);
    expect(rec.notices).toEqual([{ type: 'agent_error', detail: 'error_type=llm_timeout message="LLM took too long" error_code=1002' }]);
    conversation.close(1002, 'llm');
    const end = await rec.ended;
    expect(end.kind === 'error' && end.error.code).toBe('AGENT_CLOSED');
    expect(end.kind === 'error' && end.error.message).toBe(
      'agent connection ended: error_type=llm_timeout message="LLM took too long" close=1002 close_reason="llm"',
    );
  });

  it('silence watchdog: no message for silenceTimeoutMs → AGENT_SILENT, socket closed', async () => {
    const clock = new ManualClock();
    const { rec, conversation } = await connect({ firstMessage: null }, { silenceTimeoutMs: 30_000 }, { clock });
    clock.advance(20_000);
    await sync(conversation); // a message resets the watchdog
    clock.advance(10_000);
    expect(rec.ends).toEqual([]);
    conversation.fault('silence');
    clock.advance(19_999);
    expect(rec.ends).toEqual([]);
    clock.advance(1);
    const end = await rec.ended;
    expect(end.kind === 'error' && end.error.code).toBe('AGENT_SILENT');
    expect(end.kind === 'error' && end.error.message).toContain('silenceTimeoutMs 30000');
    expect((await conversation.closed).code).toBe(1000);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('close', () => {
  it('is idempotent, closes 1000 with the reason, and no handler runs afterwards', async () => {
    let current: AgentSession | undefined;
    const rec = recordHandlers({
      onAudio: (_chunk, eventId) => {
        if (eventId === 2) current?.close('caller hung up');
      },
    });
    const { session, conversation } = await connect({ firstMessage: null, pingIntervalMs: 5 }, {}, { rec });
    current = session;
    conversation.speak('a long answer', 2_000, 2); // 20 chunks in one burst
    const closed = await conversation.closed;
    expect(closed).toEqual({ code: 1000, reason: 'caller hung up' });
    session.close('again');
    session.close('and again');
    await new Promise((r) => setTimeout(r, 30));
    expect(rec.audio.filter((a) => a.eventId === 2)).toHaveLength(1);
    expect(rec.ends).toEqual([]);
    expect(rec.events.filter((e) => e.kind !== 'audio' && e.kind !== 'transcript')).toEqual([]);
  });

  it('clears its timers', async () => {
    const clock = new ManualClock();
    const { session, conversation } = await connect({ firstMessage: null }, {}, { clock });
    expect(clock.pendingTimers).toBe(1); // the watchdog
    session.close('bye');
    expect(clock.pendingTimers).toBe(0);
    await conversation.closed;
  });

  it('a handler that throws is logged and does not end the session', async () => {
    const log = captureLogger();
    const rec = recordHandlers({
      onAudio: () => {
        throw new Error('boom in handler');
      },
    });
    const { conversation } = await connect({ greetingMs: 200 }, {}, { rec, logger: log.logger });
    await sync(conversation);
    expect(rec.ends).toEqual([]);
    expect(log.text()).toContain('agent handler threw');
  });
});
