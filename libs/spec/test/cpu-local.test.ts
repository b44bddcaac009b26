/** CPU training and serving (`gpus_per_node: 0`, `gpu.count: 0`) and `infra.stage_resources` in the spec. */
import { describe, expect, it } from 'vitest';
import { loadText } from '../src/index.ts';

const spec = (training: string, target: string, infra = '') => `apiVersion: kiln.dev/v1alpha1
metadata: { name: m }
data:
  sources:
    - { type: local, name: src, path: ./code }
model: { d_model: 128, n_layers: 2, n_heads: 4, max_seq_len: 256 }
training:
  token_budget: 1M
  global_batch: { sequences: 16 }
  micro_batch: 4
  resources: { ${training} }
eval:
  suites: [{ name: humaneval, benchmark: humaneval, max_new_tokens: 64 }]
  gates: { prod: ["humaneval.pass@1 >= 0"] }
serving:
  targets:
    - name: completions
${target}
infra:
${infra || '  namespace: m'}
`;
const problems = (text: string) => loadText(text).diagnostics.map((d) => `${d.code} ${d.pointer}`);

describe('CPU training and serving', () => {
  it('GIVEN gpus_per_node 0 and gpu.count 0 on the python backend WHEN loaded THEN valid, one data-parallel rank', () => {
    const r = loadText(spec('gpus_per_node: 0, cpu: "2", memory: 4Gi', '      backend: python\n      gpu: { count: 0 }'));
    expect(r.diagnostics).toEqual([]);
    expect(r.spec!.training.resources.gpus_per_node).toBe(0);
    // 16 sequences over micro batch 4 × 1 CPU rank.
    expect(r.spec!.training.gradient_accumulation).toBe(4);
    expect(r.spec!.serving.targets[0]!.gpu.count).toBe(0);
  });

  it('GIVEN gpu.count 0 on tensorrtllm WHEN loaded THEN KL329 at the count', () => {
    expect(problems(spec('gpus_per_node: 0', '      backend: tensorrtllm\n      gpu: { count: 0 }'))).toContain('KL329 /serving/targets/0/gpu/count');
  });

  it('GIVEN a CPU batch that does not divide WHEN loaded THEN KL302 speaks of CPU ranks', () => {
    const r = loadText(spec('gpus_per_node: 0', '      backend: python\n      gpu: { count: 0 }').replace('sequences: 16', 'sequences: 6'));
    const d = r.diagnostics.find((x) => x.code === 'KL302');
    expect(d?.message).toContain('micro_batch 4 × 1 CPU rank');
  });
});

describe('infra.stage_resources', () => {
  it('GIVEN requests below limits, as numbers and strings WHEN loaded THEN valid, quantities as strings', () => {
    const r = loadText(spec('gpus_per_node: 0', '      backend: python\n      gpu: { count: 0 }', '  stage_resources:\n    train: { requests: { cpu: 1, memory: 1Gi }, limits: { cpu: "2", memory: 2Gi } }\n    gateway: { limits: { cpu: 500m } }'));
    expect(r.diagnostics).toEqual([]);
    expect(r.spec!.infra.stage_resources.train).toEqual({ requests: { cpu: '1', memory: '1Gi' }, limits: { cpu: '2', memory: '2Gi' } });
  });

  it('GIVEN a request above its limit WHEN loaded THEN KL328 at the request', () => {
    expect(problems(spec('gpus_per_node: 0', '      backend: python\n      gpu: { count: 0 }', '  stage_resources:\n    eval: { requests: { cpu: 1500m, memory: 4Gi }, limits: { cpu: "1", memory: 4Gi } }'))).toEqual(['KL328 /infra/stage_resources/eval/requests/cpu']);
  });

  it('GIVEN an unknown kind of pod WHEN loaded THEN a schema error', () => {
    expect(problems(spec('gpus_per_node: 0', '      backend: python\n      gpu: { count: 0 }', '  stage_resources:\n    trainer: { limits: { cpu: "1" } }')).join()).toMatch(/stage_resources/);
  });
});
