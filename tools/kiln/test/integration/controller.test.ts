import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeConfigFrom, requestRaw, type ModelRun } from '@kiln/cluster';
import { eventually, k, ROOT, uniq } from './helpers.ts';
import { createRun, paths, preparePlatform, startController, tinyPlan, whenSynced, type ControllerProcess } from '@kiln/local-cluster';
import { getRun, jobsOf, runPath, serviceAccountKubeconfig, waitPhase } from './run-helpers.ts';

const STAGES = ['data-prep', 'dedup', 'tokenizer', 'pack', 'train', 'export', 'eval-humaneval'];
/** The reasons of a run's Events, once one with `reason` is there (they are recorded asynchronously). */
const eventsOf = (ns: string, name: string, reason: string) =>
  eventually(`a ${reason} event`, async () => {
    const items = ((await k('GET', `/api/v1/namespaces/${ns}/events?fieldSelector=involvedObject.name%3D${name}`)).body as { items: { reason: string }[] }).items.map((e) => e.reason);
    return items.includes(reason) ? items : undefined;
  }, 20_000);
const kiln = (...args: string[]) =>
  spawnSync(process.execPath, [fileURLToPath(new URL('../../bin/kiln.js', import.meta.url)), ...args], { encoding: 'utf8', env: { ...process.env, KUBECONFIG: paths(ROOT).kubeconfig, NO_COLOR: '1' } });

describe('the run controller on the local cluster (real API server, Job controller and scheduler; kwok pods)', () => {
  const ns = uniq('kiln-it-ctl');
  let ctl: ControllerProcess;

  beforeAll(async () => {
    await preparePlatform(tinyPlan(ns));
    ctl = startController(['--namespace', ns, '--retry-base-ms', '300', '--sim-duration-ms', '400']);
    await whenSynced(ctl);
  });
  afterAll(async () => {
    await ctl?.stop();
    await k('DELETE', `/api/v1/namespaces/${ns}`);
  });

  it('runs configs/tiny.yaml through every stage in order to Succeeded, passing summaries on and computing the gates', async () => {
    const plan = tinyPlan(ns, 1);
    await createRun(plan);
    const run = await waitPhase(plan, ['Succeeded', 'Failed']);
    expect(run.status!.phase, run.status!.message).toBe('Succeeded');
    expect(run.status!.stages.map((s) => [s.name, s.phase, s.attempts])).toEqual(STAGES.map((s) => [s, 'Succeeded', 1]));

    // In order: every stage's Job was created after the Jobs of the stages it depends on had completed.
    const jobs = await jobsOf(plan);
    expect(jobs.map((j) => j.metadata.labels['kiln.dev/stage']).sort()).toEqual([...STAGES].sort());
    const byStage = new Map(jobs.map((j) => [j.metadata.labels['kiln.dev/stage']!, j]));
    for (const s of plan.stages) {
      for (const d of s.dependsOn) expect(Date.parse(byStage.get(s.name)!.metadata.creationTimestamp), `${s.name} after ${d}`).toBeGreaterThanOrEqual(Date.parse(byStage.get(d)!.status!.completionTime!));
      expect(byStage.get(s.name)!.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'ModelRun', name: run.metadata.name, uid: run.metadata.uid, controller: true })]);
    }

    // A stage's summary (its termination message) reaches the next stage's config, with its manifest.
    const prep = run.status!.stages.find((s) => s.name === 'data-prep')!;
    expect(prep.summary).toMatchObject({ metrics: { records_in: 24_000 }, shards: 2 });
    const cm = await k('GET', `/api/v1/namespaces/${ns}/configmaps/${plan.runId}-dedup-config`);
    const config = JSON.parse((cm.body as { data: Record<string, string> }).data['stage.json']!) as { upstream: Record<string, { summary: unknown; manifest: string }> };
    expect(config.upstream['data-prep']).toEqual({ summary: prep.summary, manifest: plan.stages[0]!.manifest });

    // Status: artifacts with digests, metrics, gates, conditions; the eval model server is gone again.
    expect(run.status!.artifacts.find((a) => a.stage === 'train')).toMatchObject({ name: 'checkpoint', digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
    expect(run.status!.metrics['eval-humaneval.pass@1']).toBe(0.12);
    expect(run.status!.gates.dev).toMatchObject({ passed: true, results: [{ expr: 'humaneval.pass@1 >= 0', value: 0.12, passed: true }] });
    expect(run.status!.conditions.find((c) => c.type === 'Succeeded')).toMatchObject({ status: 'True', reason: 'Succeeded' });
    expect(run.status!.conditions.filter((c) => c.type.startsWith('stage.kiln.dev/')).map((c) => c.status)).toEqual(STAGES.map(() => 'True'));
    expect((await k('GET', `/apis/apps/v1/namespaces/${ns}/deployments/${plan.evalModel.name}`)).status).toBe(404);

    // Events are recorded off the reconcile path: wait for the last one to land.
    const reasons = await eventsOf(ns, run.metadata.name, 'RunSucceeded');
    expect(reasons.filter((r) => r === 'StageStarted')).toHaveLength(STAGES.length);

    // What people use to watch it.
    const list = kiln('status', '--namespace', ns);
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout).toMatch(new RegExp(`${plan.runId}\\s+${ns}\\s+tiny\\s+dev\\s+Succeeded`));
    const one = kiln('status', plan.runId.slice(0, 10), '--namespace', ns, '--format', 'json');
    expect(one.status, one.stderr).toBe(0);
    expect((JSON.parse(one.stdout) as ModelRun).status!.gates.dev!.passed).toBe(true);
    // Every number came from the local cluster's simulation, and each way of looking at the run says so.
    expect(run.status!.simulated).toEqual(STAGES);
    expect(run.status!.stages.every((s) => s.simulated === true)).toBe(true);
    expect((JSON.parse(one.stdout) as ModelRun).status!.simulated).toEqual(STAGES);
    expect(list.stdout).toMatch(new RegExp(`${plan.runId}\\s+${ns}\\s+tiny\\s+dev\\s+Succeeded \\(sim\\)`));
    expect(list.stdout).toMatch(/\(sim\) simulated: .*not measurements/);
    const view = kiln('status', plan.runId, '--namespace', ns);
    expect(view.stdout.split('\n')[1]).toMatch(/^SIMULATED: .*not measurements/);
    expect(view.stdout).toContain('Gates (read against simulated eval metrics):');
    const logs = kiln('logs', plan.runId, 'train', '--namespace', ns);
    expect(logs.status).toBe(1);
    expect(logs.stderr).toMatch(/simulated/);
    expect(logs.stderr).toContain('"tokens":500000');
    expect(kiln('logs', plan.runId, 'nope', '--namespace', ns).stderr).toMatch(/no stage "nope"; stages: data-prep, dedup, tokenizer/);
    expect(kiln('status', 'r-000000000000', '--namespace', ns).status).toBe(1);
  });

  it('fails the gates when the eval metric is below the threshold (and still succeeds the run); kiln status --watch follows it to the end', async () => {
    const plan = tinyPlan(ns, 2, 'humaneval.pass@1 >= 0.5');
    await createRun(plan);
    const watch = spawn(process.execPath, [fileURLToPath(new URL('../../bin/kiln.js', import.meta.url)), 'status', plan.runId, '--watch', '--namespace', ns], { env: { ...process.env, KUBECONFIG: paths(ROOT).kubeconfig, NO_COLOR: '1' } });
    let out = '';
    watch.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((r) => watch.once('exit', r));
    const run = await getRun(plan);
    expect(run.status!.phase).toBe('Succeeded');
    expect(run.status!.gates.dev).toMatchObject({ passed: false, results: [{ value: 0.12, passed: false }] });
    // It redrew as the run moved, and ended by itself when the run did.
    expect(code).toBe(0);
    expect(out).toMatch(/Running/);
    expect(out.trimEnd()).toMatch(/dev: FAILED\n\s+✗ humaneval\.pass@1 >= 0\.5 {2}\(humaneval\.pass@1 = 0\.12\)[\s\S]*Artifacts:/);
  });

  it('retries a stage that failed with a retryable cause (training resumes) and the run succeeds', async () => {
    const plan = tinyPlan(ns, 3);
    await createRun(plan, { faults: [{ stage: 'train', attempt: 1, exitCode: 1, message: 'NCCL watchdog timeout: rank 1 unreachable (simulated node loss)' }] });
    const run = await waitPhase(plan, ['Succeeded', 'Failed']);
    expect(run.status!.phase, run.status!.message).toBe('Succeeded');
    const train = run.status!.stages.find((s) => s.name === 'train')!;
    expect(train).toMatchObject({ attempts: 2, phase: 'Succeeded', message: 'succeeded on attempt 2' });
    const names = (await jobsOf(plan)).filter((j) => j.metadata.labels['kiln.dev/stage'] === 'train').map((j) => j.metadata.name).sort();
    expect(names).toEqual([`${plan.runId}-train`, `${plan.runId}-train-2`]);
    const cm = await k('GET', `/api/v1/namespaces/${ns}/configmaps/${plan.runId}-train-2-config`);
    expect(JSON.parse((cm.body as { data: Record<string, string> }).data['stage.json']!)).toMatchObject({ attempt: 2, resume: true });
    await eventsOf(ns, run.metadata.name, 'StageRetrying');
    const events = (await k('GET', `/api/v1/namespaces/${ns}/events?fieldSelector=involvedObject.name%3D${run.metadata.name}`)).body as { items: { reason: string; message: string }[] };
    expect(events.items.find((e) => e.reason === 'StageRetrying')?.message).toMatch(/NCCL watchdog timeout/);
  });

  it('rides out an eviction of a training pod: the Job replaces the pod, the attempt is not spent', async () => {
    const plan = tinyPlan(ns, 8);
    await createRun(plan, { stageDurationMs: { train: 3000 } });
    const podsOf = async () => ((await k('GET', `/api/v1/namespaces/${ns}/pods?labelSelector=kiln.dev%2Frun-id%3D${plan.runId},kiln.dev%2Fstage%3Dtrain`)).body as { items: { metadata: { name: string }; status: { phase: string } }[] }).items;
    const victim = await eventually('a running training pod', async () => (await podsOf()).find((p) => p.status.phase === 'Running'), 60_000);
    const ev = await k('POST', `/api/v1/namespaces/${ns}/pods/${victim.metadata.name}/eviction`, { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: victim.metadata.name, namespace: ns } });
    expect(ev.status).toBe(201);
    const run = await waitPhase(plan, ['Succeeded', 'Failed']);
    expect(run.status!.phase, run.status!.message).toBe('Succeeded');
    expect(run.status!.stages.find((s) => s.name === 'train')).toMatchObject({ attempts: 1, phase: 'Succeeded' });
    const pods = await podsOf();
    expect(pods.map((p) => p.metadata.name)).not.toContain(victim.metadata.name);
    expect(pods.map((p) => p.status.phase)).toEqual(['Succeeded']);
  });

  it('stops the run on a stage\'s terminal exit code, saying why, and starts nothing after it', async () => {
    const plan = tinyPlan(ns, 4);
    const why = 'tokenizer: sample_size 16MiB but the shards hold 0 bytes (no input)';
    await createRun(plan, { faults: [{ stage: 'tokenizer', attempt: 1, exitCode: 2, message: why }] });
    const run = await waitPhase(plan, ['Succeeded', 'Failed']);
    expect(run.status!.phase).toBe('Failed');
    expect(run.status!.message).toContain(why);
    expect(run.status!.currentStage).toBe('tokenizer');
    expect(run.status!.stages.find((s) => s.name === 'tokenizer')).toMatchObject({ phase: 'Failed', reason: 'TerminalFailure', attempts: 1 });
    expect(run.status!.stages.find((s) => s.name === 'pack')).toMatchObject({ phase: 'Pending', reason: 'Aborted' });
    // Give a wrong controller the chance to retry, then check it did not.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await jobsOf(plan)).map((j) => j.metadata.labels['kiln.dev/stage']).sort()).toEqual(['data-prep', 'dedup', 'tokenizer']);
    expect(run.status!.conditions.find((c) => c.type === 'Succeeded')).toMatchObject({ status: 'False', reason: 'TerminalFailure' });
    const shown = kiln('status', plan.runId, '--namespace', ns);
    expect(shown.status).toBe(1);
    expect(shown.stdout).toMatch(/tokenizer\s+Failed\s+1\/3/);
  });

  it('gives up after the stage\'s attempts are used up', async () => {
    const plan = tinyPlan(ns, 5);
    const faults = [1, 2, 3].map((attempt) => ({ stage: 'export', attempt, exitCode: 137, message: 'OOMKilled (simulated)' }));
    await createRun(plan, { faults });
    const run = await waitPhase(plan, ['Succeeded', 'Failed']);
    expect(run.status!.stages.find((s) => s.name === 'export')).toMatchObject({ phase: 'Failed', reason: 'AttemptsExhausted', attempts: 3 });
    expect((await jobsOf(plan)).filter((j) => j.metadata.labels['kiln.dev/stage'] === 'export')).toHaveLength(3);
  });

  it('suspends a run (its running Job too) and resumes it', async () => {
    const plan = tinyPlan(ns, 6);
    await createRun(plan, { durationMs: 1500 });
    await eventually('data-prep to run', async () => ((await getRun(plan)).status?.stages?.[0]?.phase === 'Running' ? true : undefined));
    const patch = await k('PATCH', runPath(plan), { spec: { suspend: true } }, 10_000, 'application/merge-patch+json');
    expect(patch.status).toBe(200);
    const suspended = await waitPhase(plan, ['Suspended']);
    expect(suspended.status!.stages[0]).toMatchObject({ phase: 'Running', reason: 'Suspended' });
    await eventually('the data-prep Job to be suspended', async () => ((await jobsOf(plan))[0]?.spec.suspend === true ? true : undefined));
    await new Promise((r) => setTimeout(r, 1000));
    expect((await jobsOf(plan)).map((j) => j.metadata.labels['kiln.dev/stage'])).toEqual(['data-prep']);
    await k('PATCH', runPath(plan), { spec: { suspend: false } }, 10_000, 'application/merge-patch+json');
    const done = await waitPhase(plan, ['Succeeded', 'Failed'], 120_000);
    expect(done.status!.phase).toBe('Succeeded');
  });

  it('cancels a run when its ModelRun is deleted: its Jobs go with it', async () => {
    const plan = tinyPlan(ns, 7);
    await createRun(plan, { durationMs: 5000 });
    await eventually('data-prep to run', async () => ((await jobsOf(plan)).length ? true : undefined));
    expect((await k('DELETE', runPath(plan))).status).toBeLessThan(300);
    await eventually('the Jobs to be garbage-collected', async () => ((await jobsOf(plan)).length === 0 ? true : undefined));
  });
});

describe('the run controller survives a crash', () => {
  const ns = uniq('kiln-it-crash');
  let ctl: ControllerProcess | undefined;
  afterAll(async () => {
    await ctl?.stop();
    await k('DELETE', `/api/v1/namespaces/${ns}`);
  });

  it('kill -9 mid-run, start again: the run completes, no stage runs twice, no status is lost', async () => {
    const plan = tinyPlan(ns, 11);
    await preparePlatform(plan);
    ctl = startController(['--namespace', ns, '--sim-duration-ms', '1500']);
    await whenSynced(ctl);
    await createRun(plan);
    await eventually('train to be running', async () => ((await getRun(plan)).status?.stages?.find((s) => s.name === 'train')?.phase === 'Running' ? true : undefined), 60_000);
    await ctl.stop('SIGKILL');
    const before = await getRun(plan);
    // While it is down, the running stage finishes.
    await eventually('train Job to complete while the controller is down', async () => ((await jobsOf(plan)).find((j) => j.metadata.labels['kiln.dev/stage'] === 'train')?.status?.conditions?.some((c) => c.type === 'Complete') ? true : undefined));
    ctl = startController(['--namespace', ns, '--sim-duration-ms', '1500']);
    const run = await waitPhase(plan, ['Succeeded', 'Failed']);
    expect(run.status!.phase).toBe('Succeeded');
    const jobs = await jobsOf(plan);
    expect(jobs.map((j) => j.metadata.name).sort()).toEqual(STAGES.map((s) => `${plan.runId}-${s}`).sort());
    expect(run.status!.stages.every((s) => s.attempts === 1)).toBe(true);
    // What the first process recorded is still there: start times and earlier summaries.
    for (const s of before.status!.stages.filter((x) => x.phase === 'Succeeded')) {
      const now = run.status!.stages.find((x) => x.name === s.name)!;
      expect(now.startTime).toBe(s.startTime);
      expect(now.summary).toEqual(s.summary);
    }
    expect(run.status!.startTime).toBe(before.status!.startTime);
  });
});

describe('the run controller with leader election', () => {
  const ns = uniq('kiln-it-leader');
  const ctls: ControllerProcess[] = [];
  afterAll(async () => {
    await Promise.all(ctls.map((c) => c.stop()));
    await k('DELETE', `/api/v1/namespaces/${ns}`);
  });

  it('lets only the replica holding the Lease act, and hands over when it dies', async () => {
    const first = tinyPlan(ns, 21);
    await preparePlatform(first);
    const args = ['--namespace', ns, '--leader-elect', '--lease-ms', '3000', '--sim-duration-ms', '300'];
    ctls.push(startController(args, { name: `leader-a-${process.pid}` }), startController(args, { name: `leader-b-${process.pid}` }));
    await createRun(first);
    expect((await waitPhase(first, ['Succeeded', 'Failed'])).status!.phase).toBe('Succeeded');
    const lease = (await k('GET', `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/kiln-controller`)).body as { spec: { holderIdentity: string } };
    const [leader, other] = ctls[0]!.log().includes('caches synced') ? [ctls[0]!, ctls[1]!] : [ctls[1]!, ctls[0]!];
    expect(leader.log()).toContain(`leader: ${lease.spec.holderIdentity} holds lease`);
    expect(other.log()).not.toMatch(/applied Job/);
    expect((await jobsOf(first)).length).toBe(STAGES.length);

    await leader.stop('SIGKILL');
    const second = tinyPlan(ns, 22);
    await createRun(second);
    expect((await waitPhase(second, ['Succeeded', 'Failed'])).status!.phase).toBe('Succeeded');
    expect(other.log()).toMatch(/applied Job/);
  });
});

describe('the run controller as its own service account (least-privilege RBAC)', () => {
  const ns = uniq('kiln-it-rbac');
  let ctl: ControllerProcess | undefined;
  afterAll(async () => {
    await ctl?.stop();
    await k('DELETE', `/api/v1/namespaces/${ns}`);
  });

  it('runs a run to the end with only the kiln-controller Role: Lease, Jobs, eval model server, status, events, suspend', async () => {
    const plan = tinyPlan(ns, 41);
    await preparePlatform(plan);
    const kubeconfig = await serviceAccountKubeconfig(ns, 'kiln-controller');
    // The Role is namespaced: the service account may not even list ModelRuns elsewhere.
    ctl = startController(['--namespace', ns, '--leader-elect', '--sim-duration-ms', '300'], { name: `rbac-${process.pid}`, kubeconfig });
    await createRun(plan, { stageDurationMs: { train: 2000 } });
    await eventually('train to run', async () => ((await getRun(plan)).status?.stages?.find((s) => s.name === 'train')?.phase === 'Running' ? true : undefined), 60_000);
    await k('PATCH', runPath(plan), { spec: { suspend: true } }, 10_000, 'application/merge-patch+json');
    await waitPhase(plan, ['Suspended']);
    await k('PATCH', runPath(plan), { spec: { suspend: false } }, 10_000, 'application/merge-patch+json');
    const run = await waitPhase(plan, ['Succeeded', 'Failed']);
    expect(run.status!.phase, run.status!.message).toBe('Succeeded');
    expect(ctl.log()).not.toMatch(/forbidden| error: |informer/i);
    expect(await eventsOf(ns, run.metadata.name, 'RunSucceeded')).toContain('StageSucceeded');
    const lease = (await k('GET', `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases/kiln-controller`)).body as { spec: { holderIdentity: string } };
    expect(ctl.log()).toContain(`leader: ${lease.spec.holderIdentity} holds lease`);
    // And it really was that account, with no more than the Role: no Secrets, nothing outside its namespace.
    const sa = kubeConfigFrom(kubeconfig);
    expect((await requestRaw(sa, 'GET', `/api/v1/namespaces/${ns}/secrets`)).status).toBe(403);
    expect((await requestRaw(sa, 'GET', '/apis/kiln.dev/v1alpha1/namespaces/default/modelruns')).status).toBe(403);
    expect((await requestRaw(sa, 'GET', `/apis/kiln.dev/v1alpha1/namespaces/${ns}/modelruns`)).status).toBe(200);
  });
});

describe('the run controller under load', () => {
  const ns = uniq('kiln-it-load');
  let ctl: ControllerProcess | undefined;
  afterAll(async () => {
    await ctl?.stop();
    await k('DELETE', `/api/v1/namespaces/${ns}`);
  });

  it('completes 50 concurrent ModelRuns, each stage exactly once', async () => {
    const plans = Array.from({ length: 50 }, (_, i) => tinyPlan(ns, 1000 + i));
    expect(new Set(plans.map((p) => p.runId)).size).toBe(50);
    await preparePlatform(plans[0]!);
    ctl = startController(['--namespace', ns, '--sim-duration-ms', '300', '--workers', '8']);
    await whenSynced(ctl);
    await Promise.all(plans.map((p) => createRun(p)));
    const runs: ModelRun[] = [];
    for (const p of plans) runs.push(await waitPhase(p, ['Succeeded', 'Failed'], 240_000));
    expect(runs.map((r) => r.status!.phase)).toEqual(plans.map(() => 'Succeeded'));
    const jobs = (await k('GET', `/apis/batch/v1/namespaces/${ns}/jobs`)).body as { items: { metadata: { name: string } }[] };
    expect(jobs.items).toHaveLength(50 * STAGES.length);
  }, 300_000);
});
