/**
 * AMI encoding and vocabularies. Pure: no socket, logger or config.
 *
 * An action is `Action: <name>\r\n`, `ActionID: <id>\r\n`, one `Key: Value\r\n` line per field and
 * an empty line (protocols.md §3.1, §3.3). Asterisk does not check values for CR or LF, so a value
 * holding `\r\n\r\nAction: …` would smuggle a second action: everything is validated before a
 * single byte is produced.
 */
import { BridgeError } from '../../errors.js';

/** A field value: arrays become repeated headers (`Variable`), `undefined` fields are left out. */
export type AmiFieldValue = string | number | boolean | readonly string[] | undefined;
export type AmiFields = Readonly<Record<string, AmiFieldValue>>;

/** Header names we emit: what Asterisk's actions use, and nothing that could break a line. */
const HEADER_NAME = /^[A-Za-z0-9_-]+$/;
/** CR, LF or NUL anywhere: a line break would inject headers or actions, NUL truncates in C. */
const UNSAFE_CHARS = /[\r\n\0]/;
/**
 * Longest line Asterisk reads, in bytes without the CRLF: `inbuf[1025]` in main/manager.c
 * `get_input` holds the line and its CRLF in 1024 bytes; a longer line is dropped ("Dumping long
 * line") and the action would silently never be answered (protocols.md §3.1).
 */
export const AMI_MAX_LINE_BYTES = 1022;
/** Asterisk keeps at most 128 header lines per action (`AST_MAX_MANHEADERS`) and drops the rest. */
export const AMI_MAX_HEADERS = 128;

/** Encodes one action as wire text. Throws `AMI_BAD_VALUE` (and produces nothing) on unsafe input. */
export function encodeAction(action: string, fields: AmiFields, actionId: string): string {
  checkName('action name', action);
  checkValue('ActionID', actionId);
  if (actionId === '') throw new BridgeError('AMI_BAD_VALUE', 'AMI ActionID must not be empty');
  const lines = [`Action: ${action}`, `ActionID: ${actionId}`];
  for (const [name, raw] of Object.entries(fields)) {
    if (raw === undefined) continue;
    checkName('header name', name);
    const lower = name.toLowerCase();
    if (lower === 'action' || lower === 'actionid') {
      throw new BridgeError('AMI_BAD_VALUE', `AMI header "${name}" is set by the client and cannot be a field`);
    }
    const values = typeof raw === 'string' || typeof raw === 'number' || typeof raw === 'boolean' ? [raw] : raw;
    for (const value of values) {
      const text = fieldText(name, value);
      checkValue(name, text);
      lines.push(`${name}: ${text}`);
    }
  }
  if (lines.length > AMI_MAX_HEADERS) {
    throw new BridgeError('AMI_BAD_VALUE', `AMI action "${action}" has ${lines.length} headers; Asterisk keeps only ${AMI_MAX_HEADERS}`);
  }
  for (const line of lines) {
    if (Buffer.byteLength(line, 'utf8') > AMI_MAX_LINE_BYTES) {
      const name = line.slice(0, line.indexOf(':'));
      // The value is left out of the message on purpose: it may be a secret.
      throw new BridgeError('AMI_BAD_VALUE', `AMI header "${name}" is longer than ${AMI_MAX_LINE_BYTES} bytes`);
    }
  }
  return `${lines.join('\r\n')}\r\n\r\n`;
}

function fieldText(name: string, value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new BridgeError('AMI_BAD_VALUE', `AMI header "${name}" is not a finite number`);
    return String(value);
  }
  throw new BridgeError('AMI_BAD_VALUE', `AMI header "${name}" has a value of type ${typeof value}`);
}

function checkName(what: string, name: string): void {
  if (!HEADER_NAME.test(name)) {
    // JSON.stringify shows CR/LF as escapes, so the log line stays one line.
    throw new BridgeError('AMI_BAD_VALUE', `AMI ${what} ${JSON.stringify(name.slice(0, 64))} is not letters, digits, "_" or "-"`);
  }
}

function checkValue(name: string, value: string): void {
  if (UNSAFE_CHARS.test(value)) {
    // The value is left out of the message on purpose: it may be a secret.
    throw new BridgeError('AMI_BAD_VALUE', `AMI header "${name}" contains CR, LF or NUL`);
  }
}

/**
 * `OriginateResponse` `Reason` codes: the AST_CONTROL_* frame type Asterisk's main/pbx.c
 * `pbx_dial_reason` picks from the dial result and hangup cause (protocols.md §3.4).
 */
export const OriginateReason = {
  failed: 0, // no such channel technology, unreachable, or any cause not listed below
  hangup: 1, // AST_CONTROL_HANGUP: the originating side hung up
  ringing: 2, // AST_CONTROL_RING: local ring (rare)
  'no-answer': 3, // AST_CONTROL_RINGING: rang until Timeout, or cause 19 / 26
  answered: 4, // AST_CONTROL_ANSWER: the call is up and runs the Context/Exten or Application
  busy: 5, // AST_CONTROL_BUSY: cause 17 User busy
  congestion: 8, // AST_CONTROL_CONGESTION: causes 21, 27, 34, 38, 41, 42
} as const;

export type OriginateOutcome = keyof typeof OriginateReason | 'unknown';

/** Maps an `OriginateResponse` `Reason` (number or header text) to an outcome. */
export function originateReason(reason: number | string | undefined): OriginateOutcome {
  const code = typeof reason === 'string' ? Number.parseInt(reason, 10) : reason;
  for (const [outcome, value] of Object.entries(OriginateReason)) {
    if (value === code) return outcome as keyof typeof OriginateReason;
  }
  return 'unknown';
}

/**
 * Hangup cause texts exactly as Asterisk prints them in `Cause-txt` (main/channel.c `causes[]`,
 * include/asterisk/causes.h numbers; Q.850 cause values).
 */
export const HANGUP_CAUSES: Readonly<Record<number, string>> = Object.freeze({
  1: 'Unallocated (unassigned) number',
  2: 'No route to specified transmit network',
  3: 'No route to destination',
  5: 'Misdialed trunk prefix',
  6: 'Channel unacceptable',
  7: 'Call awarded and being delivered in an established channel',
  8: 'Pre-empted',
  14: 'Number ported elsewhere',
  16: 'Normal Clearing',
  17: 'User busy',
  18: 'No user responding',
  19: 'User alerting, no answer',
  20: 'Subscriber absent',
  21: 'Call Rejected',
  22: 'Number changed',
  23: 'Redirected to new destination',
  26: 'Answered elsewhere',
  27: 'Destination out of order',
  28: 'Invalid number format',
  29: 'Facility rejected',
  30: 'Response to STATus ENQuiry',
  31: 'Normal, unspecified',
  34: 'Circuit/channel congestion',
  38: 'Network out of order',
  41: 'Temporary failure',
  42: 'Switching equipment congestion',
  43: 'Access information discarded',
  44: 'Requested channel not available',
  50: 'Facility not subscribed',
  52: 'Outgoing call barred',
  54: 'Incoming call barred',
  57: 'Bearer capability not authorized',
  58: 'Bearer capability not available',
  65: 'Bearer capability not implemented',
  66: 'Channel not implemented',
  69: 'Facility not implemented',
  81: 'Invalid call reference value',
  88: 'Incompatible destination',
  95: 'Invalid message unspecified',
  96: 'Mandatory information element is missing',
  97: 'Message type nonexist.',
  98: 'Wrong message',
  99: 'Info. element nonexist or not implemented',
  100: 'Invalid information element contents',
  101: 'Message not compatible with call state',
  102: 'Recover on timer expiry',
  103: 'Mandatory IE length error',
  111: 'Protocol error, unspecified',
  127: 'Interworking, unspecified',
});

/** The `Cause-txt` Asterisk prints for a hangup cause; `Unknown` for 0 and unlisted codes, as `ast_cause2str` does. */
export function hangupCauseText(cause: number): string {
  return HANGUP_CAUSES[cause] ?? 'Unknown';
}
