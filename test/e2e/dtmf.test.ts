/**
 * Real Asterisk, DTMF both ways, on the 8 kHz AudioSocket() app and on the 16 kHz channel driver:
 *
 *   phone SendDTMF(42#) ──DTMF frames──► Local;2 ──AudioSocket kind 0x03──► ai-call ──► the agent: a
 *       contextual_update (agent `keys`, default dtmf policy, `#` ends the group) or a user_message
 *       (agent `keys16`, dtmf.mode user_message, no terminator: the group ends after a pause)
 *   agent client_tool_call send_dtmf {digits: "159"} ──► ai-call plays the tones in-band ──► the
 *       phone's recording, decoded with detectDtmf (src/audio/dtmf.ts)
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { announceSkip, detectAsterisk, sleep } from './support/asterisk.js';
import { E2eStack } from './support/stack.js';
import { composeAudio } from './support/audio.js';
import { eventsOfType, expectPacing, heardReport } from './support/checks.js';
import { phoneContext, PLAY_CALLER } from './support/dialplan.js';
import { detectDtmf } from '../../src/audio/dtmf.js';
import type { FakeConversation } from '../support/fake-elevenlabs.js';

const detection = detectAsterisk();
announceSkip('dtmf', detection);

const AGENT_HZ = 440;
/** The phone: plays its WAV (silence), presses 4 2 #, stays on the line a little, hangs up. */
const PHONE_DTMF_CONTEXT = 'e2e-phone-dtmf';

describe.skipIf(!detection.runtime)('e2e: DTMF between the phone and the agent', () => {
  let stack: E2eStack;

  beforeAll(async () => {
    stack = await E2eStack.start({
      runtime: detection.runtime!,
      fakeAgents: [
        { agentId: 'agent_keys', private: true, toneHz: AGENT_HZ, greetingMs: 600, tools: [{ name: 'send_dtmf', type: 'client' }] },
        { agentId: 'agent_keys16', private: true, toneHz: AGENT_HZ, greetingMs: 600, tools: [{ name: 'send_dtmf', type: 'client' }] },
      ],
      agents: {
        keys: { provider: 'elevenlabs', agentId: 'agent_keys', private: true },
        keys16: { provider: 'elevenlabs', agentId: 'agent_keys16', private: true, wideband: true, dtmf: { mode: 'user_message', terminator: 'none', interDigitTimeoutMs: 600 } },
      },
      routes: { '650': 'keys', '651': 'keys16' },
      extraDialplan: phoneContext(PHONE_DTMF_CONTEXT, [PLAY_CALLER, 'SendDTMF(42#)', 'Wait(2)']),
    });
    process.stdout.write(`${stack.describe()}\n`);
    if (stack.asterisk.missingModules.includes('app_senddtmf.so')) throw new Error('this Asterisk has no app_senddtmf.so: the phone cannot press keys');
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  /** After the greeting, the agent presses 1 5 9 with the send_dtmf client tool. */
  const agentPresses159 = (exten: string) => async (conversation: FakeConversation): Promise<void> => {
    await stack.liveCall(`Local/${exten}@e2e-in-`);
    await sleep(800);
    const result = await conversation.callClientTool('send_dtmf', { digits: '159' });
    expect(result, JSON.stringify(result)).toMatchObject({ is_error: false, result: 'Sent DTMF 159.' });
  };

  async function dtmfCall(exten: string): Promise<{ call: Awaited<ReturnType<E2eStack['call']>>; conversation: FakeConversation; received: string; inBand: string; line: string }> {
    const mark = stack.asterisk.mark();
    const { call, conversation } = await stack.callWithConversation(
      { exten, phoneContext: PHONE_DTMF_CONTEXT, callerPcm: composeAudio([{ ms: 1_500 }]) },
      agentPresses159(exten),
    );
    const heard = heardReport(call);
    const inBand = detectDtmf(call.heard.pcm, call.heard.sampleRateHz);
    // Asterisk's own DTMF log: the digits the AI channel received from the phone.
    const received = [...stack.asterisk.output.slice(mark).matchAll(/DTMF end '(.)' received on ([^\s,]+)/g)].filter((m) => m[2] === call.aiChannel).map((m) => m[1]).join('');
    const texts = conversation.received.filter((m) => m.json['type'] === 'contextual_update' || m.json['type'] === 'user_message').map((m) => `${String(m.json['type'])}: ${String(m.json['text'])}`);
    expectPacing(heard);
    return { call, conversation, received, inBand, line: `${heard.line}; the AI channel got DTMF "${received}" from the phone; the agent got ${JSON.stringify(texts)}; the phone decoded "${inBand}" in-band` };
  }

  it('8 kHz (AudioSocket app): the phone\'s 42# reaches the agent as a contextual_update; send_dtmf 159 is heard in-band', async () => {
    onTestFailed(() => console.error(stack.diagnostics()));
    const { call, conversation, received, inBand, line } = await dtmfCall('650');
    console.log(`e2e dtmf 8 kHz: ${line}`);

    expect(received, 'DTMF the AI channel received (Asterisk log)').toBe('42#');
    const update = conversation.messagesOfType('contextual_update');
    expect(update, line).toHaveLength(1);
    expect(update[0]!['text']).toBe('The caller pressed keypad digits: 42 (ended with the terminator key)');
    expect(conversation.messagesOfType('user_message')).toHaveLength(0);
    expect(eventsOfType(call.events, 'dtmf')).toEqual([expect.objectContaining({ digits: '42', forwardedAs: 'contextual_update' })]);
    expect(eventsOfType(call.events, 'tool')).toEqual([expect.objectContaining({ toolName: 'send_dtmf', isError: false, parameters: { digits: '159' } })]);
    expect(inBand, line).toBe('159');
    expect(call.outcome.result).toBe('CALLER_HANGUP');
    await stack.expectIdle();
  }, 20_000);

  it('16 kHz (AudioSocket channel driver): 42# reaches the agent as a user_message after the pause; 159 is heard in-band', async () => {
    onTestFailed(() => console.error(stack.diagnostics()));
    const { call, conversation, received, inBand, line } = await dtmfCall('651');
    console.log(`e2e dtmf 16 kHz: ${line}`);

    expect(received, 'DTMF the AI channel received (Asterisk log)').toBe('42#');
    expect(eventsOfType(call.events, 'media.connected')[0]?.sampleRateHz).toBe(16_000);
    const message = conversation.messagesOfType('user_message');
    expect(message, line).toHaveLength(1);
    // No terminator configured: # is a digit like the others, and the group ends after 600 ms without a key.
    expect(message[0]!['text']).toBe('The caller pressed keypad digits: 42#');
    expect(conversation.messagesOfType('contextual_update')).toHaveLength(0);
    expect(eventsOfType(call.events, 'dtmf')).toEqual([expect.objectContaining({ digits: '42#', forwardedAs: 'user_message' })]);
    expect(inBand, line).toBe('159');
    await stack.expectIdle();
  }, 20_000);
});
