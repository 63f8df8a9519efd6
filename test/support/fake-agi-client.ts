/**
 * A fake Asterisk for FastAGI tests: it connects to our server over real TCP on loopback and
 * plays the Asterisk side, in one of three ways:
 *
 * - by hand: `sendEnv()`, `nextCommand()`, `reply()`, `sendHangup()`, `reset()`;
 * - as Asterisk 22 would answer (`actAsAsterisk()`): SET/GET VARIABLE, GET FULL VARIABLE, EXEC,
 *   ANSWER, VERBOSE, NOOP, dead mode (511) and the HANGUP lines of protocols.md §2.6;
 * - by replaying a recorded session (`replay()`): send Asterisk's bytes, and check that ours match
 *   the recording byte for byte.
 *
 * Like Asterisk, it answers our FIN with one `HANGUP\n` (the end-of-script notice) and closes,
 * unless built with `endOfScriptHangup: false`.
 */
import { connect, type Socket } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as delay } from 'node:timers/promises';
import type { Fixture } from './fixtures.js';
import { parseAgiArgs } from '../../src/asterisk/agi/parse-args.js';

const DEFAULT_WAIT_MS = 2_000;

/** Replies as res_agi.c writes them (Asterisk 22, agi-session-*.json). */
export const AGI_REPLY = {
  invalid: '510 Invalid or unknown command',
  dead: '511 Command Not Permitted on a dead channel or intercept routine',
  setVariableUsage: [
    '520-Invalid command syntax.  Proper usage follows:',
    'Sets a variable to the current channel.',
    '520 End of proper usage.',
  ],
} as const;

/** The environment block of agi-session-assign.json, for tests that need a realistic one. */
export function defaultAgiEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    agi_network: 'yes',
    agi_network_script: 'ai-call?agent=sales',
    agi_request: 'agi://127.0.0.1:4573/ai-call?agent=sales',
    agi_channel: 'PJSIP/alice-00000001',
    agi_language: 'en',
    agi_type: 'PJSIP',
    agi_uniqueid: '1795534918.1',
    agi_version: '22.0.0',
    agi_callerid: '+15551234567',
    agi_calleridname: 'Alice: Smith',
    agi_callingpres: '0',
    agi_callingani2: '0',
    agi_callington: '0',
    agi_callingtns: '0',
    agi_dnid: 'unknown',
    agi_rdnis: 'unknown',
    agi_context: 'from-pstn',
    agi_extension: '100',
    agi_priority: '1',
    agi_enhanced: '0.0',
    agi_accountcode: '',
    agi_threadid: '140678464698048',
    ...overrides,
  };
}

/** Bytes of an environment block: `key: value\n` lines and the empty line (§2.2). */
export function encodeAgiEnv(env: Record<string, string>): Buffer {
  return Buffer.from(`${Object.entries(env).map(([key, value]) => `${key}: ${value}\n`).join('')}\n`, 'utf8');
}

/** What an `EXEC`ed app gets: its options and a promise that settles when the call hangs up. */
export interface FakeAppContext {
  readonly options: string;
  readonly hungUp: Promise<void>;
}

export interface FakeAsteriskBehaviour {
  /** Channel variables; SET VARIABLE writes here, GET VARIABLE reads here. */
  variables?: Map<string, string>;
  /** Dialplan apps for EXEC: return the app's result (0, -1…). Unknown apps give -2, like Asterisk. */
  apps?: Record<string, (context: FakeAppContext) => number | Promise<number>>;
}

export interface FakeAgiClientOptions {
  host?: string;
  /** Answer our FIN with `HANGUP\n` and close, as Asterisk does (§2.6). Default true. */
  endOfScriptHangup?: boolean;
}

interface ReplayStep {
  readonly kind: 'send' | 'expect' | 'expect-end' | 'end';
  readonly bytes?: Buffer;
}

export class FakeAgiClient {
  readonly socket: Socket;
  /** Every command line our server sent, without "\n", in order. */
  readonly commands: string[] = [];
  /** Settles when the socket is fully closed. */
  readonly closed: Promise<{ hadError: boolean }>;
  /** Settles when our server half-closed (FIN). */
  readonly serverEnded: Promise<void>;
  readonly #endOfScriptHangup: boolean;
  #received: Buffer[] = [];
  #receivedBytes = 0;
  #lineBuffer = '';
  readonly #decoder = new StringDecoder('utf8');
  #unreadCommands: string[] = [];
  #commandWaiters: Array<(line: string) => void> = [];
  #byteWaiters: Array<() => void> = [];
  #serverHasEnded = false;
  #replaying = false;
  #asterisk: AsteriskEmulation | undefined;

  private constructor(socket: Socket, options: FakeAgiClientOptions) {
    this.socket = socket;
    this.#endOfScriptHangup = options.endOfScriptHangup ?? true;
    socket.setNoDelay(true);
    // Tests reset sockets on purpose; an unhandled 'error' here would crash the test worker.
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    this.closed = new Promise((resolve) => socket.once('close', (hadError: boolean) => resolve({ hadError })));
    this.serverEnded = new Promise((resolve) => {
      socket.once('end', () => {
        this.#serverHasEnded = true;
        this.#wakeByteWaiters();
        resolve();
        if (this.#endOfScriptHangup && !this.#replaying && !socket.destroyed) {
          // §2.6: Asterisk writes one more HANGUP after our FIN, then closes.
          socket.end('HANGUP\n');
        }
      });
    });
  }

  static async connect(port: number, options: FakeAgiClientOptions = {}): Promise<FakeAgiClient> {
    const socket = connect({ port, host: options.host ?? '127.0.0.1', allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return new FakeAgiClient(socket, options);
  }

  /** Everything our server sent, concatenated. */
  get receivedBytes(): Buffer {
    return Buffer.concat(this.#received);
  }

  get serverHasEnded(): boolean {
    return this.#serverHasEnded;
  }

  /** Writes bytes and waits until the kernel took them. */
  async write(data: string | Buffer): Promise<void> {
    await new Promise<void>((resolve, reject) => this.socket.write(data, (err) => (err ? reject(err) : resolve())));
  }

  /** Writes each chunk separately, pausing `gapMs` between them so they tend to arrive as separate reads. */
  async writeChunks(chunks: readonly Buffer[], gapMs = 0): Promise<void> {
    for (const [index, chunk] of chunks.entries()) {
      if (index > 0 && gapMs > 0) await delay(gapMs);
      await this.write(chunk);
    }
  }

  async sendEnv(env: Record<string, string> = defaultAgiEnv()): Promise<void> {
    await this.write(encodeAgiEnv(env));
  }

  /** Writes reply lines, each with its "\n", in one write. */
  async reply(...lines: string[]): Promise<void> {
    await this.write(lines.map((line) => `${line}\n`).join(''));
  }

  /** The unsolicited `HANGUP\n` notification (§2.6). */
  async sendHangup(): Promise<void> {
    await this.write('HANGUP\n');
  }

  /** The next command line our server sent (FIFO), without "\n". Not for use with actAsAsterisk(), which takes every line. */
  nextCommand(waitMs = DEFAULT_WAIT_MS): Promise<string> {
    const unread = this.#unreadCommands.shift();
    if (unread !== undefined) return Promise.resolve(unread);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#commandWaiters.splice(this.#commandWaiters.indexOf(onLine), 1);
        reject(new Error(`fake Asterisk: no command within ${waitMs} ms`));
      }, waitMs);
      const onLine = (line: string): void => {
        clearTimeout(timer);
        resolve(line);
      };
      this.#commandWaiters.push(onLine);
    });
  }

  /** Commands received and not yet taken by nextCommand(). */
  get unreadCommands(): readonly string[] {
    return this.#unreadCommands;
  }

  /** Answers every command from now on as Asterisk 22 would. */
  actAsAsterisk(behaviour: FakeAsteriskBehaviour = {}): this {
    this.#asterisk = new AsteriskEmulation(this, behaviour);
    for (const line of this.#unreadCommands.splice(0)) this.#asterisk.onCommand(line);
    return this;
  }

  /** The channel variables of the emulation. */
  get variables(): Map<string, string> {
    if (this.#asterisk === undefined) throw new Error('fake Asterisk: call actAsAsterisk() first');
    return this.#asterisk.variables;
  }

  /**
   * The caller hangs up (emulation only): dead mode from now on, and `HANGUP\n` is sent at once
   * when idle, or right after the reply of the running command (agi-session-hangup.json).
   */
  hangUpCall(): void {
    if (this.#asterisk === undefined) throw new Error('fake Asterisk: call actAsAsterisk() first');
    this.#asterisk.hangUp();
  }

  /** Closes abruptly with an RST: the "client vanished" case. */
  reset(): void {
    this.socket.resetAndDestroy();
  }

  /** Half-closes (FIN), as Asterisk does when the AGI ends on its side. */
  end(): void {
    this.socket.end();
  }

  /**
   * Plays the Asterisk side of a recorded FastAGI connection: sends its bytes (re-split by
   * `split` if given), and checks that what our server writes equals the recording byte for
   * byte. `filter` picks one session of a multi-session fixture. Rejects on the first difference.
   */
  async replay(
    fixture: Fixture,
    options: { filter?: (chunk: Fixture['chunks'][number]) => boolean; split?: (bytes: Buffer) => Buffer[]; waitMs?: number } = {},
  ): Promise<void> {
    this.#replaying = true;
    const steps: ReplayStep[] = [];
    for (const chunk of fixture.chunks) {
      if (chunk.conn !== undefined && chunk.conn !== 'agi') continue;
      if (options.filter !== undefined && !options.filter(chunk)) continue;
      if (chunk.hex !== undefined) {
        const bytes = Buffer.from(chunk.hex, 'hex');
        steps.push({ kind: chunk.dir === 'asterisk->server' ? 'send' : 'expect', bytes });
      } else if (chunk.event === 'server-end') {
        steps.push({ kind: 'expect-end' });
      } else if (chunk.event === 'eof') {
        steps.push({ kind: 'end' });
      }
    }
    let offset = 0;
    for (const step of steps) {
      if (step.kind === 'send') {
        await this.writeChunks(options.split ? options.split(step.bytes!) : [step.bytes!]);
      } else if (step.kind === 'expect') {
        const expected = step.bytes!;
        await this.#waitForBytes(offset + expected.length, options.waitMs);
        const actual = this.receivedBytes.subarray(offset, offset + expected.length);
        if (!actual.equals(expected)) {
          throw new Error(`fake Asterisk: expected ${JSON.stringify(expected.toString())}, got ${JSON.stringify(actual.toString())}`);
        }
        offset += expected.length;
      } else if (step.kind === 'expect-end') {
        await Promise.race([
          this.serverEnded,
          delay(options.waitMs ?? DEFAULT_WAIT_MS).then(() => {
            throw new Error('fake Asterisk: the server did not half-close');
          }),
        ]);
        if (this.#receivedBytes !== offset) {
          throw new Error(`fake Asterisk: unexpected bytes before FIN: ${JSON.stringify(this.receivedBytes.subarray(offset).toString())}`);
        }
      } else {
        this.socket.end();
      }
    }
  }

  async #waitForBytes(total: number, waitMs = DEFAULT_WAIT_MS): Promise<void> {
    const deadline = Date.now() + waitMs;
    while (this.#receivedBytes < total) {
      if (this.#serverHasEnded || Date.now() > deadline) {
        throw new Error(`fake Asterisk: waited for ${total} bytes, got ${JSON.stringify(this.receivedBytes.toString())}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.#byteWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  #wakeByteWaiters(): void {
    for (const wake of this.#byteWaiters.splice(0)) wake();
  }

  #onData(chunk: Buffer): void {
    this.#received.push(chunk);
    this.#receivedBytes += chunk.length;
    this.#wakeByteWaiters();
    this.#lineBuffer += this.#decoder.write(chunk);
    let newline = this.#lineBuffer.indexOf('\n');
    while (newline !== -1) {
      const line = this.#lineBuffer.slice(0, newline);
      this.#lineBuffer = this.#lineBuffer.slice(newline + 1);
      this.commands.push(line);
      if (this.#asterisk !== undefined) this.#asterisk.onCommand(line);
      else if (this.#commandWaiters.length > 0) this.#commandWaiters.shift()!(line);
      else this.#unreadCommands.push(line);
      newline = this.#lineBuffer.indexOf('\n');
    }
  }
}

/** Answers commands one at a time, in order, as res_agi.c does (§2.3, §2.5, §2.6). */
class AsteriskEmulation {
  readonly variables: Map<string, string>;
  readonly #client: FakeAgiClient;
  readonly #apps: NonNullable<FakeAsteriskBehaviour['apps']>;
  #queue: Promise<void> = Promise.resolve();
  #executing = false;
  #dead = false;
  #hangupPending = false;
  readonly #hungUp: Promise<void>;
  #resolveHungUp: () => void = () => {};

  constructor(client: FakeAgiClient, behaviour: FakeAsteriskBehaviour) {
    this.#client = client;
    this.variables = behaviour.variables ?? new Map();
    this.#apps = behaviour.apps ?? {};
    this.#hungUp = new Promise((resolve) => {
      this.#resolveHungUp = resolve;
    });
  }

  onCommand(line: string): void {
    // Asterisk reads the next line only after answering the previous one (§2.3).
    this.#queue = this.#queue.then(() => this.#run(line)).catch(() => {});
  }

  hangUp(): void {
    if (this.#dead) return;
    this.#dead = true;
    this.#resolveHungUp();
    if (this.#executing) this.#hangupPending = true;
    else void this.#client.sendHangup().catch(() => {});
  }

  async #run(line: string): Promise<void> {
    this.#executing = true;
    let reply: string[];
    try {
      reply = await this.#answer(parseAgiArgs(line));
    } finally {
      this.#executing = false;
    }
    if (this.#client.socket.destroyed) return;
    await this.#client.reply(...reply);
    if (this.#hangupPending) {
      // agi-session-hangup.json "exec": the reply comes first, HANGUP after it.
      this.#hangupPending = false;
      await this.#client.sendHangup();
    }
  }

  async #answer(argv: string[]): Promise<string[]> {
    const words = argv.map((word) => word.toUpperCase());
    const [first, second, third] = words;
    if (first === 'SET' && second === 'VARIABLE') {
      if (argv.length !== 4) return [...AGI_REPLY.setVariableUsage];
      this.variables.set(argv[2]!, argv[3]!);
      return ['200 result=1'];
    }
    if (first === 'GET' && second === 'VARIABLE') {
      const value = this.variables.get(argv[2] ?? '');
      return [value === undefined ? '200 result=0' : `200 result=1 (${value})`];
    }
    if (first === 'GET' && second === 'FULL' && third === 'VARIABLE') {
      const expanded = (argv[3] ?? '').replace(/\$\{([^}]+)\}/g, (_, name: string) => this.variables.get(name) ?? '');
      return [`200 result=1 (${expanded})`];
    }
    if (first === 'EXEC') {
      const app = Object.entries(this.#apps).find(([name]) => name.toLowerCase() === (argv[1] ?? '').toLowerCase());
      if (app === undefined) return ['200 result=-2'];
      const result = await app[1]({ options: argv[2] ?? '', hungUp: this.#hungUp });
      return [`200 result=${result}`];
    }
    if (first === 'ANSWER') return [this.#dead ? AGI_REPLY.dead : '200 result=0'];
    if (first === 'VERBOSE') return ['200 result=1'];
    if (first === 'NOOP') return ['200 result=0'];
    if (first === 'HANGUP') {
      if (this.#dead) return [AGI_REPLY.dead];
      this.hangUp();
      return ['200 result=1'];
    }
    return [AGI_REPLY.invalid];
  }
}
