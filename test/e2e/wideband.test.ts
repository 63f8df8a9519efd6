/**
 * Real Asterisk, a wideband agent (`wideband: true`): the flow carries the call with the channel
 * driver, `Dial(AudioSocket/${AI_AUDIOSOCKET}/${AI_UUID}/c(slin16),,g)`, so Asterisk and ai-call
 * exchange 16 kHz frames (AudioSocket kind 0x12) and the fake agent talks pcm_16000 both ways: no
 * resampling in ai-call at all. The phone is the usual 8 kHz Local channel; Asterisk converts
 * between it and the 16 kHz AudioSocket channel in the bridge.
 *
 * Measured: the frame rate on both sides (ai-call's session and Asterisk's own view of the
 * AudioSocket channel), the pitch and length of what each side got, and that the dialplan went on
 * after Dial() (the `g` option) when the agent hung up: the result AGI ran and set AI_RESULT.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { announceSkip, detectAsterisk, sleep } from './support/asterisk.js';
import { E2eStack } from './support/stack.js';
import { composeAudio, findSegments } from './support/audio.js';
import { phoneContext, PLAY_CALLER } from './support/dialplan.js';
import type { CallSnapshot } from '../../src/call/session.js';
import { ended, eventsOfType, expectPacing, expectRealTime, expectTones, heardReport, userAudio } from './support/checks.js';

const detection = detectAsterisk();
announceSkip('wideband', detection);

const AGENT_HZ = 440;
const CALLER_HZ = 1_050;
/** Above 4 kHz: only a 16 kHz path end to end carries these. */
const AGENT_HF_HZ = 6_000;
const CALLER_HF_HZ = 5_000;
/** A wideband phone: slin16 Local channels (AMI Originate Codecs), a .wav16 to play, .wav16 recordings. */
const PHONE16_CONTEXT = 'e2e-phone16';

describe.skipIf(!detection.runtime)('e2e: wideband agent (16 kHz over the AudioSocket channel driver)', () => {
  let stack: E2eStack;

  beforeAll(async () => {
    stack = await E2eStack.start({
      runtime: detection.runtime!,
      fakeAgents: [
        {
          agentId: 'agent_wide',
          private: true,
          toneHz: AGENT_HZ,
          greetingMs: 1_000,
          userInputAudioFormat: 'pcm_16000',
          agentOutputAudioFormat: 'pcm_16000',
          turns: [{ userTranscript: 'Bye then', agentResponse: 'Goodbye!', replyMs: 1_200, endCall: true }],
        },
        {
          agentId: 'agent_wide_hf',
          private: true,
          toneHz: AGENT_HF_HZ,
          greetingMs: 1_000,
          turns: [{ userTranscript: 'Bye then', agentResponse: 'Goodbye!', replyMs: 1_200, endCall: true }],
        },
      ],
      agents: {
        wide: { provider: 'elevenlabs', agentId: 'agent_wide', private: true, wideband: true },
        widehf: { provider: 'elevenlabs', agentId: 'agent_wide_hf', private: true, wideband: true },
      },
      routes: { '620': 'wide', '621': 'widehf' },
      extraDialplan: phoneContext(PHONE16_CONTEXT, [PLAY_CALLER], { recording: 'wav16' }),
    });
    process.stdout.write(`${stack.describe()}\n`);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  /** Asterisk's view of the call's AudioSocket channel: name and formats from `core show channel`. */
  async function audioSocketChannel(): Promise<{ name: string; nativeFormats: string; readFormat: string; writeFormat: string }> {
    for (const deadline = Date.now() + 3_000; Date.now() < deadline; ) {
      const concise = await stack.asterisk.rx('core show channels concise');
      const line = concise.split('\n').find((l) => l.startsWith('AudioSocket/'));
      if (line) {
        const channel = line.split('!')[0]!;
        const shown = await stack.asterisk.rx(`core show channel ${channel}`);
        const field = (label: string): string => new RegExp(`^\\s*${label}:\\s*(.*)$`, 'm').exec(shown)?.[1]?.trim() ?? '?';
        return { name: channel, nativeFormats: field('NativeFormats'), readFormat: field('ReadFormat'), writeFormat: field('WriteFormat') };
      }
      await sleep(50);
    }
    throw new Error(`no AudioSocket channel in Asterisk:\n${await stack.asterisk.rx('core show channels')}`);
  }

  it('16 kHz frames both ways, both tones at the right pitch and length, and the dialplan continues after Dial()', async () => {
    onTestFailed(() => console.error(stack.diagnostics()));
    // 1.3 s quiet (the 1 s greeting plays), 0.8 s of speech, then quiet until the agent hangs up.
    const callerPcm = composeAudio([{ ms: 1_300 }, { ms: 800, hz: CALLER_HZ }, { ms: 4_900 }]);
    let asterisk: Awaited<ReturnType<typeof audioSocketChannel>> | undefined;
    let liveSnapshot: CallSnapshot | undefined;
    const { call, conversation } = await stack.callWithConversation({ exten: '620', callerPcm }, async () => {
      const live = await stack.liveCall('Local/620@e2e-in-');
      asterisk = await audioSocketChannel();
      await sleep(500);
      liveSnapshot = stack.server.registry.get(live.callId)?.snapshot();
    });
    const heard = heardReport(call);
    const uplink = userAudio(conversation);
    const uplinkSegments = findSegments(uplink, 16_000);
    const connected = eventsOfType(call.events, 'media.connected')[0];
    const formatChanges = eventsOfType(call.events, 'media.format');
    const stats = ended(call.events).stats;
    const dial = stack.ami('Newexten', call.aiChannel).find((m) => m.get('Application') === 'Dial');
    const resultAgi = stack.ami('Newexten', call.aiChannel).filter((m) => m.get('Extension') !== 'h' && (m.get('AppData') ?? '').includes('/ai-call/result'));
    console.log(
      `e2e wideband: ${heard.line}; agent got [${uplinkSegments.map((s) => `${s.hz}Hz ${s.startMs}-${s.endMs}ms`).join(', ')}] of ${Math.round(uplink.length / 32)} ms at 16 kHz; ` +
        `ai-call line ${connected?.sampleRateHz} Hz, rate changes ${formatChanges.length}, mid-call snapshot ${liveSnapshot?.sampleRateHz} Hz with ${liveSnapshot?.stats.framesIn} frames in; ` +
        `Asterisk ${asterisk?.name}: native ${asterisk?.nativeFormats}, read ${asterisk?.readFormat}, write ${asterisk?.writeFormat}; Dial(${dial?.get('AppData')}); result ${call.vars['AI_RESULT']}`,
    );

    // The flow under test is the wideband one.
    expect(dial?.get('AppData')).toMatch(/^AudioSocket\/127\.0\.0\.1:\d+\/[0-9a-f-]{36}\/c\(slin16\),,g$/);
    // ai-call's side: a 16 kHz line from the start, and every frame from Asterisk was 16 kHz (0x12):
    // a frame of another kind would have switched the line and emitted media.format.
    expect(connected?.sampleRateHz).toBe(16_000);
    expect(formatChanges, 'media.format events (ai-call had to follow another rate)').toHaveLength(0);
    expect(liveSnapshot).toMatchObject({ state: 'live', sampleRateHz: 16_000 });
    expect(liveSnapshot!.stats.framesIn).toBeGreaterThan(10);
    // Asterisk's side: the AudioSocket channel is slin16 both ways, nothing transcoded on it.
    expect(asterisk).toMatchObject({ nativeFormats: '(slin16)', readFormat: 'slin16', writeFormat: 'slin16' });
    // The caller's 8 kHz tone reached the agent at 16 kHz: same pitch, same length, on time.
    expectTones('agent got', uplinkSegments, [{ hz: CALLER_HZ, ms: 800, startMs: [1_200, 1_600] }]);
    // Uplink runs at real time until the agent ends the call (ai-call stops it while draining).
    const uplinkWindowMs = eventsOfType(call.events, 'call.ending')[0]!.at - connected!.at;
    expect(Math.abs(uplink.length / 32 - uplinkWindowMs), `uplink ${Math.round(uplink.length / 32)} ms vs ${uplinkWindowMs} ms of media before the agent hung up`).toBeLessThanOrEqual(150);
    // The agent's 16 kHz tones reached the phone at the right pitch and full length.
    expectTones('phone heard', heard.segments, [
      { hz: AGENT_HZ, ms: 1_000, startMs: [0, 150] },
      { hz: AGENT_HZ, ms: 1_200, startMs: [2_350, 2_900] },
    ], heard.slackMs);
    expectRealTime(call, heard);
    expectPacing(heard);
    expect(stats.droppedAgentBytes).toBe(0);
    // Dial(…,g): when ai-call ended the AudioSocket leg, the caller went on in the dialplan: the
    // result AGI ran (outside h) and set AI_RESULT, and the dialplan, not the caller, hung up.
    expect(call.outcome.result).toBe('AGENT_HANGUP');
    expect(resultAgi, 'result AGI run after Dial()').toHaveLength(1);
    expect(call.vars).toMatchObject({ AI_STATUS: 'READY', AI_RESULT: 'AGENT_HANGUP', AI_CONVERSATION_ID: conversation.conversationId });
    expect(call.phoneEvents.some((m) => m.get('Phase') === 'played')).toBe(false);
    expect((await conversation.closed).code).toBe(1000);
    await stack.expectIdle();
  }, 30_000);

  it('a wideband phone: 5-6 kHz tones, which no 8 kHz leg can carry, cross in both directions', async () => {
    onTestFailed(() => console.error(stack.diagnostics()));
    // The phone's Local pair is created slin16 (Originate Codecs), plays a .wav16 and records .wav16,
    // so nothing between it and ai-call has a reason to go through 8 kHz.
    const id = stack.nextCallId();
    const callerMs = await stack.prepareCaller(id, composeAudio([{ ms: 1_300 }, { ms: 800, hz: CALLER_HF_HZ }, { ms: 4_900 }], 16_000), 16_000);
    const before = stack.fake!.conversations.length;
    const mark = stack.asterisk.mark();
    const queued = await stack.observer.originate({ Channel: 'Local/621@e2e-in/n', Context: PHONE16_CONTEXT, Exten: id, Priority: 1, Codecs: 'slin16', Timeout: 10_000 });
    expect(queued.response.get('Response')).toBe('Success');
    const legs = await stack.phoneLegs(id, 'Local/621@e2e-in-');
    const call = await stack.collect({ id, ...legs, callerMs, mark, timeoutMs: callerMs + 15_000, recording: 'wav16' });
    const conversation = stack.fake!.conversations[before]!;
    const heardSegments = findSegments(call.heard.pcm, call.heard.sampleRateHz, { maxHz: 7_000 });
    const uplinkSegments = findSegments(userAudio(conversation), 16_000, { maxHz: 7_000 });
    const slackMs = Math.max(0, Math.round(call.phoneMediaMs - (call.heard.pcm.length / 2 / call.heard.sampleRateHz) * 1000));
    console.log(
      `e2e wideband phone: recording at ${call.heard.sampleRateHz} Hz heard [${heardSegments.map((s) => `${s.hz}Hz ${s.startMs}-${s.endMs}ms`).join(', ')}]; ` +
        `agent got [${uplinkSegments.map((s) => `${s.hz}Hz ${s.startMs}-${s.endMs}ms`).join(', ')}]; result ${call.vars['AI_RESULT']}`,
    );

    expect(call.heard.sampleRateHz).toBe(16_000);
    expect(eventsOfType(call.events, 'media.format')).toHaveLength(0);
    expectTones('agent got', uplinkSegments, [{ hz: CALLER_HF_HZ, ms: 800, startMs: [1_200, 1_600] }]);
    expectTones('phone heard', heardSegments, [
      { hz: AGENT_HF_HZ, ms: 1_000, startMs: [0, 150] },
      { hz: AGENT_HF_HZ, ms: 1_200, startMs: [2_350, 2_900] },
    ], slackMs);
    expect(call.vars['AI_RESULT']).toBe('AGENT_HANGUP');
    expectPacing({ maxOutGapMs: ended(call.events).stats.maxOutGapMs });
    await stack.expectIdle();
  }, 30_000);
});
