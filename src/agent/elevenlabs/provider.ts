import type { Clock } from '../../audio/clock.js';
import type { AudioFormat } from '../../audio/format.js';
import type { Config, ElevenLabsAgentConfig } from '../../config/schema.js';
import type { Logger } from '../../log.js';
import type { AgentHandlers, AgentProvider, AgentSession, CallContext } from '../types.js';
import { resolveOrigins, type AgentOrigins } from './endpoint.js';
import { DEFAULT_MAX_UPLINK_BUFFERED_BYTES, ElevenLabsSession } from './session.js';

export interface ElevenLabsProviderOptions {
  readonly agentName: string;
  readonly agent: ElevenLabsAgentConfig;
  /** Top-level `elevenlabs:` section: baseUrl, residency, apiKey. */
  readonly elevenlabs: Config['elevenlabs'];
  /** Drives the connect deadline and the silence watchdog. */
  readonly clock: Clock;
  readonly logger: Logger;
  /** For tests; defaults to the global fetch. */
  readonly fetch?: typeof fetch | undefined;
  /** Unsent bytes on the agent socket above which caller audio is dropped; default 256 KiB. */
  readonly maxUplinkBufferedBytes?: number | undefined;
  /**
   * Formats the call layer can convert to and from; a metadata format outside them fails start()
   * with AGENT_UNSUPPORTED_FORMAT. Default: every format parseAudioFormat knows.
   */
  readonly isFormatSupported?: ((format: AudioFormat) => boolean) | undefined;
}

/**
 * Opens one ElevenLabs conversation per call (protocols.md §4). start() resolves after
 * conversation_initiation_metadata; handlers run from the first frame, so nothing is lost.
 * When `signal` aborts, start() rejects with its reason if that is a BridgeError, with
 * AGENT_CONNECT_TIMEOUT for an AbortSignal.timeout(), else AGENT_CONNECT_FAILED.
 */
export class ElevenLabsProvider implements AgentProvider {
  readonly #options: ElevenLabsProviderOptions;
  readonly #origins: AgentOrigins;

  constructor(options: ElevenLabsProviderOptions) {
    this.#options = options;
    this.#origins = resolveOrigins(options.elevenlabs);
  }

  /** Where this provider connects (no secrets): for logs and `agents check`. */
  get origins(): AgentOrigins {
    return this.#origins;
  }

  start(context: CallContext, handlers: AgentHandlers, signal: AbortSignal): Promise<AgentSession> {
    const o = this.#options;
    const session = new ElevenLabsSession({
      agentName: o.agentName,
      agent: o.agent,
      origins: this.#origins,
      apiKey: o.elevenlabs.apiKey,
      clock: o.clock,
      logger: o.logger.child({ callId: context.callId, uniqueid: context.uniqueid, agent: o.agentName, agentId: o.agent.agentId }),
      context,
      handlers,
      fetch: o.fetch,
      maxUplinkBufferedBytes: o.maxUplinkBufferedBytes ?? DEFAULT_MAX_UPLINK_BUFFERED_BYTES,
      isFormatSupported: o.isFormatSupported ?? (() => true),
    });
    return session.open(signal);
  }
}
