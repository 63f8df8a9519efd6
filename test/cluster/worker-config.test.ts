import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.js';
import { BridgeError } from '../../src/errors.js';
import { audiosocketPorts, checkClusterConfig, workerConfig } from '../../src/cluster/worker-config.js';

const config = (yaml: string) => parseConfig(`${yaml}\nagents:\n  echo: { provider: echo }\n`, 'test.yaml', {});

describe('audiosocketPorts', () => {
  it('gives worker i the i-th port from audiosocket.port, skipping status and agi: 9092, 9094 with the defaults', () => {
    expect(audiosocketPorts(config(''), 2)).toEqual([9092, 9094]);
    expect(audiosocketPorts(config(''), 4)).toEqual([9092, 9094, 9095, 9096]);
  });

  it('skips bindings too, and does not skip the status port when status is disabled', () => {
    const cfg = config('status: { enabled: false }\naudiosocket: { port: 9100, bindings: [{ port: 9101, agent: echo }] }');
    expect(audiosocketPorts(cfg, 3)).toEqual([9100, 9102, 9103]);
    expect(audiosocketPorts(config('status: { enabled: false }'), 2)).toEqual([9092, 9093]);
  });

  it('is undefined for port 0 (the primary picks free ports) and in pool mode', () => {
    expect(audiosocketPorts(config('audiosocket: { port: 0 }'), 2)).toBeUndefined();
    expect(audiosocketPorts(config('audiosocket: { mode: pool }'), 2)).toBeUndefined();
  });
});

describe('workerConfig', () => {
  it('moves the AudioSocket port, turns the status endpoint off and returns a new frozen config', () => {
    const base = config('');
    const second = workerConfig(base, 1, 2);
    expect(second.audiosocket.port).toBe(9094);
    expect(second.status.enabled).toBe(false);
    expect(second.agi).toEqual(base.agi);
    expect(Object.isFrozen(second.audiosocket)).toBe(true);
    expect(base.audiosocket.port).toBe(9092);
    expect(base.status.enabled).toBe(true);
  });

  it('takes a port the primary picked', () => {
    expect(workerConfig(config('audiosocket: { port: 0 }'), 1, 2, 41_234).audiosocket.port).toBe(41_234);
  });

  it('splits a pool into disjoint equal ranges', () => {
    const pooled = config('audiosocket: { mode: pool, pool: { from: 9100, to: 9199 } }');
    expect([0, 1, 2].map((i) => workerConfig(pooled, i, 3).audiosocket.pool)).toEqual([
      { from: 9100, to: 9132 },
      { from: 9133, to: 9165 },
      { from: 9166, to: 9198 },
    ]);
  });
});

describe('checkClusterConfig', () => {
  it('accepts the defaults with as many workers as cores', () => {
    expect(() => checkClusterConfig(config(''), 2)).not.toThrow();
  });

  it.each([0, -1, 1.5, 65])('refuses %s workers', (workers) => {
    expect(() => checkClusterConfig(config(''), workers)).toThrow(BridgeError);
  });

  it('refuses a pool smaller than the number of workers, and ports past 65535', () => {
    expect(() => checkClusterConfig(config('audiosocket: { mode: pool, pool: { from: 9100, to: 9101 } }'), 3)).toThrow(/fewer than 3 workers/);
    expect(() => checkClusterConfig(config('audiosocket: { port: 65535 }'), 2)).toThrow(/below 65536/);
  });
});
