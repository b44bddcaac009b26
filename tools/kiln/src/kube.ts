/** The cluster that `kiln status`, `kiln logs` and `kiln controller` talk to, and what to say when talking fails. */
import { isAbsolute, resolve } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { kubeConfigFrom } from '@kiln/cluster';
import { isLocalKubeconfig, kubeconfigPath } from '@kiln/local-cluster';
import { EXIT, UsageError, type Io } from './io.ts';

/** $KUBECONFIG's cluster, else ./.kiln's (or --dir's) local one, else ~/.kube/config's, else the pod's service account. */
export function kubeconfig(values: Record<string, unknown>): { kc: KubeConfig; path: string; local: boolean } {
  const dir = values.dir ? resolve(String(values.dir)) : process.cwd();
  const path = kubeconfigPath(dir);
  // Inside a pod (the kiln-controller Deployment): the service account's token and CA.
  if (!path && process.env.KUBERNETES_SERVICE_HOST) return { kc: kubeConfigFrom(), path: 'in-cluster service account', local: false };
  if (!path) throw new UsageError('no cluster: set KUBECONFIG, or start the local one with `kiln cluster up`');
  const abs = isAbsolute(path) ? path : resolve(path);
  return { kc: kubeConfigFrom(abs), path: abs, local: isLocalKubeconfig(abs) };
}

/** A whole-number option, or undefined when it is not given. */
export const int = (v: unknown, name: string, min = 0): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} takes a whole number ≥ ${min}, not "${String(v)}"`);
  return n;
};

/** What went wrong talking to the cluster, said so a person can act on it; undefined for anything else. */
export function clusterProblem(e: unknown, kc: KubeConfig): string | undefined {
  const server = kc.getCurrentCluster()?.server ?? 'the cluster';
  const code = (e as { code?: number }).code;
  if (code === 401 || code === 403) return `${server} refused the request (HTTP ${code}): the kubeconfig's user may not read ModelRuns, pods or logs here`;
  if (code === 404) return `${server} has no ModelRuns API: the ModelRun CRD is not installed (pulumi up of a stack installs it; see npm run demo)`;
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  if ((e as Error)?.message === 'fetch failed' || cause?.code) return `cannot reach ${server} (${cause?.code ?? cause?.message ?? 'no answer'}): is it running? For the local cluster: kiln cluster status`;
  return undefined;
}

/** Runs `fn`; a failure to talk to the cluster becomes a clear message and exit 1. */
export async function withCluster(name: string, kc: KubeConfig, io: Io, fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (e) {
    const problem = clusterProblem(e, kc);
    if (!problem) throw e;
    io.err(`kiln ${name}: ${problem}`);
    return EXIT.invalid;
  }
}
