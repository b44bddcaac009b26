/** Helpers for the controller's integration tests and benchmark: plans, ModelRuns and controller processes. */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadText } from '@kiln/spec';
import { compile, type Plan } from '@kiln/plan';
import { modelRun, modelRunCrd, platformObjects } from '@kiln/k8s';
import type { ModelRun } from '@kiln/cluster';
import { paths } from '@kiln/local-cluster';
import { apply, clusterKubeConfig, eventually, k, ROOT } from './helpers.ts';

const TINY = fileURLToPath(new URL('../../../../configs/tiny.yaml', import.meta.url));
const KILN = fileURLToPath(new URL('../../bin/kiln.js', import.meta.url));

/** configs/tiny.yaml's dev stack in namespace `ns` (file:// storage: no volume to bind), one run per seed. */
export function tinyPlan(ns: string, seed = 42, gates?: string): Plan {
  let text = readFileSync(TINY, 'utf8')
    .replace('namespace: kiln-tiny', `namespace: ${ns}`)
    .replace('uri: pvc://kiln-artifacts', 'uri: file:///var/lib/kiln')
    .replace('token_budget: 2M', `token_budget: 2M\n  seed: ${seed}`);
  if (gates) text = text.replace('dev: ["humaneval.pass@1 >= 0"]', `dev: ["${gates}"]`);
  const r = loadText(text, 'tiny.yaml', { stack: 'dev' });
  if (!r.spec) throw new Error(`tiny.yaml does not load: ${JSON.stringify(r.diagnostics)}`);
  return compile(r.spec);
}

/** The CRD, the PriorityClasses and the namespace's platform objects (service accounts, RBAC), as Pulumi would declare them. */
export async function preparePlatform(plan: Plan): Promise<void> {
  const crd = await apply(modelRunCrd());
  if (crd.status >= 300) throw new Error(`CRD: ${JSON.stringify(crd.body)}`);
  await eventually('the ModelRun CRD to be established', async () => {
    const r = await k('GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/modelruns.kiln.dev');
    return ((r.body as { status?: { conditions?: { type: string; status: string }[] } }).status?.conditions ?? []).some((c) => c.type === 'Established' && c.status === 'True') ? true : undefined;
  });
  const p = platformObjects(plan);
  for (const o of [...p.priorityClasses, p.namespace, ...p.serviceAccounts, ...p.roles, ...p.roleBindings]) {
    const r = await apply(o);
    if (r.status >= 300) throw new Error(`${o.kind}: ${JSON.stringify(r.body)}`);
  }
}

/** Declares the run's ModelRun; `simulate` becomes its `kiln.dev/simulate` annotation. */
export async function createRun(plan: Plan, simulate?: unknown): Promise<ModelRun> {
  const mr = modelRun(plan);
  const obj = { ...mr, metadata: { ...mr.metadata, ...(simulate ? { annotations: { 'kiln.dev/simulate': JSON.stringify(simulate) } } : {}) } };
  const r = await apply(obj, { manager: 'kiln-test' });
  if (r.status >= 300) throw new Error(`ModelRun: ${JSON.stringify(r.body)}`);
  return r.body as ModelRun;
}

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

export interface ControllerProcess {
  readonly proc: ChildProcess;
  readonly logFile: string;
  log(): string;
  /** Stops it (SIGTERM, or SIGKILL for a crash) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

let n = 0;

/** Starts `kiln controller` as its own process against the local cluster, logging to .kiln/test-logs/. */
export function startController(args: string[], name = `controller-${process.pid}-${++n}`, kubeconfig = paths(ROOT).kubeconfig): ControllerProcess {
  const dir = join(ROOT, '.kiln', 'test-logs');
  mkdirSync(dir, { recursive: true });
  const logFile = join(dir, `${name}.log`);
  const fd = openSync(logFile, 'w');
  const proc = spawn(process.execPath, [KILN, 'controller', '--dir', ROOT, '--simulate', ...args], {
    stdio: ['ignore', fd, fd],
    env: { ...process.env, KUBECONFIG: kubeconfig },
  });
  closeSync(fd);
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    proc,
    logFile,
    log: () => readFileSync(logFile, 'utf8'),
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      await exited;
    },
  };
}

/** Waits until a controller says its caches are synced (it acts from then on). */
export async function whenSynced(c: ControllerProcess, timeoutMs = 30_000): Promise<void> {
  await eventually(`controller ${c.logFile} to sync`, async () => (c.log().includes('caches synced') ? true : undefined), timeoutMs);
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
