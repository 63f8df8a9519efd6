import { readFileSync } from 'node:fs';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import type { z } from 'zod';
import { BridgeError } from '../errors.js';
import { configSchema, type Config } from './schema.js';

/** The configuration that runs when no file is given: loopback only, the diagnostic echo agent. */
export const EMBEDDED_DEFAULT_YAML = `# ai-call embedded default: loopback only, one diagnostic agent.
agents:
  echo: { provider: echo }
`;

export type Env = Readonly<Record<string, string | undefined>>;

export interface LoadOptions {
  /** Path of the YAML file; undefined runs the embedded default. */
  file?: string | undefined;
  /** Process environment (injected so tests do not touch process.env). */
  env: Env;
}

export interface LoadedConfig {
  config: Config;
  /** Where the config came from, for logs and check-config. */
  source: string;
}

/**
 * Reads YAML, resolves ${VAR} references and secrets from the environment, validates against
 * the schema and returns one deep-frozen object. Errors name file, line:col and key path.
 */
export function loadConfig(options: LoadOptions): LoadedConfig {
  const file = options.file ?? options.env['AI_CALL_CONFIG'];
  let text: string;
  let source: string;
  if (file === undefined || file === '') {
    text = EMBEDDED_DEFAULT_YAML;
    source = '(embedded default)';
  } else {
    source = file;
    try {
      text = readFileSync(file, 'utf8');
    } catch (cause) {
      throw new BridgeError('CONFIG_NOT_FOUND', `cannot read config file ${file}: ${(cause as Error).message}`, { cause });
    }
  }
  return { config: parseConfig(text, source, options.env), source };
}

export function parseConfig(text: string, source: string, env: Env): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    const pos = lineCounter.linePos(first.pos[0]);
    throw new BridgeError('CONFIG_INVALID', `${source}:${pos.line}:${pos.col}: YAML syntax error: ${first.message.split('\n')[0]}`);
  }
  substituteEnv(doc, source, lineCounter, env);
  const raw: unknown = doc.toJS() ?? {};
  applyEnvSecrets(raw, env);

  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.slice(0, 10).map((issue) => describeIssue(issue, doc, lineCounter, source));
    throw new BridgeError('CONFIG_INVALID', `invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  return deepFreeze(parsed.data);
}

/** Replaces ${VAR} in every string scalar; an unset variable is an error, never an empty string. */
function substituteEnv(doc: Document, source: string, lineCounter: LineCounter, env: Env): void {
  const visit = (node: unknown): void => {
    if (isMap(node) || isSeq(node)) {
      for (const item of node.items) visit(isMap(node) ? (item as { value: unknown }).value : item);
      return;
    }
    if (isScalar(node) && typeof node.value === 'string' && node.value.includes('${')) {
      node.value = node.value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_match, name: string) => {
        const value = env[name];
        if (value === undefined) {
          const pos = node.range ? lineCounter.linePos(node.range[0]) : { line: 0, col: 0 };
          throw new BridgeError('CONFIG_INVALID', `${source}:${pos.line}:${pos.col}: environment variable ${name} is not set`);
        }
        return value;
      });
    }
  };
  visit(doc.contents);
}

/** Secrets live in the environment; a value in the file (or a ${VAR}) wins when both exist. */
function applyEnvSecrets(raw: unknown, env: Env): void {
  if (typeof raw !== 'object' || raw === null) return;
  const cfg = raw as Record<string, unknown>;
  const section = (name: string): Record<string, unknown> | undefined => {
    const value = cfg[name];
    if (value === undefined || value === null) return undefined;
    return typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  };
  const setIfMissing = (target: Record<string, unknown> | undefined, key: string, value: string | undefined): void => {
    if (target && value !== undefined && value !== '' && target[key] === undefined) target[key] = value;
  };
  if (env['ELEVENLABS_API_KEY'] || env['ELEVENLABS_BASE_URL']) {
    cfg['elevenlabs'] ??= {};
    setIfMissing(section('elevenlabs'), 'apiKey', env['ELEVENLABS_API_KEY']);
    setIfMissing(section('elevenlabs'), 'baseUrl', env['ELEVENLABS_BASE_URL']);
  }
  setIfMissing(section('ami'), 'secret', env['AI_CALL_AMI_SECRET']);
  if (env['AI_CALL_STATUS_TOKEN']) {
    cfg['status'] ??= {};
    setIfMissing(section('status'), 'token', env['AI_CALL_STATUS_TOKEN']);
  }
}

function describeIssue(issue: z.core.$ZodIssue, doc: Document, lineCounter: LineCounter, source: string): string {
  const path = issue.path.map(String);
  // Point at the deepest node that exists in the file: a missing key is reported at its parent.
  let node: YamlNode | null = null;
  for (let depth = path.length; depth >= 0 && node === null; depth--) {
    const found = depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth), true);
    if (found && typeof found === 'object' && 'range' in found) node = found as YamlNode;
  }
  const pos = node?.range ? lineCounter.linePos(node.range[0]) : { line: 1, col: 1 };
  const keyPath = path.length > 0 ? path.join('.') : '(root)';
  return `${source}:${pos.line}:${pos.col} ${keyPath}: ${issue.message}`;
}

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** The config with every secret replaced, safe to print or log. */
export function redactConfig(config: Config): unknown {
  return JSON.parse(
    JSON.stringify(config, (key, value: unknown) =>
      (key === 'apiKey' || key === 'secret' || key === 'token') && typeof value === 'string' ? '[redacted]' : value,
    ),
  );
}
