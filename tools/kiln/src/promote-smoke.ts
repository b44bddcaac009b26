/**
 * The smoke check `kiln promote` runs against a canary: it waits until the live gateway routes to a ready canary,
 * then sends a few HumanEval problems pinned to it (`<target>@canary`) and times them (services/eval-runner
 * smokeCheck). The endpoint is the stack's gateway; an in-cluster name (`<svc>.<ns>.svc`) is reached through the
 * Service's ClusterIP (the local cluster routes those to its node), or `--smoke-endpoint` says where it is.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { KubeConfig } from '@kubernetes/client-node';
import { requestRaw } from '@kiln/cluster';
import type { Plan, SmokeEvidence } from '@kiln/plan';

/** HumanEval as the repository carries it (data/humaneval). */
export const HUMANEVAL = fileURLToPath(new URL('../../../data/humaneval/HumanEval.jsonl.gz', import.meta.url));

export interface GatewaySmokeOptions {
  readonly kc: KubeConfig;
  /** The target stack's plan: its serving targets' latency objectives. */
  readonly plan: Plan;
  /** The gateway's `/v1` URL as the stack outputs it; `endpoint` overrides it. */
  readonly stackEndpoint?: string;
  readonly endpoint?: string;
  /** A file whose first line is an API key of the gateway. */
  readonly apiKeyFile?: string;
  readonly problems?: number;
  /** Longest wait for the canary to be routed. Default 10 minutes. */
  readonly readyTimeoutMs?: number;
  readonly log?: (line: string) => void;
}

/** `http://<svc>.<ns>.svc[.cluster.local]:<port>/…` → the same URL on the Service's ClusterIP; other URLs as they are. */
export async function reachable(kc: KubeConfig, url: string): Promise<string> {
  const u = new URL(url);
  const m = /^([a-z0-9-]+)\.([a-z0-9-]+)\.svc(\.cluster\.local)?$/.exec(u.hostname);
  if (!m) return url;
  const svc = (await requestRaw(kc, 'GET', `/api/v1/namespaces/${m[2]}/services/${m[1]}`)).body as { spec?: { clusterIP?: string } } | undefined;
  const ip = svc?.spec?.clusterIP;
  if (!ip || ip === 'None') throw new Error(`the endpoint ${url} names Service ${m[2]}/${m[1]}, which has no ClusterIP; give --smoke-endpoint`);
  u.hostname = ip;
  return u.toString().replace(/\/$/, '');
}

/** Waits until the gateway's /readyz says the canary upstream is ready. */
async function canaryRouted(base: string, timeoutMs: number, log?: (l: string) => void): Promise<void> {
  const t0 = Date.now();
  let last = '';
  let told = false;
  for (;;) {
    try {
      const r = await fetch(`${base.replace(/\/v1\/?$/, '')}/readyz`, { signal: AbortSignal.timeout(5000) });
      const body = (await r.json()) as { upstreams?: Record<string, boolean> };
      if (body.upstreams?.['canary'] === true) return;
      last = JSON.stringify(body.upstreams ?? body);
    } catch (e) {
      last = (e as Error).message;
    }
    if (!told) log?.(`waiting for the gateway to route to a ready canary (${last})`);
    told = true;
    if (Date.now() - t0 > timeoutMs) throw new Error(`the gateway at ${base} did not route to a ready canary in ${Math.round(timeoutMs / 1000)} s (last: ${last})`);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

/** The smoke check of serving target `target` of the target stack; the caller records what it returns. */
export async function gatewaySmoke(target: string, o: GatewaySmokeOptions): Promise<SmokeEvidence> {
  const t = o.plan.serving.find((s) => s.name === target);
  if (!t) throw new Error(`the target stack has no serving target ${target}`);
  const given = o.endpoint ?? o.stackEndpoint;
  if (!given) throw new Error(`serving target ${target} has no endpoint in the stack's outputs; give --smoke-endpoint`);
  const endpoint = await reachable(o.kc, given);
  await canaryRouted(endpoint, o.readyTimeoutMs ?? 600_000, o.log);
  const apiKey = o.apiKeyFile ? readFileSync(o.apiKeyFile, 'utf8').split('\n')[0]!.trim() : undefined;
  const { executorFor, Sandbox, smokeCheck } = await import('@kiln/eval-runner');
  const sandbox = await Sandbox.create({ concurrency: 1 });
  try {
    o.log?.(`smoke check: ${o.problems ?? 5} HumanEval problems through ${given} to ${target}@canary, against p50 ${t.latency.p50Ms} ms and p99 ${t.latency.p99Ms} ms`);
    return await smokeCheck({
      endpoint: endpoint.endsWith('/v1') ? endpoint : `${endpoint}/v1`,
      model: `${target}@canary`,
      ...(apiKey ? { apiKey } : {}),
      benchmark: HUMANEVAL,
      problems: o.problems ?? 5,
      objectives: { p50Ms: t.latency.p50Ms, p99Ms: t.latency.p99Ms },
      execute: executorFor(sandbox),
    });
  } finally {
    await sandbox.close();
  }
}
