/**
 * Checks the schema cannot express: relations between fields, and the mistakes a team would otherwise learn
 * about only after a day of GPU time. Each check needs some resolved sections and is skipped when one of
 * them is invalid, so a schema error and a semantic error are reported in the same run.
 */
import type { Code, Severity } from './codes.ts';
import { DEFAULT_GPUS_PER_NODE, GPUS, trainingStateBytesPerParam } from './hardware.ts';
import { formatCount, parseK8sQuantity, parseTokens } from './quantity.ts';
import { parseGate, ul2SentinelNames, type PartialSpec } from './resolve.ts';
import { didYouMean } from './suggest.ts';
import type { GpuType, NodePool } from './types.ts';

export type Path = (string | number)[];

export interface Reporter {
  (code: Code, path: Path, message: string, opts?: { hint?: string; severity?: Severity; target?: 'key' | 'value' }): void;
}

/* `input` is the user's merged data before defaults; used to tell explicit settings from defaults. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Input = any;

/** Stacks every project has, whether or not it overlays them. */
export const STANDARD_STACKS = ['dev', 'staging', 'prod'] as const;

/** MultiPL-E language codes (nuprl/MultiPL-E). */
export const MULTIPLE_LANGUAGES = [
  'py', 'sh', 'clj', 'cpp', 'cs', 'd', 'dart', 'elixir', 'go', 'hs', 'java', 'js', 'jl', 'lua', 'ml', 'pl', 'php', 'r', 'rkt', 'rb', 'rs', 'scala', 'swift', 'ts',
];

const GIB = 2 ** 30;
/** Share of device memory usable for model state; the rest goes to activations, CUDA context and fragmentation. */
const USABLE_MEMORY = 0.9;

/** Patterns of credentials that must never be committed in a spec. */
const SECRET_PATTERNS: readonly [string, RegExp][] = [
  ['an AWS access key', /\b(AKIA|ASIA)[0-9A-Z]{16}\b/],
  ['a GitHub token', /\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b/],
  ['a Slack token', /\bxox[abprs]-[A-Za-z0-9-]{10,}/],
  ['a Stripe key', /\b[sr]k_live_[A-Za-z0-9]{16,}/],
  ['a Hugging Face token', /\bhf_[A-Za-z0-9]{30,}\b/],
  ['an OpenAI-style API key', /\bsk-[A-Za-z0-9_-]{20,}/],
  ['a private key', /-----BEGIN [A-Z ]*PRIVATE KEY-----/],
  ['a JSON Web Token', /\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/],
  ['a password in a URL', /\b[a-z][a-z0-9+.-]*:\/\/[^\s/:@]+:[^\s/@]+@/],
];

/** Keys whose literal values are secrets by their name alone. */
const SECRET_KEY = /(^|_)(password|passwd|secret|token|api_?key|access_?key|private_?key)$/i;

export function runChecks(spec: PartialSpec, input: Input, report: Reporter): void {
  checkSecrets(input, [], report);
  if (spec.model && spec.tokenizer) checkModel(spec, input, report);
  if (spec.tokenizer && spec.objective) checkSentinels(spec.tokenizer, spec.objective, report);
  if (spec.training && spec.model) checkTraining(spec as Required<PartialSpec>, input, report);
  if (spec.data) checkData(spec, report);
  if (spec.eval) checkEval(spec, input, report);
  if (spec.serving) checkServing(spec, report);
  if (spec.infra) checkInfra(spec.infra, report);
  if (spec.serving && spec.infra) checkGateways(spec, report);
  if (spec.serving && spec.eval && spec.serving.targets.length > 0 && Object.values(spec.eval.gates).every((g) => g.length === 0)) {
    report('KL325', ['serving'], 'serving targets are declared but no eval gates are: `kiln promote` would deploy any model, however bad', {
      hint: 'add eval.gates, e.g. `prod: ["humaneval.pass@1 >= 0.15"]`',
      target: 'key',
    });
  }
}

function checkSecrets(value: Input, path: Path, report: Reporter): void {
  if (typeof value === 'string') {
    for (const [what, re] of SECRET_PATTERNS) {
      if (re.test(value)) {
        report('KL308', path, `this looks like ${what}: secret values must never be written in a spec`, {
          hint: 'put it in a Kubernetes Secret, reference it under infra.secrets, and rotate this one: it is in your git history now',
        });
        return;
      }
    }
    const last = path.at(-1);
    // Keys are free only in label and node-selector maps; everywhere else the schema names them (and a
    // schema field such as `paradigm_token` is not a secret).
    if (typeof last === 'string' && inFreeFormMap(path) && SECRET_KEY.test(last) && value.length >= 8) {
      report('KL308', path, `"${last}" holds a literal value: secret values must never be written in a spec`, {
        hint: 'put it in a Kubernetes Secret and reference it under infra.secrets',
      });
    }
    return;
  }
  if (Array.isArray(value)) value.forEach((v, i) => checkSecrets(v, [...path, i], report));
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) checkSecrets(v, [...path, k], report);
}

function inFreeFormMap(path: Path): boolean {
  return (path[0] === 'metadata' && path[1] === 'labels') || (path[0] === 'infra' && path[1] === 'node_pools' && path[3] === 'node_selector');
}

function checkModel(spec: PartialSpec, input: Input, report: Reporter): void {
  const m = spec.model!;
  const raw = input.model ?? {};
  if (!raw.preset) {
    const missing = ['d_model', 'n_layers', 'n_heads'].filter((k) => raw[k] === undefined);
    if (missing.length > 0) {
      report('KL309', ['model'], `model needs a size: set model.preset, or all of d_model, n_layers and n_heads (missing ${missing.join(', ')})`, {
        hint: 'e.g. `preset: 350m`; presets are 125m, 350m, 760m, 1b, 3b, 7b',
        target: 'key',
      });
      return;
    }
  }
  const headsAt: Path = raw.n_heads !== undefined ? ['model', 'n_heads'] : raw.d_model !== undefined ? ['model', 'd_model'] : ['model', 'preset'];
  if (m.d_model % m.n_heads !== 0) {
    const divisors = [];
    for (let h = 1; h <= Math.min(m.d_model, 256); h++) if (m.d_model % h === 0 && (m.d_model / h) % 8 === 0) divisors.push(h);
    const near = divisors.sort((a, b) => Math.abs(a - m.n_heads) - Math.abs(b - m.n_heads)).slice(0, 2).sort((a, b) => a - b);
    report('KL301', headsAt, `d_model ${m.d_model} is not divisible by n_heads ${m.n_heads} (${m.d_model} / ${m.n_heads} = ${(m.d_model / m.n_heads).toFixed(2)})`, {
      hint: near.length ? `n_heads ${near.join(' or ')} would divide ${m.d_model}` : 'choose n_heads that divides d_model',
    });
  } else {
    const headDim = m.d_model / m.n_heads;
    if (m.position_encoding === 'rope' && headDim % 2 !== 0) {
      report('KL301', headsAt, `rotary embeddings need an even head dimension; d_model / n_heads = ${headDim}`, { hint: 'change n_heads so that d_model / n_heads is even' });
    } else if (headDim % 8 !== 0 || headDim > 256) {
      report('KL318', headsAt, `head dimension ${headDim} (d_model / n_heads) ${headDim > 256 ? 'exceeds 256' : 'is not a multiple of 8'}: fused attention kernels run slower or not at all`, {
        hint: 'head dimensions of 64 or 128 are the fast path',
      });
    }
  }
  const tok = spec.tokenizer!;
  if (tok.kind === 'pretrained' && tok.vocab_size === 0 && raw.vocab_size === undefined) {
    report('KL313', ['tokenizer', 'pretrained'], 'a pretrained tokenizer needs its vocabulary size: kiln does not download it to find out', {
      hint: 'set tokenizer.pretrained.vocab_size (or model.vocab_size)',
      target: 'key',
    });
  }
  if (raw.vocab_size !== undefined && tok.vocab_size > 0 && raw.vocab_size < tok.vocab_size) {
    report('KL313', ['model', 'vocab_size'], `model.vocab_size ${raw.vocab_size} is smaller than the tokenizer's vocabulary (${tok.vocab_size}): token ids would index past the embedding`, {
      hint: `remove model.vocab_size to use ${tok.vocab_size}, or set it to at least that`,
    });
  }
  if (tok.kind === 'train') {
    const special = new Set([...tok.special_tokens, ...Object.values(tok.fim_sentinels ?? {}), ...(tok.ul2_sentinels ? ul2SentinelNames(tok.ul2_sentinels) : [])]);
    if (special.size >= tok.vocab_size / 2) {
      report('KL313', ['tokenizer', 'train', 'vocab_size'], `${special.size} special tokens leave almost no room in a vocabulary of ${tok.vocab_size}`, {
        hint: 'raise vocab_size or list fewer special tokens',
      });
    }
  }
  if (m.vocab_size > 0 && m.vocab_size % 64 !== 0) {
    const padded = Math.ceil(m.vocab_size / 64) * 64;
    report('KL318', raw.vocab_size !== undefined ? ['model', 'vocab_size'] : tok.kind === 'train' ? ['tokenizer', 'train', 'vocab_size'] : ['tokenizer', 'pretrained'], `vocabulary size ${m.vocab_size} is not a multiple of 64: the embedding and output matmuls run slower`, {
      hint: `set model.vocab_size: ${padded} (padding rows cost nothing)`,
    });
  }
}

function sentinelTokens(t: NonNullable<PartialSpec['tokenizer']>): Set<string> {
  return new Set([...t.special_tokens, ...(t.kind === 'train' ? Object.values(t.fim_sentinels ?? {}) : [])]);
}

function checkSentinels(t: NonNullable<PartialSpec['tokenizer']>, objective: NonNullable<PartialSpec['objective']>, report: Reporter): void {
  const section = t.kind === 'train' ? 'train' : 'pretrained';
  if (objective.type === 'fim') {
    if (!t.fim_sentinels) {
      report('KL303', ['objective', 'type'], 'objective fim needs FIM sentinel tokens, and the tokenizer defines none', {
        hint: t.kind === 'train'
          ? 'add `fim_sentinels: {}` under tokenizer.train to add <fim_prefix>, <fim_middle>, <fim_suffix> and <fim_pad>'
          : 'set tokenizer.pretrained.fim_sentinels to the tokens that tokenizer uses, and list them in its special_tokens',
      });
    } else if (t.kind === 'pretrained') {
      const have = new Set(t.special_tokens);
      const missing = Object.values(t.fim_sentinels).filter((s) => !have.has(s));
      if (missing.length) {
        report('KL303', ['tokenizer', 'pretrained', 'fim_sentinels'], `FIM sentinels ${missing.join(', ')} are not among the pretrained tokenizer's special_tokens`, {
          hint: 'list them in tokenizer.pretrained.special_tokens if the tokenizer has them; otherwise train a tokenizer',
          target: 'key',
        });
      }
    }
  }
  if (objective.type === 'ul2') {
    if (t.kind === 'pretrained' && !t.ul2_sentinels) {
      report('KL303', ['objective', 'type'], 'objective ul2 needs span sentinel tokens, and the pretrained tokenizer names none', {
        hint: 'set tokenizer.pretrained.ul2_sentinels (e.g. `{count: 100, template: "<extra_id_{i}>"}`) to the sentinels that tokenizer has, or train a tokenizer',
      });
    }
    const have = sentinelTokens(t);
    const seen = new Set<string>();
    objective.denoisers.forEach((d, i) => {
      if (have.has(d.paradigm_token) || seen.has(d.paradigm_token)) return;
      seen.add(d.paradigm_token);
      report('KL303', ['objective', 'denoisers', i, 'paradigm_token'], `UL2 paradigm token ${d.paradigm_token} is not a special token of the tokenizer`, {
        hint: `add "${d.paradigm_token}" to tokenizer.${section}.special_tokens`,
      });
    });
  }
}

/** The node pool that runs a GPU type, if pools are declared. */
function poolFor(spec: PartialSpec, gpu: GpuType): NodePool | undefined | null {
  const pools = spec.infra?.node_pools ?? [];
  if (pools.length === 0) return null;
  return pools.find((p) => p.gpu_type === gpu);
}

function checkTraining(spec: Required<PartialSpec>, input: Input, report: Reporter): void {
  const t = spec.training;
  const m = spec.model;
  const raw = input.training ?? {};
  if (m.d_model === 0 || m.n_heads === 0) return; // KL309 already said the model has no shape.
  const r = t.resources;
  const cpu = r.gpus_per_node === 0;
  // Data-parallel ranks: one per GPU, or one process per pod when training on the CPU.
  const gpus = Math.max(1, r.gpus_per_node) * r.nodes;
  // With `micro_batch: auto` the trainer finds a micro batch that divides each GPU's share, so the batch need only divide over the GPUs.
  const auto = t.micro_batch === 'auto';
  const micro = t.micro_batch === 'auto' ? 1 : t.micro_batch;
  const perStep = micro * gpus;
  const unit = cpu ? `CPU rank${gpus === 1 ? '' : 's'}` : 'GPUs';
  const over = auto ? `${gpus} ${unit} (data-parallel ranks; micro_batch is auto)` : `micro_batch ${micro} × ${gpus} ${unit}`;
  // Blame what the user set: the batch itself, else the GPU count, else the micro-batch.
  const batchPath: Path = raw.global_batch
    ? ['training', 'global_batch', raw.global_batch.tokens !== undefined ? 'tokens' : 'sequences']
    : raw.resources?.gpus_per_node !== undefined
      ? ['training', 'resources', 'gpus_per_node']
      : raw.resources?.nodes !== undefined
        ? ['training', 'resources', 'nodes']
        : raw.micro_batch !== undefined
          ? ['training', 'micro_batch']
          : ['training'];
  const asked = raw.global_batch?.tokens !== undefined ? parseTokens(raw.global_batch.tokens) : undefined;
  if (asked !== undefined && asked % m.max_seq_len !== 0) {
    const seq = Math.max(perStep, Math.round(asked / m.max_seq_len / perStep) * perStep);
    report('KL302', batchPath, `global batch of ${asked} tokens is not a multiple of max_seq_len ${m.max_seq_len}`, {
      hint: `use \`sequences: ${seq}\` (${seq * m.max_seq_len} tokens), which also divides over ${over}`,
    });
  } else if (t.global_batch.sequences % perStep !== 0 || t.global_batch.sequences === 0) {
    const fix = Math.max(perStep, Math.round(t.global_batch.sequences / perStep) * perStep);
    let smaller: number | undefined;
    for (let mb = micro - 1; mb >= 1 && smaller === undefined; mb--) if (t.global_batch.sequences % (mb * gpus) === 0) smaller = mb;
    report('KL302', batchPath, `global batch of ${t.global_batch.sequences} sequences is not divisible by ${over}${auto ? '' : ` = ${perStep}`}`, {
      hint: `use a global batch of ${fix} sequences${smaller !== undefined ? `, or micro_batch ${smaller}` : ''}`,
    });
  }
  if (t.token_budget < t.global_batch.tokens) {
    report('KL310', raw.token_budget !== undefined ? ['training', 'token_budget'] : ['training'], `token budget ${formatCount(t.token_budget)} is smaller than one optimizer step (${formatCount(t.global_batch.tokens)} tokens)`, {
      hint: 'raise token_budget or shrink global_batch',
    });
  }
  if (t.schedule.warmup >= t.token_budget) {
    report('KL316', ['training', 'schedule', 'warmup'], `warmup of ${formatCount(t.schedule.warmup)} tokens is not shorter than the whole budget (${formatCount(t.token_budget)})`, { hint: 'warm up for about 1% of the budget' });
  }
  if (t.checkpoint.interval > t.token_budget) {
    report('KL316', ['training', 'checkpoint', 'interval'], `checkpoint interval ${formatCount(t.checkpoint.interval)} exceeds the budget (${formatCount(t.token_budget)}): no checkpoint is saved before the end, so a failure restarts from scratch`, {
      severity: 'warning',
      hint: 'checkpoint every few percent, e.g. `interval: 5%`',
    });
  }
  if (!t.autoresume && r.nodes > 1) {
    report('KL325', ['training', 'autoresume'], `autoresume is off for a ${r.nodes}-node job: any node failure restarts training from the beginning`, { hint: 'leave autoresume on' });
  }
  // Memory for weights, gradients and optimizer state, before activations.
  const gpu = GPUS[r.gpu_type];
  const state = m.parameters * trainingStateBytesPerParam(t.optimizer.type);
  const p = t.parallelism;
  const perGpu =
    p.strategy === 'ddp'
      ? state
      : p.sharding === 'full'
        ? state / gpus
        : p.sharding === 'hybrid'
          ? state / r.gpus_per_node
          : m.parameters * 2 + (state - m.parameters * 2) / gpus;
  if (!cpu && perGpu > gpu.memoryGiB * GIB * USABLE_MEMORY) {
    report('KL312', ['training', 'parallelism', 'strategy'], `a ${formatCount(m.parameters)}-parameter model needs ${(perGpu / GIB).toFixed(1)} GiB per GPU for weights, gradients and ${t.optimizer.type} state (${p.strategy}${p.strategy === 'fsdp' ? ` ${p.sharding}` : ''} over ${gpus} GPUs), more than a ${r.gpu_type} holds (${gpu.memoryGiB} GiB)`, {
      hint: p.strategy === 'ddp' ? 'use `strategy: fsdp` to shard the state over the GPUs' : 'use more GPUs, `sharding: full`, or a GPU with more memory',
    });
  }
  if (!cpu && m.precision === 'bf16' && !gpu.bf16) {
    report('KL324', input.model?.precision !== undefined ? ['model', 'precision'] : ['training', 'resources', 'gpu_type'], `${r.gpu_type} has no bf16 support, and model.precision is bf16`, {
      hint: 'use `precision: fp16` on this GPU, or a newer GPU',
    });
  }
  // CPU training runs on a CPU pool (the first without gpu_type), like the other stages.
  const pool = cpu ? null : poolFor(spec, r.gpu_type);
  if (pool === undefined) {
    report('KL320', ['training', 'resources', 'gpu_type'], `no node pool in infra.node_pools has gpu_type ${r.gpu_type}`, { hint: `add a pool with gpu_type: ${r.gpu_type}, or train on a GPU type a pool has` });
  } else {
    const capacity = pool?.gpus_per_node ?? DEFAULT_GPUS_PER_NODE;
    if (r.gpus_per_node > capacity) {
      report('KL306', ['training', 'resources', 'gpus_per_node'], `training asks for ${r.gpus_per_node} GPUs per node, but ${pool ? `pool ${pool.name} nodes have ${capacity}` : `a node holds ${capacity}`}: the pods would stay Pending`, {
        hint: `use gpus_per_node: ${capacity} and more nodes${pool ? '' : ', or declare infra.node_pools if your nodes are larger'}`,
      });
    }
    if (pool?.nodes !== undefined && r.nodes > pool.nodes) {
      report('KL320', ['training', 'resources', 'nodes'], `training asks for ${r.nodes} nodes, but pool ${pool.name} has ${pool.nodes}`, { hint: `use at most ${pool.nodes} nodes` });
    }
  }
  if (raw.parallelism?.sharding !== undefined && p.strategy === 'ddp') {
    report('KL323', ['training', 'parallelism', 'sharding'], 'sharding only applies to fsdp; ddp ignores it', { severity: 'warning', hint: 'remove sharding or use strategy: fsdp' });
  }
  const prices = spec.infra?.pricing.gpu_hour ?? {};
  if (!cpu && Object.keys(prices).length > 0 && prices[r.gpu_type] === undefined) {
    report('KL319', ['infra', 'pricing', 'gpu_hour'], `no price for ${r.gpu_type} (training): the cost estimate will leave it out`, { hint: `add ${r.gpu_type}: <price per GPU-hour>`, target: 'key' });
  }
}

function duplicates(names: readonly string[], base: Path, report: Reporter, what: string): void {
  const seen = new Map<string, number>();
  names.forEach((n, i) => {
    const first = seen.get(n);
    if (first !== undefined) {
      report('KL307', [...base, i, 'name'], `${what} name "${n}" is already used by entry ${first}`, { hint: 'names identify results, reports and Kubernetes objects: make each unique' });
    } else seen.set(n, i);
  });
}

function checkData(spec: PartialSpec, report: Reporter): void {
  const data = spec.data!;
  duplicates(data.sources.map((s) => s.name), ['data', 'sources'], report, 'data source');
  const secrets = spec.infra ? Object.keys(spec.infra.secrets) : undefined;
  const targets = spec.serving?.targets.map((t) => t.name);
  data.sources.forEach((s, i) => {
    if (s.credentials !== undefined && secrets && !secrets.includes(s.credentials)) {
      report('KL311', ['data', 'sources', i, 'credentials'], `credentials "${s.credentials}" is not defined in infra.secrets`, {
        hint: didYouMean(s.credentials, secrets) ?? 'add it under infra.secrets as {secret: <name>, key: <key>}',
      });
    }
    if (s.type === 'feedback' && targets && !targets.includes(s.target)) {
      report('KL311', ['data', 'sources', i, 'target'], `feedback target "${s.target}" is not a serving target`, {
        hint: didYouMean(s.target, targets) ?? (targets.length ? `serving targets: ${targets.join(', ')}` : 'declare it under serving.targets'),
      });
    }
  });
  const near = data.preprocessing.dedup.near;
  if ((near.bands === undefined) !== (near.rows === undefined)) {
    report('KL315', ['data', 'preprocessing', 'dedup', 'near', near.bands === undefined ? 'rows' : 'bands'], 'set both bands and rows, or neither (kiln then derives them from the threshold)', { target: 'key' });
  } else if (near.bands !== undefined && near.rows !== undefined && near.bands * near.rows > near.num_perm) {
    report('KL315', ['data', 'preprocessing', 'dedup', 'near', 'bands'], `bands × rows = ${near.bands * near.rows} exceeds num_perm ${near.num_perm}`, { hint: 'bands × rows must be at most num_perm' });
  }
  if (spec.eval) {
    const suites = spec.eval.suites.map((s) => s.name);
    const deco = data.preprocessing.decontamination;
    deco.suites.forEach((name, i) => {
      if (!suites.includes(name)) {
        report('KL311', ['data', 'preprocessing', 'decontamination', 'suites', i], `decontamination suite "${name}" is not an eval suite`, {
          hint: didYouMean(name, suites) ?? `eval suites: ${suites.join(', ') || 'none'}`,
        });
      }
    });
    if (deco.enabled && suites.length === 0) {
      report('KL323', ['data', 'preprocessing', 'decontamination'], 'decontamination is on but there are no eval suites to decontaminate against', { severity: 'warning', target: 'key' });
    }
  }
}

function checkEval(spec: PartialSpec, input: Input, report: Reporter): void {
  const ev = spec.eval!;
  duplicates(ev.suites.map((s) => s.name), ['eval', 'suites'], report, 'eval suite');
  ev.suites.forEach((s, i) => {
    const at = (...p: Path): Path => ['eval', 'suites', i, ...p];
    if (s.benchmark === 'custom' && !s.path) {
      report('KL321', at('benchmark'), `suite "${s.name}" is custom but has no path to its problems`, { hint: 'set path to a problems file or directory' });
    }
    for (const k of s.k) {
      if (k > s.samples) {
        report('KL317', at('k'), `pass@${k} needs at least ${k} samples per problem; suite "${s.name}" generates ${s.samples}`, { hint: `set samples: ${k} or more, or drop ${k} from k` });
      }
    }
    if (s.benchmark === 'humaneval') {
      s.languages.forEach((l, j) => {
        if (l !== 'py') report('KL317', at('languages', j), `HumanEval is Python only; "${l}" needs benchmark multipl-e`, { hint: 'use `benchmark: multipl-e` for other languages' });
      });
    } else if (s.benchmark === 'multipl-e') {
      s.languages.forEach((l, j) => {
        if (!MULTIPLE_LANGUAGES.includes(l)) {
          report('KL317', at('languages', j), `"${l}" is not a MultiPL-E language`, { hint: didYouMean(l, MULTIPLE_LANGUAGES) ?? `MultiPL-E languages: ${MULTIPLE_LANGUAGES.join(', ')}` });
        }
      });
    }
    if (spec.model && s.max_new_tokens >= spec.model.max_seq_len) {
      report('KL317', at('max_new_tokens'), `max_new_tokens ${s.max_new_tokens} leaves no room for the prompt in a ${spec.model.max_seq_len}-token context`, { hint: 'use at most half the context, e.g. 512' });
    }
    if (s.temperature === 0 && s.samples > 1) {
      report('KL317', at('samples'), `temperature 0 is greedy: all ${s.samples} samples per problem will be identical`, { severity: 'warning', hint: 'use samples: 1 with temperature 0, or sample with temperature 0.2' });
    }
    if (s.fim && spec.objective && spec.objective.type !== 'fim') {
      report('KL317', at('fim'), `suite "${s.name}" evaluates infilling, but the model is trained with ${spec.objective.type}`, { severity: 'warning', hint: 'use objective fim to train for infilling' });
    }
    if (s.fim && spec.tokenizer && !spec.tokenizer.fim_sentinels) {
      report('KL303', at('fim'), 'infilling suites need FIM sentinel tokens, and the tokenizer defines none', { hint: 'set fim_sentinels in the tokenizer section' });
    }
  });
  const names = ev.suites.map((s) => s.name);
  const declared = new Set<string>([...STANDARD_STACKS, ...Object.keys(input.stacks ?? {})]);
  for (const [stack, gates] of Object.entries(ev.gates)) {
    if (!declared.has(stack)) {
      report('KL322', ['eval', 'gates', stack], `gates for stack "${stack}", which is neither dev, staging, prod nor declared under stacks`, {
        severity: 'warning',
        hint: didYouMean(stack, declared) ?? 'add it under stacks, or use dev, staging or prod',
        target: 'key',
      });
    }
    gates.forEach((g, i) => {
      const at: Path = ['eval', 'gates', stack, i];
      const parsed = parseGate(g.expr, names.length === 1 ? names[0] : undefined);
      if (!parsed) return;
      if (!parsed.suite) {
        report('KL304', at, `gate "${g.expr}" does not say which suite it reads, and there are ${names.length}`, { hint: `write it as <suite>.${parsed.metric}, with a suite among ${names.join(', ') || '(none)'}` });
        return;
      }
      const suite = ev.suites.find((s) => s.name === parsed.suite);
      if (!suite) {
        report('KL304', at, `gate "${g.expr}" names suite "${parsed.suite}", which does not exist`, { hint: didYouMean(parsed.suite, names) ?? `suites: ${names.join(', ') || '(none)'}` });
        return;
      }
      if (!suite.k.includes(parsed.k)) {
        report('KL305', at, `gate "${g.expr}" reads pass@${parsed.k}, but suite "${suite.name}" reports ${suite.k.map((k) => `pass@${k}`).join(', ')}`, { hint: `add ${parsed.k} to the suite's k list` });
      }
      if (parsed.value > 1) {
        report('KL305', at, `gate "${g.expr}" compares pass@k, a share between 0 and 1, with ${parsed.value}`, { hint: `did you mean ${parsed.value / 100}?` });
      }
    });
  }
}

function checkServing(spec: PartialSpec, report: Reporter): void {
  const targets = spec.serving!.targets;
  duplicates(targets.map((t) => t.name), ['serving', 'targets'], report, 'serving target');
  targets.forEach((t, i) => {
    const at = (...p: Path): Path => ['serving', 'targets', i, ...p];
    if (t.backend === 'fastertransformer') {
      report('KL325', at('backend'), `backend fastertransformer is retired upstream (TensorRT-LLM replaced it): the export stage writes no model repository for it and fails`, {
        severity: 'warning',
        hint: 'use backend: tensorrtllm (its successor) or vllm',
      });
    }
    if (t.replicas.min > t.replicas.max) {
      report('KL314', at('replicas', 'min'), `replicas.min ${t.replicas.min} is above replicas.max ${t.replicas.max}`, { hint: 'min must be at most max' });
    }
    if (t.latency.p50_ms > t.latency.p99_ms) {
      report('KL314', at('latency', 'p50_ms'), `p50 objective ${t.latency.p50_ms} ms is above the p99 objective ${t.latency.p99_ms} ms`, { hint: 'the median cannot be slower than the 99th percentile' });
    }
    const onCpu = t.gpu.count === 0;
    if (onCpu && t.backend !== 'python') {
      report('KL329', at('gpu', 'count'), `serving target "${t.name}" has no GPU (gpu.count 0), and the ${t.backend} backend needs one`, { hint: 'use backend: python to serve on the CPU, or give it gpu.count: 1' });
    }
    if (!onCpu && t.gpu.count % t.engine.tensor_parallel !== 0) {
      report('KL314', at('engine', 'tensor_parallel'), `tensor_parallel ${t.engine.tensor_parallel} does not divide the ${t.gpu.count} GPUs of a replica`, { hint: `set gpu.count to a multiple of ${t.engine.tensor_parallel}` });
    }
    if (t.gateway && t.gateway.replicas.min > t.gateway.replicas.max) {
      report('KL314', at('gateway', 'replicas', 'min'), `gateway replicas.min ${t.gateway.replicas.min} is above gateway replicas.max ${t.gateway.replicas.max}`, { hint: 'min must be at most max' });
    }
    if (t.gateway?.max_tokens !== undefined && spec.model && t.gateway.max_tokens >= spec.model.max_seq_len) {
      report('KL314', at('gateway', 'max_tokens'), `gateway max_tokens ${t.gateway.max_tokens} leaves no room for the prompt in a ${spec.model.max_seq_len}-token context`, {
        hint: `use at most half the context, e.g. ${Math.max(1, Math.floor(spec.model.max_seq_len / 2))}`,
      });
    }
    if (t.canary > 0 && t.replicas.max < 2) {
      report('KL314', at('canary'), `a canary share of ${t.canary} needs room for a second replica, but replicas.max is ${t.replicas.max}`, { severity: 'warning', hint: 'raise replicas.max to at least 2' });
    }
    const gpu = GPUS[t.gpu.type];
    if (t.engine.precision === 'fp8' && !['h100-80gb', 'h200-141gb', 'b200-192gb', 'l4', 'l40s', 'mi300x-192gb'].includes(t.gpu.type)) {
      report('KL324', at('engine', 'precision'), `${t.gpu.type} cannot run fp8 engines`, { hint: 'use fp16 or int8, or an Ada, Hopper or Blackwell GPU' });
    }
    if (t.engine.precision === 'bf16' && !gpu.bf16) {
      report('KL324', at('engine', 'precision'), `${t.gpu.type} has no bf16 support`, { hint: 'use fp16' });
    }
    if (!onCpu && spec.model && spec.model.parameters > 0) {
      const bytes = { fp32: 4, fp16: 2, bf16: 2, fp8: 1, int8: 1 }[t.engine.precision];
      const perGpu = (spec.model.parameters * bytes) / t.engine.tensor_parallel;
      if (perGpu > gpu.memoryGiB * GIB * USABLE_MEMORY) {
        report('KL312', at('gpu', 'type'), `the ${t.engine.precision} weights of a ${formatCount(spec.model.parameters)}-parameter model need ${(perGpu / GIB).toFixed(1)} GiB per GPU, more than a ${t.gpu.type} holds (${gpu.memoryGiB} GiB)`, {
          hint: 'raise engine.tensor_parallel (and gpu.count), lower the precision, or use a larger GPU',
        });
      }
    }
    const pool = onCpu ? null : poolFor(spec, t.gpu.type);
    if (pool === undefined) {
      report('KL320', at('gpu', 'type'), `no node pool in infra.node_pools has gpu_type ${t.gpu.type}`, { hint: `add a pool with gpu_type: ${t.gpu.type}` });
    } else {
      const capacity = pool?.gpus_per_node ?? DEFAULT_GPUS_PER_NODE;
      if (t.gpu.count > capacity) {
        report('KL306', at('gpu', 'count'), `a replica of "${t.name}" asks for ${t.gpu.count} GPUs, but ${pool ? `pool ${pool.name} nodes have ${capacity}` : `a node holds ${capacity}`}: it could never be scheduled`, {
          hint: `use at most ${capacity} GPUs per replica`,
        });
      }
    }
    const prices = spec.infra?.pricing.gpu_hour ?? {};
    if (!onCpu && Object.keys(prices).length > 0 && prices[t.gpu.type] === undefined) {
      report('KL319', ['infra', 'pricing', 'gpu_hour'], `no price for ${t.gpu.type} (serving target "${t.name}"): the cost estimate will leave it out`, { hint: `add ${t.gpu.type}: <price per GPU-hour>`, target: 'key' });
    }
  });
}

function checkInfra(infra: NonNullable<PartialSpec['infra']>, report: Reporter): void {
  duplicates(infra.node_pools.map((p) => p.name), ['infra', 'node_pools'], report, 'node pool');
  for (const [kind, r] of Object.entries(infra.stage_resources ?? {})) {
    for (const q of ['cpu', 'memory'] as const) {
      const req = r?.requests?.[q];
      const lim = r?.limits?.[q];
      if (req !== undefined && lim !== undefined && parseK8sQuantity(req) > parseK8sQuantity(lim)) {
        report('KL328', ['infra', 'stage_resources', kind, 'requests', q], `${kind} pods request ${q} ${req}, more than their limit ${lim}: Kubernetes rejects such a pod`, { hint: `request at most ${lim}, or raise limits.${q}` });
      }
    }
  }
  infra.node_pools.forEach((p, i) => {
    if (p.gpu_type !== undefined && p.gpus_per_node === 0) {
      report('KL320', ['infra', 'node_pools', i, 'gpu_type'], `pool ${p.name} has gpu_type ${p.gpu_type} but gpus_per_node 0`, { hint: 'set gpus_per_node' });
    }
    if (p.gpu_type === undefined && p.gpus_per_node > 0) {
      report('KL320', ['infra', 'node_pools', i, 'gpus_per_node'], `pool ${p.name} has ${p.gpus_per_node} GPUs per node but no gpu_type`, { hint: 'set gpu_type' });
    }
  });
  const secrets = Object.keys(infra.secrets);
  if (infra.storage.credentials !== undefined && !secrets.includes(infra.storage.credentials)) {
    report('KL311', ['infra', 'storage', 'credentials'], `credentials "${infra.storage.credentials}" is not defined in infra.secrets`, { hint: didYouMean(infra.storage.credentials, secrets) ?? 'add it under infra.secrets' });
  }
}

/** Storage schemes a pod can write to as files: the gateway's feedback log lives on the run's mounted storage. */
const MOUNTED_STORAGE = /^(pvc|file):\/\//;

/** The gateways' API-key Secrets exist in infra.secrets, and every feedback source has a gateway writing its log. */
function checkGateways(spec: PartialSpec, report: Reporter): void {
  const infra = spec.infra!;
  const targets = spec.serving!.targets;
  const secrets = Object.keys(infra.secrets);
  targets.forEach((t, i) => {
    if (t.gateway && !secrets.includes(t.gateway.api_keys)) {
      report('KL311', ['serving', 'targets', i, 'gateway', 'api_keys'], `api_keys "${t.gateway.api_keys}" is not defined in infra.secrets`, {
        hint: didYouMean(t.gateway.api_keys, secrets) ?? `add it under infra.secrets as {secret: <name>, key: <key>}: a Secret whose key holds one API key per line`,
      });
    }
  });
  spec.data?.sources.forEach((s, i) => {
    if (s.type !== 'feedback') return;
    const target = targets.find((t) => t.name === s.target);
    if (!target) return; // KL311 (checkData) already says the target does not exist.
    if (!target.gateway) {
      report('KL326', ['data', 'sources', i, 'target'], `feedback source "${s.name}" reads serving target "${s.target}", which has no gateway: nothing writes its feedback log`, {
        hint: `add \`gateway: {api_keys: <entry of infra.secrets>}\` to serving target "${s.target}"`,
      });
    }
    if (!MOUNTED_STORAGE.test(infra.storage.uri)) {
      report('KL327', ['data', 'sources', i, 'type'], `feedback source "${s.name}" needs pvc:// or file:// storage: the gateway writes the feedback log as files to the mounted storage, and ${infra.storage.uri.split('://')[0]}:// is not mounted into pods`, {
        hint: 'set infra.storage.uri to a pvc://<claim> (the gateway and data-prep mount it), or remove this feedback source',
      });
    }
  });
}
