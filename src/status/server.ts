import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from '../log.js';
import type { CallEvent } from '../call/events.js';
import type { CallSnapshot } from '../call/session.js';
import { BridgeError, describeError } from '../errors.js';

/** What the status endpoint reads; the call registry provides it. */
export interface StatusSource {
  list(): CallSnapshot[];
  /** A live call, or an ended one whose outcome is still kept. */
  get(callId: string): CallSnapshot | undefined;
  hangup(callId: string, reason: string): boolean;
}

/** Call control over AMI behind the write endpoints; each answers with an HTTP status and JSON body. */
export interface CallControlApi {
  /** POST /calls: originate; with `"wait": true` in the body, answers once the outcome is known. */
  originate(body: unknown): Promise<ApiReply>;
  /** DELETE /calls/:id?channel=1: hang up the Asterisk channel, not just the agent. */
  hangupChannel(callId: string): Promise<ApiReply>;
  /** POST /calls/:id/redirect {context, exten, priority} */
  redirect(callId: string, body: unknown): Promise<ApiReply>;
  /** POST /calls/:id/variables {NAME: value} */
  setVariables(callId: string, body: unknown): Promise<ApiReply>;
}

export interface ApiReply {
  readonly status: number;
  readonly body: unknown;
}

export interface StatusServerOptions {
  readonly host: string;
  readonly port: number;
  /** Bearer token for write endpoints; without one they are disabled. */
  readonly token: string | undefined;
  readonly logger: Logger;
  readonly source: StatusSource;
  readonly health: () => Record<string, unknown>;
  readonly metrics?: (() => Promise<{ contentType: string; body: string }>) | undefined;
  /** Present when AMI is configured. */
  readonly control?: CallControlApi | undefined;
}

/** A status client that falls this far behind is disconnected rather than buffered without bound. */
const MAX_CLIENT_BUFFERED_BYTES = 1 << 20;
const MAX_BODY_BYTES = 64 * 1024;

/**
 * HTTP + WebSocket status: GET /healthz, /calls, /calls/:id, /metrics; DELETE /calls/:id and
 * POST /calls with a bearer token; WebSocket /status streams every call event as JSON.
 */
export class StatusServer {
  readonly #o: StatusServerOptions;
  readonly #log: Logger;
  readonly #http: Server;
  readonly #wss: WebSocketServer;
  readonly #clients = new Set<WebSocket>();
  #closed = false;

  constructor(options: StatusServerOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'status' });
    this.#http = createServer((req, res) => {
      this.#route(req, res).catch((err: unknown) => this.#fail(res, err));
    });
    this.#http.on('clientError', (err, socket) => {
      this.#log.debug({ err: describeError(err) }, 'bad HTTP request');
      socket.destroy();
    });
    this.#wss = new WebSocketServer({ server: this.#http, path: '/status', maxPayload: 4096 });
    this.#wss.on('connection', (ws) => this.#onClient(ws));
    this.#wss.on('error', (err) => this.#log.warn({ err: describeError(err) }, 'status WebSocket server error'));
  }

  async listen(): Promise<{ host: string; port: number }> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.#http.once('error', onError);
      this.#http.listen(this.#o.port, this.#o.host, () => {
        this.#http.off('error', onError);
        resolve();
      });
    });
    const address = this.#http.address() as AddressInfo;
    return { host: address.address, port: address.port };
  }

  /** Sends one call event to every status client. */
  publish(event: CallEvent): void {
    if (this.#clients.size === 0) return;
    const text = JSON.stringify({ type: 'event', event });
    for (const ws of this.#clients) this.#send(ws, text);
  }

  /** Sends a non-call event (AMI state, originate results). */
  publishRaw(type: string, payload: Record<string, unknown>): void {
    if (this.#clients.size === 0) return;
    const text = JSON.stringify({ type, ...payload });
    for (const ws of this.#clients) this.#send(ws, text);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const ws of this.#clients) ws.terminate();
    this.#clients.clear();
    this.#wss.close();
    this.#http.closeAllConnections?.();
    await new Promise<void>((resolve) => this.#http.close(() => resolve()));
  }

  #onClient(ws: WebSocket): void {
    this.#clients.add(ws);
    ws.on('error', (err) => this.#log.debug({ err: describeError(err) }, 'status client error'));
    ws.on('close', () => this.#clients.delete(ws));
    // Status clients only listen; anything they send is ignored.
    this.#send(ws, JSON.stringify({ type: 'hello', calls: this.#o.source.list(), health: this.#o.health() }));
  }

  #send(ws: WebSocket, text: string): void {
    if (ws.bufferedAmount > MAX_CLIENT_BUFFERED_BYTES) {
      this.#log.warn('status client too slow: disconnected');
      this.#clients.delete(ws);
      ws.terminate();
      return;
    }
    ws.send(text);
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://status.local');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    const callMatch = /^\/calls\/([0-9A-Za-z-]{1,64})$/.exec(path);

    if (method === 'GET' && path === '/healthz') return json(res, 200, this.#o.health());
    if (method === 'GET' && path === '/calls') return json(res, 200, { calls: this.#o.source.list() });
    if (method === 'GET' && callMatch) {
      const call = this.#o.source.get(callMatch[1]!);
      return call ? json(res, 200, call) : json(res, 404, { error: 'CALL_NOT_FOUND' });
    }
    if (method === 'GET' && path === '/metrics' && this.#o.metrics) {
      const metrics = await this.#o.metrics();
      res.writeHead(200, { 'content-type': metrics.contentType });
      res.end(metrics.body);
      return;
    }
    const actionMatch = /^\/calls\/([0-9A-Za-z-]{1,64})\/(redirect|variables)$/.exec(path);
    if (method === 'DELETE' && callMatch) {
      this.#authorize(req);
      const callId = callMatch[1]!;
      if (url.searchParams.get('channel') === '1') return reply(res, await this.#control().hangupChannel(callId));
      const ended = this.#o.source.hangup(callId, 'hung up through the status API');
      return ended ? json(res, 200, { ok: true }) : json(res, 404, { error: 'CALL_NOT_FOUND' });
    }
    if (method === 'POST' && path === '/calls') {
      this.#authorize(req);
      const control = this.#control();
      return reply(res, await control.originate(await readJson(req)));
    }
    if (method === 'POST' && actionMatch) {
      this.#authorize(req);
      const control = this.#control();
      const body = await readJson(req);
      const callId = actionMatch[1]!;
      return reply(res, actionMatch[2] === 'redirect' ? await control.redirect(callId, body) : await control.setVariables(callId, body));
    }
    json(res, 404, { error: 'NOT_FOUND', message: `${method} ${path} is not an endpoint` });
  }

  #control(): CallControlApi {
    if (!this.#o.control) throw new BridgeError('AMI_NOT_CONFIGURED', 'this needs AMI: add an ami: section to the config');
    return this.#o.control;
  }

  #authorize(req: IncomingMessage): void {
    const token = this.#o.token;
    if (token === undefined) throw new BridgeError('UNAUTHORIZED', 'write endpoints are disabled: set AI_CALL_STATUS_TOKEN');
    const header = req.headers.authorization ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
    const expected = Buffer.from(token);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new BridgeError('UNAUTHORIZED', 'missing or wrong bearer token');
    }
  }

  #fail(res: ServerResponse, err: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof BridgeError) {
      json(res, HTTP_STATUS[err.code] ?? (err.code.startsWith('AMI_') ? 502 : 500), { error: err.code, message: err.message });
      return;
    }
    this.#log.error({ err: describeError(err) }, 'status request failed');
    json(res, 500, { error: 'INTERNAL', message: 'internal error' });
  }
}

/** How coded errors map onto HTTP: refusals are 4xx, an unreachable Asterisk is 502/503. */
const HTTP_STATUS: Partial<Record<BridgeError['code'], number>> = {
  UNAUTHORIZED: 401,
  INPUT_INVALID: 400,
  CALL_NOT_FOUND: 404,
  CALL_BUSY: 429,
  CALL_DRAINING: 503,
  AMI_NOT_CONFIGURED: 503,
  AMI_DISCONNECTED: 503,
  AMI_ACTION_FAILED: 502,
  AMI_ACTION_TIMEOUT: 504,
};

function reply(res: ServerResponse, result: ApiReply): void {
  json(res, result.status, result.body);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new BridgeError('INPUT_INVALID', `request body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch (cause) {
    throw new BridgeError('INPUT_INVALID', 'request body is not valid JSON', { cause });
  }
}
