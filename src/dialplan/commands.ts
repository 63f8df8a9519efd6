/**
 * `ai-call dialplan generate [--out DIR] [--check]` and `ai-call dialplan install --asterisk-dir DIR [--reload]`.
 * Registered by src/cli.ts; everything the commands touch comes in through deps.
 */
import type { Command } from 'commander';
import type { Config } from '../config/schema.js';
import { dialplanWarnings } from './plan.js';
import { checkDialplan, installDialplan, writeDialplan, type CommandRunner } from './render.js';

export interface DialplanCommandDeps {
  readonly configOf: () => { config: Config; source: string };
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  /** Reports a failing exit status; default sets process.exitCode (tests inject a recorder). */
  readonly setExitCode?: (code: number) => void;
  /** Runs `asterisk -rx …`; default child_process.execFile. */
  readonly run?: CommandRunner;
}

/** Default output directory of `dialplan generate`, relative to the working directory. */
export const DEFAULT_DIALPLAN_DIR = 'dialplan';

export function registerDialplanCommands(program: Command, deps: DialplanCommandDeps): void {
  const setExitCode = deps.setExitCode ?? ((code: number): void => void (process.exitCode = code));
  const warn = (config: Config): void => {
    for (const warning of dialplanWarnings(config)) deps.stderr(`warning: ${warning}\n`);
  };

  const dialplan = program.command('dialplan').description('Generate and install the Asterisk dialplan, AMI user and module list for this config');

  dialplan
    .command('generate')
    .description('Write ai-call-extensions.conf, ai-call-manager.conf and ai-call-modules.conf (deterministic: no timestamps)')
    .option('--out <dir>', 'output directory', DEFAULT_DIALPLAN_DIR)
    .option('--check', 'write nothing; exit 1 and list the differences if the files in --out are not what would be generated')
    .action(async (opts: { out: string; check?: boolean }) => {
      const { config, source } = deps.configOf();
      warn(config);
      if (opts.check) {
        const result = checkDialplan(config, opts.out);
        if (result.ok) {
          deps.stdout(`${opts.out}: up to date with ${source}\n`);
          return;
        }
        deps.stderr(`${opts.out}: out of date with ${source}; run "ai-call dialplan generate --out ${opts.out}":\n  ${result.differences.join('\n  ')}\n`);
        setExitCode(1);
        return;
      }
      const written = await writeDialplan(config, opts.out);
      deps.stdout(`${written.map((path) => `wrote ${path}`).join('\n')}\nthen add to extensions.conf: #include ai-call-extensions.conf (docs/dialplan.md)\n`);
    });

  dialplan
    .command('install')
    .description('Write the files into the Asterisk config directory; print the include lines to add (never edits your files)')
    .requiredOption('--asterisk-dir <dir>', 'Asterisk configuration directory, e.g. /etc/asterisk')
    .option('--reload', 'run asterisk -rx "dialplan reload" afterwards')
    .action(async (opts: { asteriskDir: string; reload?: boolean }) => {
      const { config } = deps.configOf();
      warn(config);
      const result = await installDialplan(config, opts.asteriskDir, { reload: opts.reload === true, ...(deps.run ? { run: deps.run } : {}) });
      deps.stdout(`${result.written.map((path) => `wrote ${path}`).join('\n')}\n${result.instructions.map((line) => `next: ${line}`).join('\n')}\n`);
      if (result.reloaded) {
        const output = `${result.reloaded.stdout}${result.reloaded.stderr}`.trim();
        if (result.reloaded.code === 0) {
          deps.stdout(`${formatCommand(result.reloaded.cmd)}: ok${output ? `\n${output}` : ''}\n`);
        } else {
          deps.stderr(`${formatCommand(result.reloaded.cmd)} exited with ${result.reloaded.code}${output ? `:\n${output}` : ''}\n`);
          setExitCode(1);
        }
      }
    });
}

function formatCommand(cmd: readonly string[]): string {
  return cmd.map((arg) => (/^[A-Za-z0-9_./:=-]+$/.test(arg) ? arg : JSON.stringify(arg))).join(' ');
}
