/**
 * AMI framing: bytes from Asterisk in, `AmiMessage`s out. Pure: no socket, logger or config.
 *
 * Wire rules (protocols.md §3.1): the connection opens with one banner line
 * `Asterisk Call Manager/<version>\r\n`; after that, messages are `Key: Value` lines ended by an
 * empty line. Lines end with `\r\n`, but a bare `\n` is accepted as well. Framing happens only at
 * the empty line, whatever the TCP read boundaries (the Ping response in
 * test/fixtures/asterisk22/ami-session.json arrived split across two reads).
 */
import { BridgeError } from '../../errors.js';

const LF = 0x0a;
const CR = 0x0d;

/** Default longest line we accept from Asterisk, in bytes without the line end. */
export const DEFAULT_MAX_LINE_BYTES = 1024 * 4;
/** Default most headers in one message (Asterisk's own limit on input is 128, protocols.md §3.1). */
export const DEFAULT_MAX_HEADERS = 128;
/** Most output lines kept for one legacy `Response: Follows` message. */
const MAX_FOLLOWS_LINES = 100_000;
/** Ends the raw output of a legacy `Response: Follows` reply (Asterisk ≤ 13 `Action: Command`). */
const END_COMMAND = '--END COMMAND--';
/** The only headers of a `Response: Follows` reply that come before the raw output. */
const FOLLOWS_HEADERS = new Set(['privilege', 'actionid', 'message']);
/** Retained-buffer size we start with, in bytes; it grows only for a longer partial line. */
const INITIAL_BUFFER_BYTES = 8 * 1024;

/** One AMI message (a response, an event or a list item) as an ordered list of headers. */
export class AmiMessage {
  /** Headers in wire order; names keep Asterisk's spelling, values are raw (not unescaped). */
  readonly headers: ReadonlyArray<readonly [string, string]>;

  constructor(headers: ReadonlyArray<readonly [string, string]>) {
    this.headers = headers;
  }

  /** The first value of a header, matched case-insensitively (Asterisk's `astman_get_header`). */
  get(name: string): string | undefined {
    const wanted = name.toLowerCase();
    for (const [key, value] of this.headers) {
      if (key.toLowerCase() === wanted) return value;
    }
    return undefined;
  }

  /** Every value of a repeated header (`Variable`, `ChanVariable`, `Output`), in wire order. */
  getAll(name: string): string[] {
    const wanted = name.toLowerCase();
    const values: string[] = [];
    for (const [key, value] of this.headers) {
      if (key.toLowerCase() === wanted) values.push(value);
    }
    return values;
  }

  /** `Event:` value, for events and list items. */
  get event(): string | undefined {
    return this.get('Event');
  }

  /** `Response:` value (`Success`, `Error`, `Goodbye`, `Follows`), for action replies. */
  get response(): string | undefined {
    return this.get('Response');
  }

  /** `ActionID:` value, echoed on replies, list items and `OriginateResponse`. */
  get actionId(): string | undefined {
    return this.get('ActionID');
  }

  /** Headers as a plain object (first value wins), for logs and assertions. */
  toObject(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [key, value] of this.headers) {
      if (!Object.hasOwn(out, key)) out[key] = value;
    }
    return out;
  }
}

export interface AmiParserOptions {
  /** Longest line accepted, in bytes without the line end (default 4096). */
  readonly maxLineBytes?: number;
  /** Most headers in one message (default 128). */
  readonly maxHeaders?: number;
}

/**
 * Incremental AMI parser. Feed it every chunk read from the socket; it returns the messages that
 * became complete. It keeps partial lines and partial messages across chunks. After it throws
 * (`AMI_BAD_MESSAGE`), the stream is out of sync: drop the connection and the parser with it.
 */
export class AmiParser {
  readonly #maxLineBytes: number;
  readonly #maxHeaders: number;
  /** Retained bytes: [#start, #end) is unparsed input, always shorter than one line. */
  #buffer: Buffer = Buffer.alloc(0);
  #start = 0;
  #end = 0;
  /** True once #buffer is our own allocation rather than a caller's chunk we must not write into. */
  #ownsBuffer = false;
  #banner: string | undefined;
  #sawFirstLine = false;
  #headers: Array<readonly [string, string]> = [];
  /** Inside a legacy `Response: Follows` reply; blank lines do not end it, `--END COMMAND--` does. */
  #follows: 'no' | 'headers' | 'output' | 'ended' = 'no';

  constructor(options: AmiParserOptions = {}) {
    this.#maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.#maxHeaders = options.maxHeaders ?? DEFAULT_MAX_HEADERS;
  }

  /** The banner line without its line end (`Asterisk Call Manager/11.0.0`), once it has arrived. */
  get banner(): string | undefined {
    return this.#banner;
  }

  /** Parses one chunk and returns the messages it completed, in order. */
  push(chunk: Buffer | string): AmiMessage[] {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    this.#merge(bytes);
    const messages: AmiMessage[] = [];
    const view = this.#buffer;
    let lineStart = this.#start;
    for (;;) {
      const lf = view.indexOf(LF, lineStart);
      if (lf === -1 || lf >= this.#end) break;
      const lineEnd = lf > lineStart && view[lf - 1] === CR ? lf - 1 : lf;
      if (lineEnd - lineStart > this.#maxLineBytes) {
        throw new BridgeError('AMI_BAD_MESSAGE', `AMI line of ${lineEnd - lineStart} bytes exceeds ${this.#maxLineBytes}`);
      }
      // Splitting at LF keeps multi-byte UTF-8 sequences whole, so decoding per line is safe.
      const message = this.#line(view.toString('utf8', lineStart, lineEnd));
      if (message) messages.push(message);
      lineStart = lf + 1;
    }
    this.#start = lineStart;
    if (this.#start === this.#end) {
      this.#start = 0;
      this.#end = 0;
    } else if (this.#end - this.#start > this.#maxLineBytes + 1) {
      // +1 leaves room for a CR whose LF has not arrived yet.
      throw new BridgeError('AMI_BAD_MESSAGE', `AMI line exceeds ${this.#maxLineBytes} bytes without a line end`);
    }
    return messages;
  }

  /** Appends a chunk behind the unparsed tail, compacting or growing the retained buffer. */
  #merge(chunk: Buffer): void {
    const pending = this.#end - this.#start;
    if (pending === 0) {
      // Nothing retained: parse the chunk in place, no copy (pg-protocol `mergeBuffer`).
      this.#buffer = chunk;
      this.#ownsBuffer = false;
      this.#start = 0;
      this.#end = chunk.length;
      return;
    }
    if (this.#ownsBuffer && this.#buffer.length - this.#end >= chunk.length) {
      chunk.copy(this.#buffer, this.#end);
      this.#end += chunk.length;
      return;
    }
    const needed = pending + chunk.length;
    const target = this.#ownsBuffer && this.#buffer.length >= needed
      ? this.#buffer
      : Buffer.allocUnsafe(Math.max(INITIAL_BUFFER_BYTES, needed * 2));
    // Buffer#copy handles the overlap when compacting in place.
    this.#buffer.copy(target, 0, this.#start, this.#end);
    chunk.copy(target, pending);
    this.#buffer = target;
    this.#ownsBuffer = true;
    this.#start = 0;
    this.#end = needed;
  }

  /** Handles one line; returns a message when the line completed one. */
  #line(line: string): AmiMessage | undefined {
    if (!this.#sawFirstLine) {
      this.#sawFirstLine = true;
      // protocols.md §3.1: the banner is the first line and has no "Key: Value" shape.
      if (!line.includes(':')) {
        this.#banner = line;
        return undefined;
      }
    }
    if (this.#follows === 'headers' || this.#follows === 'output') return this.#followsLine(line);
    if (line === '') {
      if (this.#follows === 'ended') this.#follows = 'no';
      return this.#finish();
    }
    const colon = line.indexOf(':');
    // A line without a colon carries no header; Asterisk never sends one outside `Follows` output.
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon);
    // Split at the first ": "; tolerate ":" with no space. Only one space is removed so a value
    // that itself starts with spaces survives.
    const value = line.charCodeAt(colon + 1) === 0x20 ? line.slice(colon + 2) : line.slice(colon + 1);
    this.#add(name, value);
    if (this.#headers.length === 1 && name.toLowerCase() === 'response' && value === 'Follows') this.#follows = 'headers';
    return undefined;
  }

  /** Legacy `Response: Follows`: raw output lines become `Output` headers until `--END COMMAND--`. */
  #followsLine(line: string): AmiMessage | undefined {
    if (line === END_COMMAND || line.endsWith(END_COMMAND)) {
      const before = line.slice(0, line.length - END_COMMAND.length);
      if (before !== '') this.#addOutput(before);
      this.#follows = 'ended';
      return undefined;
    }
    if (this.#follows === 'headers') {
      const colon = line.indexOf(':');
      if (colon > 0 && FOLLOWS_HEADERS.has(line.slice(0, colon).toLowerCase())) {
        const value = line.charCodeAt(colon + 1) === 0x20 ? line.slice(colon + 2) : line.slice(colon + 1);
        this.#add(line.slice(0, colon), value);
        return undefined;
      }
      this.#follows = 'output';
    }
    this.#addOutput(line);
    return undefined;
  }

  #addOutput(line: string): void {
    if (this.#headers.length >= MAX_FOLLOWS_LINES) {
      throw new BridgeError('AMI_BAD_MESSAGE', `AMI command output exceeds ${MAX_FOLLOWS_LINES} lines`);
    }
    this.#headers.push(['Output', line]);
  }

  #add(name: string, value: string): void {
    if (this.#headers.length >= this.#maxHeaders) {
      throw new BridgeError('AMI_BAD_MESSAGE', `AMI message has more than ${this.#maxHeaders} headers`);
    }
    this.#headers.push([name, value]);
  }

  #finish(): AmiMessage | undefined {
    // Stray empty lines between messages frame nothing.
    if (this.#headers.length === 0) return undefined;
    const message = new AmiMessage(this.#headers);
    this.#headers = [];
    return message;
  }
}
