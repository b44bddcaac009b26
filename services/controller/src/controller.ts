/**
 * The run controller: informers feed a per-key work queue; workers reconcile one ModelRun at a time from the
 * caches (see reconcile.ts) and carry the decision out with server-side apply under one field manager, then
 * write the status through the status subresource with the resourceVersion they read. With leader
 * election, only the replica holding the Lease acts.
 */
import { CoreV1Api, CustomObjectsApi, KubernetesObjectApi, PatchStrategy, type KubeConfig, type KubernetesObject, type V1Deployment, type V1Job, type V1Pod } from '@kubernetes/client-node';
import { GROUP, LABELS, VERSION } from '@kiln/k8s';
import { PLURAL, readPodLog, type ModelRun } from '@kiln/cluster';
import { canonicalJson } from '@kiln/stage';
import { hostname } from 'node:os';
import { systemClock, type Clock } from './clock.ts';
import { startInformers, type InformerSet, type Kind } from './informers.ts';
import { campaign, type LeaderOptions } from './leader.ts';
import { WorkQueue } from './queue.ts';
import { ProgressReader, type LogTail } from './progress.ts';
import { decide, type DecideOptions, type Decision } from './reconcile.ts';

export const FIELD_MANAGER = 'kiln-controller';

export interface ControllerOptions extends DecideOptions {
  readonly kubeConfig: KubeConfig;
  /** Watch one namespace; all namespaces when undefined (needs cluster-wide RBAC). */
  readonly namespace?: string;
  /** Runs reconciled at the same time. Default 8. */
  readonly workers?: number;
  /** Every run is reconciled at least this often, ms. Default 30 000. */
  readonly resyncMs?: number;
  /** Hold a Lease before acting; off when undefined. */
  readonly leaderElection?: Omit<LeaderOptions, 'identity'> & { readonly identity?: string };
  readonly clock?: Clock;
  readonly log?: (line: string) => void;
  /** Called when leadership is lost; default: log it (the CLI exits the process). */
  readonly onLostLeadership?: (why: string) => void;
  /**
   * How training progress is read where no hook reports it: rank 0's log tail through pods/log (readPodLog),
   * or `false` for none. Default: pods/log through `kubeConfig`.
   */
  readonly progressLog?: LogTail | false;
}

export interface ControllerStats {
  reconciles: number;
  errors: number;
  conflicts: number;
  applied: number;
  statusWrites: number;
}

/**
 * The result contract of one reconcile, as controller-runtime's: return `{ requeueAfterMs }` to look again
 * after that long (or `{}` to wait for the next change), throw an error to be retried with per-run
 * exponential backoff, throw a `TerminalError` for what no retry can fix (logged, not retried; the periodic
 * resync still looks at the run again, so a fixed spec is picked up).
 */
export interface ReconcileResult {
  readonly requeueAfterMs?: number;
}

/** A reconcile failure that retrying cannot fix: the API server rejected what we sent as invalid. */
export class TerminalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TerminalError';
  }
}

/** What the work queue does with a run after a reconcile: the result contract above, as data. */
export type NextStep = { readonly kind: 'forget' } | { readonly kind: 'after'; readonly ms: number } | { readonly kind: 'backoff'; readonly conflict: boolean } | { readonly kind: 'terminal' };

export function nextStep(outcome: { readonly result: ReconcileResult } | { readonly error: unknown }): NextStep {
  if ('result' in outcome) return outcome.result.requeueAfterMs !== undefined ? { kind: 'after', ms: outcome.result.requeueAfterMs } : { kind: 'forget' };
  if (outcome.error instanceof TerminalError) return { kind: 'terminal' };
  return { kind: 'backoff', conflict: (outcome.error as { code?: number })?.code === 409 };
}

/** API answers that say the object itself is wrong (Invalid, BadRequest): sending it again gives the same answer. */
const INVALID_CODES = new Set([400, 422]);

export class Controller {
  readonly stats: ControllerStats = { reconciles: 0, errors: 0, conflicts: 0, applied: 0, statusWrites: 0 };
  private readonly clock: Clock;
  private readonly queue: WorkQueue;
  private informers?: InformerSet;
  private readonly runByRunId = new Map<string, string>();
  /** When each waiting key was first added since its last reconcile: the queue wait, for the stats line. */
  private readonly addedAt = new Map<string, number>();
  private readonly waits: number[] = [];
  private readonly durations: number[] = [];
  private readonly objects: KubernetesObjectApi;
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private workers: Promise<void>[] = [];
  private stopLeader?: () => Promise<void>;
  private resyncCancel?: () => void;
  private seq = 0;
  private running = false;
  readonly identity: string;
  /** Resolves once this replica leads and its caches are synced. */
  readonly ready: Promise<void>;
  private markReady!: () => void;

  private readonly o: ControllerOptions;
  /** What decide gets: the options, with the progress channel's reader behind the host's progress hook. */
  private readonly decideOptions: DecideOptions;
  readonly progress?: ProgressReader;
  constructor(o: ControllerOptions) {
    this.o = o;
    this.clock = o.clock ?? systemClock;
    this.queue = new WorkQueue(this.clock);
    const readLog: LogTail | undefined = o.progressLog === false ? undefined : (o.progressLog ?? ((ns, pod, q) => readPodLog(o.kubeConfig, ns, pod, q)));
    if (readLog) this.progress = new ProgressReader({ readLog, clock: this.clock, wake: (key) => {
        if (this.running) this.queue.add(key);
      }, minIntervalMs: o.progressEveryMs ?? 5000, log: (l) => this.log(l) });
    const host = o.hooks?.progress;
    const reader = this.progress;
    this.decideOptions = reader || host ? { ...o, hooks: { ...o.hooks, progress: (a) => host?.(a) ?? reader?.progress(a) } } : o;
    this.objects = KubernetesObjectApi.makeApiClient(o.kubeConfig);
    this.custom = o.kubeConfig.makeApiClient(CustomObjectsApi);
    this.core = o.kubeConfig.makeApiClient(CoreV1Api);
    this.identity = o.leaderElection?.identity ?? `${hostname()}-${process.pid}`;
    this.ready = new Promise((r) => (this.markReady = r));
  }

  private log(line: string): void {
    (this.o.log ?? ((l: string) => process.stderr.write(`${l}\n`)))(`${new Date(this.clock.now()).toISOString()} ${line}`);
  }

  /** Starts campaigning (or acting at once, without leader election). Returns when started, not when done. */
  async start(): Promise<void> {
    if (this.o.leaderElection) {
      const le = { ...this.o.leaderElection, identity: this.identity };
      this.stopLeader = campaign(this.o.kubeConfig, le, this.clock, () => void this.run(), (why) => this.lost(why), (m) => this.log(m));
    } else {
      await this.run();
    }
  }

  private lost(why: string): void {
    this.log(`leader: lost leadership: ${why}; stopping`);
    void this.stop();
    this.o.onLostLeadership?.(why);
  }

  private async run(): Promise<void> {
    this.running = true;
    this.informers = startInformers(this.o.kubeConfig, this.o.namespace, (k, obj) => this.onEvent(k, obj), (m) => this.log(m));
    await this.informers.synced;
    if (!this.running) return;
    for (const r of this.informers.caches.runs.list()) this.onEvent('runs', r);
    this.log(`controller ${this.identity}: caches synced (${this.informers.caches.runs.list().length} runs); watching ${this.o.namespace ? `namespace ${this.o.namespace}` : 'all namespaces'}`);
    const n = this.o.workers ?? 8;
    this.workers = Array.from({ length: n }, () => this.worker());
    this.scheduleResync();
    this.markReady();
  }

  private lastStats = '';
  private scheduleResync(): void {
    this.resyncCancel = this.clock.setTimeout(() => {
      const line = this.counts();
      if (line !== this.lastStats) this.log(`${line}; ${this.queue.length} queued; ${this.timings()}`);
      this.lastStats = line;
      for (const r of this.informers?.caches.runs.list() ?? []) this.queue.add(keyOf(r));
      if (this.running) this.scheduleResync();
    }, this.o.resyncMs ?? 30_000);
  }

  async stop(): Promise<void> {
    if (this.running) this.log(`${this.counts()}; ${this.timings()}`);
    this.running = false;
    this.resyncCancel?.();
    this.queue.shutdown();
    await this.informers?.stop();
    await Promise.all(this.workers);
    await this.stopLeader?.();
  }

  private onEvent(kind: Kind, obj: KubernetesObject): void {
    let key: string | undefined;
    if (kind === 'runs') {
      const run = obj as unknown as ModelRun;
      key = keyOf(run);
      this.runByRunId.set(run.spec.runId, key);
    } else {
      const runId = obj.metadata?.labels?.[LABELS.runId];
      key = runId ? this.runByRunId.get(runId) : undefined;
    }
    if (!key) return;
    if (!this.addedAt.has(key)) this.addedAt.set(key, performance.now());
    this.queue.add(key);
  }

  private counts(): string {
    const st = this.stats;
    return `stats: ${st.reconciles} reconciles, ${st.applied} applied, ${st.statusWrites} status writes, ${st.conflicts} conflicts, ${st.errors} errors`;
  }

  /** Queue wait and reconcile time since the last stats line, p50/p99 in ms. */
  private timings(): string {
    const q = (xs: number[], p: number) => (xs.length ? Math.round([...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(p * xs.length) - 1)]!) : 0);
    const line = `queue wait p50 ${q(this.waits, 0.5)} ms p99 ${q(this.waits, 0.99)} ms, reconcile p50 ${q(this.durations, 0.5)} ms p99 ${q(this.durations, 0.99)} ms`;
    this.waits.length = 0;
    this.durations.length = 0;
    return line;
  }

  private async worker(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const id = (++this.seq).toString(16).padStart(6, '0');
      const started = performance.now();
      const added = this.addedAt.get(key);
      this.addedAt.delete(key);
      if (added !== undefined) this.waits.push(started - added);
      let outcome: { result: ReconcileResult } | { error: unknown };
      try {
        outcome = { result: await this.reconcile(key, id) };
      } catch (error) {
        outcome = { error };
      }
      try {
        const step = nextStep(outcome);
        if (step.kind === 'forget' || step.kind === 'after' || step.kind === 'terminal') this.queue.forget(key);
        if (step.kind === 'after') this.queue.addAfter(key, step.ms);
        if (step.kind === 'terminal') {
          this.stats.errors++;
          this.log(`reconcile=${id} run=${key} error (not retried): ${errorText('error' in outcome ? outcome.error : undefined)}`);
        }
        if (step.kind === 'backoff') {
          if (step.conflict) this.stats.conflicts++;
          else this.stats.errors++;
          const delay = this.queue.addRateLimited(key);
          if (!step.conflict) this.log(`reconcile=${id} run=${key} error: ${errorText('error' in outcome ? outcome.error : undefined)}; retrying in ${delay} ms`);
        }
      } finally {
        this.durations.push(performance.now() - started);
        this.queue.done(key);
      }
    }
  }

  /** One reconcile of one run, under the result contract of `ReconcileResult`. */
  private async reconcile(key: string, id: string): Promise<ReconcileResult> {
    this.stats.reconciles++;
    const c = this.informers!.caches;
    const [ns, name] = key.split('/') as [string, string];
    const run = c.runs.get(name, ns) as ModelRun | undefined;
    if (!run || run.metadata.deletionTimestamp) return {}; // Cancelled: owned Jobs go with it.
    const runId = run.spec.runId;
    const mine = <T extends KubernetesObject>(xs: readonly T[]) => xs.filter((x) => x.metadata?.labels?.[LABELS.runId] === runId);
    const d = decide(
      {
        run,
        jobs: mine(c.jobs.list(ns) as V1Job[]),
        pods: mine(c.pods.list(ns) as V1Pod[]),
        ...(run.spec.evalModel ? { evalModel: c.deployments.get(run.spec.evalModel.name, ns) as V1Deployment | undefined } : {}),
        now: this.clock.now(),
      },
      this.decideOptions,
    );
    await this.execute(run, d, id);
    return d.requeueAfterMs !== undefined ? { requeueAfterMs: d.requeueAfterMs } : {};
  }

  private async execute(run: ModelRun, d: Decision, id: string): Promise<void> {
    const key = keyOf(run);
    // What a Job needs (its ConfigMap, Service, NetworkPolicy) goes first, together; then the Jobs and the rest.
    const apply = async (o: KubernetesObject) => {
      try {
        await this.objects.patch(o, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply);
      } catch (e) {
        const code = (e as { code?: number }).code;
        if (code !== undefined && INVALID_CODES.has(code)) throw new TerminalError(`the API server rejected ${o.kind} ${o.metadata?.name} (HTTP ${code}): ${errorText(e)}`, { cause: e });
        throw e;
      }
      this.stats.applied++;
      this.log(`reconcile=${id} run=${key} applied ${o.kind} ${o.metadata?.name}`);
    };
    const first = d.apply.filter((o) => o.kind !== 'Job' && o.kind !== 'Deployment');
    await Promise.all(first.map(apply));
    await Promise.all(d.apply.filter((o) => !first.includes(o)).map(apply));
    for (const p of d.patch) {
      await this.objects.patch({ apiVersion: p.ref.apiVersion, kind: p.ref.kind, metadata: { name: p.ref.name, namespace: p.ref.namespace }, ...p.patch }, undefined, undefined, FIELD_MANAGER, undefined, PatchStrategy.MergePatch);
      this.log(`reconcile=${id} run=${key} patched ${p.ref.kind} ${p.ref.name}`);
    }
    for (const r of d.remove) {
      try {
        await this.objects.delete({ apiVersion: r.apiVersion, kind: r.kind, metadata: { name: r.name, namespace: r.namespace } }, undefined, undefined, undefined, undefined, 'Background');
        this.log(`reconcile=${id} run=${key} removed ${r.kind} ${r.name}`);
      } catch (e) {
        if ((e as { code?: number }).code !== 404) throw e;
      }
    }
    // The API server does not keep our key order: compare canonically.
    if (canonicalJson(run.status) !== canonicalJson(d.status)) {
      // The resourceVersion we read makes a stale cache fail with 409 instead of overwriting newer status.
      await this.custom.replaceNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace: run.metadata.namespace, plural: PLURAL, name: run.metadata.name, body: { ...run, status: d.status } });
      this.stats.statusWrites++;
      if (process.env.KILN_DEBUG_STATUS) this.log(`reconcile=${id} run=${key} status diff: ${diffKeys(run.status, d.status).join(', ')}`);
      if (run.status?.phase !== d.status.phase || run.status?.currentStage !== d.status.currentStage) this.log(`reconcile=${id} run=${key} phase=${d.status.phase} stage=${d.status.currentStage ?? '-'}: ${d.status.message}`);
      // Events are best effort and must not hold the worker.
      for (const e of d.events) void this.event(run, e.type, e.reason, e.message).catch((err) => this.log(`reconcile=${id} run=${key} event not recorded: ${errorText(err)}`));
    }
  }

  private async event(run: ModelRun, type: string, reason: string, message: string): Promise<void> {
    const now = new Date(this.clock.now());
    await this.core.createNamespacedEvent({
      namespace: run.metadata.namespace,
      body: {
        metadata: { name: `${run.metadata.name}.${now.getTime().toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`, namespace: run.metadata.namespace },
        involvedObject: { apiVersion: run.apiVersion, kind: 'ModelRun', name: run.metadata.name, namespace: run.metadata.namespace, ...(run.metadata.uid ? { uid: run.metadata.uid } : {}) },
        type,
        reason,
        message: message.slice(0, 1024),
        source: { component: FIELD_MANAGER },
        reportingComponent: 'kiln.dev/controller',
        reportingInstance: this.identity,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
  }
}

export const keyOf = (o: { metadata?: { namespace?: string; name?: string } }) => `${o.metadata?.namespace}/${o.metadata?.name}`;

function errorText(e: unknown): string {
  if (e instanceof TerminalError) return e.message;
  const body = (e as { body?: unknown }).body;
  if (typeof body === 'string') {
    try {
      return (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      return body.slice(0, 300);
    }
  }
  return (e as Error)?.message ?? String(e);
}

/** Paths where two JSON values differ (for KILN_DEBUG_STATUS). */
function diffKeys(a: unknown, b: unknown, at = ''): string[] {
  if (canonicalJson(a) === canonicalJson(b)) return [];
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    return [...keys].flatMap((k) => diffKeys((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${at}.${k}`));
  }
  return [at || '.'];
}
