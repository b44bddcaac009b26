/**
 * The decision of one reconcile: from everything observed about a run (the ModelRun, its Jobs, pods and eval
 * model server, all from the informer caches) and the time, the status it should have and the objects to
 * apply or remove. Pure and level-triggered: the same world gives the same decision, whatever event woke us,
 * so a controller that crashed and restarted carries on where the cluster says the run is.
 */
import type { KubernetesObject, V1Deployment, V1Job, V1Pod } from '@kubernetes/client-node';
import { evalModelObjects, LABELS, stageObjects } from '@kiln/k8s';
import { evaluateGates, topologicalOrder, type Plan, type Stage, type SuiteMetrics } from '@kiln/plan';
import { TERMINAL_EXIT, type Artifact, type StageSummary, type UpstreamOutput } from '@kiln/stage';
import {
  isSimulatedSummary,
  parseSummary,
  REASONS,
  RUN_CONDITION,
  stageConditionType,
  type Condition,
  type ControllerHooks,
  type ModelRun,
  type ModelRunStatus,
  type Reason,
  type RunArtifact,
  type RunPhase,
  type StagePhase,
  type StageStatus,
} from '@kiln/cluster';

export interface Observed {
  readonly run: ModelRun;
  /** Jobs labelled with the run's id. */
  readonly jobs: readonly V1Job[];
  /** Pods labelled with the run's id. */
  readonly pods: readonly V1Pod[];
  /** The run's eval model server Deployment, if it exists. */
  readonly evalModel?: V1Deployment;
  readonly now: number;
}

export interface DecideOptions {
  /** What the host adds: pod annotations, progress, run warnings (the local cluster's simulation). Default: none. */
  readonly hooks?: ControllerHooks;
  /** Delay before attempt n+1 is base·2^(n-1), capped. Defaults 10 s and 5 min. */
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  /** How often a running stage's progress is refreshed, ms. Default 5000. */
  readonly progressEveryMs?: number;
}

export interface ObjectRef {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly namespace: string;
}

export interface KilnEvent {
  readonly type: 'Normal' | 'Warning';
  readonly reason: string;
  readonly message: string;
}

export interface Decision {
  readonly status: ModelRunStatus;
  /** Objects to server-side apply, in order (each already owned by the run). */
  readonly apply: readonly KubernetesObject[];
  /** Merge patches of objects the controller already made (suspending a running Job). */
  readonly patch: readonly { readonly ref: ObjectRef; readonly patch: Readonly<Record<string, unknown>> }[];
  readonly remove: readonly ObjectRef[];
  readonly events: readonly KilnEvent[];
  /** Reconcile again after this long even if nothing changes (backoff, progress). */
  readonly requeueAfterMs?: number;
}

export const ATTEMPT_LABEL = LABELS.attempt;
const JOB_NAME_LABEL = 'batch.kubernetes.io/job-name';

const iso = (ms: number) => new Date(ms).toISOString();
const cond = (j: V1Job, type: string) => j.status?.conditions?.find((c) => c.type === type && c.status === 'True');
// Listed objects carry Dates and watched ones strings ("…:01Z"): one form, or a restart rewrites every time.
const time = (t: Date | string | undefined): string | undefined => {
  if (t === undefined || t === null) return undefined;
  const d = t instanceof Date ? t : new Date(t);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
};

/** The run's plan, as Pulumi declared it in the ModelRun's spec. */
export function planOf(run: ModelRun): Plan {
  const { suspend: _s, ...spec } = run.spec;
  return { apiVersion: 'kiln.dev/v1alpha1', ...spec } as Plan;
}

interface Attempt {
  readonly job: V1Job;
  readonly attempt: number;
  readonly pods: V1Pod[];
}

function terminated(p: V1Pod) {
  return p.status?.containerStatuses?.[0]?.state?.terminated;
}

/** What made an attempt fail, and whether a retry can help. */
function failure(a: Attempt): { terminal: boolean; message: string } {
  const failedPods = a.pods.filter((p) => p.status?.phase === 'Failed');
  const terminalPod = failedPods.find((p) => terminated(p)?.exitCode === TERMINAL_EXIT);
  const jobCond = cond(a.job, 'Failed');
  const terminal = !!terminalPod || jobCond?.reason === 'PodFailurePolicy';
  const pod = terminalPod ?? failedPods.find((p) => terminated(p)?.message) ?? failedPods[0];
  const t = pod && terminated(pod);
  const summary = parseSummary(t?.message);
  const said = summary ? describe(summary) : undefined;
  const why = said ?? (t ? `exit code ${t.exitCode}${t.reason ? ` (${t.reason})` : ''}` : (jobCond?.message ?? jobCond?.reason ?? 'the Job failed'));
  return { terminal, message: pod ? `pod ${pod.metadata?.name}: ${why}` : why };
}

function describe(s: StageSummary): string {
  const said = s as Readonly<Record<string, unknown>>;
  for (const k of ['error', 'message', 'reason']) if (typeof said[k] === 'string') return said[k] as string;
  return JSON.stringify(s).slice(0, 300);
}

/** A stage's summary: rank 0's for training, numbers summed over shards for sharded stages. */
function summaryOf(a: Attempt): StageSummary | undefined {
  const done = a.pods.filter((p) => p.status?.phase === 'Succeeded').sort((x, y) => index(x) - index(y));
  const byIndex = new Map<number, StageSummary>();
  for (const p of done) {
    const s = parseSummary(terminated(p)?.message);
    if (s && !byIndex.has(index(p))) byIndex.set(index(p), s);
  }
  const all = [...byIndex.values()];
  if (all.length <= 1 || a.job.spec?.completionMode !== 'Indexed' || a.job.metadata?.labels?.[LABELS.stage] === 'train') return all[0];
  const metrics: Record<string, number> = {};
  const artifacts = new Map<string, Artifact>();
  // A summary is what a container wrote: numbers and lists are checked, not trusted.
  for (const s of all) {
    for (const [k, v] of Object.entries(s.metrics ?? {})) if (typeof v === 'number') metrics[k] = (metrics[k] ?? 0) + v;
    for (const art of Array.isArray(s.artifacts) ? s.artifacts : []) artifacts.set(`${art.name}\0${art.uri}`, art);
  }
  return { ...all[0], shards: all.length, metrics, artifacts: [...artifacts.values()] };
}

const index = (p: V1Pod) => Number(p.metadata?.annotations?.['batch.kubernetes.io/job-completion-index'] ?? 0);

/** Why a running attempt is not making progress, if the pods say (no capacity, image pull trouble). */
function waitingMessage(a: Attempt): string | undefined {
  for (const p of a.pods) {
    const sched = p.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
    if (sched) return `waiting for capacity: ${sched.message ?? sched.reason}`;
    const w = p.status?.containerStatuses?.[0]?.state?.waiting;
    // The kubelet retries image pulls with its own backoff: a hiccup heals, a wrong name shows here.
    if (w && w.reason && w.reason !== 'ContainerCreating') return `${w.reason}: ${w.message ?? p.spec?.containers[0]?.image}`;
  }
  return undefined;
}

function ownerRef(run: ModelRun) {
  return { apiVersion: run.apiVersion, kind: 'ModelRun', name: run.metadata.name, uid: run.metadata.uid ?? '', controller: true, blockOwnerDeletion: true };
}

function owned<T extends KubernetesObject>(run: ModelRun, o: T): T {
  return { ...o, metadata: { ...o.metadata, ownerReferences: [ownerRef(run)] } };
}

export function backoffMs(attempt: number, o: DecideOptions): number {
  return Math.min((o.retryBaseMs ?? 10_000) * 2 ** (attempt - 1), o.retryMaxMs ?? 300_000);
}

/** Decides what a run needs now. Throws only on a programming error; bad specs become a Failed status. */
export function decide(obs: Observed, opts: DecideOptions = {}): Decision {
  const { run, now } = obs;
  const prev = run.status;
  const apply: KubernetesObject[] = [];
  const remove: ObjectRef[] = [];
  const patch: { ref: ObjectRef; patch: Record<string, unknown> }[] = [];
  const events: KilnEvent[] = [];
  let requeue: number | undefined;
  const wake = (ms: number) => (requeue = requeue === undefined ? ms : Math.min(requeue, ms));

  let plan: Plan;
  let order: Stage[];
  try {
    plan = planOf(run);
    order = topologicalOrder(plan.stages);
  } catch (e) {
    return invalid(run, now, `the run's stage graph is not valid: ${(e as Error).message}`);
  }
  const suspended = run.spec.suspend === true;
  const hooks = opts.hooks ?? {};
  if (!prev) for (const w of hooks.runWarnings?.(run) ?? []) events.push({ type: 'Warning', reason: w.reason, message: w.message });

  const collect = (s: Stage): Attempt[] =>
    obs.jobs
      .filter((j) => j.metadata?.labels?.[LABELS.stage] === s.name)
      .map((job) => ({ job, attempt: Number(job.metadata?.labels?.[ATTEMPT_LABEL] ?? 1), pods: obs.pods.filter((p) => p.metadata?.labels?.[JOB_NAME_LABEL] === job.metadata?.name) }))
      .sort((a, b) => a.attempt - b.attempt);
  // Each stage's attempts, gathered once: the failure check and the stage loop both read them.
  const attemptsByStage = new Map(order.map((s) => [s.name, collect(s)]));
  const attemptsOf = (s: Stage): Attempt[] => attemptsByStage.get(s.name)!;

  // A stage that has failed for good stops the run: nothing new starts after it.
  const finalFailure = order.some((s) => {
    const last = attemptsOf(s).at(-1);
    if (!last || !cond(last.job, 'Failed')) return false;
    return failure(last).terminal || last.attempt >= s.maxAttempts;
  });

  const exportDone = (name: string) => statuses.get(name)?.phase === 'Succeeded';
  const statuses = new Map<string, StageStatus>();
  const evalStages = order.filter((s) => s.kind === 'eval');
  const evalModelReady = (obs.evalModel?.status?.availableReplicas ?? 0) >= 1;

  for (const stage of order) {
    const before = prev?.stages.find((s) => s.name === stage.name);
    const attempts = attemptsOf(stage);
    const last = attempts.at(-1);
    const base = { name: stage.name, kind: stage.kind, maxAttempts: stage.maxAttempts, manifest: stage.manifest, attempts: last?.attempt ?? 0 };
    const deps = stage.dependsOn.map((d) => statuses.get(d)!);
    let st: StageStatus;

    const start = (attempt: number, after?: string): StageStatus => {
      const upstream: Record<string, UpstreamOutput> = Object.fromEntries(deps.map((d) => [d.name, { summary: d.summary ?? null, manifest: d.manifest }]));
      const podAnnotations = hooks.podAnnotations?.({ run, plan, stage, attempt });
      let objs;
      try {
        objs = stageObjects(plan, stage, { attempt, upstream, ...(podAnnotations ? { podAnnotations } : {}) });
      } catch (e) {
        return { ...base, phase: 'Failed', reason: REASONS.InvalidSpec, message: `cannot build the stage's Job: ${(e as Error).message}`, completionTime: (before?.phase === 'Failed' && before.completionTime) || iso(now) };
      }
      for (const o of [objs.configMap, objs.service, objs.networkPolicy, objs.job]) if (o) apply.push(owned(run, o as KubernetesObject));
      return {
        ...base,
        attempts: attempt,
        phase: 'Running',
        reason: REASONS.Running,
        message: attempt > 1 ? `attempt ${attempt} of ${stage.maxAttempts} started${stage.kind === 'train' ? ', resuming from the latest checkpoint' : ''}${after ? `; attempt ${attempt - 1} failed: ${after}` : ''}` : 'started',
        job: objs.job.metadata!.name!,
        startTime: before?.startTime ?? iso(now),
      };
    };

    if (!last) {
      if (deps.some((d) => d.phase === 'Failed' || d.reason === REASONS.Aborted) || (finalFailure && !deps.every((d) => d.phase === 'Succeeded'))) {
        st = { ...base, phase: 'Pending', reason: REASONS.Aborted, message: 'will not run: an earlier stage failed' };
      } else if (!deps.every((d) => d.phase === 'Succeeded')) {
        st = { ...base, phase: 'Pending', reason: REASONS.Waiting, message: `waiting for ${deps.filter((d) => d.phase !== 'Succeeded').map((d) => d.name).join(', ')}` };
      } else if (finalFailure) {
        st = { ...base, phase: 'Pending', reason: REASONS.Aborted, message: 'will not run: another stage failed' };
      } else if (suspended) {
        st = { ...base, phase: 'Pending', reason: REASONS.Suspended, message: 'the run is suspended' };
      } else if (stage.kind === 'eval' && !evalModelReady) {
        st = { ...base, phase: 'Pending', reason: REASONS.WaitingForEvalModel, message: `waiting for the eval model server ${plan.evalModel.name}` };
      } else {
        st = start(1);
      }
    } else if (cond(last.job, 'Complete')) {
      const summary = summaryOf(last) ?? before?.summary;
      const done = time(last.job.status?.completionTime) ?? before?.completionTime ?? iso(now);
      st = {
        ...base,
        phase: 'Succeeded',
        reason: REASONS.Succeeded,
        message: last.attempt > 1 ? `succeeded on attempt ${last.attempt}` : 'succeeded',
        job: last.job.metadata!.name!,
        startTime: before?.startTime ?? time(attempts[0]!.job.metadata?.creationTimestamp) ?? done,
        completionTime: done,
        ...(summary ? { summary } : {}),
        ...(isSimulatedSummary(summary) ? { simulated: true } : {}),
      };
    } else if (cond(last.job, 'Failed')) {
      const f = failure(last);
      const failedAt = Date.parse(time(cond(last.job, 'Failed')!.lastTransitionTime) ?? iso(now));
      const common = { ...base, job: last.job.metadata!.name!, startTime: before?.startTime ?? time(attempts[0]!.job.metadata?.creationTimestamp) ?? iso(now) };
      if (f.terminal) {
        st = { ...common, phase: 'Failed', reason: REASONS.TerminalFailure, message: `failed (not retried: the stage reported an error no retry can fix): ${f.message}`, completionTime: iso(failedAt) };
      } else if (last.attempt >= stage.maxAttempts) {
        st = { ...common, phase: 'Failed', reason: REASONS.AttemptsExhausted, message: `failed ${last.attempt} of ${stage.maxAttempts} attempts; last: ${f.message}`, completionTime: iso(failedAt) };
      } else if (finalFailure) {
        st = { ...common, phase: 'Failed', reason: REASONS.Aborted, message: `attempt ${last.attempt} failed (${f.message}); not retried because another stage failed`, completionTime: iso(failedAt) };
      } else {
        const at = failedAt + backoffMs(last.attempt, opts);
        // A retried eval waits for its model server like the first attempt did.
        if (now >= at && !suspended && (stage.kind !== 'eval' || evalModelReady)) st = start(last.attempt + 1, f.message);
        else {
          if (!suspended) wake(at - now);
          st = { ...common, phase: 'Retrying', reason: REASONS.BackingOff, message: `attempt ${last.attempt} failed: ${f.message}; attempt ${last.attempt + 1} of ${stage.maxAttempts} ${suspended ? 'waits: the run is suspended' : `starts at ${iso(at)}`}`, nextAttemptAt: iso(at) };
        }
      }
    } else {
      // Running. Suspending a run suspends its running Jobs (Kubernetes deletes their pods; training resumes
      // from its checkpoint when the run is resumed).
      const jobSuspended = last.job.spec?.suspend === true;
      if (jobSuspended !== suspended) patch.push({ ref: { apiVersion: 'batch/v1', kind: 'Job', name: last.job.metadata!.name!, namespace: run.metadata.namespace }, patch: { spec: { suspend: suspended } } });
      const fresh = hooks.progress?.({ run, plan, stage, attempt: last.attempt, job: last.job, pods: last.pods, now });
      // Progress moves with the clock: refresh it at most every progressEveryMs, or every status write would
      // wake the run again and write once more.
      const every = opts.progressEveryMs ?? 5000;
      const old = before?.progress;
      const age = old?.updatedAt ? now - Date.parse(old.updatedAt) : Infinity;
      // A note (why the numbers may be stale) is news even when the numbers are not.
      const same = fresh && old && old.done === fresh.done && old.note === fresh.note;
      const keep = fresh && old && before?.attempts === last.attempt && (same || (age < every && fresh.done < fresh.total));
      // Progress read from the stage (rank 0's line) says when it was written; the simulation's is as of now.
      const progress = keep ? old : fresh && { ...fresh, updatedAt: fresh.updatedAt ?? iso(now) };
      // A line written long ago is older than `every`: wait a whole interval, never a negative one.
      if (progress && progress.done < progress.total) wake(progress === old && age < every ? every - age : every);
      st = {
        ...base,
        phase: 'Running',
        reason: suspended ? REASONS.Suspended : REASONS.Running,
        message: suspended ? 'suspended' : (waitingMessage(last) ?? (!last.pods.length && now - Date.parse(time(last.job.metadata?.creationTimestamp) ?? iso(now)) > 10_000 ? `no pods yet: if this lasts, the Job's events say why (kubectl describe job ${last.job.metadata!.name})` : last.attempt > 1 ? `attempt ${last.attempt} of ${stage.maxAttempts} running` : 'running')),
        job: last.job.metadata!.name!,
        startTime: before?.startTime ?? time(attempts[0]!.job.metadata?.creationTimestamp) ?? iso(now),
        ...(progress ? { progress } : {}),
        ...(progress?.simulated ? { simulated: true } : {}),
      };
    }
    statuses.set(stage.name, st);
  }

  // The eval model server lives from export's success until the last eval ends.
  const evalsOpen = evalStages.some((s) => !['Succeeded', 'Failed'].includes(statuses.get(s.name)!.phase));
  const exportName = evalStages[0]?.dependsOn[0];
  // Also while an eval Job runs or backs off: a resumed run's server was removed while it was suspended.
  const wantEvalModel = !!exportName && exportDone(exportName) && evalsOpen && !finalFailure && !suspended;
  if (wantEvalModel && !obs.evalModel) {
    const em = evalModelObjects(plan);
    // The policy first: the server admits only the run's eval pods from the moment it exists.
    apply.push(owned(run, em.networkPolicy as KubernetesObject), owned(run, em.service as KubernetesObject), owned(run, em.deployment as KubernetesObject));
  } else if (!wantEvalModel && obs.evalModel && (!evalsOpen || finalFailure || suspended)) {
    const ns = run.metadata.namespace;
    remove.push(
      { apiVersion: 'apps/v1', kind: 'Deployment', name: plan.evalModel.name, namespace: ns },
      { apiVersion: 'v1', kind: 'Service', name: plan.evalModel.name, namespace: ns },
      { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', name: plan.evalModel.name, namespace: ns },
    );
  }

  const stages = order.map((s) => statuses.get(s.name)!);
  const status = runStatus(run, plan, stages, now, suspended, wantEvalModel ? { name: plan.evalModel.name, ready: evalModelReady } : undefined);
  events.push(...transitions(prev, status));
  return { status, apply, patch, remove, events, ...(requeue !== undefined ? { requeueAfterMs: Math.max(1, Math.ceil(requeue)) } : {}) };
}

function invalid(run: ModelRun, now: number, message: string): Decision {
  const status: ModelRunStatus = {
    phase: 'Failed',
    message,
    ...(run.metadata.generation !== undefined ? { observedGeneration: run.metadata.generation } : {}),
    currentStage: null,
    completionTime: run.status?.completionTime ?? iso(now),
    stages: [],
    conditions: [condition(run.status?.conditions, RUN_CONDITION, 'False', REASONS.InvalidSpec, message, now, run.metadata.generation)],
    artifacts: [],
    metrics: {},
    gates: {},
  };
  return { status, apply: [], patch: [], remove: [], events: transitions(run.status, status) };
}

function condition(prev: readonly Condition[] | undefined, type: string, status: Condition['status'], reason: string, message: string, now: number, generation?: number): Condition {
  const old = prev?.find((c) => c.type === type);
  const same = old && old.status === status && old.reason === reason;
  return { type, status, reason, message, lastTransitionTime: same ? old.lastTransitionTime : iso(now), ...(generation !== undefined ? { observedGeneration: generation } : {}) };
}

const stageCondition = (p: StagePhase): Condition['status'] => (p === 'Succeeded' ? 'True' : p === 'Failed' ? 'False' : 'Unknown');

function runStatus(run: ModelRun, plan: Plan, stages: StageStatus[], now: number, suspended: boolean, evalModel: ModelRunStatus['evalModel']): ModelRunStatus {
  const prev = run.status;
  const failed = stages.find((s) => s.phase === 'Failed' && s.reason !== REASONS.Aborted) ?? stages.find((s) => s.phase === 'Failed');
  const active = stages.find((s) => s.phase === 'Running' || s.phase === 'Retrying');
  const settled = (s: StageStatus) => s.phase === 'Succeeded' || s.phase === 'Failed' || (s.phase === 'Pending' && s.reason === REASONS.Aborted);
  let phase: RunPhase;
  let message: string;
  if (failed && stages.every(settled)) {
    phase = 'Failed';
    message = `stage ${failed.name} failed: ${failed.message}`;
  } else if (failed) {
    phase = 'Running';
    message = `stage ${failed.name} failed; waiting for ${stages.filter((s) => !settled(s)).map((s) => s.name).join(', ')} to end`;
  } else if (stages.every((s) => s.phase === 'Succeeded')) {
    phase = 'Succeeded';
    message = `all ${stages.length} stages succeeded`;
  } else if (suspended) {
    phase = 'Suspended';
    message = 'suspended: no new stage starts until spec.suspend is false';
  } else if (active || stages.some((s) => s.phase === 'Succeeded')) {
    phase = 'Running';
    message = active ? `${active.name}: ${active.message}` : 'running';
  } else {
    phase = 'Pending';
    message = 'waiting to start';
  }
  const artifacts: RunArtifact[] = stages.flatMap((s) =>
    ((Array.isArray(s.summary?.artifacts) ? s.summary.artifacts : []) as readonly Partial<Artifact>[])
      .filter((a) => typeof a?.uri === 'string')
      .map((a) => ({ stage: s.name, name: String(a.name ?? s.name), uri: a.uri!, ...(typeof a.digest === 'string' ? { digest: a.digest } : {}), ...(typeof a.bytes === 'number' ? { bytes: a.bytes } : {}) })),
  );
  const metrics: Record<string, number> = {};
  const suiteMetrics: Record<string, Record<string, number>> = {};
  for (const s of stages) {
    const m: Readonly<Record<string, unknown>> = s.summary?.metrics ?? {};
    for (const [k, v] of Object.entries(m)) if (typeof v === 'number' && Number.isFinite(v)) metrics[`${s.name}.${k}`] = v;
    const planned = plan.stages.find((x) => x.name === s.name);
    if (planned?.kind === 'eval' && s.phase === 'Succeeded') {
      const suite = planned.config.suite.name;
      suiteMetrics[suite] = Object.fromEntries(Object.entries(m).filter(([, v]) => typeof v === 'number')) as Record<string, number>;
    }
  }
  const gates = evaluateGates(plan, suiteMetrics as SuiteMetrics);
  const gen = run.metadata.generation;
  const runCond = phase === 'Succeeded' ? condition(prev?.conditions, RUN_CONDITION, 'True', REASONS.Succeeded, message, now, gen) : phase === 'Failed' ? condition(prev?.conditions, RUN_CONDITION, 'False', failed!.reason, message, now, gen) : condition(prev?.conditions, RUN_CONDITION, 'Unknown', suspended ? REASONS.Suspended : REASONS.Running, message, now, gen);
  const conditions = [runCond, ...stages.map((s) => condition(prev?.conditions, stageConditionType(s.name), stageCondition(s.phase), s.reason, s.message, now, gen))];
  const simulated = stages.filter((s) => s.simulated).map((s) => s.name);
  const starts = stages.map((s) => s.startTime).filter((t): t is string => !!t).sort();
  const ends = stages.map((s) => s.completionTime).filter((t): t is string => !!t).sort();
  return {
    phase,
    message,
    ...(gen !== undefined ? { observedGeneration: gen } : {}),
    currentStage: (failed && phase === 'Failed' ? failed.name : (active?.name ?? stages.find((s) => s.phase !== 'Succeeded' && s.reason !== REASONS.Aborted)?.name)) ?? null,
    ...(prev?.startTime || starts[0] ? { startTime: prev?.startTime ?? starts[0]! } : {}),
    ...(phase === 'Succeeded' || phase === 'Failed' ? { completionTime: prev?.completionTime ?? ends.at(-1) ?? iso(now) } : {}),
    stages,
    conditions,
    artifacts,
    metrics,
    gates,
    ...(evalModel ? { evalModel } : {}),
    ...(simulated.length ? { simulated } : {}),
  };
}

/** Events for what changed since the last status: stages starting, retrying, ending; the run ending. */
function transitions(prev: ModelRunStatus | undefined, next: ModelRunStatus): KilnEvent[] {
  const out: KilnEvent[] = [];
  for (const s of next.stages) {
    const p = prev?.stages.find((x) => x.name === s.name);
    if (p && p.phase === s.phase && p.attempts === s.attempts) continue;
    // A retry that started without a visible backoff (the backoff had passed by the time we looked) still says why.
    if (s.phase === 'Running' && p?.phase === 'Running' && s.attempts > p.attempts) out.push({ type: 'Warning', reason: 'StageRetrying', message: `${s.name}: ${s.message}` });
    if (s.phase === 'Running' && (!p || p.phase !== 'Running' || p.attempts !== s.attempts)) out.push({ type: 'Normal', reason: 'StageStarted', message: `${s.name}: attempt ${s.attempts} started (Job ${s.job})` });
    else if (s.phase === 'Succeeded') out.push({ type: 'Normal', reason: 'StageSucceeded', message: `${s.name}: ${s.message}` });
    else if (s.phase === 'Retrying') out.push({ type: 'Warning', reason: 'StageRetrying', message: `${s.name}: ${s.message}` });
    else if (s.phase === 'Failed') out.push({ type: 'Warning', reason: 'StageFailed', message: `${s.name}: ${s.message}` });
  }
  if (prev?.phase !== next.phase) {
    if (next.phase === 'Succeeded') {
      const verdicts = Object.entries(next.gates).map(([env, v]) => `${env} ${v.passed === true ? 'passed' : v.passed === false ? 'failed' : 'pending'}`);
      out.push({ type: 'Normal', reason: 'RunSucceeded', message: `${next.message}${verdicts.length ? `; gates: ${verdicts.join(', ')}` : ''}` });
    } else if (next.phase === 'Failed') out.push({ type: 'Warning', reason: 'RunFailed', message: next.message });
    else if (next.phase === 'Suspended') out.push({ type: 'Normal', reason: 'RunSuspended', message: next.message });
  }
  return out;
}

export type { Reason };
