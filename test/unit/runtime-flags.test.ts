import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { SERVER_NODE_FLAGS, missingServerFlags } from '../../src/runtime-flags.js';

describe('ai-call\'s V8 flags', () => {
  it('names the flags missing from a command line, matching by name so an explicit value wins', () => {
    expect(missingServerFlags([])).toEqual([...SERVER_NODE_FLAGS]);
    expect(missingServerFlags(['--single-threaded-gc', '--max-semi-space-size=8'])).toEqual([]);
    expect(missingServerFlags(['--max-semi-space-size=16', '--inspect=127.0.0.1:0'])).toEqual(['--single-threaded-gc']);
    expect(missingServerFlags(['--single_threaded_gc'])).toEqual(['--max-semi-space-size=8']);
  });

  it('are what npm start runs the server with', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts['start']).toContain(`node ${SERVER_NODE_FLAGS.join(' ')} dist/src/bin/ai-call.js serve`);
  });

  it('are all accepted by this node', async () => {
    const { spawnSync } = await import('node:child_process');
    const result = spawnSync(process.execPath, [...SERVER_NODE_FLAGS, '-e', 'process.exit(0)'], { encoding: 'utf8' });
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });
});
