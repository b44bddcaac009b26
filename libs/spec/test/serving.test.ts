import { describe, expect, it } from 'vitest';
import { loadText } from '../src/index.ts';

/** A valid spec with the given serving target lines, infra lines and extra data sources. */
const specWith = (target: string, infra = '', sources = '') => `apiVersion: kiln.dev/v1alpha1
metadata: { name: m }
data:
  sources:
    - { type: local, name: src, path: ./code }
${sources}
model: { preset: 125m, max_seq_len: 2048 }
training:
  token_budget: 10M
  resources: { gpu_type: h100-80gb, gpus_per_node: 8, nodes: 1 }
eval:
  gates: { prod: ["humaneval.pass@1 >= 0.1"] }
serving:
  targets:
    - name: completions
${target}
infra:
  secrets:
    keys: { secret: gw, key: keys }
${infra}
`;

const problems = (text: string) => loadText(text).diagnostics.map((d) => `${d.code} ${d.pointer}`);

describe('serving targets: batching, instances and the gateway', () => {
  it('GIVEN a target without the new fields WHEN loaded THEN queue delay 5 ms, 1 instance and no gateway', () => {
    const r = loadText(specWith('      backend: python'));
    expect(r.diagnostics).toEqual([]);
    const t = r.spec!.serving.targets[0]!;
    expect([t.queue_delay_ms, t.instances]).toEqual([5, 1]);
    expect(t).not.toHaveProperty('gateway');
  });

  it('GIVEN a gateway with only api_keys WHEN loaded THEN the limits and replicas get their defaults, and max_tokens stays absent', () => {
    const r = loadText(specWith('      gateway: { api_keys: keys }'));
    expect(r.diagnostics).toEqual([]);
    const g = r.spec!.serving.targets[0]!.gateway!;
    expect(g).toEqual({ api_keys: 'keys', requests_per_minute: 600, tokens_per_minute: 200000, replicas: { min: 2, max: 4 } });
  });

  it('GIVEN a gateway without api_keys, or with an unknown field WHEN loaded THEN schema errors at the gateway', () => {
    expect(problems(specWith('      gateway: { requests_per_minute: 10 }'))).toEqual(['KL202 /serving/targets/0/gateway']);
    expect(problems(specWith('      gateway: { api_keys: keys, rps: 10 }'))).toEqual(['KL201 /serving/targets/0/gateway/rps']);
    expect(problems(specWith('      instances: 0'))).toEqual(['KL206 /serving/targets/0/instances']);
    expect(problems(specWith('      queue_delay_ms: -1'))).toEqual(['KL206 /serving/targets/0/queue_delay_ms']);
  });

  it('GIVEN api_keys naming no infra.secrets entry WHEN loaded THEN KL311 at api_keys, suggesting the near name', () => {
    const r = loadText(specWith('      gateway: { api_keys: key }'));
    expect(r.diagnostics.map((d) => [d.code, d.pointer])).toEqual([['KL311', '/serving/targets/0/gateway/api_keys']]);
    expect(r.diagnostics[0]!.hint).toContain('keys');
  });

  it('GIVEN a feedback source WHEN its target has no gateway THEN KL326; with a gateway on pvc storage THEN valid', () => {
    const feedback = '    - { type: feedback, name: fb, target: completions }';
    expect(problems(specWith('      backend: python', '', feedback))).toEqual(['KL326 /data/sources/1/target']);
    expect(problems(specWith('      gateway: { api_keys: keys }', '', feedback))).toEqual([]);
  });

  it('GIVEN a feedback source on s3 storage WHEN loaded THEN KL327 says to use pvc:// storage', () => {
    const r = loadText(specWith('      gateway: { api_keys: keys }', '  storage: { uri: "gs://bucket/kiln" }', '    - { type: feedback, name: fb, target: completions }'));
    expect(r.diagnostics.map((d) => [d.code, d.pointer])).toEqual([['KL327', '/data/sources/1/type']]);
    expect(r.diagnostics[0]!.hint).toContain('pvc://');
  });

  it('GIVEN gateway max_tokens at or above the context, or replicas inverted WHEN loaded THEN KL314', () => {
    expect(problems(specWith('      gateway: { api_keys: keys, max_tokens: 2048 }'))).toEqual(['KL314 /serving/targets/0/gateway/max_tokens']);
    expect(problems(specWith('      gateway: { api_keys: keys, replicas: { min: 5 } }'))).toEqual(['KL314 /serving/targets/0/gateway/replicas/min']);
  });
});
