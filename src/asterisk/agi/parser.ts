/**
 * FastAGI inbound codec: bytes → lines → the environment block and typed replies.
 *
 * Pure: no socket, no logger, no timers (style.md rule 1). `server.ts` feeds it what the socket reads.
 *
 *   socket bytes ─► AgiLineReader ─► lines ─┬─► AgiEnvParser   (until the empty line, §2.2)
 *                                          └─► AgiReplyParser (then, one event per reply, §2.3)
 */
import { BridgeError } from '../../errors.js';

const LF = 0x0a;
const CR = '\r';
const MIN_BUFFER_BYTES = 256;
/** An idle session keeps at most this much buffer; a bigger one (after a large read) is dropped. */
const MAX_RETAINED_BYTES = 16_384;
const EMPTY = Buffer.alloc(0);

/** protocols.md §2.1: Asterisk passes at most 128 AGI() arguments; §2.2 adds about 23 fixed keys. */
export const MAX_ENV_LINES = 256;
/** A multi-line 520 carries one command's usage text; no AGI command documents more than this. */
export const MAX_USAGE_LINES = 200;

/** The FastAGI request, built once the environment block is complete (protocols.md §2.2). */
export interface AgiRequest {
  /** Every `agi_*` key as sent, values verbatim (colons kept, empty values kept). */
  readonly env: Readonly<Record<string, string>>;
  /** `agi_network: yes`: always true for FastAGI. */
  readonly network: boolean;
  /** Path part of `agi_network_script`, without the query; `''` if Asterisk sent none. */
  readonly script: string;
  /** URL-decoded query of `agi_network_script`; a repeated key keeps its last value. */
  readonly query: Readonly<Record<string, string>>;
  /** `agi_arg_1` … `agi_arg_N`, in order. */
  readonly args: readonly string[];
  /** `agi_request`: the whole first AGI() argument (the URL). */
  readonly request: string;
}

/**
 * Splits a byte stream into `\n`-terminated lines, keeping a partial line across chunks.
 *
 * A cursor over one retained buffer (style.md rule 2): a chunk is used in place when nothing is
 * pending, and copied only behind a pending partial line, which is bounded by `maxLineBytes`.
 */
export class AgiLineReader {
  readonly #maxLineBytes: number;
  #buffer: Buffer = EMPTY;
  /** False while #buffer is the caller's chunk, which we must not write into. */
  #owned = false;
  /** Start of the unconsumed bytes in #buffer. */
  #offset = 0;
  /** End of the valid bytes in #buffer. */
  #end = 0;

  constructor(options: { maxLineBytes: number }) {
    if (!Number.isInteger(options.maxLineBytes) || options.maxLineBytes < 1) {
      throw new RangeError(`maxLineBytes must be a positive integer, got ${options.maxLineBytes}`);
    }
    this.#maxLineBytes = options.maxLineBytes;
  }

  /** Bytes of an incomplete line held back for the next chunk. */
  get pendingBytes(): number {
    return this.#end - this.#offset;
  }

  /**
   * Returns every line completed by `chunk`, without its `\n` and without one trailing `\r`.
   * Throws AGI_BAD_LINE when a line (complete or still partial) exceeds `maxLineBytes` bytes before
   * its `\n`; the stream is then unusable, and so is the reader.
   */
  push(chunk: Buffer): string[] {
    // New bytes can only complete the pending line from where they start: the pending bytes hold no \n.
    const scanFrom = this.#merge(chunk);
    const lines: string[] = [];
    let lineStart = this.#offset;
    let newline = this.#buffer.indexOf(LF, scanFrom);
    while (newline !== -1 && newline < this.#end) {
      this.#checkLength(newline - lineStart);
      let line = this.#buffer.toString('utf8', lineStart, newline);
      if (line.endsWith(CR)) line = line.slice(0, -1);
      lines.push(line);
      lineStart = newline + 1;
      newline = this.#buffer.indexOf(LF, lineStart);
    }
    this.#offset = lineStart;
    this.#checkLength(this.#end - this.#offset);
    if (this.#offset === this.#end) {
      // Everything consumed: rewind our own buffer for reuse, or drop the caller's chunk (or an
      // oversized buffer) so thousands of idle sessions do not pin memory.
      this.#offset = 0;
      this.#end = 0;
      if (!this.#owned || this.#buffer.length > MAX_RETAINED_BYTES) {
        this.#buffer = EMPTY;
        this.#owned = false;
      }
    }
    return lines;
  }

  /** Appends `chunk` after the pending bytes; returns where the new bytes start. */
  #merge(chunk: Buffer): number {
    const pendingBytes = this.#end - this.#offset;
    if (pendingBytes === 0) {
      // Nothing pending: parse the caller's chunk in place, without a copy.
      this.#buffer = chunk;
      this.#owned = false;
      this.#offset = 0;
      this.#end = chunk.length;
      return 0;
    }
    const neededBytes = pendingBytes + chunk.length;
    if (!this.#owned || this.#buffer.length - this.#end < chunk.length) {
      // Never write into a caller's chunk. Compact our own buffer when it is big enough, else grow it
      // (doubling, so 1-byte chunks cost amortised O(1)); pending bytes are bounded by maxLineBytes.
      const target =
        this.#owned && this.#buffer.length >= neededBytes
          ? this.#buffer
          : Buffer.allocUnsafe(Math.max(2 * neededBytes, MIN_BUFFER_BYTES));
      this.#buffer.copy(target, 0, this.#offset, this.#end);
      this.#buffer = target;
      this.#owned = true;
      this.#offset = 0;
      this.#end = pendingBytes;
    }
    const scanFrom = this.#end;
    chunk.copy(this.#buffer, this.#end);
    this.#end += chunk.length;
    return scanFrom;
  }

  #checkLength(lineBytes: number): void {
    if (lineBytes > this.#maxLineBytes) {
      throw new BridgeError('AGI_BAD_LINE', `FastAGI line longer than ${this.#maxLineBytes} bytes`);
    }
  }
}

/** protocols.md §2.2: keys are `agi_*` names; anything else means the peer is not Asterisk. */
const ENV_KEY = /^[A-Za-z0-9_]+$/;

/**
 * Splits one environment line at the FIRST `:` and strips one space (protocols.md §2.2):
 * `agi_calleridname: Alice: Smith` → `Alice: Smith`; `agi_accountcode: ` → `''`.
 */
export function parseEnvLine(line: string): { key: string; value: string } {
  const colon = line.indexOf(':');
  const key = colon === -1 ? '' : line.slice(0, colon);
  if (!ENV_KEY.test(key)) {
    throw new BridgeError('AGI_BAD_LINE', `not a FastAGI environment line: ${JSON.stringify(line.slice(0, 80))}`);
  }
  let value = line.slice(colon + 1);
  if (value.startsWith(' ')) value = value.slice(1);
  return { key, value };
}

/** Builds the typed request from the environment keys (protocols.md §2.2). */
export function buildAgiRequest(env: Record<string, string>): AgiRequest {
  const frozenEnv: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [key, value] of Object.entries(env)) frozenEnv[key] = value;

  // §2.2: agi_network_script is everything after host[:port]/, query included, NOT URL-decoded.
  const networkScript = frozenEnv['agi_network_script'] ?? '';
  const questionMark = networkScript.indexOf('?');
  const script = questionMark === -1 ? networkScript : networkScript.slice(0, questionMark);
  const query = parseQuery(questionMark === -1 ? '' : networkScript.slice(questionMark + 1));

  const args: string[] = [];
  for (let n = 1; ; n++) {
    const arg = frozenEnv[`agi_arg_${n}`];
    if (arg === undefined) break;
    args.push(arg);
  }

  return Object.freeze({
    env: Object.freeze(frozenEnv),
    network: frozenEnv['agi_network'] === 'yes',
    script,
    query,
    args: Object.freeze(args),
    request: frozenEnv['agi_request'] ?? '',
  });
}

/**
 * Decodes `a=1&b=x%20y` with percent-decoding only. `+` stays `+` on purpose: dialplans put E.164
 * numbers (`?from=${CALLERID(num)}` → `+1555…`) into AGI URLs, and form-decoding would turn the `+`
 * into a space. Malformed `%` sequences are kept verbatim rather than failing the call.
 */
function parseQuery(queryString: string): Readonly<Record<string, string>> {
  // A null-prototype object: `query['constructor']` must be undefined, not Object.
  const query: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const part of queryString.split('&')) {
    if (part === '') continue;
    const equals = part.indexOf('=');
    const key = decodeComponent(equals === -1 ? part : part.slice(0, equals));
    query[key] = equals === -1 ? '' : decodeComponent(part.slice(equals + 1));
  }
  return Object.freeze(query);
}

function decodeComponent(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * Collects environment lines until the empty line that ends the block (protocols.md §2.2).
 * Throws AGI_BAD_LINE on a malformed line or a block longer than MAX_ENV_LINES.
 */
export class AgiEnvParser {
  #env: Record<string, string> = Object.create(null) as Record<string, string>;
  #lineCount = 0;

  /** Returns the request at the empty line, `undefined` before it. */
  feed(line: string): AgiRequest | undefined {
    if (line === '') return buildAgiRequest(this.#env);
    if (++this.#lineCount > MAX_ENV_LINES) {
      throw new BridgeError('AGI_BAD_LINE', `FastAGI environment block longer than ${MAX_ENV_LINES} lines`);
    }
    const { key, value } = parseEnvLine(line);
    this.#env[key] = value;
    return undefined;
  }
}

/** A `200` response (protocols.md §2.3). */
export type AgiReply = {
  code: 200;
  /** `result=<int>`. */
  result: number;
  /** From the first `(` to the LAST `)`, unescaped (§2.3); `undefined` when there are no parentheses. */
  data: string | undefined;
  /** `key=value` pairs after the data, e.g. `endpos`. */
  extra: Record<string, string>;
  /** The whole line, for logs. */
  raw: string;
};

/** The error responses of protocols.md §2.3. */
export const AgiErrorCode = {
  InvalidCommand: 510, // unknown command
  DeadChannel: 511, // not permitted in dead mode (§2.6)
  Usage: 520, // bad syntax, one line or a multi-line usage block
} as const;
export type AgiErrorCode = (typeof AgiErrorCode)[keyof typeof AgiErrorCode];

export type AgiParseEvent =
  | { type: 'reply'; reply: AgiReply }
  /** A `HANGUP` notification: never the answer to a command (§2.3, §2.6). */
  | { type: 'hangup' }
  | { type: 'error'; code: AgiErrorCode; message: string; usage?: string[] };

const RESULT = /^result=(-?\d+)(.*)$/;
const USAGE_END = '520 End of proper usage.';

/**
 * Turns response lines into events, one line at a time. A multi-line 520 (`520-…`, unprefixed
 * usage lines, `520 End of proper usage.`) yields one event, at its final `520 ` line.
 * Throws AGI_BAD_LINE on a line that is none of the §2.3 responses.
 */
export class AgiReplyParser {
  /** Set while inside a multi-line 520 block. */
  #usage: { message: string; lines: string[] } | undefined;

  feed(line: string): AgiParseEvent | undefined {
    if (this.#usage !== undefined) return this.#feedUsage(this.#usage, line);
    if (line === 'HANGUP') return { type: 'hangup' };
    if (line.startsWith('200 ')) return { type: 'reply', reply: parseSuccess(line) };
    if (line.startsWith('510 ')) return { type: 'error', code: AgiErrorCode.InvalidCommand, message: line.slice(4) };
    if (line.startsWith('511 ')) return { type: 'error', code: AgiErrorCode.DeadChannel, message: line.slice(4) };
    if (line.startsWith('520 ')) return { type: 'error', code: AgiErrorCode.Usage, message: line.slice(4) };
    if (line.startsWith('520-')) {
      this.#usage = { message: line.slice(4), lines: [] };
      return undefined;
    }
    throw new BridgeError('AGI_BAD_LINE', `unexpected FastAGI response: ${JSON.stringify(line.slice(0, 120))}`);
  }

  #feedUsage(usage: { message: string; lines: string[] }, line: string): AgiParseEvent | undefined {
    // res_agi writes the block from one thread in one go, so nothing (not even HANGUP) interleaves:
    // every line up to the one starting "520 " is usage text.
    let done = line.startsWith('520 ');
    if (!done && line.endsWith(USAGE_END)) {
      // Usage text without a final newline runs into the end marker on the same line.
      usage.lines.push(line.slice(0, -USAGE_END.length));
      done = true;
    }
    if (done) {
      this.#usage = undefined;
      return { type: 'error', code: AgiErrorCode.Usage, message: usage.message, usage: usage.lines };
    }
    if (usage.lines.length >= MAX_USAGE_LINES) {
      throw new BridgeError('AGI_BAD_LINE', `FastAGI 520 usage block longer than ${MAX_USAGE_LINES} lines`);
    }
    usage.lines.push(line);
    return undefined;
  }
}

/** `200 result=<int>[ (<data>)][ key=value…]` (protocols.md §2.3). */
function parseSuccess(line: string): AgiReply {
  const match = RESULT.exec(line.slice(4));
  if (match === null) {
    throw new BridgeError('AGI_BAD_LINE', `malformed FastAGI 200 response: ${JSON.stringify(line.slice(0, 120))}`);
  }
  const result = Number(match[1]);
  let tail = match[2] ?? '';
  if (tail !== '' && !tail.startsWith(' ')) {
    throw new BridgeError('AGI_BAD_LINE', `malformed FastAGI 200 response: ${JSON.stringify(line.slice(0, 120))}`);
  }
  tail = tail.slice(1);
  let data: string | undefined;
  if (tail.startsWith('(')) {
    // §2.3: the data is not escaped and may itself contain ")" — it ends at the LAST ")".
    const close = tail.lastIndexOf(')');
    if (close === -1) {
      throw new BridgeError('AGI_BAD_LINE', `unterminated data in FastAGI response: ${JSON.stringify(line.slice(0, 120))}`);
    }
    data = tail.slice(1, close);
    tail = tail.slice(close + 1);
  }
  const extra: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const token of tail.split(' ')) {
    if (token === '') continue;
    const equals = token.indexOf('=');
    if (equals === -1) extra[token] = '';
    else extra[token.slice(0, equals)] = token.slice(equals + 1);
  }
  return { code: 200, result, data, extra, raw: line };
}
