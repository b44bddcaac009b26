/**
 * ModelRuns on the local cluster without Pulumi: a plan for it, the platform objects Pulumi would declare,
 * a run, and a controller process with the local cluster's simulation. The integration tests and
 * bench/controller.ts drive the cluster through these.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { applyObject, readObject, type ModelRun } from '@kiln/cluster';
import { modelRun, modelRunCrd, platformObjects } from '@kiln/k8s';
import { compile, type Plan } from '@kiln/plan';
import { loadText } from '@kiln/spec';
import { paths } from './paths.ts';
import { clusterKubeConfig } from './pki.ts';
import { SIMULATE_ANNOTATION, type Simulation } from './simulation.ts';

/** The directory holding the repository's local cluster (`.kiln/`): the repository root, unless $KILN_ROOT names another. */
export const CLUSTER_ROOT = process.env.KILN_ROOT ?? fileURLToPath(new URL('../../../', import.meta.url));

const TINY = fileURLToPath(new URL('../../../configs/tiny.yaml', import.meta.url));
// Started as a process, never imported: the local cluster does not depend on the CLI or the controller.
const KILN = fileURLToPath(new URL('../../kiln/bin/kiln.js', import.meta.url));

/** Polls `check` every 250 ms until it returns true; fails with what it last threw after `timeoutMs`. */
async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const t0 = Date.now();
  let last: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * configs/tiny.yaml's dev stack in namespace `ns`, one run per seed, with file:// storage (the local cluster
 * binds no volume for it); `gates` replaces the dev stack's gate expression.
 */
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

/** Applies the ModelRun CRD (and waits until it is established), the PriorityClasses and the plan's namespace objects, as Pulumi would. */
export async function preparePlatform(plan: Plan, root = CLUSTER_ROOT): Promise<void> {
  const kc = await clusterKubeConfig(root);
  const crd = await applyObject(kc, modelRunCrd());
  await until(
    'the ModelRun CRD to be established',
    async () => {
      const o = await readObject<{ apiVersion: string; kind: string; status?: { conditions?: { type: string; status: string }[] } }>(kc, { apiVersion: crd.apiVersion!, kind: crd.kind!, name: crd.metadata!.name! });
      return (o?.status?.conditions ?? []).some((c) => c.type === 'Established' && c.status === 'True');
    },
    60_000,
  );
  const p = platformObjects(plan);
  for (const o of [...p.priorityClasses, p.namespace, ...p.serviceAccounts, ...p.roles, ...p.roleBindings]) await applyObject(kc, o);
}

/** Declares the plan's ModelRun (field manager `kiln-test`); `simulate` becomes its `kiln.dev/simulate` annotation. */
export async function createRun(plan: Plan, simulate?: Simulation, root = CLUSTER_ROOT): Promise<ModelRun> {
  const mr = modelRun(plan);
  const obj = { ...mr, metadata: { ...mr.metadata, ...(simulate ? { annotations: { [SIMULATE_ANNOTATION]: JSON.stringify(simulate) } } : {}) } };
  return (await applyObject(await clusterKubeConfig(root), obj, { manager: 'kiln-test' })) as ModelRun;
}

/** A controller started by `startController`. */
export interface ControllerProcess {
  readonly proc: ChildProcess;
  /** Where its stdout and stderr go. */
  readonly logFile: string;
  /** Its log so far. */
  log(): string;
  /** Stops it (SIGTERM, or SIGKILL for a crash) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface StartControllerOptions {
  /** Names its log file `<root>/.kiln/test-logs/<name>.log`; default `controller-<pid>-<n>`. */
  readonly name?: string;
  /** The kubeconfig it acts with; default the local cluster's admin kubeconfig. */
  readonly kubeconfig?: string;
  /** The directory holding the local cluster; default CLUSTER_ROOT. */
  readonly root?: string;
}

let started = 0;

/**
 * Starts `kiln controller --simulate <args>` as its own process against the local cluster: the controller with
 * this package's simulation hooks, as a person runs it here. `args` are its flags (`--namespace`, `--workers`,
 * `--sim-duration-ms`, …).
 */
export function startController(args: readonly string[], opts: StartControllerOptions = {}): ControllerProcess {
  const root = opts.root ?? CLUSTER_ROOT;
  const dir = join(paths(root).home, 'test-logs');
  mkdirSync(dir, { recursive: true });
  const logFile = join(dir, `${opts.name ?? `controller-${process.pid}-${++started}`}.log`);
  const fd = openSync(logFile, 'w');
  const proc = spawn(process.execPath, [KILN, 'controller', '--dir', root, '--simulate', ...args], {
    stdio: ['ignore', fd, fd],
    env: { ...process.env, KUBECONFIG: opts.kubeconfig ?? paths(root).kubeconfig },
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
  await until(`controller ${c.logFile} to sync`, () => c.log().includes('caches synced'), timeoutMs);
}
