/** The gateway's Prometheus metrics (prom-client), in a registry of its own so several gateways can share a process. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly requestDuration = new Histogram({
    name: 'kiln_gateway_request_duration_seconds',
    help: 'Time from a request arriving to its response ending, by route and HTTP status.',
    labelNames: ['route', 'status'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly timeToFirstToken = new Histogram({
    name: 'kiln_gateway_time_to_first_token_seconds',
    help: 'Streaming completions: time from the request arriving to its first text sent, by upstream.',
    labelNames: ['upstream'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly promptTokens = new Counter({ name: 'kiln_gateway_prompt_tokens_total', help: 'Prompt tokens sent upstream (as the upstream counted them), by upstream.', labelNames: ['upstream'] as const, registers: [this.registry] });
  readonly completionTokens = new Counter({ name: 'kiln_gateway_completion_tokens_total', help: 'Completion tokens returned, by upstream.', labelNames: ['upstream'] as const, registers: [this.registry] });
  readonly errors = new Counter({ name: 'kiln_gateway_errors_total', help: 'Error responses, by OpenAI error code.', labelNames: ['code'] as const, registers: [this.registry] });
  readonly upstreamRequests = new Counter({ name: 'kiln_gateway_upstream_requests_total', help: 'Completion requests routed to each upstream, by outcome (ok, rejected, failed, timeout, aborted, connect).', labelNames: ['upstream', 'outcome'] as const, registers: [this.registry] });
  readonly upstreamReady = new Gauge({ name: 'kiln_gateway_upstream_ready', help: '1 when the upstream answered its last readiness probe as ready, else 0.', labelNames: ['upstream'] as const, registers: [this.registry] });
  readonly keyReloads = new Counter({ name: 'kiln_gateway_api_key_reloads_total', help: 'Times the API key file was (re)loaded with a changed set of keys.', registers: [this.registry] });
  readonly feedback = new Counter({ name: 'kiln_gateway_feedback_total', help: 'Feedback records, by outcome and whether they were duplicates.', labelNames: ['outcome', 'duplicate'] as const, registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'kiln_gateway_' });
  }
}
