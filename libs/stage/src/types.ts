/**
 * The stage contract's shapes in TypeScript, mirroring schemas/stages/ (test/schemas.test.ts holds the two
 * together). A stage config carries some of the resolved spec's sections as they are (sources, preprocessing,
 * the tokenizer, the model, …): the contract only outlines them (`SpecValues`); @kiln/spec types them fully, and
 * its types fill `S` where a reader has them (libs/plan, the workers).
 */

export type StageKind = 'data-prep' | 'dedup' | 'tokenizer' | 'pack' | 'train' | 'export' | 'eval';

/** Every stage kind, in pipeline order. */
export const STAGE_KINDS: readonly StageKind[] = ['data-prep', 'dedup', 'tokenizer', 'pack', 'train', 'export', 'eval'];

/** What the contract knows of the resolved spec sections a config carries: the fields its readers rely on. */
export interface SpecValues {
  /** One of `data.sources`. */
  readonly source: { readonly name: string; readonly type: string };
  /** `data.preprocessing`, defaults applied. */
  readonly preprocessing: { readonly shards: number };
  /** `tokenizer`. */
  readonly tokenizer: { readonly kind: 'train' | 'pretrained'; readonly vocab_size: number };
  /** `model`, its preset expanded. */
  readonly model: { readonly d_model: number; readonly n_layers: number; readonly n_heads: number; readonly max_seq_len: number; readonly vocab_size: number };
  /** `objective`. */
  readonly objective: { readonly type: 'next-token' | 'fim' | 'ul2' };
  /** `training`, without what schedules it (resources, queue, priority). */
  readonly training: {
    readonly token_budget: number;
    /** Sequences per rank per forward pass, or `auto`: the trainer picks the largest that divides its share and fits. */
    readonly micro_batch: number | 'auto';
    /** Absent with `micro_batch: auto`: the trainer derives it from the micro batch it picks. */
    readonly gradient_accumulation?: number;
  };
  /** One of `eval.suites`. */
  readonly suite: SuiteValues;
}

/** The eval suite fields a stage reads. */
export interface SuiteValues {
  readonly name: string;
  readonly benchmark: 'humaneval' | 'multipl-e' | 'custom';
  /** Absent or null: the benchmark kiln ships (HumanEval). */
  readonly path?: string | null;
  readonly languages: readonly string[];
  readonly samples: number;
  readonly temperature: number;
  readonly top_p: number;
  readonly max_new_tokens: number;
  readonly k: readonly number[];
  readonly timeout_seconds: number;
  readonly fim: boolean;
}

/** One thing a stage produced, as its summary and manifest list it. */
export interface Artifact {
  readonly name: string;
  readonly uri: string;
  /** `sha256:` and 64 hex digits. */
  readonly digest?: string;
  readonly bytes?: number;
}

/** What one upstream stage produced, as the next stage's config receives it. */
export interface UpstreamOutput {
  /** The stage's summary (its container's termination message, parsed); null when it reported none. */
  readonly summary: StageSummary | null;
  /** Where the stage wrote its manifest. */
  readonly manifest: string;
}

/** What the controller adds to every stage config (libs/k8s stageObjects); absent when a stage runs by hand. */
export interface Envelope {
  readonly runId?: string;
  readonly stage?: string;
  /** 1 for the first attempt. */
  readonly attempt?: number;
  /** True on a retry: pick up where the last attempt stopped. */
  readonly resume?: boolean;
  readonly storagePrefix?: string;
  readonly manifest?: string;
  /** Outputs of the stages this one depends on, by stage name. */
  readonly upstream?: Readonly<Record<string, UpstreamOutput>>;
}

export interface DecontaminateSuite {
  readonly name: string;
  readonly benchmark: string;
  /** null: the benchmark kiln ships. */
  readonly path?: string | null;
  readonly languages?: readonly string[];
}

export interface DataPrepConfig<S extends SpecValues = SpecValues> {
  readonly sources: readonly S['source'][];
  readonly preprocessing: S['preprocessing'];
  readonly decontaminate?: readonly DecontaminateSuite[];
  readonly output: string;
  readonly manifests: string;
  /** 'map': stop before near dedup; the dedup stage reduces across shards. Default 'all'. */
  readonly phase?: 'all' | 'map';
}

export interface DedupConfig {
  readonly input: string;
  readonly manifests: string;
  readonly shards: number;
}

export interface TokenizerConfig<S extends SpecValues = SpecValues> {
  readonly tokenizer: S['tokenizer'];
  readonly input: string;
  readonly output: string;
  readonly seed: number;
}

export interface PackConfig<S extends SpecValues = SpecValues> {
  readonly input: string;
  readonly tokenizer: string;
  readonly output: string;
  readonly max_seq_len: number;
  readonly objective: S['objective'];
  /** Sampling weight per source name. */
  readonly weights: Readonly<Record<string, number>>;
  readonly seed: number;
}

export interface TrainConfig<S extends SpecValues = SpecValues> {
  readonly model: S['model'];
  readonly objective: S['objective'];
  readonly training: S['training'];
  readonly data: string;
  readonly tokenizer: string;
  readonly checkpoints: string;
}

export interface ExportTarget {
  readonly name: string;
  readonly backend: 'tensorrtllm' | 'fastertransformer' | 'vllm' | 'python';
  readonly engine: { readonly precision: 'fp32' | 'fp16' | 'bf16' | 'fp8' | 'int8'; readonly tensor_parallel: number };
  readonly max_batch_size: number;
  /** Triton's dynamic batcher delay in microseconds; a reader defaults it to 5000 when absent. */
  readonly queue_delay_us?: number;
  /** Model instances per Triton replica; a reader defaults it to 1 when absent. */
  readonly instances?: number;
}

export interface ExportConfig {
  readonly checkpoints: string;
  readonly tokenizer: string;
  readonly output: string;
  readonly eval_model: string;
  readonly targets: readonly ExportTarget[];
}

export interface FimSentinels {
  readonly prefix: string;
  readonly middle: string;
  readonly suffix: string;
  readonly pad?: string;
}

export interface EvalConfig<S extends SpecValues = SpecValues> {
  readonly suite: S['suite'];
  readonly endpoint: string;
  /** The compiled plan sets it; a config written by hand may leave it out. */
  readonly model?: string;
  readonly tokenizer?: string;
  readonly fim_sentinels?: FimSentinels | null;
  readonly output: string;
  /** The served model's name: Triton's model (default `ensemble`) or the OpenAI model (default `model`). */
  readonly served_model?: string;
  /** Default 'triton'. */
  readonly api?: 'triton' | 'openai';
}

/** Each kind's config as the plan compiles it (libs/plan `Stage<K>['config']`). */
export interface StageConfigs<S extends SpecValues = SpecValues> {
  readonly 'data-prep': DataPrepConfig<S>;
  readonly dedup: DedupConfig;
  readonly tokenizer: TokenizerConfig<S>;
  readonly pack: PackConfig<S>;
  readonly train: TrainConfig<S>;
  readonly export: ExportConfig;
  readonly eval: EvalConfig<S>;
}

/** A kind's config as its stage reads it from the mounted file: the plan's config and the controller's envelope. */
export type MountedConfig<K extends StageKind, S extends SpecValues = SpecValues> = StageConfigs<S>[K] & Envelope;

/** What a stage reports through its termination message (summary.schema.json). */
export interface StageSummary {
  readonly metrics?: Readonly<Record<string, number>>;
  readonly artifacts?: readonly Artifact[];
  readonly warnings?: readonly string[];
  /** Why the stage failed for good (it exits `TERMINAL_EXIT`). */
  readonly error?: string;
  /** Parts were dropped to fit the termination message. */
  readonly truncated?: boolean;
  readonly shard?: number;
  /** Set by the controller when it merged a sharded stage's summaries. */
  readonly shards?: number;
  readonly phase?: 'map';
  readonly suite?: string;
  readonly benchmark?: string;
  /** Training: the checkpoint it resumed from. */
  readonly resumedFrom?: string | null;
  /** The local cluster's kwok played the pod: the numbers are made up. */
  readonly simulated?: true;
  readonly attempt?: number;
  /** Set by the controller when the termination message was not JSON. */
  readonly message?: string;
}

/** How far a running stage is (progress.schema.json). */
export interface Progress {
  readonly done: number;
  readonly total: number;
  readonly unit: string;
  /** When it was read. */
  readonly updatedAt?: string;
  /** True when the numbers come from a simulation (the local cluster), not from the stage: never a measurement. */
  readonly simulated?: boolean;
  /** Training: optimizer steps done and planned. */
  readonly step?: number;
  readonly steps?: number;
  /** Training: loss, learning rate and gradient norm at the latest log interval. */
  readonly loss?: number;
  readonly lr?: number;
  readonly grad_norm?: number;
  /** Training: throughput over the latest log interval, tokens per second (all ranks). */
  readonly tokens_per_s?: number;
  /** Training: seconds left at that throughput. */
  readonly eta_s?: number;
  /** Training: model FLOPs utilisation, 0..1; absent where the GPU's peak is unknown. */
  readonly mfu?: number;
  /** Why the numbers may be stale or missing (rank 0's log could not be read; no line yet). */
  readonly note?: string;
}

/** The `kind` of a training stage's progress lines. */
export type ProgressKind = 'kiln.progress/v1';

/** One progress line rank 0 of a training stage prints on stdout (progress-line.schema.json). */
export interface ProgressLine {
  readonly kind: ProgressKind;
  readonly progress: Pick<Progress, 'done' | 'total' | 'unit' | 'updatedAt'>;
  readonly step: number;
  readonly steps: number;
  readonly loss: number;
  readonly lr: number;
  readonly grad_norm: number;
  readonly tokens_per_s: number;
  readonly eta_s: number;
  readonly mfu?: number;
}

/** What a stage writes at its config's `manifest` location (manifest.schema.json). */
export interface StageManifest {
  readonly kind: 'kiln.stage-manifest/v1';
  readonly runId: string;
  readonly stage: string;
  readonly attempt: number;
  readonly artifacts: readonly Artifact[];
  readonly counts?: Readonly<Record<string, number>>;
  readonly metrics?: Readonly<Record<string, number>>;
  readonly warnings?: readonly string[];
}
