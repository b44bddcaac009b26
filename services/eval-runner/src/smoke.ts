/**
 * The smoke check of a canary rollout (`kiln promote`): a few HumanEval problems sent through the live endpoint to
 * one upstream (`<model>@canary`), their completions run in the sandbox, and every request timed end to end. It
 * passes when no request failed, enough completions passed their tests, and the measured p50 and p99 latencies
 * are within the serving target's objectives.
 */
import { createClient, EndpointError, type CompletionClient, type GenerateRequest } from './client.ts';
import { evaluate, type Execute } from './runner.ts';

/** What the check found (the shape of @kiln/plan's SmokeEvidence, which a promotion records). */
export interface SmokeEvidence {
  readonly passed: boolean;
  readonly problems: number;
  readonly passedProblems: number;
  readonly failedRequests: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly objectives: { readonly p50Ms: number; readonly p99Ms: number };
  readonly reasons: readonly string[];
}

export interface SmokeOptions {
  /** The endpoint's OpenAI API root (the gateway's `…/v1`). */
  readonly endpoint: string;
  /** The model name to ask for: `<target>@canary` pins the canary upstream. */
  readonly model: string;
  /** The API key, sent as a bearer token; never logged. */
  readonly apiKey?: string;
  /** The HumanEval file (JSON Lines). */
  readonly benchmark: string;
  /** How many problems, from the first. Default 5. */
  readonly problems?: number;
  /** Problems whose completion must pass its tests. Default 0: the check is about serving, the gates were about quality. */
  readonly minPassed?: number;
  readonly maxNewTokens?: number;
  readonly objectives: { readonly p50Ms: number; readonly p99Ms: number };
  readonly execute: Execute;
  /** Per-request limit. Default 60 s. */
  readonly timeoutMs?: number;
}

/** The nearest-rank percentile of `xs` (0 < p ≤ 100); 0 for none. */
export function percentile(xs: readonly number[], p: number): number {
  if (!xs.length) return 0;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** A client that times every call and counts the failed ones; it never retries (a failed request fails the check). */
class TimedClient implements CompletionClient {
  readonly latenciesMs: number[] = [];
  failed = 0;
  lastError = '';
  private readonly inner: CompletionClient;
  constructor(inner: CompletionClient) {
    this.inner = inner;
  }
  async generate(req: GenerateRequest): Promise<string[]> {
    const t0 = performance.now();
    try {
      const out = await this.inner.generate(req);
      this.latenciesMs.push(performance.now() - t0);
      return out;
    } catch (e) {
      this.failed++;
      this.lastError = e instanceof EndpointError ? e.message : String(e);
      throw e;
    }
  }
}

export async function smokeCheck(o: SmokeOptions): Promise<SmokeEvidence> {
  const n = o.problems ?? 5;
  const keyEnv = 'KILN_SMOKE_API_KEY';
  const client = new TimedClient(
    createClient({
      kind: 'openai',
      url: o.endpoint,
      model: o.model,
      maxRetries: 0,
      maxConcurrency: 1,
      timeoutMs: o.timeoutMs ?? 60_000,
      ...(o.apiKey !== undefined ? { apiKeyEnv: keyEnv, env: { [keyEnv]: o.apiKey } } : {}),
    }),
  );
  const reasons: string[] = [];
  let passedProblems = 0;
  try {
    const r = await evaluate({
      suite: { name: 'smoke', benchmark: 'humaneval', samples: 1, temperature: 0, top_p: 1, max_new_tokens: o.maxNewTokens ?? 64, k: [1], timeout_seconds: 10 },
      benchmark: o.benchmark,
      client,
      execute: o.execute,
      limit: n,
      model: o.model,
    });
    passedProblems = r.results.filter((x) => x.status === 'passed').length;
  } catch (e) {
    if (!client.failed) throw e;
  }
  if (client.failed) reasons.push(`${client.failed} request(s) failed: ${client.lastError}`);
  const p50 = Math.round(percentile(client.latenciesMs, 50));
  const p99 = Math.round(percentile(client.latenciesMs, 99));
  if (client.latenciesMs.length && p50 > o.objectives.p50Ms) reasons.push(`p50 latency ${p50} ms is over the objective of ${o.objectives.p50Ms} ms`);
  if (client.latenciesMs.length && p99 > o.objectives.p99Ms) reasons.push(`p99 latency ${p99} ms is over the objective of ${o.objectives.p99Ms} ms`);
  const min = o.minPassed ?? 0;
  if (passedProblems < min) reasons.push(`${passedProblems} of ${n} problems passed; the check needs ${min}`);
  return {
    passed: reasons.length === 0,
    problems: n,
    passedProblems,
    failedRequests: client.failed,
    p50Ms: p50,
    p99Ms: p99,
    objectives: { p50Ms: o.objectives.p50Ms, p99Ms: o.objectives.p99Ms },
    reasons,
  };
}
