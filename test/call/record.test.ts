import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { startServer } from '../../src/main.js';
import { simulateCall } from '../../src/simulate/simulate.js';
import type { CallEvent } from '../../src/call/events.js';
import { FakeElevenLabs } from '../support/fake-elevenlabs.js';
import { sine } from '../support/signal.js';

/**
 * The per-call JSON Lines record (calls.recordDir, src/call/record.ts) of a whole call: ai-call
 * simulate plays Asterisk, the fake plays ElevenLabs, and the file is read back as an admin would.
 */

type Line = Record<string, unknown> & { type: string; callId: string; at: number };

/** Reads the record until its last line is call.ended (the stream is flushed after the call ends). */
async function readRecord(path: string, timeoutMs = 3_000): Promise<{ text: string; lines: Line[] }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      // not created yet
    }
    const lines = text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Line);
    if (lines.at(-1)?.type === 'call.ended' || Date.now() > deadline) return { text, lines };
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('per-call JSON Lines record', () => {
  it('writes one JSON object per line from call.started to call.ended, with the uniqueid, the conversation id, the transcript and the turn latency', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ai-call-records-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const fake = await FakeElevenLabs.start({
      agents: [
        {
          agentId: 'agent_rec',
          private: true,
          pingIntervalMs: 500,
          firstMessage: 'Hello, this is the front desk.',
          greetingMs: 300,
          turns: [{ userTranscript: 'I would like to book a table', agentResponse: 'Sure, for how many people?', replyMs: 400 }],
        },
      ],
    });
    onTestFinished(() => fake.close());
    const config = parseConfig(
      `agi: { port: 0 }
audiosocket: { port: 0 }
status: { enabled: false }
calls: { recordDir: ${JSON.stringify(dir)} }
agents:
  front:
    provider: elevenlabs
    agentId: agent_rec
    connectTimeoutMs: 1500
`,
      'test.yaml',
      { ELEVENLABS_BASE_URL: fake.baseUrl, ELEVENLABS_API_KEY: fake.apiKey },
    );
    const live: CallEvent[] = [];
    const server = await startServer(config, { logger: silentLogger(), onEvent: (e) => live.push(e) });
    onTestFinished(() => server.close());

    // The caller waits for the 300 ms greeting, speaks for 700 ms, then stays silent: the fake's VAD
    // ends the utterance after 300 ms of silence and plays the scripted turn. 700 Hz, not 1 kHz: the
    // session's speech estimate reads every 4th sample, which at 8 kHz lands on a phase-aligned 1 kHz
    // tone's zero crossings, so a 1 kHz "caller" never counts as speech and no turn is recorded.
    const audio = Buffer.concat([Buffer.alloc(8000 * 2 * 0.9), sine(1000, 700, 8000)]);
    const summary = await simulateCall({ agiHost: '127.0.0.1', agiPort: server.agi.port, agent: 'front', mode: 'assign', audio, sampleRateHz: 8000, hangupAfterMs: 3000 });
    expect(summary.status).toBe('READY');
    expect(summary.resultVariables['AI_RESULT']).toBe('CALLER_HANGUP');
    const conversation = fake.conversations[0]!;

    // <dir>/<UTC date of call.started>/<AI_UUID>.jsonl, and nothing else.
    const started = live.find((e) => e.type === 'call.started')!;
    const day = new Date(started.at).toISOString().slice(0, 10);
    expect(readdirSync(dir)).toEqual([day]);
    expect(readdirSync(join(dir, day))).toEqual([`${summary.uuid}.jsonl`]);
    const { text, lines } = await readRecord(join(dir, day, `${summary.uuid}.jsonl`));

    // JSON Lines: newline-terminated, one object per line, every line about this call, in time order.
    expect(text.endsWith('\n')).toBe(true);
    expect(text.split('\n').filter((l) => l !== '')).toHaveLength(lines.length);
    for (const line of lines) {
      expect(typeof line).toBe('object');
      expect(line.callId).toBe(summary.uuid);
      expect(typeof line.at).toBe('number');
    }
    expect(lines.map((l) => l.at)).toEqual([...lines.map((l) => l.at)].sort((a, b) => a - b));
    // The record is what the event stream said, line for line.
    expect(lines).toEqual(JSON.parse(JSON.stringify(live.filter((e) => e.callId === summary.uuid))));

    const types = lines.map((l) => l.type);
    expect(types[0]).toBe('call.started');
    expect(types.at(-1)).toBe('call.ended');
    for (const type of ['agent.ready', 'media.connected', 'greeting', 'transcript', 'turn']) expect(types).toContain(type);
    // Order of the milestones: ready before media (pre-connected at AGI time), greeting after media.
    expect(types.indexOf('agent.ready')).toBeLessThan(types.indexOf('media.connected'));
    expect(types.indexOf('media.connected')).toBeLessThan(types.indexOf('greeting'));

    const first = lines[0]!;
    expect(first).toMatchObject({ agent: 'front', source: 'agi', uniqueid: expect.stringMatching(/^\d+\.\d+$/), callerId: '+15550100' });
    // The same uniqueid reached the agent as the asterisk_uniqueid dynamic variable.
    expect(first['uniqueid']).toBe(conversation.dynamicVariables['asterisk_uniqueid']);

    const ready = lines.find((l) => l.type === 'agent.ready')!;
    expect(ready).toMatchObject({ conversationId: conversation.conversationId, inputFormat: 'pcm_16000', outputFormat: 'pcm_16000', connectMs: expect.any(Number) });
    expect(lines.find((l) => l.type === 'media.connected')).toMatchObject({ sampleRateHz: 8000, remoteAddress: expect.any(String) });
    expect(lines.find((l) => l.type === 'greeting')!['msAfterMedia']).toBeLessThanOrEqual(40);

    const transcript = lines.filter((l) => l.type === 'transcript').map((l) => [l['role'], l['text']]);
    expect(transcript).toEqual([
      ['agent', 'Hello, this is the front desk.'],
      ['user', 'I would like to book a table'],
      ['agent', 'Sure, for how many people?'],
    ]);

    // One turn: the caller stopped at ~1.6 s, the fake's VAD waits 300 ms, then the reply is queued.
    const turns = lines.filter((l) => l.type === 'turn') as Array<Line & { latencyMs: number; eventId: number }>;
    expect(turns).toHaveLength(1);
    expect(turns[0]!.latencyMs).toBeGreaterThanOrEqual(250);
    expect(turns[0]!.latencyMs).toBeLessThan(1500);
    expect(turns[0]!.eventId).toBeGreaterThan(0);

    const ended = lines.at(-1)!;
    expect(ended['outcome']).toEqual({
      result: 'CALLER_HANGUP',
      transferTo: '',
      conversationId: conversation.conversationId,
      durationS: Number(summary.resultVariables['AI_DURATION']),
      error: '',
    });
    expect(ended['outcome']).toMatchObject({ conversationId: summary.resultVariables['AI_CONVERSATION_ID'] });
    expect(ended['stats']).toMatchObject({ framesOut: expect.any(Number), framesIn: expect.any(Number), interruptions: 0 });
    expect(text).not.toContain(fake.apiKey);
  });
});
