/**
 * Heap measurement of a server under test through the V8 inspector it was started with
 * (`node --inspect=127.0.0.1:0`, loopback only): force a full GC, then read the live heap. Only
 * this tells "memory back to idle" apart from garbage that V8 has not collected yet.
 */
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';

/** Every inspector URL a process tree printed to `stderrFile` (a cluster prints one per worker). */
export function inspectorUrls(stderrFile: string): string[] {
  let text: string;
  try {
    text = readFileSync(stderrFile, 'utf8');
  } catch {
    return [];
  }
  return [...new Set([...text.matchAll(/Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/[0-9a-f-]+)/g)].map((m) => m[1]!))];
}

export interface HeapReading {
  /** Bytes of live objects after a full GC, summed over the processes reached. */
  readonly usedBytes: number;
  readonly processes: number;
}

/** GC + Runtime.getHeapUsage on every URL; unreachable ones (exited workers) are skipped. */
export async function collectAndMeasureHeap(urls: readonly string[], timeoutMs = 5_000): Promise<HeapReading> {
  let usedBytes = 0;
  let processes = 0;
  for (const url of urls) {
    const used = await measureOne(url, timeoutMs).catch(() => undefined);
    if (used === undefined) continue;
    usedBytes += used;
    processes++;
  }
  return { usedBytes, processes };
}

function measureOne(url: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`inspector ${url} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    let id = 0;
    const pending = new Map<number, (result: Record<string, unknown>) => void>();
    const call = (method: string): Promise<Record<string, unknown>> =>
      new Promise((done) => {
        const callId = ++id;
        pending.set(callId, done);
        ws.send(JSON.stringify({ id: callId, method }));
      });
    ws.on('message', (data) => {
      const message = JSON.parse(String(data)) as { id?: number; result?: Record<string, unknown> };
      if (message.id !== undefined) pending.get(message.id)?.(message.result ?? {});
    });
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    ws.on('open', () => {
      void (async () => {
        // Two passes: the first may only move objects with finalizers into the next cycle.
        await call('HeapProfiler.collectGarbage');
        await call('HeapProfiler.collectGarbage');
        const usage = await call('Runtime.getHeapUsage');
        clearTimeout(timer);
        ws.close();
        resolve(Number(usage['usedSize'] ?? 0));
      })();
    });
  });
}
