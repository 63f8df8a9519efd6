/**
 * FastAGI outbound codec: pure encoders for the commands of protocols.md §2.5.
 *
 * Every encoder returns one whole line INCLUDING its trailing "\n", or throws AGI_BAD_VALUE. What
 * Asterisk does with the line is its `parse_args` (§2.4): words split on space or TAB, `"` toggles
 * quoting and is removed, `\x` gives a literal `x`, and nothing can carry a newline. So a value is
 * safe exactly when it has no CR, LF or NUL and its quotes and backslashes are escaped.
 */
import { BridgeError } from '../../errors.js';

/** protocols.md §2.3: Asterisk reads at most 8191 bytes per command line, "\n" included. */
export const MAX_COMMAND_BYTES = 8191;

/**
 * A channel variable or function name: `AI_UUID`, `_INHERITED`, `__ALWAYS`, `CALLERID(name)`,
 * `CDR(userfield)` (§2.4). No `$`, braces or nested parentheses: names are never expressions.
 */
const VARIABLE_NAME = /^_{0,2}[A-Za-z0-9_]+(\([^()\r\n\0]*\))?$/;
/** A dialplan application name as `EXEC` looks it up (`AudioSocket`, `Wait`, `Set`). */
const APP_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;
/** Characters `parse_args` treats specially outside quotes; a word without them needs no quotes. */
const NEEDS_QUOTES = /[ \t"\\]/;
/** §2.4: a value cannot contain a newline; NUL would end the C string early. */
const UNSENDABLE = /[\r\n\0]/;

/**
 * Quotes one argument per protocols.md §2.4: reject CR, LF and NUL, then
 * `'"' + v.replaceAll('\\', '\\\\').replaceAll('"', '\\"') + '"'`.
 * `a "q" value, with comma \ backslash` → `"a \"q\" value, with comma \\ backslash"`.
 */
export function quoteAgiArg(value: string): string {
  assertSendable(value, 'argument');
  return `"${value.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/**
 * Writes a word bare when `parse_args` would read it back unchanged, else quoted like
 * quoteAgiArg. Asterisk gets the same argument either way; the bare form is what the recorded
 * sessions sent (`GET FULL VARIABLE ${CALLERID(num)}`, `EXEC AudioSocket <uuid>,127.0.0.1:29092`).
 */
export function quoteAgiArgIfNeeded(value: string): string {
  if (value === '' || NEEDS_QUOTES.test(value)) return quoteAgiArg(value);
  assertSendable(value, 'argument');
  return value;
}

/** `SET VARIABLE <name> "<value>"` → `200 result=1`. Needs exactly 4 words, so the value is always quoted (§2.4). */
export function encodeSetVariable(name: string, value: string): string {
  return `SET VARIABLE ${encodeVariableName(name)} ${quoteAgiArg(value)}\n`;
}

/** `GET VARIABLE <name>` → `200 result=1 (<value>)` or `200 result=0` when unset (§2.5). */
export function encodeGetVariable(name: string): string {
  return `GET VARIABLE ${encodeVariableName(name)}\n`;
}

/** `GET FULL VARIABLE <expr>`: Asterisk expands `${…}` in `expr`, with no length cap (§2.5). */
export function encodeGetFullVariable(expression: string): string {
  if (expression === '') throw new BridgeError('AGI_BAD_VALUE', 'GET FULL VARIABLE needs an expression');
  return `GET FULL VARIABLE ${quoteAgiArgIfNeeded(expression)}\n`;
}

/**
 * `EXEC <App> <options>` → `200 result=<app return>`, `-2` when there is no such app (§2.5).
 * `options` is one word: commas inside it separate the app's own arguments. `''` sends no options.
 */
export function encodeExec(app: string, options: string): string {
  if (!APP_NAME.test(app)) {
    throw new BridgeError('AGI_BAD_VALUE', `not a dialplan application name: ${JSON.stringify(app.slice(0, 80))}`);
  }
  return options === '' ? `EXEC ${app}\n` : `EXEC ${app} ${quoteAgiArgIfNeeded(options)}\n`;
}

/** `VERBOSE "<msg>" <level>` → `200 result=1`; level 1..4 as Asterisk's verbosity. */
export function encodeVerbose(message: string, level: number): string {
  if (!Number.isInteger(level) || level < 1 || level > 4) {
    throw new BridgeError('AGI_BAD_VALUE', `VERBOSE level must be 1..4, got ${level}`);
  }
  return `VERBOSE ${quoteAgiArg(message)} ${level}\n`;
}

/** `ANSWER` → `200 result=0`, `-1` on failure; refused with 511 on a dead channel (§2.5). */
export function encodeAnswer(): string {
  return 'ANSWER\n';
}

/** `HANGUP` → `200 result=1` (our command, not Asterisk's HANGUP notification). */
export function encodeHangup(): string {
  return 'HANGUP\n';
}

/**
 * Checks a raw command line before it goes on the wire and returns it with exactly one "\n".
 * Accepts the line with or without its "\n". Refuses (AGI_BAD_VALUE) an empty line, CR/LF/NUL
 * inside it, more than MAX_COMMAND_BYTES (Asterisk would split it into two commands, §2.3), and
 * a line starting with `failure`, which makes Asterisk end the AGI with FAILURE (§2.3).
 */
export function normalizeCommandLine(line: string): string {
  const body = line.endsWith('\n') ? line.slice(0, -1) : line;
  if (body.trim() === '') throw new BridgeError('AGI_BAD_VALUE', 'empty FastAGI command');
  assertSendable(body, 'command');
  if (/^failure/i.test(body)) {
    throw new BridgeError('AGI_BAD_VALUE', 'a FastAGI command line must not start with "failure"');
  }
  const wire = `${body}\n`;
  if (Buffer.byteLength(wire, 'utf8') > MAX_COMMAND_BYTES) {
    throw new BridgeError('AGI_BAD_VALUE', `FastAGI command longer than ${MAX_COMMAND_BYTES} bytes`);
  }
  return wire;
}

function encodeVariableName(name: string): string {
  if (!VARIABLE_NAME.test(name)) {
    throw new BridgeError('AGI_BAD_VALUE', `not a channel variable name: ${JSON.stringify(name.slice(0, 80))}`);
  }
  // A function argument may hold a space (`CUT(x, ,1)`): quote it so it stays one word.
  return quoteAgiArgIfNeeded(name);
}

function assertSendable(value: string, what: string): void {
  if (UNSENDABLE.test(value)) {
    throw new BridgeError('AGI_BAD_VALUE', `FastAGI ${what} contains CR, LF or NUL`);
  }
}
