/**
 * From schema-valid, defaulted data to the typed `Spec`: quantities become numbers and the defaults that
 * depend on other fields are derived here (and only here).
 */
import { parameterCount, PRESETS } from './hardware.ts';
import { parseBytes, parseTokens, parseTokensOrShare } from './quantity.ts';
import type {
  DataSource,
  Eval,
  FimSentinels,
  Gate,
  GateOp,
  Infra,
  Model,
  Objective,
  Preprocessing,
  ServingTarget,
  SizePreset,
  Spec,
  Tokenizer,
  Training,
  Ul2Sentinels,
} from './types.ts';

/* The input is schema-checked data, so field access is safe; `any` keeps this mapping readable. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Raw = any;

export type Section = 'metadata' | 'data' | 'tokenizer' | 'model' | 'objective' | 'training' | 'eval' | 'serving' | 'infra';
export const SECTIONS: readonly Section[] = ['metadata', 'data', 'tokenizer', 'model', 'objective', 'training', 'eval', 'serving', 'infra'];

/** A spec whose sections are each present only if their input was valid (and what they derive from). */
export type PartialSpec = { -readonly [K in Section]?: Spec[K] };

/** Chinchilla-optimal tokens per parameter, the default token budget. */
export const TOKENS_PER_PARAMETER = 20;

/** `humaneval.pass@1 >= 0.2` → its parts; `undefined` when the text does not parse. */
export function parseGate(expr: string, onlySuite?: string): Omit<Gate, 'expr'> | undefined {
  const m = /^\s*(?:([a-z0-9-]+)\.)?(pass@([0-9]+))\s*(>=|>|<=|<|==)\s*([0-9]*\.?[0-9]+)\s*$/.exec(expr);
  if (!m) return undefined;
  const suite = m[1] ?? onlySuite ?? '';
  return { suite, metric: m[2]!, k: Number(m[3]), op: m[4] as GateOp, value: Number(m[5]) };
}

export function resolveSections(raw: Raw, valid: ReadonlySet<Section>): PartialSpec {
  const out: PartialSpec = {};
  if (valid.has('metadata')) out.metadata = { ...raw.metadata, labels: raw.metadata.labels ?? {} };
  if (valid.has('data')) out.data = { sources: raw.data.sources as DataSource[], preprocessing: resolvePreprocessing(raw) };
  if (valid.has('tokenizer')) out.tokenizer = resolveTokenizer(raw.tokenizer, raw.objective);
  if (valid.has('model') && out.tokenizer) out.model = resolveModel(raw.model, out.tokenizer);
  if (valid.has('objective')) out.objective = raw.objective as Objective;
  if (valid.has('training') && out.model) out.training = resolveTraining(raw.training, out.model);
  if (valid.has('eval')) out.eval = resolveEval(raw.eval);
  if (valid.has('serving')) out.serving = { targets: raw.serving.targets as ServingTarget[] };
  if (valid.has('infra') && out.metadata) out.infra = resolveInfra(raw.infra, out.metadata.name);
  // Decontamination defaults to every eval suite: it needs both sections.
  if (out.data && out.eval && raw.data.preprocessing?.decontamination?.suites === undefined) {
    out.data = {
      ...out.data,
      preprocessing: {
        ...out.data.preprocessing,
        decontamination: { ...out.data.preprocessing.decontamination, suites: out.eval.suites.map((s) => s.name) },
      },
    };
  }
  return out;
}

function resolvePreprocessing(raw: Raw): Preprocessing {
  const p = raw.data.preprocessing;
  return { ...p, decontamination: { ...p.decontamination, suites: p.decontamination.suites ?? [] } };
}

/** The span sentinels a UL2 objective gets when the spec names none: T5's and UL2's 100 `<extra_id_N>`. */
export const DEFAULT_UL2_SENTINELS: Ul2Sentinels = { count: 100, template: '<extra_id_{i}>' };

/** The names of UL2's span sentinels: `<extra_id_0>`, `<extra_id_1>`, ... */
export const ul2SentinelNames = (s: Ul2Sentinels): string[] => Array.from({ length: s.count }, (_, i) => s.template.replaceAll('{i}', String(i)));

function resolveTokenizer(t: Raw, objective: Raw): Tokenizer {
  if (t.train) {
    const train = t.train;
    const out: Record<string, unknown> = {
      kind: 'train',
      algorithm: train.algorithm,
      vocab_size: train.vocab_size,
      sample_size: parseBytes(train.sample_size),
      special_tokens: train.special_tokens,
    };
    if (train.fim_sentinels) out.fim_sentinels = train.fim_sentinels as FimSentinels;
    if (train.ul2_sentinels) out.ul2_sentinels = train.ul2_sentinels as Ul2Sentinels;
    else if (objective?.type === 'ul2') out.ul2_sentinels = DEFAULT_UL2_SENTINELS;
    return out as unknown as Tokenizer;
  }
  const p = t.pretrained;
  return { kind: 'pretrained', ...p, vocab_size: p.vocab_size ?? 0 } as Tokenizer;
}

function resolveModel(m: Raw, tokenizer: Tokenizer): Model {
  const preset = m.preset ? PRESETS[m.preset as SizePreset] : undefined;
  const shape = {
    d_model: m.d_model ?? preset?.d_model ?? 0,
    n_layers: m.n_layers ?? preset?.n_layers ?? 0,
    n_heads: m.n_heads ?? preset?.n_heads ?? 0,
    mlp_ratio: m.mlp_ratio,
    vocab_size: m.vocab_size ?? tokenizer.vocab_size,
  };
  const model: { -readonly [K in keyof Model]?: unknown } = {
    ...shape,
    max_seq_len: m.max_seq_len,
    position_encoding: m.position_encoding,
    precision: m.precision,
    parameters: parameterCount(shape),
  };
  if (m.preset) model.preset = m.preset;
  return model as Model;
}

function resolveTraining(t: Raw, model: Model): Training {
  const budget = t.token_budget !== undefined ? parseTokens(t.token_budget) : TOKENS_PER_PARAMETER * model.parameters;
  const seqLen = model.max_seq_len;
  const sequences = t.global_batch.sequences ?? Math.floor(parseTokens(t.global_batch.tokens) / seqLen);
  // Data-parallel ranks: one per GPU, or one process per pod on the CPU (gpus_per_node 0).
  const gpus = Math.max(1, t.resources.gpus_per_node) * t.resources.nodes;
  const batchTokens = sequences * seqLen;
  // With `micro_batch: auto` the trainer picks the micro batch at start, so the accumulation is its to know.
  const accumulation = t.micro_batch === 'auto' ? {} : { gradient_accumulation: Math.max(1, Math.floor(sequences / (t.micro_batch * gpus))) };
  return {
    ...t,
    token_budget: budget,
    global_batch: { sequences, tokens: batchTokens },
    ...accumulation,
    steps: Math.ceil(budget / Math.max(1, batchTokens)),
    optimizer: { ...t.optimizer, betas: [t.optimizer.betas[0], t.optimizer.betas[1]] },
    schedule: { ...t.schedule, warmup: parseTokensOrShare(t.schedule.warmup, budget) },
    checkpoint: { ...t.checkpoint, interval: parseTokensOrShare(t.checkpoint.interval, budget) },
    resources: { ...t.resources, cpu: String(t.resources.cpu), memory: String(t.resources.memory), shm: String(t.resources.shm) },
  } as Training;
}

function resolveEval(e: Raw): Eval {
  const suites = (e.suites as Raw[]).map((s) => ({ ...s, languages: s.languages ?? ['py'] }));
  const only = suites.length === 1 ? suites[0].name : undefined;
  const gates: Record<string, Gate[]> = {};
  for (const [stack, list] of Object.entries(e.gates as Record<string, string[]>)) {
    gates[stack] = list.map((expr) => ({ expr, ...parseGate(expr, only)! }));
  }
  return { suites, gates };
}

function resolveInfra(i: Raw, name: string): Infra {
  return {
    ...i,
    namespace: i.namespace ?? `kiln-${name}`,
    storage: { ...i.storage, size: String(i.storage.size) },
    // Quantities may be written as numbers (`cpu: 2`); pods take strings.
    stage_resources: Object.fromEntries(
      Object.entries((i.stage_resources ?? {}) as Record<string, Raw>).map(([k, r]) => [
        k,
        Object.fromEntries(Object.entries(r).map(([side, q]) => [side, Object.fromEntries(Object.entries(q as Raw).map(([n, v]) => [n, String(v)]))])),
      ]),
    ),
  } as Infra;
}

/** Assembles a full spec once every section resolved. */
export function completeSpec(parts: PartialSpec, stack: string | undefined): Spec | undefined {
  for (const s of SECTIONS) if (!parts[s]) return undefined;
  const spec = { apiVersion: 'kiln.dev/v1alpha1', kind: 'CodeModel', ...parts } as { -readonly [K in keyof Spec]: Spec[K] };
  if (stack !== undefined) spec.stack = stack;
  return spec as Spec;
}
