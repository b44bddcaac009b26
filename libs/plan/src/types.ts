import type { DataSource, GpuType, Model, Objective, Preprocessing, Suite, Tokenizer, Training } from '@kiln/spec';
import type { MountedConfig, StageConfigs, StageKind } from '@kiln/stage';

export type { StageKind };

/** The resolved spec sections stage configs carry, as @kiln/spec types them (the contract's `SpecValues`). */
export interface PlanSpecValues {
  readonly source: DataSource;
  readonly preprocessing: Preprocessing;
  readonly tokenizer: Tokenizer;
  readonly model: Model;
  readonly objective: Objective;
  /** The Job says where and how training is scheduled; the config keeps the keys, undefined. */
  readonly training: Omit<Training, 'resources' | 'queue' | 'priority'> & { readonly resources?: undefined; readonly queue?: undefined; readonly priority?: undefined };
  readonly suite: Suite;
}

/**
 * Each stage kind's config, as the plan compiles it. An eval stage's `endpoint` is not the plan's: it is the
 * eval model server's in-cluster URL, which libs/k8s adds when it renders the mounted config.
 */
export type StageConfig = { readonly [K in StageKind]: K extends 'eval' ? Omit<StageConfigs<PlanSpecValues>['eval'], 'endpoint'> : StageConfigs<PlanSpecValues>[K] };

/** A stage's config as mounted in its container: the plan's, the controller's envelope, and for eval the endpoint. */
export type MountedStageConfig<K extends StageKind = StageKind> = MountedConfig<K, PlanSpecValues>;

export interface GpuRequest {
  readonly type: GpuType;
  /** GPUs per pod; 0 (CPU serving): the pod asks for none and may run on any node of its placement. */
  readonly count: number;
  /** Extended resource name, e.g. `nvidia.com/gpu`. */
  readonly resource: string;
  /** Node label value that selects this GPU model (`nvidia.com/gpu.product`). */
  readonly product: string;
}

/** CPU and memory quantities of a container (`500m`, `2Gi`). */
export interface CpuMemory {
  readonly cpu: string;
  readonly memory: string;
}

/** Requests and limits of a long-running pod (Triton, the gateway), from `infra.stage_resources`. */
export interface PodResources {
  readonly requests: CpuMemory;
  readonly limits: CpuMemory;
}

export interface StageResources {
  /** CPU limit (and request, unless `requests` says otherwise). */
  readonly cpu: string;
  /** Memory limit (and request, unless `requests` says otherwise). */
  readonly memory: string;
  /** What the scheduler reserves, when below the limits (`infra.stage_resources`); absent: the limits. */
  readonly requests?: CpuMemory;
  /** Size of /dev/shm, when the stage needs more than the default. */
  readonly shm?: string;
  readonly gpu?: GpuRequest;
}

/** How a stage fans out: shards of an Indexed Job, or nodes of a multi-node training job. */
export type Parallelism = { readonly kind: 'single' } | { readonly kind: 'shards'; readonly shards: number } | { readonly kind: 'nodes'; readonly nodes: number; readonly gpusPerNode: number };

/** Where a stage's pods may run: the node pool's selector and tolerations (from infra.node_pools). */
export interface Placement {
  readonly nodeSelector: Readonly<Record<string, string>>;
  readonly tolerations: readonly {
    readonly key?: string;
    readonly operator: 'Exists' | 'Equal';
    readonly value?: string;
    readonly effect?: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
  }[];
}

/** A reference to a key of a Kubernetes Secret; the value never appears in a plan. */
export interface SecretRef {
  readonly secret: string;
  readonly key: string;
}

/** What every stage has, whatever its kind. */
export interface StageBase {
  /** Unique within the plan, DNS-safe: `data-prep`, `train`, `eval-humaneval`. */
  readonly name: string;
  readonly image: string;
  /** The program and its arguments, without the config file: every stage command takes `--config FILE` (docs/stages.md), which libs/k8s appends. */
  readonly command: readonly string[];
  readonly resources: StageResources;
  readonly parallelism: Parallelism;
  /** Artifact URIs read. */
  readonly inputs: readonly string[];
  /** Artifact URIs written. */
  readonly outputs: readonly string[];
  /** Where the stage writes its manifest: what it produced (paths, digests, counts) and its metrics. */
  readonly manifest: string;
  /** Stages that must succeed first. */
  readonly dependsOn: readonly string[];
  /** Attempts before the controller gives up on a retryable failure. */
  readonly maxAttempts: number;
  /** Entries of `Plan.secrets` the stage's pods get as environment variables. */
  readonly credentials: readonly string[];
  readonly placement: Placement;
  /** Scheduling priority of the stage's pods (training only; `training.priority`). */
  readonly priority?: Training['priority'];
  /** Kueue LocalQueue the stage's Job is submitted to (training only). */
  readonly queue?: string;
}

/**
 * One stage of the pipeline: a container command, its config, what it reads and writes. A union by `kind`:
 * `Stage<'eval'>` has an eval config; `Stage` is any stage, and `stage.kind === 'eval'` narrows its config.
 */
export type Stage<K extends StageKind = StageKind> = K extends StageKind
  ? StageBase & {
      readonly kind: K;
      /** Mounted as JSON in the stage's container (schemas/stages/<kind>.schema.json, with the controller's envelope). */
      readonly config: StageConfig[K];
    }
  : never;

export interface ServingPlan {
  readonly name: string;
  readonly backend: string;
  readonly precision: string;
  readonly tensorParallel: number;
  readonly replicas: { readonly min: number; readonly max: number };
  readonly autoscaling: { readonly metric: string; readonly target: number };
  readonly gpu: GpuRequest;
  readonly maxBatchSize: number;
  readonly latency: { readonly p50Ms: number; readonly p99Ms: number };
  /**
   * Share of requests the gateway sends to a newly promoted model (the canary Triton) while the stable Triton keeps
   * the model it serves, until the promotion's smoke check decides; 0: a promotion replaces the stable model at once.
   */
  readonly canary: number;
  /** Longest wait of Triton's dynamic batcher for a larger batch, in microseconds (written into the model repository by export). */
  readonly queueDelayUs: number;
  /** Model instances per Triton replica (written into the model repository by export). */
  readonly instances: number;
  /** Model repository this run's export stage writes for the target (a stack serves the one promoted to it). */
  readonly modelRepository: string;
  readonly image: string;
  readonly placement: Placement;
  /** Triton pods' CPU and memory (`infra.stage_resources.triton`); absent: libs/k8s' Triton default. */
  readonly resources?: PodResources;
  readonly credentials: readonly string[];
  /** The completions gateway in front of this target's Triton; absent: none. */
  readonly gateway?: GatewayPlan;
}

/** The kiln gateway of one serving target: what its config file and its pods need. */
export interface GatewayPlan {
  readonly image: string;
  /** Entry of `Plan.secrets` whose key holds the API keys, one per line (mounted as a file; never read). */
  readonly apiKeys: string;
  readonly requestsPerMinute: number;
  readonly tokensPerMinute: number;
  /** Largest `max_tokens` a request may ask for; absent: the gateway's default. */
  readonly maxTokens?: number;
  readonly replicas: { readonly min: number; readonly max: number };
  /** Where its pods run: the first CPU node pool's selector and tolerations (the gateway needs no GPU). */
  readonly placement: Placement;
  /** Its pods' CPU and memory (`infra.stage_resources.gateway`); absent: libs/k8s' gateway default. */
  readonly resources?: PodResources;
  /**
   * Where the gateway writes its feedback log: `<storage uri>/feedback/<target>/`, a folder of the pipeline's
   * storage (not of one run: feedback outlives runs, and the next run's `feedback` source reads it). Absent
   * when the storage is an object store, which pods cannot write files to (KL327).
   */
  readonly feedback?: string;
}

export interface Estimate {
  readonly parameters: number;
  readonly tokens: number;
  /** Training FLOPs: (6·N + 12·n_layers·d_model·seq_len) per token. */
  readonly trainingFlops: number;
  /** Model FLOPs utilisation the estimate assumes. */
  readonly mfu: number;
  readonly gpus: number;
  readonly gpuType: GpuType;
  readonly gpuHours: number;
  readonly wallHours: number;
  /** Training cost from the spec's price table; null when the table has no price for the GPU. */
  readonly cost: number | null;
  readonly currency: string;
}

/** The model server the eval stages query: Triton serving this run's export, inside the run's namespace. */
export interface EvalModelServer {
  /** Deployment and Service name; libs/k8s makes its URL, every eval stage's `endpoint`. */
  readonly name: string;
  readonly modelRepository: string;
  readonly gpu: GpuRequest;
  readonly image: string;
  readonly placement: Placement;
  /** Its pod's CPU and memory (`infra.stage_resources.triton`); absent: libs/k8s' Triton default. */
  readonly resources?: PodResources;
}

export interface Plan {
  readonly apiVersion: 'kiln.dev/v1alpha1';
  /** Content address of everything that changes the result: `r-` and 12 hex digits. */
  readonly runId: string;
  readonly name: string;
  readonly stack: string | null;
  readonly namespace: string;
  /** Where this run's artifacts live: `<storage uri>/<name>/runs/<run id>`. */
  readonly storagePrefix: string;
  /** The spec's own labels (`metadata.labels`); libs/k8s adds kiln's to every object. */
  readonly labels: Readonly<Record<string, string>>;
  readonly stages: readonly Stage[];
  readonly serving: readonly ServingPlan[];
  /** Started by the controller once export succeeds, removed when the evals end. */
  readonly evalModel: EvalModelServer;
  readonly gates: Readonly<Record<string, readonly string[]>>;
  readonly estimate: Estimate;
  /** Named Secret references (infra.secrets); stages and targets refer to them by name. */
  readonly secrets: Readonly<Record<string, SecretRef>>;
  /** Existing service account for stage pods, when the spec names one. */
  readonly serviceAccount: string | null;
}

/** The plan's stages of one kind, typed by it (`stagesOf(plan, 'eval')` are eval stages). */
export function stagesOf<K extends StageKind>(plan: Pick<Plan, 'stages'>, kind: K): Stage<K>[] {
  return plan.stages.filter((s): s is Stage<K> => s.kind === kind);
}

/** The plan's first stage of one kind, typed by it; undefined when the plan has none. */
export function stageOf<K extends StageKind>(plan: Pick<Plan, 'stages'>, kind: K): Stage<K> | undefined {
  return stagesOf(plan, kind)[0];
}
