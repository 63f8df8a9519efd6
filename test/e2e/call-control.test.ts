/**
 * Real Asterisk, live call control through the status API (docs/ami.md) on a real call:
 *
 *   DELETE /calls/:id            ai-call ends the agent leg: AudioSocket gets 00 00 00, the dialplan
 *                                continues (result AGI: AI_RESULT=COMPLETED, then the flow hangs up)
 *   POST /calls/:id/variables    AMI Setvar on the call's channel
 *   POST /calls/:id/redirect     AMI Redirect of the call's channel: it leaves AudioSocket() and
 *                                continues at the target (a marker extension playing a tone)
 *
 * The status server runs with a bearer token (AI_CALL_STATUS_TOKEN) and ai-call's AMI client logs in
 * to the harness Asterisk as its generated least-privilege manager user.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { announceSkip, detectAsterisk, sleep } from './support/asterisk.js';
import { E2eStack, TRANSFER_TONE_HZ } from './support/stack.js';
import { composeAudio } from './support/audio.js';
import { ended, expectPacing, expectTones, heardReport } from './support/checks.js';
import { markerExtension } from './support/dialplan.js';

const detection = detectAsterisk();
announceSkip('call-control', detection);

const AGENT_HZ = 440;
const TOKEN = 'e2e-status-token-0123456789';
const MARKER_CONTEXT = 'e2e-marker';

describe.skipIf(!detection.runtime)('e2e: status API call control on a live call', () => {
  let stack: E2eStack;
  let base: string;

  beforeAll(async () => {
    stack = await E2eStack.start({
      runtime: detection.runtime!,
      fakeAgents: [{ agentId: 'agent_long', private: true, toneHz: AGENT_HZ, greetingMs: 6_000 }],
      agents: { long: { provider: 'elevenlabs', agentId: 'agent_long', private: true } },
      routes: { '640': 'long' },
      configExtra: { status: { enabled: true, host: '127.0.0.1', port: 0 } },
      env: { AI_CALL_STATUS_TOKEN: TOKEN },
      extraDialplan: [`[${MARKER_CONTEXT}]`, ...markerExtension('redirected', 'redirected', { sound: 'redirected', fields: ['Tag: ${E2E_TAG}'] }), ''].join('\n'),
    });
    await stack.asterisk.writeSound('redirected', composeAudio([{ ms: 1_000, hz: TRANSFER_TONE_HZ }]), 8_000);
    base = `http://${stack.server.status!.host}:${stack.server.status!.port}`;
    // The write endpoints go through ai-call's own AMI connection: wait until it is logged in.
    for (const deadline = Date.now() + 10_000; ; ) {
      const health = (await api('GET', '/healthz')).body as { ami?: string };
      if (health.ami === 'connected') break;
      if (Date.now() > deadline) throw new Error(`ai-call's AMI client is ${health.ami ?? 'unknown'} after 10 s`);
      await sleep(100);
    }
    process.stdout.write(`${stack.describe()}; status API ${base}\n`);
  }, 60_000);

  afterAll(async () => {
    await stack?.close();
  }, 30_000);

  async function api(method: string, path: string, body?: unknown, token: string | null = TOKEN): Promise<{ status: number; body: unknown }> {
    const headers: Record<string, string> = {};
    if (token !== null) headers['authorization'] = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${base}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    return { status: res.status, body: await res.json() };
  }

  /** The greeting (6 s) runs; the phone would stay 8 s: only the API can end the call early. */
  const longCaller = (): Buffer => composeAudio([{ ms: 8_000 }]);

  it('DELETE /calls/:id: the agent leg ends, the dialplan continues with AI_RESULT=COMPLETED and hangs up', async () => {
    onTestFailed(() => console.error(stack.diagnostics()));
    const replies: Record<string, { status: number; body: unknown }> = {};
    let deletedAt = 0;
    let liveChannel = '';
    const { call, conversation } = await stack.callWithConversation({ exten: '640', callerPcm: longCaller() }, async () => {
      const live = await stack.liveCall('Local/640@e2e-in-');
      liveChannel = live.channel;
      replies['get'] = await api('GET', `/calls/${live.callId}`);
      await sleep(1_000);
      replies['no token'] = await api('DELETE', `/calls/${live.callId}`, undefined, null);
      replies['wrong token'] = await api('DELETE', `/calls/${live.callId}`, undefined, 'not-the-token-at-all');
      replies['unknown id'] = await api('DELETE', '/calls/00000000-0000-4000-8000-000000000000');
      deletedAt = Date.now();
      replies['delete'] = await api('DELETE', `/calls/${live.callId}`);
    });
    const heard = heardReport(call);
    const endedAt = ended(call.events).at;
    const flow = stack.ami('Newexten', call.aiChannel).filter((m) => m.get('Extension') !== 'h');
    const afterMedia = flow
      .slice(flow.findIndex((m) => m.get('Application') === 'AudioSocket' || (m.get('AppData') ?? '').startsWith('AudioSocket(')) + 1)
      .map((m) => `${m.get('Application')}(${(m.get('AppData') ?? '').replace(/^agi:\/\/[^/]+/, '').replace(/\?.*$/, '')})`);
    console.log(
      `e2e DELETE: ${Object.entries(replies).map(([k, r]) => `${k} → ${r.status}`).join(', ')}; call ended ${endedAt - deletedAt} ms after the DELETE; ${heard.line}; after AudioSocket the flow ran ${afterMedia.join(' → ')}`,
    );

    expect(replies['get']).toMatchObject({ status: 200, body: { state: 'live', agent: 'long', channel: liveChannel } });
    expect((replies['get']!.body as { asterisk?: { channel?: string } }).asterisk?.channel).toBe(liveChannel);
    expect(replies['no token']!.status).toBe(401);
    expect(replies['wrong token']!.status).toBe(401);
    expect(replies['unknown id']).toMatchObject({ status: 404, body: { error: 'CALL_NOT_FOUND' } });
    expect(replies['delete']).toMatchObject({ status: 200, body: { ok: true } });
    expect(endedAt - deletedAt).toBeLessThan(300);
    expect(call.outcome.result).toBe('COMPLETED');
    expect((await conversation.closed).code).toBe(1000);
    // AudioSocket() returned: the result AGI ran in the flow (not in h) and the flow's `done` hung up.
    expect(call.vars['AI_RESULT']).toBe('COMPLETED');
    expect(afterMedia.filter((s) => s === 'AGI(/ai-call/result)'), afterMedia.join(' → ')).toHaveLength(1);
    expect(afterMedia.at(-1), afterMedia.join(' → ')).toBe('Hangup()');
    // The phone heard the greeting until the DELETE, never the rest of it, and did not play out its 8 s.
    expect(heard.segments, heard.line).toHaveLength(1);
    expect(heard.segments[0]!.hz).toBe(AGENT_HZ);
    expect(heard.segments[0]!.endMs, heard.line).toBeGreaterThanOrEqual(900 - heard.slackMs);
    expect(heard.segments[0]!.endMs, heard.line).toBeLessThanOrEqual(1_400);
    expect(call.phoneEvents.some((m) => m.get('Phase') === 'played')).toBe(false);
    expectPacing(heard);
    await stack.expectIdle();
  }, 20_000);

  it('POST /calls/:id/variables and /redirect: Setvar on the channel, then it leaves AudioSocket for the target', async () => {
    onTestFailed(() => console.error(stack.diagnostics()));
    const replies: Record<string, { status: number; body: unknown }> = {};
    let redirectedAt = 0;
    const { call } = await stack.callWithConversation({ exten: '640', callerPcm: longCaller() }, async () => {
      const live = await stack.liveCall('Local/640@e2e-in-');
      await sleep(1_000);
      replies['variables'] = await api('POST', `/calls/${live.callId}/variables`, { E2E_TAG: 'vip' });
      replies['bad target'] = await api('POST', `/calls/${live.callId}/redirect`, { context: 'no such;context', exten: 'redirected' });
      replies['no token'] = await api('POST', `/calls/${live.callId}/redirect`, { context: MARKER_CONTEXT, exten: 'redirected' }, null);
      redirectedAt = Date.now();
      replies['redirect'] = await api('POST', `/calls/${live.callId}/redirect`, { context: MARKER_CONTEXT, exten: 'redirected' });
    });
    const heard = heardReport(call);
    const endedAt = ended(call.events).at;
    const landed = stack.marks('redirected').filter((m) => m.get('Channel') === call.aiChannel);
    const resultAgi = stack.ami('Newexten', call.aiChannel).filter((m) => (m.get('AppData') ?? '').includes('/ai-call/result'));
    console.log(
      `e2e redirect: ${Object.entries(replies).map(([k, r]) => `${k} → ${r.status} ${JSON.stringify(r.body)}`).join(', ')}; ai-call ended the call ${endedAt - redirectedAt} ms after the redirect with ${call.outcome.result}; ` +
        `landed ${landed.map((m) => `${m.get('Context')},${m.get('Exten')} tag ${m.get('Tag')}`).join(' ') || 'nowhere'}; ${heard.line}`,
    );

    expect(replies['variables']).toMatchObject({ status: 200, body: { ok: true, variables: ['E2E_TAG'] } });
    expect(stack.ami('VarSet', call.aiChannel).some((m) => m.get('Variable') === 'E2E_TAG' && m.get('Value') === 'vip')).toBe(true);
    expect(replies['bad target']).toMatchObject({ status: 400, body: { error: 'INPUT_INVALID' } });
    expect(replies['no token']!.status).toBe(401);
    expect(replies['redirect']).toMatchObject({ status: 200, body: { ok: true, target: `${MARKER_CONTEXT},redirected,1` } });
    // The channel continued at the target, with its variables, and the AudioSocket ended at once.
    expect(landed).toHaveLength(1);
    expect(landed[0]!.get('Tag')).toBe('vip');
    expect(endedAt - redirectedAt).toBeLessThan(300);
    expect(resultAgi, 'the result AGI (the channel left the flow)').toHaveLength(0);
    // AudioSocket() fails its read on the async goto and closes the socket like a hang-up; ai-call
    // knew the redirect was coming, so it records where the call went instead of CALLER_HANGUP.
    expect(call.outcome.result).toBe('COMPLETED');
    // The phone: the greeting until the redirect, then the target's 1500 Hz tone in full.
    expect(heard.segments.map((s) => s.hz), heard.line).toEqual([AGENT_HZ, TRANSFER_TONE_HZ]);
    expect(heard.segments[0]!.endMs, heard.line).toBeLessThanOrEqual(1_400);
    expectTones('the redirect target', [heard.segments[1]!], [{ hz: TRANSFER_TONE_HZ, ms: 1_000 }], heard.slackMs);
    expect(call.phoneEvents.some((m) => m.get('Phase') === 'played')).toBe(false);
    await stack.expectIdle();
  }, 20_000);
});
