import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { CallEvent } from '../call/events.js';

/**
 * Prometheus metrics built from call events. Default process metrics include event-loop lag,
 * which is what threatens 20 ms pacing first.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly #calls = new Counter({ name: 'aicall_calls_total', help: 'Calls that ended, by agent and result', labelNames: ['agent', 'result'] as const, registers: [this.registry] });
  readonly #live = new Gauge({ name: 'aicall_calls_live', help: 'Calls currently known (pending, live or draining)', registers: [this.registry] });
  readonly #agentConnect = new Histogram({ name: 'aicall_agent_connect_seconds', help: 'Time to open an agent session', buckets: [0.005, 0.05, 0.1, 0.25, 0.5, 1, 2, 5], registers: [this.registry] });
  readonly #turn = new Histogram({ name: 'aicall_turn_latency_seconds', help: 'Caller stops speaking to first agent audio frame out', buckets: [0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5], registers: [this.registry] });
  readonly #greeting = new Histogram({ name: 'aicall_greeting_seconds', help: 'Media start to first agent audio frame out', buckets: [0.02, 0.04, 0.1, 0.25, 0.5, 1, 2], registers: [this.registry] });
  readonly #interruptions = new Counter({ name: 'aicall_interruptions_total', help: 'Barge-ins that flushed agent audio', registers: [this.registry] });
  readonly #agentOf = new Map<string, string>();

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'aicall_' });
  }

  observe(event: CallEvent): void {
    switch (event.type) {
      case 'call.started':
        this.#agentOf.set(event.callId, event.agent);
        this.#live.inc();
        break;
      case 'agent.ready':
        this.#agentConnect.observe(event.connectMs / 1000);
        break;
      case 'turn':
        this.#turn.observe(event.latencyMs / 1000);
        break;
      case 'greeting':
        this.#greeting.observe(event.msAfterMedia / 1000);
        break;
      case 'interruption':
        this.#interruptions.inc();
        break;
      case 'call.ended':
        this.#calls.inc({ agent: this.#agentOf.get(event.callId) ?? 'unknown', result: event.outcome.result });
        this.#agentOf.delete(event.callId);
        this.#live.dec();
        break;
      default:
        break;
    }
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
