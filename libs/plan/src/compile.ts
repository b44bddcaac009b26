import { GPUS, load, type Diagnostic, type GpuType, type Spec } from '@kiln/spec';
import type { StageKind } from '@kiln/stage';
import { estimate, DEFAULT_MFU } from './estimate.ts';
import { dnsName } from './names.ts';
import { runId } from './run-id.ts';
import { type CpuMemory, type GatewayPlan, type GpuRequest, type Placement, type Plan, type PodResources, type ServingPlan, type Stage, type StageResources } from './types.ts';

/** Resources of the CPU stages, per pod. The spec sizes only training and serving; these fit the workers. */
export const STAGE_RESOURCES = {
  'data-prep': { cpu: '2', memory: '8Gi' },
  // The reduce step holds 8 bytes per record and one map of band keys (at most 8M); then rewrites shards.
  dedup: { cpu: '2', memory: '8Gi' },
  tokenizer: { cpu: '8', memory: '32Gi' },
  pack: { cpu: '2', memory: '8Gi' },
  export: { cpu: '8', memory: '64Gi' },
  eval: { cpu: '4', memory: '8Gi' },
} as const satisfies Record<string, StageResources>;

/** A Triton pod's CPU and memory unless `infra.stage_resources.triton` says otherwise (libs/k8s applies it). */
export const TRITON_RESOURCES = { cpu: '4', memory: '16Gi' } as const satisfies CpuMemory;

/** A gateway pod's unless `infra.stage_resources.gateway` says otherwise (libs/k8s applies it). */
export const GATEWAY_RESOURCES = { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } } as const satisfies PodResources;

/** Attempts per stage before the controller stops retrying a retryable failure (node loss, eviction). */
export const MAX_ATTEMPTS = { default: 3, train: 5 } as const;

export interface CompileOptions {
  /** Model FLOPs utilisation for the estimate. */
  readonly mfu?: number;
}

/** Spec's `infra.stage_resources` entry of one kind of pod. */
type Sizing = Spec['infra']['stage_resources'][keyof Spec['infra']['stage_resources']];

/**
 * Requests and limits of a kind of pod: the spec's `infra.stage_resources` entry over kiln's default (where
 * request equals limit). A missing limit is the request; a missing request is the limit.
 */
export function podResources(def: CpuMemory, over: Sizing): PodResources {
  const q = (k: keyof CpuMemory) => {
    const limit = over?.limits?.[k] ?? over?.requests?.[k] ?? def[k];
    return { limit, request: over?.requests?.[k] ?? limit };
  };
  const cpu = q('cpu');
  const memory = q('memory');
  return { requests: { cpu: cpu.request, memory: memory.request }, limits: { cpu: cpu.limit, memory: memory.limit } };
}

/** A stage's CPU and memory: its default, or the spec's override (with requests only when they differ). */
function stageSize(def: CpuMemory, over: Sizing): { cpu: string; memory: string; requests?: CpuMemory } {
  if (!over) return { cpu: def.cpu, memory: def.memory };
  const r = podResources(def, over);
  return { ...r.limits, requests: r.requests };
}

function gpu(type: GpuType, count: number): GpuRequest {
  const g = GPUS[type];
  return { type, count, resource: g.resource, product: g.product };
}

/** Compiles a resolved spec (with its stack overlay already applied) into the plan of one run. Pure. */
export function compile(spec: Spec, opts: CompileOptions = {}): Plan {
  const id = runId(spec);
  const name = spec.metadata.name;
  const prefix = `${spec.infra.storage.uri.replace(/\/+$/, '')}/${name}/runs/${id}`;
  const art = {
    shards: `${prefix}/data/shards/`,
    manifests: `${prefix}/data/manifests/`,
    tokenizer: `${prefix}/tokenizer/`,
    packed: `${prefix}/packed/`,
    checkpoints: `${prefix}/checkpoints/`,
    export: `${prefix}/export/`,
    evalModel: `${prefix}/export/eval/`,
    eval: (suite: string) => `${prefix}/eval/${suite}/`,
  };
  const pre = spec.data.preprocessing;
  const crossShard = pre.dedup.near.enabled && pre.shards > 1;
  const t = spec.training;
  const tok = spec.tokenizer;
  const images = spec.infra.images;
  const pools = spec.infra.node_pools;
  // A GPU stage runs on the pool of its GPU type; other stages on the first CPU pool, if any is declared.
  const placement = (gpuType?: GpuType): Placement => {
    const pool = gpuType ? pools.find((p) => p.gpu_type === gpuType) : pools.find((p) => p.gpu_type === undefined);
    return { nodeSelector: pool?.node_selector ?? {}, tolerations: pool?.tolerations ?? [] };
  };
  // Specs built in code (tests) may lack the resolved default `{}`.
  const sizing = spec.infra.stage_resources ?? {};
  const storageCreds = spec.infra.storage.credentials ? [spec.infra.storage.credentials] : [];
  const common = <K extends StageKind>(kind: K, gpuType?: GpuType) => ({
    kind,
    manifest: '',
    maxAttempts: kind === 'train' ? MAX_ATTEMPTS.train : MAX_ATTEMPTS.default,
    credentials: storageCreds,
    placement: placement(gpuType),
  });

  const dataPrep: Stage<'data-prep'> = {
    name: 'data-prep',
    ...common('data-prep'),
    credentials: [...new Set([...storageCreds, ...spec.data.sources.flatMap((s) => (s.credentials ? [s.credentials] : []))])],
    image: images.data_prep,
    command: ['kiln-data-prep', 'prep'],
    config: {
      sources: spec.data.sources,
      preprocessing: pre,
      decontaminate: spec.eval.suites.filter((s) => pre.decontamination.suites.includes(s.name)).map((s) => ({ name: s.name, benchmark: s.benchmark, path: s.path ?? null, languages: s.languages })),
      output: art.shards,
      manifests: art.manifests,
      // With several shards, near dedup spans them: each pod maps its shard, the dedup stage reduces.
      ...(crossShard ? { phase: 'map' as const } : {}),
    },
    resources: stageSize(STAGE_RESOURCES['data-prep'], sizing['data-prep']),
    parallelism: { kind: 'shards', shards: pre.shards },
    inputs: spec.data.sources.map((s) => sourceUri(s)),
    outputs: [art.shards, art.manifests],
    dependsOn: [],
  };
  const dedup: Stage<'dedup'> | undefined = crossShard
    ? {
        name: 'dedup',
        ...common('dedup'),
        image: images.data_prep,
        command: ['kiln-data-prep', 'dedup'],
        config: { input: art.shards, manifests: art.manifests, shards: pre.shards },
        resources: stageSize(STAGE_RESOURCES.dedup, sizing.dedup),
        parallelism: { kind: 'single' },
        inputs: [art.shards],
        outputs: [art.shards, art.manifests],
        dependsOn: ['data-prep'],
      }
    : undefined;
  const tokenizer: Stage<'tokenizer'> = {
    name: 'tokenizer',
    ...common('tokenizer'),
    image: images.trainer,
    command: ['python', '-m', 'kiln_trainer.tokenizer'],
    config: { tokenizer: tok, input: art.shards, output: art.tokenizer, seed: t.seed },
    resources: stageSize(tok.kind === 'train' ? STAGE_RESOURCES.tokenizer : { cpu: '1', memory: '2Gi' }, sizing.tokenizer),
    parallelism: { kind: 'single' },
    inputs: tok.kind === 'train' ? [art.shards] : [tok.path ?? `hf://${tok.hub}@${tok.revision}`],
    outputs: [art.tokenizer],
    dependsOn: [dedup ? 'dedup' : 'data-prep'],
  };
  const pack: Stage<'pack'> = {
    name: 'pack',
    ...common('pack'),
    image: images.trainer,
    command: ['python', '-m', 'kiln_trainer.pack'],
    config: {
      input: art.shards,
      tokenizer: art.tokenizer,
      output: art.packed,
      max_seq_len: spec.model.max_seq_len,
      objective: spec.objective,
      weights: Object.fromEntries(spec.data.sources.map((s) => [s.name, s.weight])),
      seed: t.seed,
    },
    resources: stageSize(STAGE_RESOURCES.pack, sizing.pack),
    parallelism: { kind: 'shards', shards: pre.shards },
    inputs: [art.shards, art.tokenizer],
    outputs: [art.packed],
    dependsOn: ['tokenizer'],
  };
  const r = t.resources;
  // gpus_per_node 0 trains on the CPU: one process per pod, no GPU asked for, on the CPU pool.
  const trainGpu = r.gpus_per_node > 0 ? gpu(r.gpu_type, r.gpus_per_node) : undefined;
  const train: Stage<'train'> = {
    name: 'train',
    ...common('train', trainGpu?.type),
    priority: t.priority,
    ...(t.queue ? { queue: t.queue } : {}),
    image: images.trainer,
    // kiln_trainer.launch is torchrun keeping the stage's exit codes (torchrun turns every failure into 1):
    // 2 fails the Job at once (a NaN loss, a config no retry fixes), 3 is a checkpointed SIGTERM, retried.
    command: ['python', '-m', 'kiln_trainer.launch', `--nnodes=${r.nodes}`, `--nproc-per-node=${Math.max(1, r.gpus_per_node)}`, '-m', 'kiln_trainer.train'],
    config: {
      model: spec.model,
      objective: spec.objective,
      training: { ...t, resources: undefined, queue: undefined, priority: undefined },
      data: art.packed,
      tokenizer: art.tokenizer,
      checkpoints: art.checkpoints,
    },
    resources: { ...stageSize({ cpu: r.cpu, memory: r.memory }, sizing.train), shm: r.shm, ...(trainGpu ? { gpu: trainGpu } : {}) },
    parallelism: { kind: 'nodes', nodes: r.nodes, gpusPerNode: r.gpus_per_node },
    inputs: [art.packed, art.tokenizer],
    outputs: [art.checkpoints],
    dependsOn: ['pack'],
  };
  // TensorRT-LLM engines are compiled for the GPU that serves them: export on the first target's GPU.
  const target = spec.serving.targets[0];
  const exportGpu = target && target.backend === 'tensorrtllm' ? gpu(target.gpu.type, target.engine.tensor_parallel) : undefined;
  const exportStage: Stage<'export'> = {
    name: 'export',
    ...common('export', exportGpu?.type),
    image: images.trainer,
    command: ['python', '-m', 'kiln_trainer.export'],
    config: {
      checkpoints: art.checkpoints,
      tokenizer: art.tokenizer,
      output: art.export,
      eval_model: art.evalModel,
      targets: spec.serving.targets.map((s) => ({ name: s.name, backend: s.backend, engine: s.engine, max_batch_size: s.max_batch_size, queue_delay_us: queueDelayUs(s.queue_delay_ms), instances: s.instances })),
    },
    resources: { ...stageSize(STAGE_RESOURCES.export, sizing.export), ...(exportGpu ? { gpu: exportGpu } : {}) },
    parallelism: { kind: 'single' },
    inputs: [art.checkpoints, art.tokenizer],
    outputs: [art.export],
    dependsOn: ['train'],
  };
  // Evals query a Triton of their own: the first serving target's engine and GPU, else one training GPU.
  const evalModelName = dnsName([id, 'eval-model']);
  const evalGpu = target ? gpu(target.gpu.type, target.gpu.count) : gpu(r.gpu_type, 1);
  const evalModel = {
    name: evalModelName,
    modelRepository: art.evalModel,
    gpu: evalGpu,
    image: images.triton,
    // A CPU target (gpu.count 0) serves evals on the CPU pool too.
    placement: placement(evalGpu.count > 0 ? evalGpu.type : undefined),
    ...(sizing.triton ? { resources: podResources(TRITON_RESOURCES, sizing.triton) } : {}),
  };
  const evals: Stage<'eval'>[] = spec.eval.suites.map((s) => ({
    name: dnsName(['eval', s.name], 40),
    ...common('eval'),
    image: images.eval,
    command: ['kiln-eval-runner'],
    config: {
      suite: s,
      model: art.evalModel,
      tokenizer: art.tokenizer,
      fim_sentinels: tok.fim_sentinels ?? null,
      output: art.eval(s.name),
    },
    resources: stageSize(STAGE_RESOURCES.eval, sizing.eval),
    parallelism: { kind: 'single' },
    inputs: [art.export],
    outputs: [art.eval(s.name)],
    dependsOn: ['export'],
  }));

  const serving: ServingPlan[] = spec.serving.targets.map((s) => ({
    name: s.name,
    backend: s.backend,
    precision: s.engine.precision,
    tensorParallel: s.engine.tensor_parallel,
    replicas: s.replicas,
    autoscaling: s.autoscaling,
    gpu: gpu(s.gpu.type, s.gpu.count),
    maxBatchSize: s.max_batch_size,
    latency: { p50Ms: s.latency.p50_ms, p99Ms: s.latency.p99_ms },
    canary: s.canary,
    queueDelayUs: queueDelayUs(s.queue_delay_ms),
    instances: s.instances,
    modelRepository: `${art.export}${s.name}/`,
    image: images.triton,
    placement: placement(s.gpu.count > 0 ? s.gpu.type : undefined),
    ...(sizing.triton ? { resources: podResources(TRITON_RESOURCES, sizing.triton) } : {}),
    credentials: storageCreds,
    ...(s.gateway ? { gateway: gatewayPlan(spec, s.name, s.gateway, placement()) } : {}),
  }));

  return {
    apiVersion: 'kiln.dev/v1alpha1',
    runId: id,
    name,
    stack: spec.stack ?? null,
    namespace: spec.infra.namespace,
    storagePrefix: prefix,
    labels: { ...spec.metadata.labels },
    stages: [dataPrep, ...(dedup ? [dedup] : []), tokenizer, pack, train, exportStage, ...evals].map((s): Stage => ({ ...s, manifest: `${prefix}/manifests/${s.name}.json` })),
    serving,
    evalModel,
    gates: Object.fromEntries(Object.entries(spec.eval.gates).map(([stack, gates]) => [stack, gates.map((g) => g.expr.trim())])),
    estimate: estimate(spec, opts.mfu ?? DEFAULT_MFU),
    secrets: spec.infra.secrets,
    serviceAccount: spec.infra.service_account ?? null,
  };
}

/** Triton takes the batcher's delay in whole microseconds. */
const queueDelayUs = (ms: number): number => Math.round(ms * 1000);

/** Storage a pod can write files to (the claim is mounted; file:// is a local path). */
const MOUNTED_STORAGE = /^(pvc|file):\/\//;

function gatewayPlan(spec: Spec, target: string, g: NonNullable<Spec['serving']['targets'][number]['gateway']>, placement: Placement): GatewayPlan {
  const root = spec.infra.storage.uri.replace(/\/+$/, '');
  return {
    image: spec.infra.images.gateway,
    apiKeys: g.api_keys,
    requestsPerMinute: g.requests_per_minute,
    tokensPerMinute: g.tokens_per_minute,
    ...(g.max_tokens !== undefined ? { maxTokens: g.max_tokens } : {}),
    replicas: { min: g.replicas.min, max: g.replicas.max },
    placement,
    ...(spec.infra.stage_resources?.gateway ? { resources: podResources(GATEWAY_RESOURCES.limits, spec.infra.stage_resources.gateway) } : {}),
    ...(MOUNTED_STORAGE.test(root) ? { feedback: `${root}/feedback/${target}/` } : {}),
  };
}

function sourceUri(s: Spec['data']['sources'][number]): string {
  switch (s.type) {
    case 'huggingface':
      return `hf://datasets/${s.dataset}@${s.revision}`;
    case 'object-store':
      return s.uri;
    case 'git':
      return `${s.url}#${s.ref}`;
    case 'local':
      return `file://${s.path}`;
    case 'feedback':
      return `feedback://${s.target}?since=${s.since}`;
  }
}

/** The stages in an order where each comes after everything it depends on. */
export function topologicalOrder(stages: readonly Stage[]): Stage[] {
  const byName = new Map(stages.map((s) => [s.name, s]));
  const out: Stage[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (s: Stage) => {
    if (state.get(s.name) === 'done') return;
    if (state.get(s.name) === 'visiting') throw new Error(`stage graph has a cycle through ${s.name}`);
    state.set(s.name, 'visiting');
    for (const d of s.dependsOn) {
      const dep = byName.get(d);
      if (!dep) throw new Error(`stage ${s.name} depends on unknown stage ${d}`);
      visit(dep);
    }
    state.set(s.name, 'done');
    out.push(s);
  };
  stages.forEach(visit);
  return out;
}

/** A compiled spec file; `stacks` are the stacks the file declares overlays for. */
export type CompileFileResult = { readonly stacks: readonly string[] } & ({ readonly plan: Plan; readonly diagnostics: Diagnostic[] } | { readonly plan?: undefined; readonly diagnostics: Diagnostic[] });

/** Loads a spec file (with a stack's overlay) and compiles it; the diagnostics say why when it cannot. */
export function compileFile(path: string, opts: CompileOptions & { readonly stack?: string } = {}): CompileFileResult {
  const r = load(path, opts.stack !== undefined ? { stack: opts.stack } : {});
  return r.spec ? { plan: compile(r.spec, opts), diagnostics: r.diagnostics, stacks: r.stacks } : { diagnostics: r.diagnostics, stacks: r.stacks };
}
