/**
 * Renders the Asterisk files for a config from the package's templates/ directory, and writes,
 * checks and installs them. Rendering is deterministic (no timestamps), so `--check` can diff.
 *
 *   Config ──► planDialplan (validate, refuse) ──► Handlebars { noEscape, strict } ──► lint ──► files
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Handlebars from 'handlebars';
import type { Config } from '../config/schema.js';
import { BridgeError } from '../errors.js';
import { planDialplan } from './plan.js';
import { lintExtensionsConf, lintPlainConf } from './syntax.js';

/** Output file → template. Names start with ai-call- so they sit safely in /etc/asterisk. */
export const DIALPLAN_FILES = {
  'ai-call-extensions.conf': 'extensions.conf.hbs',
  'ai-call-manager.conf': 'manager.conf.hbs',
  'ai-call-modules.conf': 'modules.conf.hbs',
} as const;
export type DialplanFileName = keyof typeof DIALPLAN_FILES;

/** The line the admin adds to extensions.conf; ai-call never edits the admin's files. */
export const EXTENSIONS_INCLUDE_LINE = '#include ai-call-extensions.conf';

/** Optional overrides, for tests and for admins who ship their own templates. */
export interface RenderOptions {
  /** Directory holding extensions.conf.hbs, manager.conf.hbs, modules.conf.hbs and partials/. */
  readonly templatesDir?: string;
}

/**
 * Renders every file for the config. Throws BridgeError DIALPLAN_UNSAFE_VALUE naming each config path
 * whose value is unsafe or would produce broken dialplan.
 */
export function renderDialplan(config: Config, options: RenderOptions = {}): Map<string, string> {
  const plan = planDialplan(config);
  const templates = compileTemplates(options.templatesDir ?? findTemplatesDir());
  const files = new Map<string, string>();
  for (const [fileName, templateName] of Object.entries(DIALPLAN_FILES) as Array<[DialplanFileName, string]>) {
    const template = templates.files.get(templateName);
    if (template === undefined) throw new BridgeError('DIALPLAN_UNSAFE_VALUE', `template ${templateName} is missing in ${templates.dir}`);
    let text: string;
    try {
      text = tidy(template(plan));
    } catch (cause) {
      throw new BridgeError('DIALPLAN_UNSAFE_VALUE', `template ${templateName} failed: ${(cause as Error).message}`, { cause });
    }
    // A last line of defence against template mistakes: never hand Asterisk a file it would misparse.
    const problems = fileName === 'ai-call-extensions.conf' ? lintExtensionsConf(text) : lintPlainConf(text);
    if (problems.length > 0) {
      throw new BridgeError('DIALPLAN_UNSAFE_VALUE', `generated ${fileName} failed the syntax check:\n  ${problems.slice(0, 10).join('\n  ')}`);
    }
    files.set(fileName, text);
  }
  return files;
}

export interface CheckResult {
  readonly ok: boolean;
  /** One line per file that is missing or differs, with the first differing line. */
  readonly differences: string[];
}

/** Compares what would be generated with the files in dir (other files there are ignored). */
export function checkDialplan(config: Config, dir: string, options: RenderOptions = {}): CheckResult {
  const differences: string[] = [];
  for (const [fileName, expected] of renderDialplan(config, options)) {
    const path = join(dir, fileName);
    let actual: string;
    try {
      actual = readFileSync(path, 'utf8');
    } catch {
      differences.push(`${path}: missing`);
      continue;
    }
    if (actual !== expected) differences.push(`${path}: ${firstDifference(expected, actual)}`);
  }
  return { ok: differences.length === 0, differences };
}

/** Writes every file into dir (created if needed), each atomically; returns the paths written. */
export async function writeDialplan(config: Config, dir: string, options: RenderOptions & { readonly keep?: ReadonlySet<string> } = {}): Promise<string[]> {
  const files = renderDialplan(config, options);
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const [fileName, text] of files) {
    if (options.keep?.has(fileName)) continue;
    const path = join(dir, fileName);
    const temporary = join(dir, `.${fileName}.${process.pid}.tmp`);
    await writeFile(temporary, text, { mode: 0o644 });
    await rename(temporary, path);
    written.push(path);
  }
  return written;
}

const MANAGER_FILE = 'ai-call-manager.conf';

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}
export type CommandRunner = (cmd: string[]) => Promise<CommandResult>;

export interface InstallOptions extends RenderOptions {
  /** Run `asterisk -rx "dialplan reload"` after writing. */
  readonly reload: boolean;
  /** Runs a command; default: child_process.execFile. Injected so tests never touch a real Asterisk. */
  readonly run?: CommandRunner;
}

export interface InstallResult {
  readonly written: string[];
  /** The line to add to extensions.conf; never added by ai-call. */
  readonly includeLine: string;
  /** Whether asteriskDir/extensions.conf already has the include line (read only; undefined if unreadable). */
  readonly included: boolean | undefined;
  /** What the admin still has to do, one line each. */
  readonly instructions: string[];
  /** The reload command and its outcome, when reload was asked for. */
  readonly reloaded?: CommandResult & { readonly cmd: string[] };
}

/**
 * Writes the files into the Asterisk config directory and optionally reloads the dialplan.
 * It never edits extensions.conf, manager.conf or modules.conf: it returns the include line instead.
 */
export async function installDialplan(config: Config, asteriskDir: string, options: InstallOptions): Promise<InstallResult> {
  // An installed ai-call-manager.conf holds the secret the admin typed in: never overwrite it.
  const managerPath = join(asteriskDir, MANAGER_FILE);
  const keepManager = await readFile(managerPath, 'utf8').then(
    () => true,
    () => false,
  );
  const written = await writeDialplan(config, asteriskDir, { ...options, keep: keepManager ? new Set([MANAGER_FILE]) : new Set() });
  const included = await hasIncludeLine(join(asteriskDir, 'extensions.conf'));
  const instructions = [
    included === true
      ? `extensions.conf already has: ${EXTENSIONS_INCLUDE_LINE}`
      : `add to ${join(asteriskDir, 'extensions.conf')}: ${EXTENSIONS_INCLUDE_LINE}`,
    keepManager
      ? `kept your ${managerPath} (it holds the AMI secret); compare it with the output of dialplan generate after upgrades`
      : `add at the end of ${join(asteriskDir, 'manager.conf')}: #include ${MANAGER_FILE} (then set its secret and run: asterisk -rx "manager reload")`,
    `add inside [modules] of ${join(asteriskDir, 'modules.conf')}: #include ai-call-modules.conf`,
  ];
  const result: InstallResult = { written, includeLine: EXTENSIONS_INCLUDE_LINE, included, instructions };
  if (!options.reload) return result;
  const cmd = ['asterisk', '-rx', 'dialplan reload'];
  const outcome = await (options.run ?? runCommand)(cmd);
  return { ...result, reloaded: { cmd, ...outcome } };
}

/** The default runner: execFile without a shell, so the arguments are never re-parsed. */
export function runCommand(cmd: string[]): Promise<CommandResult> {
  const [file, ...args] = cmd;
  if (file === undefined) return Promise.reject(new BridgeError('INPUT_INVALID', 'empty command'));
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 30_000, maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 127;
      resolve({ code, stdout: String(stdout), stderr: error !== null && String(stderr) === '' ? error.message : String(stderr) });
    });
  });
}

async function hasIncludeLine(extensionsConf: string): Promise<boolean | undefined> {
  try {
    const text = await readFile(extensionsConf, 'utf8');
    return text.split(/\r?\n/).some((line) => /^\s*#include\s+"?(?:\S*\/)?ai-call-extensions\.conf"?\s*(?:;.*)?$/.test(line));
  } catch {
    return undefined;
  }
}

interface CompiledTemplates {
  readonly dir: string;
  readonly files: Map<string, Handlebars.TemplateDelegate>;
}

/** templates/ sits at the package root: ../../templates from src/dialplan, ../../../templates from dist/src/dialplan. */
export function findTemplatesDir(): string {
  const candidates = ['../../templates/', '../../../templates/'].map((rel) => fileURLToPath(new URL(rel, import.meta.url)));
  const found = candidates.find((dir) => existsSync(join(dir, 'extensions.conf.hbs')));
  if (found === undefined) throw new BridgeError('DIALPLAN_UNSAFE_VALUE', `templates not found; looked in ${candidates.join(', ')}`);
  return found;
}

/** Compiled per render (a few small files): no module state, and template edits apply at once. */
function compileTemplates(dir: string): CompiledTemplates {
  // An isolated instance: partials registered here never leak into another renderer.
  const hbs = Handlebars.create();
  const partialsDir = join(dir, 'partials');
  if (existsSync(partialsDir)) {
    for (const entry of readdirSync(partialsDir).sort()) {
      if (!entry.endsWith('.hbs')) continue;
      hbs.registerPartial(basename(entry, '.hbs'), readFileSync(join(partialsDir, entry), 'utf8'));
    }
  }
  const files = new Map<string, Handlebars.TemplateDelegate>();
  for (const templateName of Object.values(DIALPLAN_FILES)) {
    const path = join(dir, templateName);
    if (!existsSync(path)) continue;
    // dependencies.md: noEscape (no HTML escaping), strict (a missing value throws instead of printing '').
    files.set(templateName, hbs.compile(readFileSync(path, 'utf8'), { noEscape: true, strict: true }));
  }
  return { dir, files };
}

/** No trailing blanks, at most one empty line in a row, exactly one final newline. */
function tidy(text: string): string {
  return `${text
    .split('\n')
    .map((line) => line.replace(/[ \t]+$/, ''))
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim()}\n`;
}

function firstDifference(expected: string, actual: string): string {
  const want = expected.split('\n');
  const got = actual.split('\n');
  for (let i = 0; i < Math.max(want.length, got.length); i++) {
    if (want[i] !== got[i]) {
      return `differs at line ${i + 1}: expected ${JSON.stringify(want[i] ?? '(end of file)')}, found ${JSON.stringify(got[i] ?? '(end of file)')}`;
    }
  }
  return 'differs';
}
