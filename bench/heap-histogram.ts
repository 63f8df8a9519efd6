/**
 * What a running server keeps on its heap, by constructor: takes a heap snapshot through the V8
 * inspector (the process must run with --inspect=127.0.0.1:PORT, loopback only) and sums the
 * self size of every object per (type, name). Two runs (idle, then N live calls) divided by N
 * give the per-call memory by class. Off-heap ArrayBuffer backing stores show as
 * "system / JSArrayBufferData".
 *
 * Usage: node dist/bench/heap-histogram.js ws://127.0.0.1:PORT/UUID [--top 40] [--json out.json]
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { openInspector } from './inspector.js';

interface Snapshot {
  readonly snapshot: { readonly meta: { readonly node_fields: string[]; readonly node_types: [string[]] } };
  readonly nodes: number[];
  readonly strings: string[];
}

export async function takeSnapshot(url: string): Promise<Snapshot> {
  const chunks: string[] = [];
  const inspector = await openInspector(url, {
    timeoutMs: 120_000,
    onEvent: (method, params) => {
      if (method === 'HeapProfiler.addHeapSnapshotChunk') chunks.push(typeof params['chunk'] === 'string' ? params['chunk'] : '');
    },
  });
  try {
    await inspector.call('HeapProfiler.collectGarbage');
    await inspector.call('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
  } finally {
    inspector.close();
  }
  return JSON.parse(chunks.join('')) as Snapshot;
}

/** Self size and count per "type / name", largest first. */
export function histogram(snapshot: Snapshot): Array<{ key: string; bytes: number; count: number }> {
  const fields = snapshot.snapshot.meta.node_fields;
  const types = snapshot.snapshot.meta.node_types[0];
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const nameAt = fields.indexOf('name');
  const sizeAt = fields.indexOf('self_size');
  const totals = new Map<string, { bytes: number; count: number }>();
  for (let i = 0; i < snapshot.nodes.length; i += width) {
    const type = types[snapshot.nodes[i + typeAt]!] ?? '?';
    const rawName = snapshot.strings[snapshot.nodes[i + nameAt]!] ?? '?';
    // Strings and numbers are named by their content: group them by type only.
    const name = type === 'string' || type === 'concatenated string' || type === 'sliced string' || type === 'number' ? '' : rawName.slice(0, 60);
    const key = `${type} / ${name}`;
    const entry = totals.get(key) ?? { bytes: 0, count: 0 };
    entry.bytes += snapshot.nodes[i + sizeAt]!;
    entry.count++;
    totals.set(key, entry);
  }
  return [...totals.entries()].map(([key, v]) => ({ key, ...v })).sort((a, b) => b.bytes - a.bytes);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '40' }, json: { type: 'string' } } });
  const url = positionals[0];
  if (!url) {
    process.stderr.write('usage: heap-histogram.js ws://127.0.0.1:PORT/UUID [--top 40] [--json out.json]\n');
    process.exit(2);
  }
  const rows = histogram(await takeSnapshot(url));
  const total = rows.reduce((sum, row) => sum + row.bytes, 0);
  process.stdout.write(`${(total / 1024 / 1024).toFixed(1)} MiB in ${rows.reduce((s, r) => s + r.count, 0)} objects\n`);
  for (const row of rows.slice(0, Number(values.top))) process.stdout.write(`${String(Math.round(row.bytes / 1024)).padStart(9)} KiB ${String(row.count).padStart(8)}  ${row.key}\n`);
  if (values.json) writeFileSync(values.json, JSON.stringify(rows));
}
