/**
 * The controller's integration tests' own helpers: reading a run and its Jobs back, waiting for a phase, a
 * service account's kubeconfig. Plans, platform objects, runs and controller processes come from
 * @kiln/local-cluster (the benchmark uses them too).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Plan } from '@kiln/plan';
import { modelRun } from '@kiln/k8s';
import type { ModelRun } from '@kiln/cluster';
import { paths } from '@kiln/local-cluster';
import { clusterKubeConfig, eventually, k, ROOT } from './helpers.ts';

export const runPath = (plan: Plan) => `/apis/kiln.dev/v1alpha1/namespaces/${plan.namespace}/modelruns/${modelRun(plan).metadata.name}`;

export async function getRun(plan: Plan): Promise<ModelRun> {
  const r = await k('GET', runPath(plan));
  if (r.status !== 200) throw new Error(`GET ModelRun: ${r.status}`);
  return r.body as ModelRun;
}

/** Waits until the run's phase is one of `phases`; fails with its last status otherwise. */
export async function waitPhase(plan: Plan, phases: string[], timeoutMs = 90_000): Promise<ModelRun> {
  let last: ModelRun | undefined;
  try {
    return await eventually(
      `run ${plan.runId} to reach ${phases.join('|')}`,
      async () => {
        last = await getRun(plan);
        return phases.includes(last.status?.phase ?? '') ? last : undefined;
      },
      timeoutMs,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}; last status: ${JSON.stringify(last?.status?.stages?.map((s) => [s.name, s.phase, s.attempts, s.message]))}`);
  }
}

export interface JobInfo {
  metadata: { name: string; labels: Record<string, string>; creationTimestamp: string; ownerReferences?: { kind: string; name: string; uid: string; controller?: boolean }[] };
  spec: { suspend?: boolean };
  status?: { completionTime?: string; conditions?: { type: string; status: string }[] };
}

export async function jobsOf(plan: Plan): Promise<JobInfo[]> {
  const r = await k('GET', `/apis/batch/v1/namespaces/${plan.namespace}/jobs?labelSelector=kiln.dev%2Frun-id%3D${plan.runId}`);
  return (r.body as { items: JobInfo[] }).items;
}

/** A kubeconfig that acts as a namespace's service account (a short-lived token from the TokenRequest API). */
export async function serviceAccountKubeconfig(ns: string, sa: string): Promise<string> {
  const r = await k('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 3600 } });
  if (r.status !== 201) throw new Error(`TokenRequest: ${r.status} ${JSON.stringify(r.body)}`);
  const token = (r.body as { status: { token: string } }).status.token;
  const server = clusterKubeConfig().getCurrentCluster()!.server;
  const ca = readFileSync(join(paths(ROOT).pki, 'ca.crt')).toString('base64');
  const file = join(ROOT, '.kiln', 'test-logs', `${ns}-${sa}.kubeconfig`);
  mkdirSync(join(ROOT, '.kiln', 'test-logs'), { recursive: true });
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'local', cluster: { server, 'certificate-authority-data': ca } }],
    users: [{ name: sa, user: { token } }],
    contexts: [{ name: sa, context: { cluster: 'local', user: sa, namespace: ns } }],
    'current-context': sa,
  };
  writeFileSync(file, JSON.stringify(config), { mode: 0o600 });
  return file;
}
