/**
 * Which code allocates the objects that live through a scavenge: those are what V8 promotes to the
 * old generation, and the old generation's growth is what starts its periodic full collections
 * (the pauses behind late frames). V8's sampling heap profiler, reached through the inspector of
 * the server under test (`--inspect=127.0.0.1:0`, loopback only), keeps samples of objects a later
 * full GC collected but drops those a minor GC freed: what remains is long-lived or promoted.
 *
 * In a run: `npm run bench -- --alloc-sampling` writes `<target>-<calls>/promoted.heapprofile`
 * (loadable in Chrome DevTools → Memory) next to the CPU profiles.
 * Summary of a saved profile: node dist/bench/alloc-sampling.js <file.heapprofile> [--top 25]
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { openInspector } from './inspector.js';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface SamplingNode {
  readonly callFrame: CallFrame;
  readonly selfSize: number;
  readonly children: readonly SamplingNode[];
}

export interface SamplingProfile {
  readonly head: SamplingNode;
}

/** Starts sampling on the process behind `url`; stop() returns the profile and closes the connection. */
export async function startPromotionSampling(url: string, samplingIntervalBytes = 8192): Promise<{ stop(): Promise<SamplingProfile> }> {
  const inspector = await openInspector(url);
  await inspector.call('HeapProfiler.enable');
  await inspector.call('HeapProfiler.startSampling', {
    samplingInterval: samplingIntervalBytes,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: false,
  });
  return {
    async stop() {
      try {
        const result = await inspector.call('HeapProfiler.stopSampling');
        return result['profile'] as SamplingProfile;
      } finally {
        inspector.close();
      }
    },
  };
}

export interface AllocationSite {
  readonly site: string;
  readonly bytes: number;
}

function frameName(frame: CallFrame): string {
  return `${frame.functionName || '(anonymous)'} ${frame.url ? `${basename(frame.url)}:${frame.lineNumber + 1}` : ''}`.trim();
}

/** Sampled bytes per allocating function, and per nearest ai-call (dist/src) function on the stack. */
export function summarize(profile: SamplingProfile): { bySite: AllocationSite[]; byProductFrame: AllocationSite[]; totalBytes: number } {
  const bySite = new Map<string, number>();
  const byProduct = new Map<string, number>();
  let totalBytes = 0;
  const walk = (node: SamplingNode, product: string): void => {
    const here = node.callFrame.url.includes('/dist/src/') ? frameName(node.callFrame) : product;
    if (node.selfSize > 0) {
      totalBytes += node.selfSize;
      const site = frameName(node.callFrame);
      bySite.set(site, (bySite.get(site) ?? 0) + node.selfSize);
      byProduct.set(here, (byProduct.get(here) ?? 0) + node.selfSize);
    }
    for (const child of node.children) walk(child, here);
  };
  walk(profile.head, '(outside ai-call code)');
  const sorted = (map: Map<string, number>): AllocationSite[] => [...map].map(([site, bytes]) => ({ site, bytes })).sort((a, b) => b.bytes - a.bytes);
  return { bySite: sorted(bySite), byProductFrame: sorted(byProduct), totalBytes };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } });
  if (positionals.length === 0) {
    process.stderr.write('usage: alloc-sampling.js <file.heapprofile> [--top 25]\n');
    process.exit(2);
  }
  const top = Number(values.top);
  for (const file of positionals) {
    const { bySite, byProductFrame, totalBytes } = summarize(JSON.parse(readFileSync(file, 'utf8')) as SamplingProfile);
    const line = (row: AllocationSite): string => `${String(Math.round(row.bytes / 1024)).padStart(9)} KiB ${((row.bytes / Math.max(1, totalBytes)) * 100).toFixed(1).padStart(5)} %  ${row.site}\n`;
    process.stdout.write(`${file}: ${(totalBytes / 1024 / 1024).toFixed(1)} MiB sampled (objects that outlived a scavenge)\n\nby allocating function:\n`);
    for (const row of bySite.slice(0, top)) process.stdout.write(line(row));
    process.stdout.write('\nby nearest ai-call function on the stack:\n');
    for (const row of byProductFrame.slice(0, top)) process.stdout.write(line(row));
  }
}
