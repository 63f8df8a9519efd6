import { describe, expect, it, onTestFinished } from 'vitest';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { startServer } from '../../src/main.js';
import { simulateCall } from '../../src/simulate/simulate.js';
import type { CallEvent } from '../../src/call/events.js';
import { dominantFrequency, sine } from '../support/signal.js';

async function startEcho(extraYaml = '') {
  const config = parseConfig(
    `agi: { port: 0 }\naudiosocket: { port: 0 }\nstatus: { port: 0 }\nagents:\n  echo: { provider: echo, delayMs: 200 }\n${extraYaml}`,
    'test.yaml',
    {},
  );
  const events: CallEvent[] = [];
  const server = await startServer(config, { logger: silentLogger(), onEvent: (e) => events.push(e) });
  onTestFinished(() => server.close());
  return { server, events };
}

describe('a whole call to the echo agent over FastAGI and AudioSocket', () => {
  it('gets its own audio back, paced at 20 ms, and the result AGI reads the outcome', async () => {
    const { server, events } = await startEcho();
    const tone = sine(1000, 1000, 8000);
    const summary = await simulateCall({
      agiHost: '127.0.0.1',
      agiPort: server.agi.port,
      agent: 'echo',
      mode: 'assign',
      audio: tone,
      sampleRateHz: 8000,
      hangupAfterMs: 1600,
    });
    expect(summary.status).toBe('READY');
    expect(summary.assignVariables['AI_AGENT']).toBe('echo');
    expect(summary.audiosocket).toBe(`127.0.0.1:${server.audiosocket!.port}`);
    expect(summary.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(summary.resultVariables).toMatchObject({ AI_RESULT: 'CALLER_HANGUP', AI_TRANSFER_TO: '', AI_ERROR: '', AI_DURATION: '2' });

    const media = summary.media!;
    expect(media.endedBy).toBe('caller');
    // One frame per 20 ms for the whole call, silence included (protocols.md §1.7).
    expect(media.framesReceived).toBeGreaterThanOrEqual(75);
    expect(media.framesReceived).toBeLessThanOrEqual(82);
    // Absolute deadlines keep the count exact even when this shared test machine delays a timer;
    // the gap distribution itself is measured by `npm run bench`, not asserted here.
    expect(summary.timing!.p50Ms).toBeGreaterThan(17);
    expect(summary.timing!.p50Ms).toBeLessThan(23);
    expect(summary.timing!.gapsOver40Ms).toBeLessThanOrEqual(4);
    // The echo starts after its 200 ms delay and carries the caller's 1 kHz tone.
    expect(summary.firstAudioMs).toBeGreaterThanOrEqual(180);
    expect(summary.firstAudioMs).toBeLessThan(320);
    const echoed = media.received.subarray(8000 * 2 * 0.4, 8000 * 2 * 0.9);
    expect(dominantFrequency(echoed, 8000, { fromHz: 200, toHz: 3800, stepHz: 50 })).toBe(1000);

    const types = events.filter((e) => e.callId === summary.uuid).map((e) => e.type);
    expect(types[0]).toBe('call.started');
    expect(types).toContain('agent.ready');
    expect(types).toContain('media.connected');
    expect(types.at(-1)).toBe('call.ended');
    expect(server.registry.liveCount).toBe(0);
    expect(server.frameClock.size).toBe(0);
  });

  it('keeps only the outcome of an ended call: the session is freed, the result and /calls/:id answer until resultTtlMs', async () => {
    const { server, events } = await startEcho('calls: { resultTtlMs: 1000 }');
    // The session itself must become garbage once the call ends; a WeakRef sees whether it does.
    let sessionRef: WeakRef<object> | undefined;
    const grab = setInterval(() => {
      const started = events.find((e) => e.type === 'media.connected');
      const session = started && server.registry.get(started.callId);
      if (session && !sessionRef) sessionRef = new WeakRef(session);
    }, 5);
    onTestFinished(() => clearInterval(grab));
    const summary = await simulateCall({
      agiHost: '127.0.0.1',
      agiPort: server.agi.port,
      agent: 'echo',
      mode: 'assign',
      audio: sine(1000, 300, 8000),
      sampleRateHz: 8000,
      hangupAfterMs: 400,
    });
    clearInterval(grab);
    expect(summary.resultVariables['AI_RESULT']).toBe('CALLER_HANGUP');
    const callId = summary.uuid!;
    expect(sessionRef).toBeDefined();

    expect(server.registry.get(callId)).toBeUndefined();
    expect(server.registry.knows(callId)).toBe(true);
    const kept = await fetch(`http://127.0.0.1:${server.status!.port}/calls/${callId}`);
    expect(kept.status).toBe(200);
    expect(await kept.json()).toMatchObject({ callId, agent: 'echo', state: 'ended', outcome: { result: 'CALLER_HANGUP' } });

    // Let every pending callback of the ended call run, then collect: nothing may still hold the session.
    await new Promise((resolve) => setTimeout(resolve, 50));
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    gc();
    expect(sessionRef!.deref()).toBeUndefined();

    await new Promise((resolve) => setTimeout(resolve, 1050));
    expect(server.registry.knows(callId)).toBe(false);
    expect(server.registry.snapshot(callId)).toBeUndefined();
    expect((await fetch(`http://127.0.0.1:${server.status!.port}/calls/${callId}`)).status).toBe(404);
    expect(await server.registry.outcome(callId, 10)).toBeUndefined();
  });

  it('runs the whole call in one AGI session with ai-call/run', async () => {
    const { server } = await startEcho();
    const summary = await simulateCall({
      agiHost: '127.0.0.1',
      agiPort: server.agi.port,
      agent: 'echo',
      mode: 'run',
      audio: sine(1000, 300, 8000),
      sampleRateHz: 8000,
      hangupAfterMs: 600,
    });
    expect(summary.status).toBe('READY');
    expect(summary.resultVariables['AI_RESULT']).toBe('CALLER_HANGUP');
    expect(summary.media!.framesReceived).toBeGreaterThan(25);
  });

  it('answers UNKNOWN_AGENT without media, and the dialplan can route on it', async () => {
    const { server } = await startEcho();
    const summary = await simulateCall({
      agiHost: '127.0.0.1',
      agiPort: server.agi.port,
      agent: 'nobody',
      mode: 'assign',
      audio: Buffer.alloc(0),
      sampleRateHz: 8000,
      hangupAfterMs: 100,
    });
    expect(summary.status).toBe('UNKNOWN_AGENT');
    expect(summary.assignVariables['AI_ERROR']).toContain('AGENT_UNKNOWN');
    expect(summary.assignVariables['AI_UUID']).toBe('');
    expect(summary.media).toBeUndefined();
  });

  it('echoes key presses as DTMF tones and carries 16 kHz when Asterisk sends slin16', async () => {
    const { server } = await startEcho();
    const summary = await simulateCall({
      agiHost: '127.0.0.1',
      agiPort: server.agi.port,
      agent: 'echo',
      mode: 'assign',
      audio: sine(1000, 600, 16000),
      sampleRateHz: 16000,
      hangupAfterMs: 1400,
      dtmf: [{ atMs: 700, digit: '5' }],
    });
    expect(summary.media!.receivedSampleRateHz).toBe(16000);
    const echoed = summary.media!.received.subarray(16000 * 2 * 0.3, 16000 * 2 * 0.7);
    expect(dominantFrequency(echoed, 16000, { fromHz: 200, toHz: 7000, stepHz: 50 })).toBe(1000);
    const { detectDtmf } = await import('../../src/audio/dtmf.js');
    expect(detectDtmf(summary.media!.received, 16000)).toBe('5');
  });
});
