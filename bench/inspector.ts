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

async function measureOne(url: string, timeoutMs: number): Promise<number> {
  const inspector = await openInspector(url, { timeoutMs });
  try {
    // Two passes: the first may only move objects with finalizers into the next cycle.
    await inspector.call('HeapProfiler.collectGarbage');
    await inspector.call('HeapProfiler.collectGarbage');
    const usage = await inspector.call('Runtime.getHeapUsage');
    return Number(usage['usedSize'] ?? 0);
  } finally {
    inspector.close();
  }
}

export interface InspectorSession {
  /** Sends one command; resolves with its result, rejects on an error reply, a closed socket or the timeout. */
  call(method: string, params?: Record<string, unknown>): Promise<Record<string, unknown>>;
  close(): void;
}

/** A DevTools protocol session with the process behind `url`; `onEvent` hears its notifications. */
export async function openInspector(
  url: string,
  options: { timeoutMs?: number; onEvent?: (method: string, params: Record<string, unknown>) => void } = {},
): Promise<InspectorSession> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1 << 30 });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`inspector ${url} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    ws.once('open', () => {
      clearTimeout(timer);
      resolve();
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
  let nextId = 0;
  const pending = new Map<number, { resolve: (result: Record<string, unknown>) => void; reject: (err: Error) => void; timer: NodeJS.Timeout }>();
  const failAll = (err: Error): void => {
    for (const [id, request] of pending) {
      clearTimeout(request.timer);
      pending.delete(id);
      request.reject(err);
    }
  };
  ws.on('message', (data) => {
    const message = JSON.parse(String(data)) as { id?: number; result?: Record<string, unknown>; error?: { message?: string }; method?: string; params?: Record<string, unknown> };
    if (message.id === undefined) {
      if (message.method !== undefined) options.onEvent?.(message.method, message.params ?? {});
      return;
    }
    const request = pending.get(message.id);
    if (!request) return;
    pending.delete(message.id);
    clearTimeout(request.timer);
    if (message.error) request.reject(new Error(`inspector: ${message.error.message ?? 'error'}`));
    else request.resolve(message.result ?? {});
  });
  ws.on('error', (err) => failAll(err));
  ws.on('close', () => failAll(new Error(`inspector ${url} closed`)));
  return {
    call(method, params = {}) {
      return new Promise((resolve, reject) => {
        const id = ++nextId;
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`inspector ${method} did not answer within ${timeoutMs} ms`));
        }, timeoutMs);
        pending.set(id, { resolve, reject, timer });
        ws.send(JSON.stringify({ id, method, params }));
      });
    },
    close() {
      ws.close();
    },
  };
}
