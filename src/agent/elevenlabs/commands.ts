/**
 * `ai-call agents check [--json]`: reads every ElevenLabs agent of the config over the REST API and
 * reports what will break calls. Registered by src/cli.ts; everything the command touches comes in
 * through deps.
 */
import type { Command } from 'commander';
import type { Config } from '../../config/schema.js';
import { checkAgents, countFindings, formatAgentCheckReport, type AgentCheckReport } from './agents-check.js';

export interface AgentCommandDeps {
  readonly configOf: () => { config: Config; source: string };
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Reports a failing exit status; default sets process.exitCode (tests inject a recorder). */
  readonly setExitCode?: ((code: number) => void) | undefined;
  /** Injected for tests; defaults to the global fetch. */
  readonly fetch?: typeof fetch | undefined;
}

/** The `--json` document: stable field names for scripts and monitoring. */
export interface AgentCheckJson {
  readonly source: string;
  /** false when any finding is an error (the exit status is then 1). */
  readonly ok: boolean;
  readonly errors: number;
  readonly warnings: number;
  readonly agents: readonly AgentCheckReport[];
}

export function registerAgentCommands(program: Command, deps: AgentCommandDeps): void {
  const setExitCode = deps.setExitCode ?? ((code: number): void => void (process.exitCode = code));
  const agents = program.command('agents').description('Inspect the ElevenLabs agents of this config');

  agents
    .command('check')
    .description('Read each ElevenLabs agent over the REST API (needs ELEVENLABS_API_KEY) and report settings that break calls; exit 1 on any error')
    .option('--json', 'print the findings as JSON')
    .action(async (opts: { json?: boolean }) => {
      const { config, source } = deps.configOf();
      const reports = await checkAgents(config, { fetch: deps.fetch });
      const { errors, warnings } = countFindings(reports);
      if (opts.json) {
        const doc: AgentCheckJson = { source, ok: errors === 0, errors, warnings, agents: reports };
        deps.stdout(`${JSON.stringify(doc, null, 2)}\n`);
      } else {
        deps.stdout(`agents check of ${source}\n\n${formatAgentCheckReport(reports)}`);
      }
      if (errors > 0) setExitCode(1);
    });
}
