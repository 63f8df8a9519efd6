import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { EMBEDDED_DEFAULT_YAML, parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';

export const FIXTURE_ENV = { AI_CALL_AMI_SECRET: 'fixture-ami-secret-do-not-print', ELEVENLABS_API_KEY: 'xi-fixture-key' } as const;
export const HERE = fileURLToPath(new URL('./', import.meta.url));
export const REPO = fileURLToPath(new URL('../../', import.meta.url));

export function fixtureConfig(): Config {
  return parseConfig(readFileSync(`${HERE}fixtures/config.yaml`, 'utf8'), 'test/dialplan/fixtures/config.yaml', FIXTURE_ENV);
}

/** The example docs/dialplan.md shows: the embedded default (echo agent) plus one route. */
export const EXAMPLE_YAML = `${EMBEDDED_DEFAULT_YAML}routes:
  - { context: from-internal, extension: "7000", agent: echo }
`;

export function exampleConfig(): Config {
  return parseConfig(EXAMPLE_YAML, '(embedded default + example route)', {});
}

/** A deep, unfrozen copy to break on purpose (renderDialplan must not trust its input). */
export function mutable(config: Config): Record<string, any> {
  return structuredClone(config) as Record<string, any>;
}

/** Compares with a committed file; UPDATE_GOLDEN=1 rewrites it instead. */
export function expectGolden(path: string, actual: string): void {
  if (process.env['UPDATE_GOLDEN'] === '1') {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  let expected: string;
  try {
    expected = readFileSync(path, 'utf8');
  } catch {
    throw new Error(`${path} is missing: run UPDATE_GOLDEN=1 npx vitest run test/dialplan`);
  }
  expect(actual, `${path} is stale: review the diff, then UPDATE_GOLDEN=1 npx vitest run test/dialplan`).toBe(expected);
}
