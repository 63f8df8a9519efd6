import { describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { FakeElevenLabs, makeSilence, makeTone, measureAudio, PLATFORM_DEFAULT_CLIENT_EVENTS, type FakeAgent } from '../../support/fake-elevenlabs.js';

async function start(...agents: FakeAgent[]) {
  const fake = await FakeElevenLabs.start({ agents });
  onTestFinished(() => fake.close());
  return fake;
}

function open(url: string): Promise<{ ws: WebSocket; messages: Record<string, unknown>[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const messages: Record<string, unknown>[] = [];
    ws.on('message', (d) => messages.push(JSON.parse(String(d)) as Record<string, unknown>));
    ws.once('open', () => resolve({ ws, messages }));
    ws.once('error', reject);
  });
}

describe('FakeElevenLabs REST', () => {
  it('serves the agent configuration for agents check', async () => {
    const fake = await start({
      agentId: 'agent_x',
      private: true,
      userInputAudioFormat: 'pcm_8000',
      agentOutputAudioFormat: 'ulaw_8000',
      allowedOverrides: { firstMessage: true },
      tools: [{ name: 'transfer_call', type: 'client' }, { name: 'end_call', type: 'system' }],
    });
    const res = await fetch(`${fake.baseUrl}/v1/convai/agents/agent_x`, { headers: { 'xi-api-key': fake.apiKey } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, any>;
    expect(body['conversation_config']['asr']).toEqual({ user_input_audio_format: 'pcm_8000' });
    expect(body['conversation_config']['tts']['agent_output_audio_format']).toBe('ulaw_8000');
    expect(body['conversation_config']['conversation']['client_events']).toContain('agent_tool_response');
    expect(body['conversation_config']['agent']['prompt']['tools'].map((t: { name: string }) => t.name)).toEqual(['transfer_call', 'end_call']);
    expect(body['platform_settings']['overrides']['conversation_config_override']['agent']).toEqual({
      first_message: true,
      language: false,
      prompt: { prompt: false },
    });
    expect(body['platform_settings']['auth']['enable_auth']).toBe(true);
    const bad = await fetch(`${fake.baseUrl}/v1/convai/agents/agent_x`, { headers: { 'xi-api-key': 'nope' } });
    expect(bad.status).toBe(401);
    expect(await bad.json()).toEqual({ detail: { status: 'invalid_api_key', message: 'Invalid API key' } });
    const missing = await fetch(`${fake.baseUrl}/v1/convai/agents/nope`, { headers: { 'xi-api-key': fake.apiKey } });
    expect(missing.status).toBe(404);
  });

  it('issues single-use signatures for private agents', async () => {
    const fake = await start({ agentId: 'agent_x', private: true, manual: true });
    const res = await fetch(`${fake.baseUrl}/v1/convai/conversation/get-signed-url?agent_id=agent_x`, { headers: { 'xi-api-key': fake.apiKey } });
    const { signed_url: signedUrl } = (await res.json()) as { signed_url: string };
    const { ws } = await open(signedUrl);
    ws.close();
    await expect(open(signedUrl)).rejects.toThrow('403');
    await expect(open(`ws://127.0.0.1:${fake.port}/v1/convai/conversation?agent_id=agent_x`)).rejects.toThrow('403');
    await expect(open(`ws://127.0.0.1:${fake.port}/v1/convai/conversation?agent_id=agent_x&conversation_signature=forged`)).rejects.toThrow('403');
  });
});

describe('FakeElevenLabs conversation', () => {
  it('answers the initiation with metadata and a greeting, gated by client_events', async () => {
    const fake = await start({ agentId: 'a', clientEvents: PLATFORM_DEFAULT_CLIENT_EVENTS, greetingMs: 200, chunkMs: 50 });
    const { ws, messages } = await open(`ws://127.0.0.1:${fake.port}/v1/convai/conversation?agent_id=a`);
    ws.send('{"type":"conversation_initiation_client_data"}');
    const conversation = await fake.nextConversation();
    await conversation.initiation;
    await new Promise((r) => setTimeout(r, 50));
    expect(messages.map((m) => m['type'])).toEqual(['conversation_initiation_metadata', 'agent_response', 'audio', 'audio', 'audio', 'audio']);
    expect(messages[0]).toEqual({
      type: 'conversation_initiation_metadata',
      conversation_initiation_metadata_event: {
        conversation_id: conversation.conversationId,
        agent_output_audio_format: 'pcm_16000',
        user_input_audio_format: 'pcm_16000',
      },
    });
    expect(messages[2]).toEqual({ type: 'audio', audio_event: { audio_base_64: expect.any(String), event_id: 1 } });
    // client_tool_call is not in the platform default list: not sent.
    expect(conversation.send({ type: 'client_tool_call', client_tool_call: { tool_name: 't', tool_call_id: 'x', parameters: {}, event_id: 2 } })).toBe(false);
    ws.close();
  });

  it('answers garbage with invalid_message and 1008', async () => {
    const fake = await start({ agentId: 'a' });
    const { ws, messages } = await open(`ws://127.0.0.1:${fake.port}/v1/convai/conversation?agent_id=a`);
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.send('garbage');
    expect(await closed).toBe(1008);
    expect(messages[0]).toMatchObject({ type: 'error', error_event: { code: 1008, error_type: 'invalid_message' } });
  });

  it('audio helpers: tones are loud, silence is quiet, in both encodings', () => {
    expect(measureAudio('pcm_16000', makeTone('pcm_16000', 100)).rms).toBeGreaterThan(6_000);
    expect(measureAudio('ulaw_8000', makeTone('ulaw_8000', 100)).rms).toBeGreaterThan(6_000);
    expect(measureAudio('ulaw_8000', makeSilence('ulaw_8000', 100))).toEqual({ rms: 0, ms: 100 });
    expect(measureAudio('pcm_8000', makeSilence('pcm_8000', 20))).toEqual({ rms: 0, ms: 20 });
  });
});
