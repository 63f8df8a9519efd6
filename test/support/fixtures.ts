import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** One entry of a recorded Asterisk 22 session (test/fixtures/asterisk22/README.md). */
export interface FixtureChunk {
  readonly t: number;
  readonly conn?: string;
  readonly session?: string;
  readonly dir?: 'asterisk->server' | 'server->asterisk';
  readonly event?: 'accept' | 'connect' | 'eof' | 'server-end' | 'close';
  readonly hex?: string;
  readonly text?: string;
  readonly omitted?: number;
  readonly msgs?: ReadonlyArray<Record<string, unknown>>;
}

export interface Fixture {
  readonly description: string;
  readonly chunks: readonly FixtureChunk[];
  readonly [key: string]: unknown;
}

const FIXTURE_DIR = fileURLToPath(new URL('../fixtures/asterisk22/', import.meta.url));

export function loadFixture(name: string): Fixture {
  return JSON.parse(readFileSync(`${FIXTURE_DIR}${name}.json`, 'utf8')) as Fixture;
}

/** The byte chunks of one direction, in recorded order (trim markers and events skipped). */
export function fixtureBytes(
  fixture: Fixture,
  dir: 'asterisk->server' | 'server->asterisk',
  filter: (chunk: FixtureChunk) => boolean = () => true,
): Buffer[] {
  return fixture.chunks
    .filter((c) => c.dir === dir && c.hex !== undefined && filter(c))
    .map((c) => Buffer.from(c.hex!, 'hex'));
}

/** Re-splits bytes at the given offsets, to replay a stream with hostile chunking. */
export function splitAt(bytes: Buffer, offsets: readonly number[]): Buffer[] {
  const parts: Buffer[] = [];
  let start = 0;
  for (const offset of [...offsets].sort((a, b) => a - b)) {
    if (offset <= start || offset >= bytes.length) continue;
    parts.push(bytes.subarray(start, offset));
    start = offset;
  }
  parts.push(bytes.subarray(start));
  return parts;
}

/** Deterministic pseudo-random split points (a seeded LCG), down to 1-byte pieces. */
export function randomSplits(bytes: Buffer, seed: number, maxPieceBytes = 64): Buffer[] {
  let state = seed >>> 0 || 1;
  const next = (): number => {
    state = (Math.imul(state, 1_664_525) + 1_013_904_223) >>> 0;
    return state;
  };
  const parts: Buffer[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const size = 1 + (next() % maxPieceBytes);
    parts.push(bytes.subarray(offset, offset + size));
    offset += size;
  }
  return parts;
}
