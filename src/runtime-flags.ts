/**
 * The Node/V8 flags ai-call's server runs with: in the systemd unit, the container, `npm start` and
 * every worker of `serve --workers N` (tests keep those in step with this list).
 *
 * --single-threaded-gc: V8 otherwise marks and sweeps on helper threads. On a box whose cores are
 *   already busy (the calls' event loops, Asterisk, the kernel's network work), those threads wait
 *   for a core and delay the event loop that paces every call's 20 ms frames. Measured at 250
 *   ElevenLabs calls on 2 cores (docs/BENCHMARKS.md, "V8 flags"): the server's time waiting for a
 *   CPU fell from 12-18 % to 1 %, and p99 inter-frame from 27-30 ms to 23-25 ms.
 * --max-semi-space-size=8: a young generation of 2 × 8 MB instead of up to 2 × 16 MB: 186-231
 *   instead of 254-262 KiB RSS per call in the same runs, at no measurable CPU cost (scavenges
 *   are cheaper than the pages they would otherwise keep).
 */
export const SERVER_NODE_FLAGS: readonly string[] = Object.freeze(['--single-threaded-gc', '--max-semi-space-size=8']);

/** The flags of SERVER_NODE_FLAGS missing from `execArgv`, matched by name (an explicit value wins). */
export function missingServerFlags(execArgv: readonly string[] = process.execArgv): string[] {
  const nameOf = (flag: string): string => flag.split('=')[0]!.replace(/_/g, '-');
  const present = new Set(execArgv.map(nameOf));
  return SERVER_NODE_FLAGS.filter((flag) => !present.has(nameOf(flag)));
}
