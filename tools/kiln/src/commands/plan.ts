import { readFileSync } from 'node:fs';
import { formatCount, formatDiagnostics, load, type Spec } from '@kiln/spec';
import { compile, type GpuRequest, type Plan, type Stage } from '@kiln/plan';
import { GROUP, labelSelector, pipelineSelector, VERSION } from '@kiln/k8s';
import { canonicalJson } from '@kiln/stage';
import { EXIT, UsageError, type Io } from './io.ts';
import { kubeconfigPath } from '@kiln/local-cluster';

/** A capacity problem found against a live cluster: a pod that could never be scheduled. */
export interface CapacityProblem {
  readonly what: string;
  readonly message: string;
}

interface NodeInfo {
  readonly name: string;
  readonly labels: Record<string, string>;
  readonly allocatable: Record<string, string>;
}

/** Checks each GPU request of the plan against the nodes of a cluster: more GPUs per pod than any node has is an error now, not a pod Pending forever. */
export function checkCapacity(plan: Plan, nodes: readonly NodeInfo[]): CapacityProblem[] {
  const problems: CapacityProblem[] = [];
  const check = (what: string, g: GpuRequest) => {
    const ofType = nodes.filter((n) => n.labels['nvidia.com/gpu.product'] === g.product || (!n.labels['nvidia.com/gpu.product'] && Number(n.allocatable[g.resource] ?? 0) > 0));
    if (ofType.length === 0) {
      problems.push({ what, message: `${what} needs ${g.type} GPUs (${g.product}), and no node of the cluster has them` });
      return;
    }
    const most = Math.max(...ofType.map((n) => Number(n.allocatable[g.resource] ?? 0)));
    if (g.count > most) {
      problems.push({ what, message: `${what} asks for ${g.count} × ${g.resource} per pod, but the largest ${g.type} node has ${most} (${ofType.length} node${ofType.length === 1 ? '' : 's'}: ${ofType.map((n) => n.name).slice(0, 4).join(', ')}${ofType.length > 4 ? ', …' : ''})` });
    }
  };
  for (const s of plan.stages) if (s.resources.gpu) check(`stage ${s.name}`, s.resources.gpu);
  for (const t of plan.serving) check(`serving target ${t.name}`, t.gpu);
  return problems;
}

/** A run already declared in the cluster, as its ModelRun object records it. */
export interface ExistingRun {
  readonly runId: string;
  readonly created: string;
  readonly stages: readonly Pick<Stage, 'name' | 'config' | 'image' | 'resources'>[];
}

export interface Changes {
  /** Runs of this pipeline in the cluster, oldest first. */
  readonly existing: string[];
  /** Whether the planned run already exists: applying changes nothing about runs. */
  readonly sameRun: boolean;
  /** Compared with the newest existing run: stages added, removed, or whose config, image or resources differ. */
  readonly stages: { readonly name: string; readonly change: 'added' | 'removed' | 'changed' }[];
}

/** What applying the plan would change, against the runs already in the cluster. */
export function diffRuns(plan: Plan, existing: readonly ExistingRun[]): Changes {
  const sorted = [...existing].sort((a, b) => a.created.localeCompare(b.created));
  const sameRun = sorted.some((r) => r.runId === plan.runId);
  const latest = sorted.at(-1);
  const stages: Changes['stages'] = [];
  if (latest && !sameRun) {
    // Artifact paths contain the run id, which always differs: compare with it masked. Nulls are dropped:
    // server-side apply does not store them, so the recorded run has none.
    const key = (s: Pick<Stage, 'config' | 'image' | 'resources'>, runId: string) =>
      canonicalJson(JSON.parse(JSON.stringify({ config: s.config, image: s.image, resources: s.resources }, (_k, v: unknown) => (v === null ? undefined : v))))
        .split(runId)
        .join('<run>');
    const old = new Map(latest.stages.map((s) => [s.name, s]));
    for (const s of plan.stages) {
      const o = old.get(s.name);
      if (!o) stages.push({ name: s.name, change: 'added' });
      else if (key(o, latest.runId) !== key(s, plan.runId)) stages.push({ name: s.name, change: 'changed' });
    }
    for (const name of old.keys()) if (!plan.stages.some((s) => s.name === name)) stages.push({ name, change: 'removed' });
  }
  return { existing: sorted.map((r) => r.runId), sameRun, stages };
}

interface Live {
  readonly context: string;
  readonly nodes: NodeInfo[];
  readonly runs: ExistingRun[];
}

async function clusterState(plan: Plan): Promise<Live | { error: string } | undefined> {
  const path = kubeconfigPath();
  if (!path) return undefined;
  try {
    readFileSync(path); // a missing or unreadable kubeconfig fails here, before the client is loaded
    // The Kubernetes client loads only when there is a cluster to ask (about 0.5 s): `kiln plan --offline` never pays it.
    const { kubeConfigFrom, requestRaw } = await import('@kiln/cluster');
    const kc = kubeConfigFrom(path);
    if (!kc.getCurrentCluster()) return { error: `${path} has no current context` };
    const r = await requestRaw(kc, 'GET', '/api/v1/nodes', undefined, { timeoutMs: 3000 });
    if (r.status !== 200) return { error: `listing nodes returned HTTP ${r.status}` };
    const items = (r.body as { items: { metadata: { name: string; labels?: Record<string, string> }; status?: { allocatable?: Record<string, string> } }[] }).items;
    const selector = encodeURIComponent(labelSelector(pipelineSelector(plan.name)));
    const mr = await requestRaw(kc, 'GET', `/apis/${GROUP}/${VERSION}/namespaces/${plan.namespace}/modelruns?labelSelector=${selector}`, undefined, { timeoutMs: 3000 });
    // 404: no ModelRun CRD in this cluster yet, so no runs.
    const runs = mr.status === 200 ? (mr.body as { items: { metadata: { creationTimestamp: string }; spec: { runId: string; stages: ExistingRun['stages'] } }[] }).items : [];
    return {
      context: kc.getCurrentContext(),
      nodes: items.map((n) => ({ name: n.metadata.name, labels: n.metadata.labels ?? {}, allocatable: n.status?.allocatable ?? {} })),
      runs: runs.map((x) => ({ runId: x.spec.runId, created: x.metadata.creationTimestamp, stages: x.spec.stages ?? [] })),
    };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

const hours = (h: number) => (h < 48 ? `${h.toFixed(1)} h` : `${(h / 24).toFixed(1)} days`);

export function formatPlan(plan: Plan): string {
  const e = plan.estimate;
  const lines = [
    `run ${plan.runId} of ${plan.name}${plan.stack ? ` (stack ${plan.stack})` : ''} in namespace ${plan.namespace}`,
    `artifacts under ${plan.storagePrefix}`,
    '',
    'stages:',
  ];
  const width = Math.max(...plan.stages.map((s) => s.name.length));
  for (const s of plan.stages) {
    const par = s.parallelism.kind === 'shards' ? `${s.parallelism.shards} shards` : s.parallelism.kind === 'nodes' ? `${s.parallelism.nodes} nodes × ${s.parallelism.gpusPerNode} GPUs` : '1 pod';
    const gpu = s.resources.gpu ? `, ${s.resources.gpu.count} × ${s.resources.gpu.type}` : '';
    lines.push(`  ${s.name.padEnd(width)}  ${par.padEnd(18)} ${s.resources.cpu} CPU, ${s.resources.memory}${gpu}${s.dependsOn.length ? `   after ${s.dependsOn.join(', ')}` : ''}`);
  }
  if (plan.serving.length) {
    lines.push('', 'serving:');
    for (const t of plan.serving) lines.push(`  ${t.name}: ${t.backend} ${t.precision}, ${t.replicas.min}–${t.replicas.max} replicas × ${t.gpu.count} ${t.gpu.type}`);
  }
  lines.push(
    '',
    'estimate:',
    `  ${formatCount(e.parameters)} parameters × ${formatCount(e.tokens)} tokens = ${e.trainingFlops.toExponential(2)} training FLOPs`,
    `  ${formatCount(e.gpuHours)} GPU-hours of ${e.gpuType} at ${Math.round(e.mfu * 100)}% MFU; ${hours(e.wallHours)} on ${e.gpus} GPUs`,
    `  ${e.cost === null ? `cost: no price for ${e.gpuType} in infra.pricing.gpu_hour` : `cost: ${e.cost.toLocaleString('en-US', { maximumFractionDigits: 0 })} ${e.currency} for training`}`,
  );
  const gates = Object.entries(plan.gates);
  if (gates.length) lines.push('', 'gates:', ...gates.map(([stack, g]) => `  ${stack}: ${g.join(' and ')}`));
  return lines.join('\n');
}

export async function runPlan(values: Record<string, unknown>, positionals: string[], io: Io): Promise<number> {
  if (positionals.length !== 1) throw new UsageError('name one spec file, e.g. `kiln plan kiln.yaml --stack dev`');
  const mfu = values.mfu === undefined ? undefined : Number(values.mfu);
  if (mfu !== undefined && !(mfu > 0 && mfu <= 1)) throw new UsageError(`--mfu must be a number in (0, 1], not "${String(values.mfu)}"`);
  const json = values.json === true || values.format === 'json';
  const file = positionals[0]!;
  const stack = values.stack as string | undefined;
  const r = load(file, stack !== undefined ? { stack } : {});
  if (!r.spec) {
    if (json) io.out(JSON.stringify({ valid: false, diagnostics: r.diagnostics }, null, 2));
    else io.err(formatDiagnostics(r.diagnostics, { sources: r.sources, color: io.color }));
    return EXIT.invalid;
  }
  const plan = compile(r.spec as Spec, mfu !== undefined ? { mfu } : {});
  const live = values.offline ? undefined : await clusterState(plan);
  const problems = live && 'nodes' in live ? checkCapacity(plan, live.nodes) : [];
  const changes = live && 'nodes' in live ? diffRuns(plan, live.runs) : undefined;
  if (json) {
    io.out(JSON.stringify({ plan, cluster: live ? ('nodes' in live ? { context: live.context, nodes: live.nodes.length, problems, changes } : { error: live.error }) : null }, null, 2));
  } else {
    io.out(formatPlan(plan));
    if (live && 'nodes' in live) {
      io.out(`\ncluster (${live.context}): ${problems.length ? `${problems.length} problem(s)` : `fits on ${live.nodes.length} nodes`}`);
      if (changes!.sameRun) io.out(`  run ${plan.runId} already exists: applying starts no new run`);
      else if (changes!.existing.length === 0) io.out(`  no run of ${plan.name} in namespace ${plan.namespace} yet: applying starts ${plan.runId}`);
      else io.out(`  applying starts ${plan.runId} beside ${changes!.existing.join(', ')}; against ${changes!.existing.at(-1)}: ${changes!.stages.map((s) => `${s.name} ${s.change}`).join(', ') || 'no stage differs (identity only)'}`);
    } else if (live) io.err(`kiln plan: could not check the cluster: ${live.error}`);
    for (const p of problems) io.err(`error: ${p.message}`);
  }
  return problems.length ? EXIT.invalid : EXIT.ok;
}
