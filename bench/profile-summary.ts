/**
 * Summarises a V8 .cpuprofile (from `npm run bench -- --cpu-prof`): self time per function and per
 * file, so a bottleneck can be named with numbers.
 *
 * Usage: node dist/bench/profile-summary.js <file.cpuprofile> [--top 30]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: number[];
}

interface Profile {
  readonly nodes: ProfileNode[];
  readonly samples: number[];
  readonly timeDeltas: number[];
  readonly startTime: number;
  readonly endTime: number;
}

export interface ProfileLine {
  readonly name: string;
  readonly selfMs: number;
  readonly selfShare: number;
}

export function summarise(profile: Profile): { totalMs: number; functions: ProfileLine[]; files: ProfileLine[] } {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  }
  const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const functions = new Map<string, number>();
  const files = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)?.callFrame;
    if (!frame) continue;
    const file = shortUrl(frame.url);
    const name = `${frame.functionName || '(anonymous)'} ${file}${file ? `:${frame.lineNumber + 1}` : ''}`;
    functions.set(name, (functions.get(name) ?? 0) + us);
    files.set(file || `(${frame.functionName})`, (files.get(file || `(${frame.functionName})`) ?? 0) + us);
  }
  const lines = (map: Map<string, number>): ProfileLine[] =>
    [...map.entries()].sort((a, b) => b[1] - a[1]).map(([name, us]) => ({ name, selfMs: Math.round(us / 100) / 10, selfShare: totalUs > 0 ? us / totalUs : 0 }));
  return { totalMs: Math.round(totalUs / 1000), functions: lines(functions), files: lines(files) };
}

function shortUrl(url: string): string {
  if (url === '') return '';
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + 6);
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) return url.slice(modules + 14);
  return url.replace(/^file:\/\//, '').replace(/^node:/, 'node:');
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '30' } } });
  const top = Number(values.top);
  for (const file of positionals) {
    const { totalMs, functions, files } = summarise(JSON.parse(readFileSync(file, 'utf8')) as Profile);
    process.stdout.write(`${file}: ${totalMs} ms sampled\n\nself time by function\n`);
    for (const line of functions.slice(0, top)) process.stdout.write(`${(line.selfShare * 100).toFixed(1).padStart(6)} %  ${String(line.selfMs).padStart(9)} ms  ${line.name}\n`);
    process.stdout.write('\nself time by file\n');
    for (const line of files.slice(0, 15)) process.stdout.write(`${(line.selfShare * 100).toFixed(1).padStart(6)} %  ${String(line.selfMs).padStart(9)} ms  ${line.name}\n`);
    process.stdout.write('\n');
  }
}
