import { describe, expect, it } from 'vitest';
import { isBridgeError } from '../../../src/errors.js';
import {
  classifyAgentEnd,
  describeAgentEnd,
  encodeClientToolResult,
  encodeContextualUpdate,
  encodeInitiation,
  encodePong,
  encodeUserActivity,
  encodeUserAudio,
  encodeUserMessage,
  parseServerMessage,
} from '../../../src/agent/elevenlabs/messages.js';

describe('parseServerMessage', () => {
  it('reads conversation_initiation_metadata', () => {
    const text = JSON.stringify({
      type: 'conversation_initiation_metadata',
      conversation_initiation_metadata_event: {
        conversation_id: 'conv_1',
        agent_output_audio_format: 'pcm_16000',
        user_input_audio_format: 'ulaw_8000',
      },
    });
    expect(parseServerMessage(text)).toEqual({
      type: 'conversation_initiation_metadata',
      conversationId: 'conv_1',
      agentOutputAudioFormat: 'pcm_16000',
      userInputAudioFormat: 'ulaw_8000',
    });
  });

  it('reads audio, including alignment it does not use', () => {
    const text = JSON.stringify({
      type: 'audio',
      audio_event: { audio_base_64: 'AAEC', event_id: 7, alignment: { chars: ['a'], char_start_times_ms: [0], char_durations_ms: [5] } },
    });
    expect(parseServerMessage(text)).toEqual({ type: 'audio', audioBase64: 'AAEC', eventId: 7 });
  });

  it('accepts the legacy audio shape {"audio":{"chunk":…}} with no event id', () => {
    expect(parseServerMessage('{"type":"audio","audio":{"chunk":"AAEC"}}')).toEqual({ type: 'audio', audioBase64: 'AAEC', eventId: undefined });
  });

  it('treats empty audio_base_64 as empty audio', () => {
    expect(parseServerMessage('{"type":"audio","audio_event":{"audio_base_64":"","event_id":2}}')).toEqual({
      type: 'audio',
      audioBase64: '',
      eventId: 2,
    });
  });

  it('reads interruption, ping (ping_ms null or int), transcripts and corrections', () => {
    expect(parseServerMessage('{"type":"interruption","interruption_event":{"event_id":4}}')).toEqual({ type: 'interruption', eventId: 4 });
    expect(parseServerMessage('{"type":"ping","ping_event":{"event_id":3,"ping_ms":null}}')).toEqual({ type: 'ping', eventId: 3, pingMs: undefined });
    expect(parseServerMessage('{"type":"ping","ping_event":{"event_id":3,"ping_ms":42}}')).toEqual({ type: 'ping', eventId: 3, pingMs: 42 });
    expect(parseServerMessage('{"type":"user_transcript","user_transcription_event":{"user_transcript":"hi","event_id":5}}')).toEqual({
      type: 'user_transcript',
      text: 'hi',
      eventId: 5,
    });
    expect(parseServerMessage('{"type":"agent_response","agent_response_event":{"agent_response":"hello","event_id":6}}')).toEqual({
      type: 'agent_response',
      text: 'hello',
      eventId: 6,
    });
    expect(
      parseServerMessage(
        '{"type":"agent_response_correction","agent_response_correction_event":{"original_agent_response":"long text","corrected_agent_response":"long","event_id":6}}',
      ),
    ).toEqual({ type: 'agent_response_correction', original: 'long text', corrected: 'long', eventId: 6 });
  });

  it('reads client_tool_call and agent_tool_response(_full_payload)', () => {
    expect(
      parseServerMessage(
        '{"type":"client_tool_call","client_tool_call":{"tool_name":"transfer_call","tool_call_id":"t1","parameters":{"to":"sales"},"event_id":9}}',
      ),
    ).toEqual({ type: 'client_tool_call', toolName: 'transfer_call', toolCallId: 't1', parameters: { to: 'sales' }, eventId: 9 });
    const response = {
      tool_name: 'end_call',
      tool_call_id: 'e1',
      tool_type: 'system',
      is_error: false,
      is_called: true,
      event_id: 10,
    };
    expect(parseServerMessage(JSON.stringify({ type: 'agent_tool_response', agent_tool_response: response }))).toEqual({
      type: 'agent_tool_response',
      toolName: 'end_call',
      toolCallId: 'e1',
      toolType: 'system',
      isError: false,
      eventId: 10,
    });
    expect(
      parseServerMessage(
        JSON.stringify({ type: 'agent_tool_response_full_payload', agent_tool_response_full_payload: { ...response, full_tool_result: '{}' } }),
      ),
    ).toMatchObject({ type: 'agent_tool_response_full_payload', toolName: 'end_call' });
  });

  it('reads the contract error shape', () => {
    const text = JSON.stringify({
      type: 'error',
      error_event: { code: 1008, error_type: 'override_error', message: 'not allowed', reason: 'generic', debug_message: 'dbg', details: { a: 1 } },
    });
    expect(parseServerMessage(text)).toEqual({
      type: 'error',
      error: { code: 1008, errorType: 'override_error', message: 'not allowed', reason: 'generic', debugMessage: 'dbg' },
    });
  });

  it('reads the flat error shape {"type":"error","message":…} (elevenlabs/packages#911)', () => {
    expect(parseServerMessage('{"type":"error","message":"This request exceeds your quota limit."}')).toEqual({
      type: 'error',
      error: { code: undefined, errorType: undefined, message: 'This request exceeds your quota limit.', reason: undefined, debugMessage: undefined },
    });
  });

  it('falls back to error_event.reason when there is no message', () => {
    const parsed = parseServerMessage('{"type":"error","error_event":{"code":1002,"reason":"llm timed out"}}');
    expect(parsed).toMatchObject({ type: 'error', error: { message: 'llm timed out', code: 1002 } });
  });

  it('never throws on missing optional or required fields', () => {
    expect(parseServerMessage('{"type":"conversation_initiation_metadata"}')).toEqual({
      type: 'conversation_initiation_metadata',
      conversationId: undefined,
      agentOutputAudioFormat: undefined,
      userInputAudioFormat: undefined,
    });
    expect(parseServerMessage('{"type":"audio"}')).toEqual({ type: 'audio', audioBase64: '', eventId: undefined });
    expect(parseServerMessage('{"type":"interruption"}')).toEqual({ type: 'interruption', eventId: undefined });
    expect(parseServerMessage('{"type":"ping","ping_event":null}')).toEqual({ type: 'ping', eventId: undefined, pingMs: undefined });
    expect(parseServerMessage('{"type":"client_tool_call","client_tool_call":{"parameters":[1]}}')).toEqual({
      type: 'client_tool_call',
      toolName: '',
      toolCallId: '',
      parameters: {},
      eventId: undefined,
    });
    expect(parseServerMessage('{"type":"error"}')).toMatchObject({ type: 'error', error: { message: undefined } });
  });

  it.each([
    'vad_score',
    'tentative_user_transcript',
    'agent_tool_request',
    'agent_chat_response_part',
    'mcp_tool_call',
    'context_usage',
    'asr_initiation_metadata',
    'guardrail_triggered',
    'internal_turn_probability',
    'agent_response_complete',
    'queue_status',
    'brand_new_type_2027',
  ])('ignores %s as unknown', (type) => {
    expect(parseServerMessage(JSON.stringify({ type, [`${type}_event`]: { x: 1 } }))).toEqual({ type: 'unknown', rawType: type });
  });

  it('returns unknown with rawType "" for an object without type', () => {
    expect(parseServerMessage('{"hello":1}')).toEqual({ type: 'unknown', rawType: '' });
    expect(parseServerMessage('{"type":5}')).toEqual({ type: 'unknown', rawType: '' });
  });

  it.each(['not json', '', '{"type":"audio"', '[1,2]', '"audio"', '42', 'null'])('throws AGENT_PROTOCOL for %j', (text) => {
    expect.assertions(1);
    try {
      parseServerMessage(text);
    } catch (err) {
      expect(isBridgeError(err, 'AGENT_PROTOCOL')).toBe(true);
    }
  });

  it('accepts integer event ids sent as numeric strings', () => {
    expect(parseServerMessage('{"type":"interruption","interruption_event":{"event_id":"12"}}')).toEqual({ type: 'interruption', eventId: 12 });
  });
});

describe('encoders', () => {
  it('encodeUserAudio builds exactly {"user_audio_chunk":"…"} with no type', () => {
    const b64 = Buffer.from([1, 2, 3, 255]).toString('base64');
    expect(encodeUserAudio(b64)).toBe(`{"user_audio_chunk":"${b64}"}`);
    expect(JSON.parse(encodeUserAudio(b64))).toEqual({ user_audio_chunk: b64 });
  });

  it('encodePong echoes the ping event id', () => {
    expect(encodePong(17)).toBe('{"type":"pong","event_id":17}');
  });

  it('encodeInitiation with nothing configured sends only the type', () => {
    expect(encodeInitiation()).toBe('{"type":"conversation_initiation_client_data"}');
    expect(encodeInitiation({ overrides: {}, dynamicVariables: {} })).toBe('{"type":"conversation_initiation_client_data"}');
  });

  it('encodeInitiation includes only configured, non-empty overrides', () => {
    expect(JSON.parse(encodeInitiation({ overrides: { firstMessage: 'Hi {{caller_name}}' } }))).toEqual({
      type: 'conversation_initiation_client_data',
      conversation_config_override: { agent: { first_message: 'Hi {{caller_name}}' } },
    });
    expect(JSON.parse(encodeInitiation({ overrides: { voiceId: 'v1', firstMessage: '' } }))).toEqual({
      type: 'conversation_initiation_client_data',
      conversation_config_override: { tts: { voice_id: 'v1' } },
    });
    expect(
      JSON.parse(
        encodeInitiation({
          overrides: { firstMessage: 'Hello', language: 'de', prompt: 'Be brief', voiceId: 'v2' },
          dynamicVariables: { caller_id: '+1555', vip: true, tries: 3, caller_name: '' },
        }),
      ),
    ).toEqual({
      type: 'conversation_initiation_client_data',
      conversation_config_override: {
        agent: { prompt: { prompt: 'Be brief' }, first_message: 'Hello', language: 'de' },
        tts: { voice_id: 'v2' },
      },
      dynamic_variables: { caller_id: '+1555', vip: true, tries: 3, caller_name: '' },
    });
  });

  it('encodeInitiation never sends null or undefined fields', () => {
    const text = encodeInitiation({ overrides: { firstMessage: undefined, prompt: undefined }, dynamicVariables: undefined });
    expect(text).not.toContain('null');
    expect(text).toBe('{"type":"conversation_initiation_client_data"}');
  });

  it('encodeClientToolResult sends a string result and is_error', () => {
    expect(JSON.parse(encodeClientToolResult('t1', '{"ok":true}', false))).toEqual({
      type: 'client_tool_result',
      tool_call_id: 't1',
      result: '{"ok":true}',
      is_error: false,
    });
    expect(JSON.parse(encodeClientToolResult('t2', 'unknown tool', true))).toMatchObject({ is_error: true, result: 'unknown tool' });
  });

  it('encodes contextual_update, user_message and user_activity', () => {
    expect(JSON.parse(encodeContextualUpdate('DTMF 1'))).toEqual({ type: 'contextual_update', text: 'DTMF 1' });
    expect(JSON.parse(encodeContextualUpdate('DTMF 12', 'dtmf'))).toEqual({ type: 'contextual_update', text: 'DTMF 12', context_id: 'dtmf' });
    expect(JSON.parse(encodeUserMessage('1 2 #'))).toEqual({ type: 'user_message', text: '1 2 #' });
    expect(encodeUserActivity()).toBe('{"type":"user_activity"}');
  });
});

describe('classifyAgentEnd / describeAgentEnd', () => {
  const err = (errorType: string | undefined, message?: string) => ({
    code: 1008,
    errorType,
    message,
    reason: undefined,
    debugMessage: undefined,
  });

  it.each([
    [err('override_error', 'x'), 1008, 'AGENT_OVERRIDE_REJECTED'],
    [err('missing_dynamic_variable', 'x'), 1008, 'AGENT_MISSING_VARIABLE'],
    [err('missing_dynamic_variable_transfer', 'x'), 1008, 'AGENT_MISSING_VARIABLE'],
    [err(undefined, 'This request exceeds your quota limit.'), 1002, 'AGENT_QUOTA_EXCEEDED'],
    [err(undefined, 'Invalid API key'), 1008, 'AGENT_AUTH_FAILED'],
    [err('invalid_message', 'bad'), 1008, 'AGENT_PROTOCOL'],
    [err('unknown_websocket_crash', 'boom'), 1011, 'AGENT_CLOSED'],
    [undefined, 1006, 'AGENT_CLOSED'],
  ] as const)('maps %j / close %i to %s', (lastError, closeCode, code) => {
    expect(classifyAgentEnd({ lastError, closeCode }, 'active')).toBe(code);
  });

  it('falls back to AGENT_CONNECT_FAILED while connecting', () => {
    expect(classifyAgentEnd({ closeCode: 1011 }, 'connecting')).toBe('AGENT_CONNECT_FAILED');
  });

  it('describes error type, message, close code and reason', () => {
    expect(describeAgentEnd({ lastError: err('override_error', 'not allowed'), closeCode: 1008, closeReason: 'bye' })).toBe(
      'error_type=override_error message="not allowed" close=1008 close_reason="bye"',
    );
    expect(describeAgentEnd({})).toBe('no error or close information');
  });
});
