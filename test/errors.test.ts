import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { BridgeError, ERROR_CODES, describeError, isBridgeError } from '../src/errors.js';

describe('error catalogue', () => {
  it('docs/errors.md lists exactly the exported codes, with the same meaning', () => {
    const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
    const documented = new Map([...doc.matchAll(/^\| `([A-Z_]+)` \| (.+) \|$/gm)].map((m) => [m[1]!, m[2]!]));
    expect([...documented.keys()].sort()).toEqual(Object.keys(ERROR_CODES).sort());
    for (const [code, meaning] of Object.entries(ERROR_CODES)) expect(documented.get(code)).toBe(meaning);
  });

  it('keeps code and cause', () => {
    const cause = new Error('socket hang up');
    const err = new BridgeError('AGI_CLOSED', 'closed', { cause });
    expect(err.code).toBe('AGI_CLOSED');
    expect(err.cause).toBe(cause);
    expect(isBridgeError(err, 'AGI_CLOSED')).toBe(true);
    expect(isBridgeError(err, 'AMI_DISCONNECTED')).toBe(false);
    expect(describeError(err)).toBe('AGI_CLOSED: closed');
    expect(describeError('plain')).toBe('plain');
  });
});
