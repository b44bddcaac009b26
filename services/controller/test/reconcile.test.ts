import { fileURLToPath } from 'node:url';
import type { V1ConfigMap, V1Deployment, V1Job, V1Pod } from '@kubernetes/client-node';
import { jobName, modelRun, stageObjects } from '@kiln/k8s';
import { canonicalJson as canonical, TERMINAL_EXIT } from '@kiln/stage';
import { compileFile, type Plan } from '@kiln/plan';
import type { ControllerHooks, ModelRun, ModelRunStatus, StageStatus } from '@kiln/cluster';
import type { Progress } from '@kiln/stage';
import { describe, expect, it } from 'vitest';
import { decide, type DecideOptions, type Decision } from '../src/reconcile.ts';

const compiled = compileFile(fileURLToPath(new URL('../../../configs/tiny.yaml', import.meta.url)), { stack: 'dev' });
if (!compiled.plan) throw new Error(compiled.diagnostics.map((d) => d.message).join('; '));
const plan: Plan = compiled.plan;
const ORDER = plan.stages.map((s) => s.name); // data-prep, dedup, tokenizer, pack, train, export, eval-humaneval
const stageOf = (name: string) => plan.stages.find((s) => s.name === name)!;

const T0 = Date.parse('2026-01-01T00:00:00Z');
const MIN = 60_000;
/** Later than every Job the world builder makes. */
const LATER = T0 + 24 * 60 * MIN;
const iso = (ms: number) => new Date(ms).toISOString();

// ---------------------------------------------------------------------------------------------------------------
// The run and its world.

function makeRun(edit: { spec?: Partial<ModelRun['spec']>; annotations?: Record<string, string>; status?: ModelRunStatus } = {}): ModelRun {
  const o = modelRun(plan) as unknown as ModelRun;
  return {
    ...o,
    metadata: { ...o.metadata, uid: 'uid-1234', generation: 1, ...(edit.annotations ? { annotations: edit.annotations } : {}) },
    spec: { ...o.spec, ...edit.spec },
    ...(edit.status ? { status: edit.status } : {}),
  };
}

/** What each stage's pod `index` reports: one metric and one artifact, eval a pass@1. */
function defaultSummary(stage: string, index: number): Record<string, unknown> {
  const artifacts = [{ name: `${stage}-out`, uri: `${plan.storagePrefix}/${stage}/`, digest: `sha256:${stage}-digest` }];
  if (stage === 'eval-humaneval') return { suite: 'humaneval', metrics: { 'pass@1': 0.12 }, artifacts };
  return { metrics: { records: 100 * (index + 1) }, artifacts };
}

interface FailOpts {
  readonly attempt?: number;
  readonly exitCode?: number;
  readonly message?: string;
  readonly reason?: string;
  readonly at?: number;
}

/** The Jobs, pods and eval model server a run has, built from the real stage Jobs. */
class World {
  readonly jobs: V1Job[] = [];
  readonly pods: V1Pod[] = [];
  evalModel?: V1Deployment;

  private job(stage: string, attempt: number, status: V1Job['status'], suspend = false): V1Job {
    const base = stageObjects(plan, stageOf(stage), { attempt }).job;
    const created = T0 + ORDER.indexOf(stage) * 10 * MIN + (attempt - 1) * MIN;
    const job: V1Job = {
      ...base,
      metadata: { ...base.metadata, creationTimestamp: new Date(created) },
      spec: { ...base.spec!, ...(suspend ? { suspend: true } : {}) },
      status: status ?? {},
    };
    this.jobs.push(job);
    return job;
  }

  private pod(job: V1Job, index: number, phase: string, terminated?: { exitCode: number; message?: string }, startedAt?: number): void {
    const name = job.metadata!.name!;
    this.pods.push({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: `${name}-${index}-abcde`,
        namespace: plan.namespace,
        labels: { ...job.metadata!.labels, 'batch.kubernetes.io/job-name': name },
        annotations: { 'batch.kubernetes.io/job-completion-index': String(index) },
      },
      status: {
        phase,
        ...(startedAt !== undefined ? { startTime: new Date(startedAt) } : {}),
        ...(terminated ? { containerStatuses: [{ name: stageOf(job.metadata!.labels!['kiln.dev/stage']!).kind, image: 'x', imageID: '', ready: false, restartCount: 0, state: { terminated } }] } : {}),
      },
    } as V1Pod);
  }

  private completions(stage: string): number {
    const p = stageOf(stage).parallelism;
    return p.kind === 'shards' ? p.shards : p.kind === 'nodes' ? p.nodes : 1;
  }

  complete(stage: string, o: { attempt?: number; summary?: (index: number) => Record<string, unknown> } = {}): this {
    const attempt = o.attempt ?? 1;
    const done = T0 + ORDER.indexOf(stage) * 10 * MIN + 5 * MIN;
    const job = this.job(stage, attempt, { conditions: [{ type: 'Complete', status: 'True', lastTransitionTime: new Date(done) }], completionTime: new Date(done) });
    for (let i = 0; i < this.completions(stage); i++) this.pod(job, i, 'Succeeded', { exitCode: 0, message: JSON.stringify((o.summary ?? ((n) => defaultSummary(stage, n)))(i)) });
    return this;
  }

  /** Every stage up to and including `last` completed, in plan order. */
  through(last: string): this {
    for (const s of ORDER.slice(0, ORDER.indexOf(last) + 1)) this.complete(s);
    return this;
  }

  running(stage: string, o: { attempt?: number; suspended?: boolean; startedAt?: number } = {}): this {
    const job = this.job(stage, o.attempt ?? 1, { active: 1 }, o.suspended);
    for (let i = 0; i < this.completions(stage); i++) this.pod(job, i, 'Running', undefined, o.startedAt);
    return this;
  }

  failed(stage: string, o: FailOpts = {}): this {
    const at = o.at ?? T0;
    const job = this.job(stage, o.attempt ?? 1, { conditions: [{ type: 'Failed', status: 'True', reason: o.reason ?? 'BackoffLimitExceeded', lastTransitionTime: new Date(at) }], failed: 1 });
    this.pod(job, 0, 'Failed', { exitCode: o.exitCode ?? 1, ...(o.message !== undefined ? { message: o.message } : {}) });
    return this;
  }

  evalServer(availableReplicas: number): this {
    this.evalModel = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: plan.evalModel.name, namespace: plan.namespace }, status: { availableReplicas } };
    return this;
  }
}

const world = () => new World();

function reconcile(run: ModelRun, w: World, now = LATER, opts: DecideOptions = {}): Decision {
  return decide({ run, jobs: w.jobs, pods: w.pods, ...(w.evalModel ? { evalModel: w.evalModel } : {}), now }, opts);
}

const stage = (d: Decision, name: string): StageStatus => d.status.stages.find((s) => s.name === name)!;
const applied = (d: Decision, kind: string) => d.apply.filter((o) => o.kind === kind).map((o) => o.metadata!.name);
const stageJson = (d: Decision, stageName: string): Record<string, unknown> => {
  const cm = d.apply.find((o) => o.kind === 'ConfigMap' && o.metadata?.labels?.['kiln.dev/stage'] === stageName) as V1ConfigMap | undefined;
  if (!cm) throw new Error(`no ConfigMap of ${stageName} applied`);
  return JSON.parse(cm.data!['stage.json']!) as Record<string, unknown>;
};
const podAnnotations = (d: Decision, stageName: string) => (d.apply.find((o) => o.kind === 'Job' && o.metadata?.labels?.['kiln.dev/stage'] === stageName) as V1Job).spec!.template.metadata!.annotations;
const name = (stageName: string, attempt = 1) => jobName(plan, stageOf(stageName), attempt);

// ---------------------------------------------------------------------------------------------------------------

describe('decide: a new run', () => {
  const d = reconcile(makeRun(), world(), T0);

  it("applies only data-prep's ConfigMap and Job", () => {
    expect(d.apply.map((o) => `${o.kind}/${o.metadata?.name}`)).toEqual([`ConfigMap/${name('data-prep')}-config`, `Job/${name('data-prep')}`]);
  });

  it('makes every object it applies owned and controlled by the run', () => {
    for (const o of d.apply) expect(o.metadata?.ownerReferences).toEqual([expect.objectContaining({ kind: 'ModelRun', name: makeRun().metadata.name, uid: 'uid-1234', controller: true })]);
  });

  it('reports the run Running at data-prep, the other stages waiting', () => {
    expect(d.status).toMatchObject({ phase: 'Running', currentStage: 'data-prep', startTime: iso(T0) });
    expect(stage(d, 'data-prep')).toMatchObject({ phase: 'Running', attempts: 1, job: name('data-prep') });
    expect(d.status.stages.slice(1).map((s) => `${s.phase}/${s.reason}`)).toEqual(Array(ORDER.length - 1).fill('Pending/Waiting'));
  });

  it('records a StageStarted event', () => {
    expect(d.events.map((e) => e.reason)).toEqual(['StageStarted']);
  });

  it('puts no annotations of its own on stage pods (only hooks add them)', () => {
    expect(podAnnotations(d, 'data-prep') ?? {}).toEqual({});
  });
});

describe('decide: passing a stage output downstream', () => {
  const d = reconcile(makeRun(), world().complete('data-prep'));

  it('starts the next stage (dedup) once data-prep completed, and nothing else', () => {
    expect(applied(d, 'Job')).toEqual([name('dedup')]);
    expect(stage(d, 'data-prep')).toMatchObject({ phase: 'Succeeded', completionTime: iso(T0 + 5 * MIN) });
  });

  it("hands dedup data-prep's summary, numeric metrics summed over its shards, and its manifest", () => {
    const upstream = (stageJson(d, 'dedup').upstream as Record<string, { summary: Record<string, unknown>; manifest: string }>)['data-prep']!;
    expect(upstream.summary).toEqual(stage(d, 'data-prep').summary);
    expect(upstream.summary).toMatchObject({ shards: 2, metrics: { records: 100 + 200 } });
    expect(upstream.summary.artifacts).toHaveLength(1); // the same artifact from both shards, once
    expect(upstream.manifest).toBe(stageOf('data-prep').manifest);
  });

  it("takes rank 0's summary of training, not a sum over nodes", () => {
    const w = world().through('pack').complete('train', { summary: (i) => ({ metrics: { loss: 2 + i } }) });
    expect(stage(reconcile(makeRun(), w), 'train').summary).toEqual({ metrics: { loss: 2 } });
  });
});

describe('decide: retries', () => {
  const failedTrain = () => world().through('pack').failed('train', { at: T0, exitCode: 1, message: 'CUDA error: an illegal memory access' });
  const opts = { retryBaseMs: 10_000 };

  it('backs off before the next attempt: Retrying, nextAttemptAt, requeue after the time left, nothing applied', () => {
    const d = reconcile(makeRun(), failedTrain(), T0 + 4_000, opts);
    expect(stage(d, 'train')).toMatchObject({ phase: 'Retrying', reason: 'BackingOff', attempts: 1, nextAttemptAt: iso(T0 + 10_000) });
    expect(d.requeueAfterMs).toBe(6_000);
    expect(d.apply).toEqual([]);
    expect(d.status.phase).toBe('Running');
    expect(stage(d, 'train').message).toContain('CUDA error');
  });

  it("starts attempt 2 in a Job of its own after the backoff, resuming from the checkpoint", () => {
    const d = reconcile(makeRun(), failedTrain(), T0 + 10_000, opts);
    expect(applied(d, 'Job')).toEqual([`${plan.runId}-train-2`]);
    expect(stageJson(d, 'train')).toMatchObject({ attempt: 2, resume: true });
    expect(stage(d, 'train')).toMatchObject({ phase: 'Running', attempts: 2, job: `${plan.runId}-train-2` });
  });

  it('says why it retried, with a StageRetrying event, even when the backoff had passed before it looked', () => {
    // The last status it wrote still shows attempt 1 running; by now the attempt failed and the backoff is over.
    const before = reconcile(makeRun(), world().through('pack').running('train'), T0, opts).status;
    const d = reconcile(makeRun({ status: before }), failedTrain(), T0 + 10_000, opts);
    expect(d.events).toContainEqual({ type: 'Warning', reason: 'StageRetrying', message: expect.stringContaining('attempt 1 failed: pod') });
    expect(d.events.find((e) => e.reason === 'StageRetrying')!.message).toContain('CUDA error: an illegal memory access');
    expect(d.events.map((e) => e.reason)).toContain('StageStarted');
  });

  it('waits twice as long before the third attempt as before the second', () => {
    const w = failedTrain().failed('train', { attempt: 2, at: T0 + MIN });
    const d = reconcile(makeRun(), w, T0 + MIN + 15_000, opts);
    expect(stage(d, 'train')).toMatchObject({ phase: 'Retrying', attempts: 2, nextAttemptAt: iso(T0 + MIN + 20_000) });
    expect(d.requeueAfterMs).toBe(5_000);
  });

  it('gives up when the last allowed attempt failed: AttemptsExhausted, run Failed, nothing applied', () => {
    const w = world().failed('data-prep', { attempt: 1 }).failed('data-prep', { attempt: 2 }).failed('data-prep', { attempt: 3 });
    const d = reconcile(makeRun(), w, LATER, opts);
    expect(stage(d, 'data-prep')).toMatchObject({ phase: 'Failed', reason: 'AttemptsExhausted', attempts: 3 });
    expect(d.status).toMatchObject({ phase: 'Failed', currentStage: 'data-prep' });
    expect(d.apply).toEqual([]);
    expect(d.requeueAfterMs).toBeUndefined();
  });
});

describe('decide: a terminal failure', () => {
  const terminal = reconcile(makeRun(), world().through('pack').failed('train', { exitCode: TERMINAL_EXIT, reason: 'PodFailurePolicy', message: '{"error":"tokenizer.json is missing"}' }));

  it('fails the stage at once, without a retry', () => {
    expect(stage(terminal, 'train')).toMatchObject({ phase: 'Failed', reason: 'TerminalFailure', attempts: 1 });
    expect(terminal.apply).toEqual([]);
    expect(terminal.requeueAfterMs).toBeUndefined();
  });

  it("fails the run with the pod's own words", () => {
    expect(terminal.status.phase).toBe('Failed');
    expect(terminal.status.message).toContain('tokenizer.json is missing');
    expect(terminal.events.map((e) => e.reason)).toContain('RunFailed');
  });

  it('aborts the stages after it', () => {
    expect(['export', 'eval-humaneval'].map((s) => `${stage(terminal, s).phase}/${stage(terminal, s).reason}`)).toEqual(['Pending/Aborted', 'Pending/Aborted']);
  });

  it('treats exit code 2 as terminal even when the Job says only BackoffLimitExceeded', () => {
    const d = reconcile(makeRun(), world().through('pack').failed('train', { exitCode: TERMINAL_EXIT, reason: 'BackoffLimitExceeded' }));
    expect(stage(d, 'train').reason).toBe('TerminalFailure');
  });

  it("treats the Job's PodFailurePolicy failure as terminal whatever the pod's exit code", () => {
    const d = reconcile(makeRun(), world().through('pack').failed('train', { exitCode: 1, reason: 'PodFailurePolicy' }));
    expect(stage(d, 'train').reason).toBe('TerminalFailure');
    expect(d.apply).toEqual([]);
  });

  it('describes a failed pod whose termination message is only whitespace by its exit code, without throwing', () => {
    const d = reconcile(makeRun(), world().through('pack').failed('train', { exitCode: TERMINAL_EXIT, message: '\n' }));
    expect(stage(d, 'train').message).toContain('exit code 2');
  });
});

describe('decide: suspend', () => {
  const suspended = makeRun({ spec: { suspend: true } });

  it('suspends a running Job with a merge patch and the run is Suspended', () => {
    const d = reconcile(suspended, world().running('data-prep'));
    expect(d.patch).toEqual([{ ref: { apiVersion: 'batch/v1', kind: 'Job', name: name('data-prep'), namespace: plan.namespace }, patch: { spec: { suspend: true } } }]);
    expect(d.status.phase).toBe('Suspended');
    expect(d.apply).toEqual([]);
  });

  it('starts no new stage while suspended', () => {
    const d = reconcile(suspended, world().complete('data-prep'));
    expect(d.apply).toEqual([]);
    expect(stage(d, 'dedup')).toMatchObject({ phase: 'Pending', reason: 'Suspended' });
    expect(d.status.phase).toBe('Suspended');
  });

  it('starts no new run while suspended', () => {
    expect(reconcile(suspended, world(), T0).apply).toEqual([]);
  });

  it('does not retry a failed attempt while suspended, nor ask to be woken for it', () => {
    const d = reconcile(suspended, world().through('pack').failed('train', { at: T0 }), LATER, { retryBaseMs: 10_000 });
    expect(d.apply).toEqual([]);
    expect(stage(d, 'train').phase).toBe('Retrying');
    expect(d.requeueAfterMs).toBeUndefined();
  });

  it('resumes a suspended Job once the run is no longer suspended', () => {
    const d = reconcile(makeRun(), world().running('data-prep', { suspended: true }));
    expect(d.patch.map((p) => p.patch)).toEqual([{ spec: { suspend: false } }]);
    expect(d.status.phase).toBe('Running');
  });
});

describe('decide: the eval model server', () => {
  it('is created once export succeeded, and the eval stage waits for it', () => {
    const d = reconcile(makeRun(), world().through('export'));
    expect(d.apply.map((o) => `${o.kind}/${o.metadata?.name}`)).toEqual([`NetworkPolicy/${plan.evalModel.name}`, `Service/${plan.evalModel.name}`, `Deployment/${plan.evalModel.name}`]);
    expect(d.apply.every((o) => o.metadata?.ownerReferences?.[0]?.uid === 'uid-1234')).toBe(true);
    expect(stage(d, 'eval-humaneval')).toMatchObject({ phase: 'Pending', reason: 'WaitingForEvalModel' });
    expect(d.status.evalModel).toEqual({ name: plan.evalModel.name, ready: false });
  });

  it('is not applied again while it becomes available', () => {
    const d = reconcile(makeRun(), world().through('export').evalServer(0));
    expect(d.apply).toEqual([]);
    expect(stage(d, 'eval-humaneval').reason).toBe('WaitingForEvalModel');
  });

  it('lets the eval Job start once a replica is available', () => {
    const d = reconcile(makeRun(), world().through('export').evalServer(1));
    expect(applied(d, 'Job')).toEqual([name('eval-humaneval')]);
    expect(applied(d, 'Deployment')).toEqual([]);
    expect(d.status.evalModel).toEqual({ name: plan.evalModel.name, ready: true });
  });

  it('is removed, Deployment, Service and NetworkPolicy, once every eval stage has finished', () => {
    const d = reconcile(makeRun(), world().through('eval-humaneval').evalServer(1));
    expect(d.remove).toEqual([
      { apiVersion: 'apps/v1', kind: 'Deployment', name: plan.evalModel.name, namespace: plan.namespace },
      { apiVersion: 'v1', kind: 'Service', name: plan.evalModel.name, namespace: plan.namespace },
      { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', name: plan.evalModel.name, namespace: plan.namespace },
    ]);
    expect(d.status.evalModel).toBeUndefined();
  });

  it('is removed while the run is suspended', () => {
    const d = reconcile(makeRun({ spec: { suspend: true } }), world().through('export').running('eval-humaneval').evalServer(1));
    expect(d.remove.map((r) => r.kind)).toEqual(['Deployment', 'Service', 'NetworkPolicy']);
  });

  it('is created again when a suspended run with a running eval resumes', () => {
    // GIVEN an eval Job resumed after a suspend, whose server the suspend removed
    const d = reconcile(makeRun(), world().through('export').running('eval-humaneval', { suspended: true }));
    // THEN the server comes back
    expect(applied(d, 'Deployment')).toEqual([plan.evalModel.name]);
  });
});

describe('decide: gates', () => {
  const evalWith = (metrics: Record<string, number>) => world().through('export').complete('eval-humaneval', { summary: () => ({ suite: 'humaneval', metrics }) }).evalServer(1);

  it("pass when the eval suite's metric meets the threshold, with the value read", () => {
    const d = reconcile(makeRun(), evalWith({ 'pass@1': 0.12 }));
    expect(d.status.gates.dev?.passed).toBe(true);
    expect(d.status.gates.dev?.results[0]).toMatchObject({ suite: 'humaneval', metric: 'pass@1', value: 0.12, passed: true });
  });

  it('fail when the metric is below the threshold', () => {
    const run = makeRun({ spec: { gates: { dev: ['humaneval.pass@1 >= 0.5'] } } });
    const d = reconcile(run, evalWith({ 'pass@1': 0.12 }));
    expect(d.status.gates.dev?.passed).toBe(false);
    expect(d.status.gates.dev?.results[0]?.value).toBe(0.12);
  });

  it('are pending while the eval stage has not succeeded', () => {
    const d = reconcile(makeRun(), world().through('export').running('eval-humaneval').evalServer(1));
    expect(d.status.gates.dev?.passed).toBeNull();
  });
});

describe('decide: a finished run', () => {
  const evalRunning = reconcile(makeRun(), world().through('export').running('eval-humaneval').evalServer(1));
  const prev = makeRun({ status: evalRunning.status });
  const d = reconcile(prev, world().through('eval-humaneval').evalServer(1));

  it('succeeds when every stage succeeded, ending when the last stage ended', () => {
    expect(d.status).toMatchObject({ phase: 'Succeeded', currentStage: null, completionTime: iso(T0 + (ORDER.length - 1) * 10 * MIN + 5 * MIN) });
    expect(d.status.conditions[0]).toMatchObject({ type: 'Succeeded', status: 'True' });
  });

  it("collects every stage's artifacts with their stage and digest", () => {
    expect(d.status.artifacts.map((a) => a.stage)).toEqual(ORDER);
    expect(d.status.artifacts.find((a) => a.stage === 'train')).toEqual({ stage: 'train', name: 'train-out', uri: `${plan.storagePrefix}/train/`, digest: 'sha256:train-digest' });
  });

  it('keys metrics by stage and metric', () => {
    expect(d.status.metrics).toMatchObject({ 'data-prep.records': 300, 'train.records': 100, 'eval-humaneval.pass@1': 0.12 });
  });

  it('reports what changed since the previous status: the eval stage and the run succeeded', () => {
    expect(d.events.map((e) => e.reason)).toEqual(['StageSucceeded', 'RunSucceeded']);
    expect(d.events[1]!.message).toContain('dev passed');
  });
});

describe('decide: level-triggered', () => {
  const suspendedRun = makeRun({ spec: { suspend: true } });
  const badCredentials = makeRun({ spec: { stages: plan.stages.map((s) => (s.name === 'data-prep' ? { ...s, credentials: ['no-such-secret'] } : s)) } });
  const worlds: [string, ModelRun, () => World, number][] = [
    ['mid-run', makeRun(), () => world().complete('data-prep').running('dedup'), LATER],
    ['backing off', makeRun(), () => world().through('pack').failed('train', { at: LATER - 1000 }), LATER],
    ['failed for good', makeRun(), () => world().through('pack').failed('train', { exitCode: TERMINAL_EXIT }), LATER],
    ['suspended', suspendedRun, () => world().complete('data-prep').running('dedup', { suspended: true }), LATER],
    ['finished', makeRun(), () => world().through('eval-humaneval'), LATER],
    ['a stage Job that cannot be built', badCredentials, () => world(), LATER],
  ];

  it.each(worlds)('gives the same status, no applies and no events when its own status is fed back (%s)', (_label, run, w, now) => {
    // GIVEN the decision for a world
    const first = reconcile(run, w(), now);
    // WHEN it is decided again, a bit later, with that status recorded
    const again = reconcile({ ...run, status: first.status }, w(), now + 500);
    // THEN nothing changes
    expect(canonical(again.status)).toBe(canonical(first.status));
    expect(again.apply).toEqual([]);
    expect(again.patch).toEqual([]);
    expect(again.events).toEqual([]);
  });

  it('fails a stage whose Job cannot be built with InvalidSpec, and the run with it', () => {
    const d = reconcile(badCredentials, world(), T0);
    expect(stage(d, 'data-prep')).toMatchObject({ phase: 'Failed', reason: 'InvalidSpec' });
    expect(stage(d, 'data-prep').message).toContain('no-such-secret');
    expect(d.status.phase).toBe('Failed');
    expect(d.apply).toEqual([]);
  });
});

describe('decide: an invalid stage graph', () => {
  it('gives a Failed status with reason InvalidSpec instead of throwing', () => {
    const run = makeRun({ spec: { stages: plan.stages.map((s) => (s.name === 'tokenizer' ? { ...s, dependsOn: ['no-such-stage'] } : s)) } });
    const d = reconcile(run, world(), T0);
    expect(d.status.phase).toBe('Failed');
    expect(d.status.conditions[0]).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
    expect(d.status.message).toContain('no-such-stage');
    expect(d.apply).toEqual([]);
    expect(d.events.map((e) => e.reason)).toEqual(['RunFailed']);
  });

  it('treats a cycle the same way', () => {
    const run = makeRun({ spec: { stages: plan.stages.map((s) => (s.name === 'data-prep' ? { ...s, dependsOn: ['pack'] } : s)) } });
    expect(reconcile(run, world(), T0).status.conditions[0]?.reason).toBe('InvalidSpec');
  });
});

describe('decide: with no hooks (production)', () => {
  it('writes no annotations on any stage pod and invents no progress, whatever the run asks for', () => {
    const run = makeRun({ annotations: { 'kiln.dev/simulate': JSON.stringify({ durationMs: 100, faults: [{ stage: 'data-prep', exitCode: 1 }] }) } });
    const first = reconcile(run, world(), T0);
    for (const job of first.apply.filter((o) => o.kind === 'Job')) expect((job as V1Job).spec!.template.metadata?.annotations ?? {}).toEqual({});
    expect(first.events.map((e) => e.reason)).not.toContain('BadSimulation');
    const w = world().through('pack').running('train', { startedAt: T0 });
    const d = reconcile(run, w, T0 + 1000);
    expect(stage(d, 'train').progress).toBeUndefined();
    expect(stage(d, 'train').simulated).toBeUndefined();
    expect(d.status.simulated).toBeUndefined();
    expect(d.requeueAfterMs).toBeUndefined();
  });
});

/** Hooks as a host would give them: fixed annotations, and training progress linear over 2 s from the pods' start. */
const ms = (t: Date | string | undefined) => (t instanceof Date ? t.getTime() : Date.parse(t ?? ''));
const linearProgress = (simulated?: boolean): NonNullable<ControllerHooks['progress']> => ({ stage, pods, now }) => {
  if (stage.kind !== 'train') return undefined;
  const total = Number((stage.config.training as { token_budget?: number }).token_budget);
  const start = Math.min(...pods.map((p) => ms(p.status?.startTime)));
  return { done: Math.round(total * Math.min(1, (now - start) / 2000)), total, unit: 'tokens', ...(simulated ? { simulated: true } : {}) } as Progress;
};

describe('decide: hooks', () => {
  it('puts the podAnnotations hook\'s annotations on the pods of the attempt it was asked about', () => {
    const seen: string[] = [];
    const hooks: ControllerHooks = { podAnnotations: ({ stage, attempt, plan: p, run }) => (seen.push(`${run.metadata.name}/${p.runId}/${stage.name}/${attempt}`), { 'example.com/attempt': String(attempt) }) };
    const d = reconcile(makeRun(), world(), T0, { hooks });
    expect(podAnnotations(d, 'data-prep')).toEqual({ 'example.com/attempt': '1' });
    expect(seen).toEqual([`${makeRun().metadata.name}/${plan.runId}/data-prep/1`]);
    const retry = reconcile(makeRun(), world().failed('data-prep', { at: T0 }), T0 + 11_000, { hooks });
    expect(podAnnotations(retry, 'data-prep')).toEqual({ 'example.com/attempt': '2' });
  });

  it('records the runWarnings hook\'s warnings as events the first time it sees the run only', () => {
    const hooks: ControllerHooks = { runWarnings: () => [{ reason: 'BadSimulation', message: 'not JSON' }] };
    const d = reconcile(makeRun(), world(), T0, { hooks });
    expect(d.events).toContainEqual({ type: 'Warning', reason: 'BadSimulation', message: 'not JSON' });
    expect(reconcile(makeRun({ status: d.status }), world(), T0, { hooks }).events.map((e) => e.reason)).not.toContain('BadSimulation');
  });

  it("shows a running stage's progress from the progress hook and asks to be woken to refresh it", () => {
    const w = world().through('pack').running('train', { startedAt: T0 });
    const d = reconcile(makeRun(), w, T0 + 1000, { hooks: { progress: linearProgress() }, progressEveryMs: 700 });
    expect(stage(d, 'train').progress).toEqual({ done: 250_000, total: 500_000, unit: 'tokens', updatedAt: iso(T0 + 1000) });
    expect(d.requeueAfterMs).toBe(700);
  });

  it('refreshes progress no more often than asked, so its own status write does not wake it into another', () => {
    const w = world().through('pack').running('train', { startedAt: T0 });
    const opts = { hooks: { progress: linearProgress() }, progressEveryMs: 700 };
    const first = reconcile(makeRun(), w, T0 + 1000, opts);
    const soon = reconcile(makeRun({ status: first.status }), w, T0 + 1300, opts);
    expect(canonical(soon.status)).toBe(canonical(first.status));
    expect(soon.requeueAfterMs).toBe(400);
    const later = reconcile(makeRun({ status: first.status }), w, T0 + 1700, opts);
    expect(stage(later, 'train').progress).toMatchObject({ done: 425_000, updatedAt: iso(T0 + 1700) });
  });

  it("keeps the time rank 0 wrote its progress line, and waits a whole interval after an old line, not a negative one", () => {
    const w = world().through('pack').running('train', { startedAt: T0 });
    const line: Progress = { done: 100, total: 500_000, unit: 'tokens', updatedAt: iso(T0 - 60_000), loss: 2.3, tokens_per_s: 1000, eta_s: 499.9 };
    const opts = { hooks: { progress: () => line }, progressEveryMs: 700 };
    const first = reconcile(makeRun(), w, T0 + 1000, opts);
    expect(stage(first, 'train').progress).toEqual(line);
    const again = reconcile(makeRun({ status: first.status }), w, T0 + 1100, opts);
    expect(canonical(again.status)).toBe(canonical(first.status));
    expect(again.requeueAfterMs).toBe(700);
  });

  it("writes a progress note (the reader could not read rank 0's log) even when the numbers did not move", () => {
    const w = world().through('pack').running('train', { startedAt: T0 });
    const line: Progress = { done: 100, total: 500_000, unit: 'tokens', updatedAt: iso(T0) };
    const first = reconcile(makeRun(), w, T0 + 1000, { hooks: { progress: () => line } });
    // Past the refresh interval (default 5 s from the line's time); within it, the status is not rewritten.
    const stale = reconcile(makeRun({ status: first.status }), w, T0 + 6000, { hooks: { progress: () => ({ ...line, note: 'stale: HTTP 403' }) } });
    expect(stage(stale, 'train').progress?.note).toBe('stale: HTTP 403');
  });

  it('leaves progress alone once it is complete while the pod is still finishing', () => {
    const w = world().through('pack').running('train', { startedAt: T0 });
    const opts = { hooks: { progress: linearProgress() }, progressEveryMs: 700 };
    const done = reconcile(makeRun(), w, T0 + 2500, opts);
    expect(stage(done, 'train').progress).toMatchObject({ done: 500_000, total: 500_000 });
    const again = reconcile(makeRun({ status: done.status }), w, T0 + 2600, opts);
    expect(canonical(again.status)).toBe(canonical(done.status));
    expect(again.requeueAfterMs).toBeUndefined();
  });
});

describe('decide: the simulated mark', () => {
  it('marks a stage whose summary says simulated, and lists it in the run status, so nobody takes its numbers for measurements', () => {
    const w = world();
    w.complete('data-prep', { summary: (index) => ({ simulated: true, metrics: { records_out: 10 * (index + 1) } }) });
    const d = reconcile(makeRun(), w);
    expect(stage(d, 'data-prep').simulated).toBe(true);
    expect(d.status.simulated).toEqual(['data-prep']);
    expect(stage(d, 'dedup').simulated).toBeUndefined();
  });

  it('marks a stage whose progress the hook says is simulated', () => {
    const w = world().through('pack').running('train', { startedAt: T0 });
    const d = reconcile(makeRun(), w, T0 + 1000, { hooks: { progress: linearProgress(true) } });
    expect(stage(d, 'train')).toMatchObject({ simulated: true, progress: { simulated: true } });
    expect(d.status.simulated).toEqual(['train']);
  });

  it('leaves measured stages unmarked', () => {
    const d = reconcile(makeRun(), world().through('pack'));
    expect(d.status.stages.some((s) => s.simulated)).toBe(false);
    expect(d.status.simulated).toBeUndefined();
  });
});

describe('decide: times', () => {
  it('records the same times whether the Job came from a list (Dates) or a watch (strings)', () => {
    const listed = world().complete('data-prep');
    const watched = world().complete('data-prep');
    const j = watched.jobs[0]!;
    // The API's own form, without milliseconds, as a watch event delivers it.
    const apiForm = <T,>(o: T): T => JSON.parse(JSON.stringify(o).replace(/\.000Z"/g, 'Z"')) as T;
    j.status = apiForm(j.status);
    j.metadata = apiForm(j.metadata);
    expect(String(j.status!.completionTime)).toMatch(/:00Z$/);
    expect(stage(reconcile(makeRun(), watched), 'data-prep').completionTime).toBe(stage(reconcile(makeRun(), listed), 'data-prep').completionTime);
  });
});
