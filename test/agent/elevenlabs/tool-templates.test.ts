import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { silentLogger } from '../../../src/log.js';
import { FrameClock } from '../../../src/audio/frame-clock.js';
import { SLIN_8K } from '../../../src/audio/format.js';
import { CallSession } from '../../../src/call/session.js';
import { AI_CALL_CLIENT_TOOLS } from '../../../src/agent/elevenlabs/agents-check.js';
import type { AgentHandlers, AgentProvider, AgentSession } from '../../../src/agent/types.js';
import { ManualClock } from '../../support/manual-clock.js';

/**
 * templates/tools/*.json are the client tools admins add to their ElevenLabs agents
 * (docs/elevenlabs.md). They must parse, use the agent tool fields (elevenlabs-js
 * ClientToolConfigInput: type, name, description, parameters, expects_response,
 * response_timeout_secs) and name exactly the tools and parameters the call session executes.
 */

const DIR = new URL('../../../templates/tools/', import.meta.url);
const FIELDS = ['type', 'name', 'description', 'parameters', 'expects_response', 'response_timeout_secs'];

interface ToolTemplate {
  type: string;
  name: string;
  description: string;
  parameters: { type: string; required: string[]; properties: Record<string, { type: string; description: string }> };
  expects_response: boolean;
  response_timeout_secs: number;
}

function loadTemplates(): Map<string, ToolTemplate> {
  const templates = new Map<string, ToolTemplate>();
  for (const file of readdirSync(DIR).filter((f) => f.endsWith('.json')).sort()) {
    templates.set(file, JSON.parse(readFileSync(new URL(file, DIR), 'utf8')) as ToolTemplate);
  }
  return templates;
}

/** One valid value per parameter the templates declare. */
const SAMPLE_VALUES: Record<string, string> = { destination: 'operator', digits: '4711#' };

/** A call session on the config's agent with a scripted agent that records tool results. */
async function sessionWithTools() {
  const config = parseConfig(
    'agents:\n  bot: { provider: elevenlabs, agentId: a1, transfers: { operator: "from-internal,100,1" } }\n',
    'test.yaml',
    {},
  );
  const clock = new ManualClock();
  const results: Array<{ id: string; result: string; isError: boolean }> = [];
  let handlers!: AgentHandlers;
  const agent: AgentSession = {
    formats: { input: SLIN_8K, output: SLIN_8K },
    conversationId: 'conv_t',
    startMedia() {},
    sendAudio() {},
    sendText() {},
    sendToolResult: (id, result, isError) => void results.push({ id, result, isError }),
    close() {},
  };
  const provider: AgentProvider = {
    async start(_ctx, h) {
      handlers = h;
      return agent;
    },
  };
  const callId = '1b4e28ba-2fa1-4d3b-a3f5-ef19b5a7633b';
  const session = new CallSession({
    callId,
    agentName: 'bot',
    agentConfig: config.agents['bot']!,
    context: { callId, agentName: 'bot', args: [], query: {}, vars: {} },
    source: 'agi',
    calls: config.calls,
    mediaTimeoutMs: 10_000,
    clock,
    frameClock: new FrameClock({ clock, frameMs: 20, maxCatchUpFrames: 3 }),
    logger: silentLogger(),
    emit: () => {},
    onEnded: () => {},
  });
  await session.startAgent(provider, 1000);
  return {
    call(toolName: string, parameters: Record<string, unknown>) {
      handlers.onToolCall({ toolName, toolCallId: `t${results.length}`, parameters });
      return results.at(-1)!;
    },
    end: () => session.hangup('test over'),
  };
}

describe('templates/tools', () => {
  const templates = loadTemplates();

  it('has one file per client tool ai-call executes, named after it', () => {
    expect([...templates.keys()]).toEqual([...AI_CALL_CLIENT_TOOLS].sort().map((name) => `${name}.json`));
    for (const [file, tool] of templates) expect(`${tool.name}.json`).toBe(file);
  });

  it.each([...loadTemplates()])('%s is an ElevenLabs client tool with a JSON-schema object of string parameters', (_file, tool) => {
    expect(Object.keys(tool).sort()).toEqual([...FIELDS].sort());
    expect(tool.type).toBe('client');
    expect(tool.description.length).toBeGreaterThan(40);
    expect(tool.expects_response).toBe(true);
    // protocols.md §4.10: response_timeout_secs is 1-120 s.
    expect(Number.isInteger(tool.response_timeout_secs)).toBe(true);
    expect(tool.response_timeout_secs).toBeGreaterThanOrEqual(1);
    expect(tool.response_timeout_secs).toBeLessThanOrEqual(120);
    expect(tool.parameters.type).toBe('object');
    expect(Object.keys(tool.parameters.properties).sort()).toEqual([...tool.parameters.required].sort());
    for (const property of Object.values(tool.parameters.properties)) {
      // LiteralJsonSchemaProperty: the LLM fills a value only for a property with a description.
      expect(Object.keys(property).sort()).toEqual(['description', 'type']);
      expect(property.type).toBe('string');
      expect(property.description.length).toBeGreaterThan(20);
    }
  });

  it('declares exactly the parameters the session reads: destination and digits', () => {
    const names = Object.fromEntries([...templates.values()].map((t) => [t.name, Object.keys(t.parameters.properties)]));
    expect(names).toEqual({ hangup_call: [], send_dtmf: ['digits'], transfer_call: ['destination'] });
  });

  it("tells the admin that transfer_call's destinations must match transfers in ai-call's config", () => {
    const description = templates.get('transfer_call.json')!.parameters.properties['destination']!.description;
    expect(description).toMatch(/Admin: replace/);
    expect(description).toMatch(/transfers in this agent's ai-call configuration/);
  });

  it.each([...loadTemplates()])('the call session executes %s with the declared parameters', async (_file, tool) => {
    const parameters = Object.fromEntries(Object.keys(tool.parameters.properties).map((name) => [name, SAMPLE_VALUES[name]]));
    const t = await sessionWithTools();
    expect(t.call(tool.name, parameters)).toMatchObject({ isError: false });
    t.end();
    if (Object.keys(parameters).length > 0) {
      // Without its parameter the same tool is refused: the parameter name is really the one read.
      const bare = await sessionWithTools();
      expect(bare.call(tool.name, {})).toMatchObject({ isError: true });
      bare.end();
    }
  });

  it('the session refuses a tool name it does not know (the check above is not vacuous)', async () => {
    const t = await sessionWithTools();
    expect(t.call('transfer_to_number', { phone_number: '+15551234567' })).toMatchObject({ isError: true, result: expect.stringContaining('transfer_call, hangup_call and send_dtmf') });
    t.end();
  });
});
