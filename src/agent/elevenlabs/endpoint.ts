import { BridgeError } from '../../errors.js';
import type { Config } from '../../config/schema.js';

/**
 * Where the agent lives (protocols.md §4.1): the REST origin for the signed URL, the WebSocket
 * origin for the conversation, and the URLs built from them.
 */

/** REST origins by workspace residency (EL contract servers; protocols.md §4.1). */
export const RESIDENCY_ORIGINS = {
  default: 'https://api.elevenlabs.io',
  us: 'https://api.us.elevenlabs.io', // US-only processing
  eu: 'https://api.eu.residency.elevenlabs.io',
  in: 'https://api.in.residency.elevenlabs.io',
} as const;

export const CONVERSATION_PATH = '/v1/convai/conversation';
export const SIGNED_URL_PATH = '/v1/convai/conversation/get-signed-url'; // hyphenated, as the SDKs call it

export interface AgentOrigins {
  /** https://host[:port][/prefix], no trailing slash. */
  readonly httpOrigin: string;
  /** The same with wss:// (or ws:// for an http base URL). */
  readonly wsOrigin: string;
}

/** baseUrl (ELEVENLABS_BASE_URL) wins over residency; a path prefix in it is kept (for proxies). */
export function resolveOrigins(elevenlabs: Pick<Config['elevenlabs'], 'baseUrl' | 'residency'>): AgentOrigins {
  const base = elevenlabs.baseUrl ?? RESIDENCY_ORIGINS[elevenlabs.residency];
  const url = new URL(base);
  if (url.protocol === 'ws:') url.protocol = 'http:';
  if (url.protocol === 'wss:') url.protocol = 'https:';
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new BridgeError('CONFIG_INVALID', `elevenlabs.baseUrl must be an http(s) URL, got ${url.protocol}`);
  }
  const path = url.pathname.replace(/\/+$/, '');
  const httpOrigin = `${url.protocol}//${url.host}${path}`;
  const wsOrigin = `${url.protocol === 'https:' ? 'wss:' : 'ws:'}//${url.host}${path}`;
  return { httpOrigin, wsOrigin };
}

function agentQuery(agentId: string, environment: string | undefined): string {
  const query = new URLSearchParams({ agent_id: agentId });
  if (environment !== undefined && environment !== '') query.set('environment', environment);
  return query.toString();
}

/** The conversation URL of a public agent: {wsOrigin}/v1/convai/conversation?agent_id=…(&environment=…). */
export function publicConversationUrl(wsOrigin: string, agentId: string, environment?: string): string {
  return `${wsOrigin}${CONVERSATION_PATH}?${agentQuery(agentId, environment)}`;
}

export interface SignedUrlRequest {
  readonly httpOrigin: string;
  readonly agentId: string;
  readonly environment?: string | undefined;
  readonly apiKey: string;
  readonly timeoutMs: number;
  /** Aborts the request early, e.g. when the caller hangs up. */
  readonly signal?: AbortSignal | undefined;
  /** Injected for tests; defaults to the global fetch. */
  readonly fetch?: typeof fetch | undefined;
}

const MAX_BODY_CHARS = 200;

export function scrub(text: string, secret: string): string {
  return secret === '' ? text : text.split(secret).join('[redacted]');
}

/** A short, key-free reading of an error body such as {"detail":{"status":…,"message":…}}. */
export async function describeBody(response: Response, apiKey: string): Promise<string> {
  let text: string;
  try {
    text = await response.text();
  } catch {
    return '';
  }
  try {
    const json: unknown = JSON.parse(text);
    if (typeof json === 'object' && json !== null) {
      const detail = (json as Record<string, unknown>)['detail'];
      if (typeof detail === 'string') text = detail;
      else if (typeof detail === 'object' && detail !== null) {
        const d = detail as Record<string, unknown>;
        text = [d['status'], d['message']].filter((v) => typeof v === 'string').join(': ') || text;
      }
    }
  } catch {
    // not JSON: keep the text
  }
  text = scrub(text.replace(/\s+/g, ' ').trim(), apiKey);
  return text.length > MAX_BODY_CHARS ? `${text.slice(0, MAX_BODY_CHARS)}…` : text;
}

/**
 * GET {origin}/v1/convai/conversation/get-signed-url?agent_id=…(&environment=…) with `xi-api-key`.
 * Resolves to the signed wss:// URL, which is a secret (it carries a signature): never log it.
 * 401/403 → AGENT_AUTH_FAILED; other non-2xx or network errors → AGENT_CONNECT_FAILED; the
 * timeout → AGENT_CONNECT_TIMEOUT. No message ever contains the key.
 */
export async function getSignedUrl(request: SignedUrlRequest): Promise<string> {
  const doFetch = request.fetch ?? fetch;
  const url = `${request.httpOrigin}${SIGNED_URL_PATH}?${agentQuery(request.agentId, request.environment)}`;
  const timeout = AbortSignal.timeout(request.timeoutMs);
  const signal = request.signal === undefined ? timeout : AbortSignal.any([timeout, request.signal]);
  let response: Response;
  try {
    response = await doFetch(url, { method: 'GET', headers: { 'xi-api-key': request.apiKey, accept: 'application/json' }, signal });
  } catch (cause) {
    if (timeout.aborted) {
      throw new BridgeError('AGENT_CONNECT_TIMEOUT', `signed URL request got no answer within ${request.timeoutMs} ms`, { cause });
    }
    if (request.signal?.aborted === true) {
      throw new BridgeError('AGENT_CONNECT_FAILED', 'signed URL request aborted', { cause: request.signal.reason });
    }
    const detail = scrub(cause instanceof Error ? (cause.cause instanceof Error ? cause.cause.message : cause.message) : String(cause), request.apiKey);
    throw new BridgeError('AGENT_CONNECT_FAILED', `signed URL request failed: ${detail}`, { cause });
  }
  if (response.status === 401 || response.status === 403) {
    const body = await describeBody(response, request.apiKey);
    throw new BridgeError('AGENT_AUTH_FAILED', `ElevenLabs refused the API key for the signed URL (HTTP ${response.status}${body ? `: ${body}` : ''})`);
  }
  if (!response.ok) {
    const body = await describeBody(response, request.apiKey);
    throw new BridgeError('AGENT_CONNECT_FAILED', `signed URL request failed with HTTP ${response.status}${body ? `: ${body}` : ''}`);
  }
  let json: unknown;
  try {
    json = await response.json();
  } catch (cause) {
    if (timeout.aborted) {
      throw new BridgeError('AGENT_CONNECT_TIMEOUT', `signed URL response did not complete within ${request.timeoutMs} ms`, { cause });
    }
    throw new BridgeError('AGENT_PROTOCOL', 'signed URL response is not JSON', { cause });
  }
  const signed = typeof json === 'object' && json !== null ? (json as Record<string, unknown>)['signed_url'] : undefined;
  if (typeof signed !== 'string' || !/^wss?:\/\//.test(signed)) {
    throw new BridgeError('AGENT_PROTOCOL', 'signed URL response has no ws(s):// signed_url');
  }
  return signed; // opaque: used verbatim (protocols.md §4.1)
}
