/**
 * The `local` stack of configs/tiny.yaml run for real on the local cluster's execution node (kiln-local-0),
 * with the controller in-process and no simulation: a whole run succeeds and the artifacts its status names
 * exist with those digests; and a stage given a config it cannot use fails the run with the worker's own
 * terminal exit code and message. The whole run also meets two faults while it trains: kill -9 of the node's
 * agent (the restarted agent adopts the trainer: no pod or process starts twice) and the deletion of the running
 * train pod (the controller's retry resumes from the trainer's real checkpoint). Each test uses a namespace of its
 * own, so it never meets the demo's run.
 *
 * The full run takes minutes on 2 cores (KILN_LOCAL_RUN=skip leaves it out where the machine is busy).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyObject, findRun, listRuns, readPodLog, type ModelRun } from '@kiln/cluster';
import { jobName, platformObjects } from '@kiln/k8s';
import { compile, type Plan } from '@kiln/plan';
import { loadText } from '@kiln/spec';
import { createRun, DEFAULTS, paths, preparePlatform, pulumiOnLocalCluster, runningPid, up } from '@kiln/local-cluster';
import { clusterKubeConfig, eventually, k, ROOT, uniq } from './helpers.ts';
import { gatewayUrl, gitOpsRepo, kiln, stableTriton, traffic, type GitOpsRepo, type KilnResult } from './promotion-flow.ts';

const TINY = fileURLToPath(new URL('../../../../configs/tiny.yaml', import.meta.url));
const TERMINAL_EXIT = 2;

/** The local stack's plan in namespace `ns`, with `edit` applied to the spec's text first. */
function localPlan(ns: string, edit: (text: string) => string = (t) => t): Plan {
  const r = loadText(edit(readFileSync(TINY, 'utf8').replace('namespace: kiln-tiny', `namespace: ${ns}`)), 'tiny.yaml', { stack: 'local' });
  if (!r.spec) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
  return compile(r.spec);
}

const namespaces: string[] = [];
/** The full run's plan and ModelRun: the model the promotion tests below serve. */
let trained: { plan: Plan; run: ModelRun } | undefined;
afterAll(async () => {
  for (const ns of namespaces) await k('DELETE', `/api/v1/namespaces/${ns}`);
});

/** Namespace, service accounts and the artifacts claim of the plan; its ModelRun; a controller here until the run ends. */
async function runToEnd(plan: Plan, timeoutMs: number, during?: (run: ModelRun) => Promise<void>): Promise<ModelRun> {
  if (!namespaces.includes(plan.namespace)) namespaces.push(plan.namespace);
  await preparePlatform(plan, ROOT);
  const kc = clusterKubeConfig();
  const pvc = platformObjects(plan).pvc;
  if (pvc) {
    await applyObject(kc, pvc);
    for (let i = 0; i < 60; i++) {
      const c = (await k('GET', `/api/v1/namespaces/${plan.namespace}/persistentvolumeclaims/${pvc.metadata!.name}`)).body as { status?: { phase?: string } };
      if (c.status?.phase === 'Bound') break;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  // As `npm run demo` does: the Python standard library linked where the spec's source names it, and the eval
  // sandbox's folders owned by its user (a claim shared by pods of several users).
  const { ensureEvalFolders, linkStdlib } = await import('../../src/commands/demo/provision.ts');
  linkStdlib();
  await ensureEvalFolders(kc, plan);
  await createRun(plan, undefined, ROOT);
  const { Controller } = await import('@kiln/controller');
  const ctl = new Controller({ kubeConfig: kc, namespace: plan.namespace, progressEveryMs: 5000, log: () => {} });
  await ctl.start();
  const t0 = Date.now();
  try {
    for (;;) {
      const found = findRun(await listRuns(kc, plan.namespace), plan.runId);
      if (!('error' in found) && (found.status?.phase === 'Succeeded' || found.status?.phase === 'Failed')) return found;
      if (!('error' in found) && during) await during(found);
      if (Date.now() - t0 > timeoutMs) throw new Error(`run ${plan.runId} did not end in ${timeoutMs / 1000} s: ${JSON.stringify('error' in found ? found : found.status?.stages?.map((s) => [s.name, s.phase, s.message]))}`);
      await new Promise((r) => setTimeout(r, 2000));
    }
  } finally {
    await ctl.stop();
  }
}

/** The host directory behind a pvc:// URI of the local cluster: the local volume its claim is bound to. */
async function hostPath(plan: Plan, uri: string): Promise<string> {
  const claim = /^pvc:\/\/([^/]+)\/?(.*)$/.exec(uri)!;
  const pvc = (await k('GET', `/api/v1/namespaces/${plan.namespace}/persistentvolumeclaims/${claim[1]}`)).body as { spec: { volumeName: string } };
  const pv = (await k('GET', `/api/v1/persistentvolumes/${pvc.spec.volumeName}`)).body as { spec: { hostPath?: { path: string }; local?: { path: string } } };
  return join(pv.spec.hostPath?.path ?? pv.spec.local?.path ?? join(paths(ROOT).cluster, 'volumes'), claim[2]!);
}

/** sha256 of a file as the stage contract spells digests: `sha256:<hex>`. */
const digestOf = (path: string): string => `sha256:${createHash('sha256').update(readFileSync(path)).digest('hex')}`;

interface PodLite {
  readonly metadata: { readonly name: string; readonly uid: string; readonly labels?: Record<string, string>; readonly deletionTimestamp?: string };
  readonly status?: { readonly phase?: string; readonly containerStatuses?: { readonly restartCount: number; readonly containerID?: string; readonly state?: { readonly running?: unknown } }[] };
}

/** The run's train pods, oldest first. */
async function trainPods(plan: Plan): Promise<PodLite[]> {
  const r = (await k('GET', `/api/v1/namespaces/${plan.namespace}/pods?labelSelector=${encodeURIComponent(`kiln.dev/run-id=${plan.runId},kiln.dev/stage=train`)}`)).body as { items: PodLite[] };
  return r.items;
}

/**
 * The two faults the full run meets while it trains, each once: (1) as soon as the trainer runs, kill -9 of the
 * node's agent and its restart by `up()`, which must adopt the running trainer (same pod, same container, no
 * restart); (2) once the trainer has committed a checkpoint, the deletion of its pod, which the controller's
 * next attempt must resume from.
 */
function trainingFaults(plan: Plan) {
  const seen = { killedAgent: false, adopted: undefined as undefined | { pod: string; containerID?: string }, deletedPod: undefined as string | undefined };
  const during = async (run: ModelRun) => {
    const train = run.status?.stages.find((s) => s.kind === 'train');
    if (train?.phase !== 'Running') return;
    const running = (await trainPods(plan)).filter((p) => p.status?.containerStatuses?.[0]?.state?.running && !p.metadata.deletionTimestamp);
    if (!seen.killedAgent && running.length === 1 && (train.progress?.done ?? 0) > 0) {
      const before = running[0]!;
      const pid = runningPid(paths(ROOT), 'local-node');
      expect(pid).toBeDefined();
      process.kill(pid!, 'SIGKILL');
      for (let i = 0; i < 100 && runningPid(paths(ROOT), 'local-node') !== undefined; i++) await new Promise((r) => setTimeout(r, 100));
      const again = await up({ root: ROOT, ...DEFAULTS }, () => {});
      expect(again.started).toEqual(['local-node']);
      seen.killedAgent = true;
      const after = (await trainPods(plan)).find((p) => p.metadata.uid === before.metadata.uid);
      expect(after?.status?.containerStatuses?.[0]?.restartCount).toBe(0);
      seen.adopted = { pod: before.metadata.name, ...(before.status?.containerStatuses?.[0]?.containerID ? { containerID: before.status.containerStatuses[0].containerID } : {}) };
      return;
    }
    if (seen.killedAgent && !seen.deletedPod && running.length === 1 && existsSync(join(await hostPath(plan, plan.stages.find((s) => s.kind === 'train')!.outputs[0]!), 'latest'))) {
      seen.deletedPod = running[0]!.metadata.name;
      expect((await k('DELETE', `/api/v1/namespaces/${plan.namespace}/pods/${seen.deletedPod}`)).status).toBeLessThan(300);
    }
  };
  return { seen, during };
}

describe('the local stack, for real on the local node', () => {
  it('GIVEN a local source that does not exist WHEN the run starts THEN data-prep exits with its terminal code and the run fails with its message', async () => {
    const plan = localPlan(uniq('kiln-lr-bad'), (t) => t.replace('path: .kiln/corpora/python-stdlib', 'path: /nonexistent/kiln-source'));
    const run = await runToEnd(plan, 300_000);
    expect(run.status?.phase).toBe('Failed');
    const prep = run.status!.stages.find((s) => s.name === 'data-prep')!;
    expect(prep.phase).toBe('Failed');
    expect(prep.attempts).toBe(1);
    expect(`${prep.message} ${run.status!.message}`).toContain('/nonexistent/kiln-source does not exist');
    // Not retried: the worker's own terminal exit code, in its pod's status as the local node reported it.
    const pods = (await k('GET', `/api/v1/namespaces/${plan.namespace}/pods`)).body as { items: { metadata: { name: string }; status?: { containerStatuses?: { state?: { terminated?: { exitCode: number } } }[] } }[] };
    const codes = pods.items.filter((p) => p.metadata.name.includes('data-prep')).map((p) => p.status?.containerStatuses?.[0]?.state?.terminated?.exitCode);
    expect(codes).toContain(TERMINAL_EXIT);
    expect(run.status!.stages.filter((s) => s.name !== 'data-prep').every((s) => s.phase === 'Pending')).toBe(true);
  }, 330_000);

  it.skipIf(process.env.KILN_LOCAL_RUN === 'skip')('GIVEN the local stack WHEN it runs THEN every stage succeeds, with measured metrics, and each artifact its status names exists with that digest', async () => {
    const plan = localPlan(uniq('kiln-lr'));
    const faults = trainingFaults(plan);
    const run = await runToEnd(plan, 1_500_000, faults.during);
    trained = { plan, run };
    expect({ phase: run.status?.phase, message: run.status?.message }).toEqual({ phase: 'Succeeded', message: run.status?.message });
    const by = Object.fromEntries(run.status!.stages.map((s) => [s.kind, s]));
    // The faults happened, and each was handled as Kubernetes and the controller promise.
    expect(faults.seen).toMatchObject({ killedAgent: true, adopted: { pod: expect.any(String) }, deletedPod: faults.seen.adopted?.pod });
    expect(by['train']!.attempts).toBe(2);
    // One pod per attempt: the agent's restart started nothing again (attempt 1's Job saw exactly one pod, the
    // deleted one, fail), and the retry's container never restarted.
    const trainStage = plan.stages.find((s) => s.kind === 'train')!;
    const jobStatus = async (attempt: number) => ((await k('GET', `/apis/batch/v1/namespaces/${plan.namespace}/jobs/${jobName(plan, trainStage, attempt)}`)).body as { status?: { failed?: number; succeeded?: number } }).status;
    expect(await jobStatus(1)).toMatchObject({ failed: 1 });
    expect((await jobStatus(1))?.succeeded ?? 0).toBe(0);
    expect(await jobStatus(2)).toMatchObject({ succeeded: 1 });
    expect((await jobStatus(2))?.failed ?? 0).toBe(0);
    const pods = await trainPods(plan);
    expect(pods.map((p) => [p.metadata.labels?.['kiln.dev/attempt'], p.status?.containerStatuses?.[0]?.restartCount])).toEqual([['2', 0]]);
    const retry = pods[0]!;
    expect(await readPodLog(clusterKubeConfig(), plan.namespace, retry.metadata.name, { tailLines: 4000 })).toMatch(/resumed from \S+ \(step [1-9]\d*/);
    expect(by['train']!.summary?.resumedFrom).toBeTruthy();
    // Every other stage ran once.
    for (const s of run.status!.stages.filter((x) => x.kind !== 'train')) expect({ stage: s.name, attempts: s.attempts }).toEqual({ stage: s.name, attempts: 1 });
    expect(by['train']!.summary?.metrics?.['loss']).toBeGreaterThan(0);
    expect(by['train']!.simulated).toBeFalsy();
    expect(by['eval']!.summary?.metrics?.['problems']).toBe(164);
    const artifacts = run.status!.stages.flatMap((s) => (s.summary?.artifacts ?? []).map((a) => ({ stage: s.name, ...a })));
    // Shards: the dedup stage's (it rewrites data-prep's); the checkpoint is a folder (its digest is the trainer's own).
    for (const kind of ['dedup', 'tokenizer', 'pack', 'train', 'export', 'eval']) expect({ kind, has: artifacts.some((a) => by[kind] && a.stage === by[kind]!.name) }).toEqual({ kind, has: true });
    for (const a of artifacts) {
      if (!a.uri?.startsWith('pvc://')) continue;
      const p = await hostPath(plan, a.uri);
      expect({ uri: a.uri, exists: existsSync(p) }).toEqual({ uri: a.uri, exists: true });
      expect({ uri: a.uri, nonEmpty: statSync(p).isFile() ? statSync(p).size > 0 : readdirSync(p).length > 0 }).toEqual({ uri: a.uri, nonEmpty: true });
      if (a.digest && statSync(p).isFile()) expect({ uri: a.uri, digest: digestOf(p) }).toEqual({ uri: a.uri, digest: a.digest });
    }
  }, 1_530_000);
});

/** A second, smaller run of the local stack (libs/ alone, 30K tokens): another model for the canary rollouts. */
const smallRun = (t: string): string =>
  t
    .replace('token_budget: 600K', 'token_budget: 30K')
    .split('\n')
    .filter((l) => !/name: (kiln-services|kiln-tools|python-stdlib)/.test(l))
    .join('\n');

/**
 * Promotion (issue #17) of the full run's model, served for real on the local node, through serving-only stacks
 * of a GitOps repository of the test's own (in the run's namespace, where its pvc:// model is readable). A second,
 * smaller run in that namespace gives a second model for the canary rollouts. Shares the cluster and the trained
 * model with the test above, and runs after it.
 */
describe.skipIf(process.env.KILN_LOCAL_RUN === 'skip')('promotion between stacks, served on the local node', () => {
  let repo: GitOpsRepo;
  let key: string;
  let second: { plan: Plan; run: ModelRun };
  const ns = () => trained!.plan.namespace;
  const promote = (args: string[]) => kiln(['promote', ...args, '--stacks', repo.stacksDir, '--api-key-file', repo.apiKeyFile, '--json']);
  const outputs = async (stack: string) =>
    JSON.parse((await pulumiOnLocalCluster(ROOT, ['stack', 'output', '--json', '--stack', stack], { cwd: repo.stacksDir })).out) as { model?: { run: string; digest: string; seq: number; action: string } | null; canary?: unknown };
  const lastCommit = () => repo.git('log', '-1', '--format=%B');
  const servedRun = async (name?: string) => (await stableTriton(ns(), name))?.run;
  /** The canary Deployment deleted (Pulumi does not wait for its pods to go). */
  const canaryGone = () => eventually('the canary Deployment to be gone', async () => ((await k('GET', `/apis/apps/v1/namespaces/${ns()}/deployments/tiny-completions-canary`)).status === 404 ? true : undefined), 120_000);
  const say = (r: KilnResult) => `exit ${r.code}\n${r.stdout}\n${r.stderr}`;

  beforeAll(async () => {
    if (trained?.run.status?.phase !== 'Succeeded') return;
    repo = await gitOpsRepo(ns(), uniq('p').slice(2));
    key = readFileSync(repo.apiKeyFile, 'utf8').trim();
  }, 120_000);
  afterAll(async () => {
    await repo?.close();
  }, 600_000);

  it("GIVEN the run passes staging's gates WHEN it is promoted with --apply THEN a commit records its evidence and staging serves it through the gateway", async () => {
    expect(trained?.run.status?.phase).toBe('Succeeded');
    const r = await promote([trained!.plan.runId, '--to', repo.stacks.staging, '--apply']);
    expect(r.code, say(r)).toBe(0);
    // The record: one commit, of the stack's config alone, naming the run, its digest and the gate it passed.
    const log = repo.git('log', '-1', '--format=%B%n--files--', '--name-only');
    expect(log).toContain(`Kiln-Run: ${trained!.plan.runId}`);
    expect(log).toMatch(/Kiln-Digest: sha256:[0-9a-f]{64}/);
    expect(log).toMatch(/humaneval\.pass@1 = [0-9.]+/);
    expect(log.split('--files--')[1]!.trim()).toBe(`stacks/Pulumi.${repo.stacks.staging}.yaml`);
    const o = await outputs(repo.stacks.staging);
    expect(o.model).toMatchObject({ run: trained!.plan.runId, action: 'promote' });
    expect(JSON.stringify(o)).not.toContain(key);
    const t = await eventually('the stable Triton to serve the promoted model', async () => {
      const d = await stableTriton(ns());
      return d?.ready ? d : undefined;
    }, 300_000);
    expect(t).toMatchObject({ run: trained!.plan.runId, digest: o.model!.digest });
    const url = await gatewayUrl(ns());
    await eventually('a completion through the gateway', async () => {
      const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify({ model: 'completions', prompt: 'def add(a, b):\n', max_tokens: 8 }) });
      return res.status === 200 ? true : undefined;
    }, 180_000);
  }, 900_000);

  it("GIVEN prod's gate fails WHEN the run is promoted THEN it is refused with the numbers; --override needs --reason, and with one it is recorded", async () => {
    const refused = await promote([trained!.plan.runId, '--to', repo.stacks.prod]);
    expect(refused.code, say(refused)).toBe(1);
    expect(`${refused.stdout}${refused.stderr}`).toMatch(/humaneval\.pass@1[^\n]*0\.5/);
    const before = repo.git('rev-parse', 'HEAD');
    const usage = await promote([trained!.plan.runId, '--to', repo.stacks.prod, '--override']);
    expect(usage.code, say(usage)).toBe(2);
    expect(usage.stderr).toMatch(/--reason/);
    expect(repo.git('rev-parse', 'HEAD')).toBe(before);
    const forced = await promote([trained!.plan.runId, '--to', repo.stacks.prod, '--override', '--reason', 'a demo for the launch review']);
    expect(forced.code, say(forced)).toBe(0);
    expect(lastCommit()).toContain('a demo for the launch review');
    expect(lastCommit()).toMatch(/override/i);
    expect(readFileSync(join(repo.stacksDir, `Pulumi.${repo.stacks.prod}.yaml`), 'utf8')).toContain('a demo for the launch review');
  }, 300_000);

  it('GIVEN a second model WHEN it rolls out as a canary that passes its smoke check THEN it serves at 100% with no failed request, and kiln rollback returns to the first', async () => {
    second = { plan: localPlan(ns(), smallRun), run: undefined as unknown as ModelRun };
    second.run = await runToEnd(second.plan, 900_000);
    expect(second.run.status?.phase).toBe('Succeeded');
    const load = traffic(await gatewayUrl(ns()), key);
    const r = await promote([second.plan.runId, '--to', repo.stacks.staging, '--apply', '--smoke-problems', '3']);
    const seen = await load.stop();
    expect(r.code, say(r)).toBe(0);
    expect(seen.failed).toEqual([]);
    expect(seen.ok).toBeGreaterThan(0);
    expect(await servedRun()).toBe(second.plan.runId);
    await canaryGone();
    expect(lastCommit()).toMatch(/smoke/i);

    const back = await kiln(['rollback', repo.stacks.staging, '--stacks', repo.stacksDir, '--apply', '--json']);
    expect(back.code, say(back)).toBe(0);
    expect(lastCommit()).toContain(`Kiln-Action: rollback`);
    expect(lastCommit()).toContain(`Kiln-Run: ${trained!.plan.runId}`);
    await eventually('the first model to serve again', async () => ((await stableTriton(ns()))?.run === trained!.plan.runId && (await stableTriton(ns()))!.ready ? true : undefined), 300_000);
  }, 1_800_000);

  it('GIVEN latency objectives the canary cannot meet WHEN it rolls out THEN its smoke check fails, it is rolled back on its own, and the stable model serves throughout', async () => {
    repo.setLatency(1, 2);
    const load = traffic(await gatewayUrl(ns()), key);
    const r = await promote([second.plan.runId, '--to', repo.stacks.staging, '--apply', '--smoke-problems', '2']);
    const seen = await load.stop();
    expect(r.code, say(r)).toBe(1);
    expect(`${r.stdout}${r.stderr}`).toMatch(/p50 latency \d+ ms is over the objective of 1 ms/);
    expect(seen.failed).toEqual([]);
    expect(seen.ok).toBeGreaterThan(0);
    expect(await servedRun()).toBe(trained!.plan.runId);
    await canaryGone();
    expect(lastCommit()).toMatch(/p50 latency/);
    const o = await outputs(repo.stacks.staging);
    expect(o.model).toMatchObject({ run: trained!.plan.runId });
    expect(o.canary ?? null).toBeNull();
    // Every promotion and rollback, in order, with its evidence.
    const h = await kiln(['history', repo.stacks.staging, '--stacks', repo.stacksDir, '--json']);
    expect(h.code, say(h)).toBe(0);
    const rows = JSON.parse(h.stdout) as { entries?: { action: string; run: string }[] } | { action: string; run: string }[];
    const list = Array.isArray(rows) ? rows : rows.entries!;
    expect(list.map((e) => e.run)).toContain(second.plan.runId);
    expect(list[0]!.run).toBe(trained!.plan.runId);
    expect(list.at(-1)!.run).toBe(trained!.plan.runId);
    expect(list.some((e) => e.action === 'rollback')).toBe(true);
  }, 1_200_000);

  it('GIVEN two promotions of one stack at once WHEN both apply THEN one waits for the other and both records are in order', async () => {
    const head = repo.git('rev-parse', 'HEAD').trim();
    const first = promote([second.plan.runId, '--to', repo.stacks.prod, '--override', '--reason', 'first of two', '--apply']);
    // The rollback starts once the promotion holds the stack's lock (after its verification pod, which takes
    // a while on a loaded machine), not after a guessed delay.
    const lock = resolve(repo.dir, repo.git('rev-parse', '--git-common-dir').trim(), `kiln-promote-${repo.stacks.prod}.lock`);
    await eventually('the first promotion holds the lock', async () => (existsSync(lock) ? true : undefined), 300_000);
    const other = kiln(['rollback', repo.stacks.prod, '--stacks', repo.stacksDir, '--apply', '--json']);
    const [a, b] = await Promise.all([first, other]);
    expect(a.code, say(a)).toBe(0);
    expect(b.code, say(b)).toBe(0);
    expect(b.stderr).toMatch(/wait/i);
    const subjects = repo.git('log', '--format=%s', `${head}..HEAD`).trim().split('\n').reverse();
    expect(subjects).toHaveLength(2);
    expect(subjects[0]).toMatch(/promote/);
    expect(subjects[1]).toMatch(/rollback/);
    expect(await servedRun('tiny-prod')).toBe(trained!.plan.runId);
  }, 900_000);
});
