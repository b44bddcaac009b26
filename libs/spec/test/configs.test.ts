import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { load, loadText, ul2SentinelNames, validateFile } from '../src/index.ts';

const configs = fileURLToPath(new URL('../../../configs/', import.meta.url));
const files = readdirSync(configs).filter((f) => f.endsWith('.yaml')).sort();

describe('example specs in configs/', () => {
  it('include the replica, tiny, FIM, UL2 and a multi-node example', () => {
    expect(files).toEqual(expect.arrayContaining(['replit-code-v1-3b.yaml', 'tiny.yaml', 'fim.yaml', 'ul2.yaml']));
    const multiNode = files.filter((f) => (load(configs + f).spec?.training.resources.nodes ?? 0) > 1);
    expect(multiNode.length).toBeGreaterThan(0);
  });

  it.each(files)('%s is valid with every stack overlay, without warnings', (f) => {
    const r = validateFile(configs + f);
    expect(r.diagnostics).toEqual([]);
    expect(r.spec).toBeDefined();
    for (const stack of r.stacks) expect(load(configs + f, { stack }).spec?.stack).toBe(stack);
  });

  it.each(files)('%s starts with the yaml-language-server schema line', (f) => {
    expect(readFileSync(configs + f, 'utf8').split('\n')[0]).toBe('# yaml-language-server: $schema=../schemas/kiln.schema.json');
  });
});

describe('replit-code-v1-3b replica', () => {
  const spec = load(configs + 'replit-code-v1-3b.yaml').spec!;

  it('has the published shape and about 2.7B parameters', () => {
    expect(spec.model).toMatchObject({ d_model: 2560, n_layers: 32, n_heads: 32, max_seq_len: 2048, mlp_ratio: 4, position_encoding: 'alibi', vocab_size: 32768 });
    expect(spec.model.parameters).toBeGreaterThan(2.5e9);
    expect(spec.model.parameters).toBeLessThan(2.8e9);
  });

  it('trains a unigram tokenizer of 32,768 tokens on 525B tokens of The Stack dedup v1.2 in 20 languages, on 256 A100-40GB', () => {
    expect(spec.tokenizer).toMatchObject({ kind: 'train', algorithm: 'unigram', vocab_size: 32768 });
    expect(spec.training.token_budget).toBe(525e9);
    const source = spec.data.sources[0]!;
    expect(source.type === 'huggingface' && [source.dataset, source.revision, source.languages?.length]).toEqual(['bigcode/the-stack-dedup', 'v1.2', 20]);
    const r = spec.training.resources;
    expect([r.gpu_type, r.gpus_per_node * r.nodes]).toEqual(['a100-40gb', 256]);
  });

  it('gates prod on HumanEval pass@1 >= 0.20 and serves behind Triton', () => {
    expect(spec.eval.gates.prod).toEqual([{ expr: 'humaneval.pass@1 >= 0.20', suite: 'humaneval', metric: 'pass@1', k: 1, op: '>=', value: 0.2 }]);
    expect(spec.serving.targets[0]?.backend).toBe('tensorrtllm');
  });

  it('dev stack trains on one node with a small budget', () => {
    const dev = load(configs + 'replit-code-v1-3b.yaml', { stack: 'dev' }).spec!;
    expect(dev.training.resources.nodes).toBe(1);
    expect(dev.training.token_budget).toBe(2e9);
    expect(dev.serving.targets).toEqual([]);
    expect(dev.training.gradient_accumulation).toBe(32);
  });
});

const MINIMAL = `apiVersion: kiln.dev/v1alpha1
metadata: { name: m }
data:
  sources: [{ type: local, name: src, path: ./code }]
model: { preset: 125m }
training: {}
`;

describe('defaults', () => {
  const spec = loadText(MINIMAL).spec!;

  it('fill every section from the schema', () => {
    expect(spec.tokenizer).toMatchObject({ kind: 'train', algorithm: 'bpe', vocab_size: 32768, sample_size: 2 ** 30 });
    expect(spec.objective).toEqual({ type: 'next-token' });
    expect(spec.data.preprocessing.line_filters).toMatchObject({ max_line_length: 1000, max_avg_line_length: 100, min_alphanum_fraction: 0.25 });
    expect(spec.data.preprocessing.dedup.near).toMatchObject({ enabled: true, num_perm: 256, ngram: 5, threshold: 0.7 });
    expect(spec.data.preprocessing.pii.replacements).toEqual({ email: '<EMAIL>', ip_address: '<IP_ADDRESS>', key: '<KEY>' });
    expect(spec.data.sources[0]).toMatchObject({ weight: 1, format: 'raw' });
    expect(spec.eval.suites).toEqual([expect.objectContaining({ name: 'humaneval', benchmark: 'humaneval', languages: ['py'], samples: 20, k: [1, 10], timeout_seconds: 3 })]);
    expect(spec.infra.namespace).toBe('kiln-m');
  });

  it('derive the token budget (20 tokens per parameter), warmup and checkpoint interval', () => {
    expect(spec.training.token_budget).toBe(20 * spec.model.parameters);
    expect(spec.training.schedule.warmup).toBe(Math.round(0.01 * spec.training.token_budget));
    expect(spec.training.checkpoint.interval).toBe(Math.round(0.05 * spec.training.token_budget));
    expect(spec.data.preprocessing.decontamination.suites).toEqual(['humaneval']);
  });

  it('keep an explicit zero (never `||`)', () => {
    const s = loadText(MINIMAL + 'serving:\n  targets:\n    - { name: api, replicas: { min: 0, max: 2 } }\neval:\n  gates: { prod: ["pass@1 >= 0.1"] }\n').spec!;
    expect(s.serving.targets[0]?.replicas).toEqual({ min: 0, max: 2 });
  });

  it('expand the UL2 mixture of the paper', () => {
    const s = loadText(MINIMAL.replace('training: {}', 'training: {}\nobjective: { type: ul2 }\ntokenizer:\n  train:\n    special_tokens: ["[NLU]", "[S2S]", "[NLG]"]\n')).spec!;
    expect(s.objective.type === 'ul2' && s.objective.denoisers.map((d) => [d.mean_span, d.corruption_rate])).toEqual([
      [3, 0.15], [8, 0.15], ['L/4', 0.25], [3, 0.5], [8, 0.5], [64, 0.15], [64, 0.5],
    ]);
  });

  it('give a UL2 objective 100 span sentinels, and keep the ones a spec names', () => {
    const ul2 = MINIMAL.replace('training: {}', 'training: {}\nobjective: { type: ul2 }\ntokenizer:\n  train:\n    special_tokens: ["[NLU]", "[S2S]", "[NLG]"]\n');
    const s = loadText(ul2).spec!;
    expect(s.tokenizer.ul2_sentinels).toEqual({ count: 100, template: '<extra_id_{i}>' });
    expect(ul2SentinelNames(s.tokenizer.ul2_sentinels!).slice(0, 2)).toEqual(['<extra_id_0>', '<extra_id_1>']);
    const named = loadText(ul2.replace('    special_tokens', '    ul2_sentinels: { count: 8, template: "<s{i}>" }\n    special_tokens')).spec!;
    expect(named.tokenizer.ul2_sentinels).toEqual({ count: 8, template: '<s{i}>' });
    expect(loadText(MINIMAL).spec!.tokenizer.ul2_sentinels).toBeUndefined();
  });

  it('explicit fields override a preset', () => {
    const s = loadText(MINIMAL.replace('{ preset: 125m }', '{ preset: 125m, n_layers: 6 }')).spec!;
    expect([s.model.d_model, s.model.n_layers, s.model.n_heads]).toEqual([768, 6, 12]);
  });
});
