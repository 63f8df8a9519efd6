/**
 * Real Asterisk, echo agent: the caller's tone goes Local channel → AudioSocket → ai-call → back, and
 * the phone's recording must hold the same pitch, the full length, at real time, 200 ms late.
 * Both dialplan forms: the generated route flow (AGI + AudioSocket() + result AGI) and the one-line run.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { announceSkip, detectAsterisk } from './support/asterisk.js';
import { E2eStack } from './support/stack.js';
import { composeAudio } from './support/audio.js';
import { ended, expectPacing, expectRealTime, expectTones, heardReport } from './support/checks.js';

const detection = detectAsterisk();
announceSkip('inbound-echo', detection);

const ECHO_DELAY_MS = 200;

describe.skipIf(!detection.runtime)('e2e: inbound call to the echo agent', () => {
  let stack: E2eStack;

  beforeAll(async () => {
    stack = await E2eStack.start({
      runtime: detection.runtime!,
      agents: { echo: { provider: 'echo', delayMs: ECHO_DELAY_MS } },
      routes: { '600': 'echo' },
    });
    process.stdout.write(`${stack.describe()}\n`);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  it('echoes the caller at the same pitch, full length and real time (route flow)', async () => {
    onTestFailed(() => console.error(stack.diagnostics()));
    const call = await stack.call({ exten: '600', callerPcm: composeAudio([{ ms: 2_000, hz: 1_100 }, { ms: 1_000 }]) });
    const heard = heardReport(call);
    console.log(`e2e echo (route): ${heard.line}`);

    expect(call.heard.sampleRateHz).toBe(8_000);
    // The echo delay: 200 ms of queued silence, plus the trip through Asterisk and back.
    expectTones('phone heard', heard.segments, [{ hz: 1_100, ms: 2_000, startMs: [ECHO_DELAY_MS - 20, ECHO_DELAY_MS + 250] }], heard.slackMs);
    expectRealTime(call, heard);
    expectPacing(heard);

    expect(call.outcome.result).toBe('CALLER_HANGUP');
    expect(call.vars['AI_STATUS']).toBe('READY');
    expect(call.vars['AI_UUID']).toBe(call.callId);
    expect(call.vars['AI_AUDIOSOCKET']).toBe(`127.0.0.1:${stack.server.audiosocket!.port}`);
    if (stack.dialplanSource === 'stand-in') expect(call.vars['AI_RESULT']).toBe('CALLER_HANGUP');
    expect(ended(call.events).stats.droppedAgentBytes).toBe(0);
    await stack.expectIdle();
  }, 30_000);

  it('runs the one-line form: AGI(…/ai-call/run) answers, carries the media and sets the result', async () => {
    onTestFailed(() => console.error(stack.diagnostics()));
    const call = await stack.call({ exten: 'echo', context: `${stack.config.dialplan.prefix}-run`, callerPcm: composeAudio([{ ms: 300 }, { ms: 1_200, hz: 700 }, { ms: 700 }]) });

    const heard = heardReport(call);
    console.log(`e2e echo (run): ${heard.line}; vars ${JSON.stringify(call.vars)}`);
    expectTones('phone heard', heard.segments, [{ hz: 700, ms: 1_200, startMs: [300 + ECHO_DELAY_MS - 20, 300 + ECHO_DELAY_MS + 250] }], heard.slackMs);
    expectPacing(heard);
    expect(call.outcome.result).toBe('CALLER_HANGUP');
    // SET VARIABLE works on the dead channel, so the run AGI still reports the outcome (protocols.md §2.5).
    expect(call.vars).toMatchObject({ AI_STATUS: 'READY', AI_UUID: call.callId, AI_RESULT: 'CALLER_HANGUP' });
    await stack.expectIdle();
  }, 30_000);
});
