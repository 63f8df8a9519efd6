/**
 * The load generator process: plays Asterisk (bench/asterisk-emulator.ts) and ElevenLabs
 * (bench/fake-elevenlabs-lean.ts) in one process, so both ends of every call share one clock.
 * Driven by the runner over the IPC channel (bench/protocol.ts); it never decides timing itself.
 */
import { AsteriskEmulator } from './asterisk-emulator.js';
import { LEAN_FAKE_AGENT_ID, LEAN_FAKE_AGENT_ID_16K, LEAN_FAKE_API_KEY, LeanFakeElevenLabs } from './fake-elevenlabs-lean.js';
import type { LoadgenReply, LoadgenRequest } from './protocol.js';

if (process.send === undefined) {
  process.stderr.write('loadgen: run me from bench/run.ts (I need an IPC channel)\n');
  process.exit(2);
}

let fake: LeanFakeElevenLabs | undefined;
let agi: { host: string; port: number } | undefined;
const emulator = new AsteriskEmulator({ onTick: (nowMs) => fake?.onTick(nowMs) });

function reply(message: LoadgenReply): void {
  process.send?.(message);
}

async function handle(request: LoadgenRequest): Promise<void> {
  switch (request.type) {
    case 'start-fake':
      fake ??= await LeanFakeElevenLabs.start({
        lookupCall: (callId) => emulator.lookupCall(callId),
        onUplinkLatency: (ms) => emulator.recordUplink(ms),
        onAgentReady: (callId, atMs) => emulator.agentReady(callId, atMs),
      });
      reply({ id: request.id, type: 'fake-ready', baseUrl: fake.baseUrl, apiKey: LEAN_FAKE_API_KEY, agentId: LEAN_FAKE_AGENT_ID, agentId16k: LEAN_FAKE_AGENT_ID_16K });
      return;
    case 'ramp':
      agi = { host: request.agiHost, port: request.agiPort };
      fake?.resetCounters();
      reply({ id: request.id, type: 'ramped', ramp: await emulator.ramp(request) });
      return;
    case 'measure-start':
      fake?.resetCounters();
      emulator.measureStart();
      reply({ id: request.id, type: 'measuring' });
      return;
    case 'measure-stop': {
      const counters = emulator.scenario === 'elevenlabs' && fake ? { ...fake.counters } : undefined;
      reply({ id: request.id, type: 'measured', window: emulator.measureStop(counters) });
      return;
    }
    case 'probe':
      reply({ id: request.id, type: 'probed', probe: await emulator.probe(request) });
      return;
    case 'hangup': {
      if (!agi) throw new Error('hangup before ramp');
      reply({ id: request.id, type: 'hung-up', hangup: await emulator.hangup(agi.host, agi.port) });
      return;
    }
    case 'exit':
      await fake?.close();
      process.exit(0);
  }
}

process.on('message', (message: LoadgenRequest) => {
  handle(message).catch((err: unknown) => {
    reply({ id: message.id, type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  });
});
// The runner owns our life: if it goes, so do we.
process.on('disconnect', () => process.exit(0));
