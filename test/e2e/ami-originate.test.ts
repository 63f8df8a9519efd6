/**
 * Real Asterisk, outbound: an AMI Originate to `Local/<number>@e2e-phone` (the "customer", who answers,
 * plays a WAV and records) lands the answered channel in ai-call's agent context, where the
 * generated flow requests the agent. Driven twice: with the AmiClient directly (ai-call's own AMI
 * user, so its manager.conf permissions are under test) and through ai-call's originate
 * (RunningServer.outbound), when the server exposes it.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { pino } from 'pino';
import { announceSkip, detectAsterisk, sleep } from './support/asterisk.js';
import { E2eStack } from './support/stack.js';
import { composeAudio, findSegments } from './support/audio.js';
import { expectPacing, expectRealTime, expectTones, heardReport, userAudio } from './support/checks.js';
import { PHONE_CONTEXT } from './support/dialplan.js';
import { AmiClient } from '../../src/asterisk/ami/client.js';
import { systemClock } from '../../src/audio/clock.js';
import { isBridgeError } from '../../src/errors.js';
import { parseOriginateRequest } from '../../src/call/outbound.js';
import type { FakeConversation } from '../support/fake-elevenlabs.js';

const detection = detectAsterisk();
announceSkip('ami-originate', detection);

const AGENT_HZ = 440;
const CUSTOMER_HZ = 1_050;

describe.skipIf(!detection.runtime)('e2e: AMI originate to an answered Local channel reaches the agent', () => {
  let stack: E2eStack;
  let ami: AmiClient;

  beforeAll(async () => {
    stack = await E2eStack.start({
      runtime: detection.runtime!,
      fakeAgents: [{ agentId: 'agent_out', private: true, toneHz: AGENT_HZ, greetingMs: 1_200, firstMessage: 'Hi, this is the e2e agent calling about {{lead_id}}.', requiredDynamicVariables: [] }],
      agents: { sales: { provider: 'elevenlabs', agentId: 'agent_out', private: true, dynamicVariables: { lead_id: '{{vars.lead_id}}' } } },
    });
    process.stdout.write(`${stack.describe()}\n`);
    ami = new AmiClient({
      host: '127.0.0.1',
      port: stack.amiPort,
      username: stack.aiCallAmi.username,
      secret: stack.aiCallAmi.secret,
      actionTimeoutMs: 5_000,
      reconnectMinMs: 100,
      reconnectMaxMs: 1_000,
      pingIntervalMs: 10_000,
      logger: pino({ level: 'silent' }),
      clock: systemClock,
      actionIdPrefix: 'e2e-originate',
    });
    ami.start();
    await ami.waitConnected(10_000);
  }, 60_000);

  afterAll(async () => {
    await ami?.close();
    await stack?.close();
  }, 30_000);

  /** The conversation the fake opened for ai-call call `callId` (call_id is a built-in dynamic variable). */
  function conversationOf(callId: string): FakeConversation {
    const found = stack.fake!.conversations.find((c) => c.dynamicVariables['call_id'] === callId);
    if (!found) throw new Error(`no fake conversation for call ${callId}`);
    return found;
  }

  const customerAudio = (): Buffer => composeAudio([{ ms: 1_500 }, { ms: 800, hz: CUSTOMER_HZ }, { ms: 1_000 }]);

  it('AmiClient Originate (as ai-call\'s AMI user): answered, the agent greets the customer and hears them', async () => {
    onTestFailed(() => console.error(stack.diagnostics()));
    const id = stack.nextCallId();
    const callerMs = await stack.prepareCaller(id, customerAudio());
    const channelId = randomUUID();
    const mark = stack.asterisk.mark();
    const queued = await ami.originate({
      Channel: `Local/${id}@${PHONE_CONTEXT}/n`,
      Context: stack.config.ami!.agentContext,
      Exten: 'sales',
      Priority: 1,
      Timeout: 10_000,
      CallerID: '"e2e dialer" <5550100>',
      ChannelId: channelId,
      Variable: ['E2E_ORIGINATED=yes'],
    });
    expect(queued.response.get('Response')).toBe('Success');
    const response = await queued.result;
    // The originated half (;1) is the agent leg; the customer's phone runs on ;2.
    const legs = await stack.phoneLegs(id, `Local/${id}@${PHONE_CONTEXT}-`);
    const call = await stack.collect({ id, ...legs, callerMs, mark, timeoutMs: callerMs + 15_000 });
    const heard = heardReport(call);
    const uplink = findSegments(userAudio(conversationOf(call.callId)), 16_000);
    const started = call.events.find((e) => e.type === 'call.started');
    console.log(`e2e AMI originate: OriginateResponse ${response.get('Response')} reason ${response.get('Reason')}; AI leg ${legs.aiChannel}; customer ${heard.line}; agent got [${uplink.map((s) => `${s.hz}Hz ${s.ms}ms`).join(', ')}]`);

    expect(response.get('Response')).toBe('Success');
    expect(response.get('Reason')).toBe('4'); // answered (protocols.md §3.4)
    expect(response.get('Uniqueid')).toBe(channelId);
    expect(legs.aiChannel.endsWith(';1')).toBe(true);
    expect(started?.type === 'call.started' && started.uniqueid).toBe(channelId);
    expect(call.vars).toMatchObject({ AI_STATUS: 'READY', AI_AGENT: 'sales' });
    expect(stack.ami('VarSet', legs.aiChannel).some((m) => m.get('Variable') === 'E2E_ORIGINATED' && m.get('Value') === 'yes')).toBe(true);
    // Already answered: the greeting starts as soon as the agent flow connects the media.
    expectTones('customer heard', heard.segments, [{ hz: AGENT_HZ, ms: 1_200, startMs: [0, 400] }], heard.slackMs);
    expectTones('agent got', uplink, [{ hz: CUSTOMER_HZ, ms: 800 }]);
    expectRealTime(call, heard);
    expectPacing(heard);
    expect(call.outcome.result).toBe('CALLER_HANGUP');
    await stack.expectIdle();
  }, 30_000);

  it('ai-call originate (RunningServer.outbound): answered, linked to the call, variables reach the agent', async (ctx) => {
    const outbound = stack.server.outbound;
    if (!outbound) {
      process.stdout.write('e2e: note: RunningServer.outbound is not wired: ai-call originate not tested\n');
      ctx.skip();
      return;
    }
    onTestFailed(() => console.error(stack.diagnostics()));
    const id = stack.nextCallId();
    const callerMs = await stack.prepareCaller(id, customerAudio());
    const mark = stack.asterisk.mark();
    const request = parseOriginateRequest({ to: id, agent: 'sales', via: PHONE_CONTEXT, callerId: 'e2e <5550100>', vars: { lead_id: 'L-4242' }, timeoutS: 10 }, stack.config);
    // ai-call's AMI client logs in on its own once Asterisk is up; allow it a few seconds.
    let queued: Awaited<ReturnType<typeof outbound.originate>> | undefined;
    for (const deadline = Date.now() + 10_000; queued === undefined; ) {
      try {
        queued = await outbound.originate(request);
      } catch (err) {
        if (!isBridgeError(err, 'AMI_DISCONNECTED') || Date.now() > deadline) throw err;
        await sleep(200);
      }
    }
    const result = await queued.result;
    const legs = await stack.phoneLegs(id, `Local/${id}@${PHONE_CONTEXT}-`);
    const call = await stack.collect({ id, ...legs, callerMs, mark, timeoutMs: callerMs + 15_000 });
    const heard = heardReport(call);
    const conversation = conversationOf(call.callId);
    console.log(`e2e ai-call originate: ${result.outcome} (${result.reason}); customer ${heard.line}; dynamic variables ${JSON.stringify(conversation.dynamicVariables)}`);

    expect(result.outcome).toBe('answered');
    expect(result.id).toBe(queued.id);
    const started = call.events.find((e) => e.type === 'call.started');
    expect(started?.type === 'call.started' && started.uniqueid).toBe(queued.id);
    expect(conversation.dynamicVariables).toMatchObject({ lead_id: 'L-4242', call_id: call.callId });
    expectTones('customer heard', heard.segments, [{ hz: AGENT_HZ, ms: 1_200, startMs: [0, 400] }], heard.slackMs);
    expect(call.outcome.result).toBe('CALLER_HANGUP');
    expectPacing(heard);
    await stack.expectIdle();
    expect(outbound.pendingCount).toBe(0);
  }, 40_000);
});
