import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { load, mergePatch, validateFile } from '../src/index.ts';

const tmp = mkdtempSync(join(tmpdir(), 'kiln-overlay-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const write = (name: string, text: string) => {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
};

const BASE = `apiVersion: kiln.dev/v1alpha1
metadata: { name: m, labels: { team: a } }
data:
  sources: [{ type: local, name: src, path: ./code }]
model: { preset: 125m }
training:
  token_budget: 10B
  resources: { nodes: 4 }
serving:
  targets: [{ name: api, replicas: { min: 2, max: 4 } }]
eval:
  gates: { prod: ["pass@1 >= 0.1"] }
`;

describe('mergePatch (RFC 7396)', () => {
  // The examples of RFC 7396, appendix A.
  it.each([
    [{ a: 'b' }, { a: 'c' }, { a: 'c' }],
    [{ a: 'b' }, { b: 'c' }, { a: 'b', b: 'c' }],
    [{ a: 'b' }, { a: null }, {}],
    [{ a: 'b', b: 'c' }, { a: null }, { b: 'c' }],
    [{ a: ['b'] }, { a: 'c' }, { a: 'c' }],
    [{ a: 'c' }, { a: ['b'] }, { a: ['b'] }],
    [{ a: { b: 'c' } }, { a: { b: 'd', c: null } }, { a: { b: 'd' } }],
    [{ a: [{ b: 'c' }] }, { a: [1] }, { a: [1] }],
    [['a', 'b'], ['c', 'd'], ['c', 'd']],
    [{ a: 'b' }, ['c'], ['c']],
    [{ a: 'foo' }, null, null],
    [{ a: 'foo' }, 'bar', 'bar'],
    [{ e: null }, { a: 1 }, { e: null, a: 1 }],
    [[1, 2], { a: 'b', c: null }, { a: 'b' }],
    [{}, { a: { bb: { ccc: null } } }, { a: { bb: {} } }],
  ])('%j + %j = %j', (target, patch, result) => {
    expect(mergePatch(target as never, patch as never)).toEqual(result);
  });

  it('does not modify its inputs', () => {
    const target = { a: { b: 1 } };
    mergePatch(target, { a: { b: 2 } });
    expect(target).toEqual({ a: { b: 1 } });
  });
});

describe('stack overlays', () => {
  const spec = write(
    'stacks.yaml',
    BASE +
      `stacks:
  dev:
    training:
      token_budget: 50M
      resources: { nodes: 1 }
    serving:
      targets: [{ name: api, replicas: { min: 1, max: 1 } }]
    metadata:
      labels: null
  staging: {}
`,
  );

  it('merge objects key by key, replace lists, delete with null', () => {
    const dev = load(spec, { stack: 'dev' }).spec!;
    expect(dev.training.token_budget).toBe(50e6);
    expect(dev.training.resources.nodes).toBe(1);
    expect(dev.training.resources.gpus_per_node).toBe(8);
    expect(dev.serving.targets.map((t) => t.replicas)).toEqual([{ min: 1, max: 1 }]);
    expect(dev.metadata.labels).toEqual({});
    expect(dev.stack).toBe('dev');
  });

  it('leave the base unchanged for a stack with an empty overlay or none', () => {
    const base = load(spec).spec!;
    expect(load(spec, { stack: 'staging' }).spec).toEqual({ ...base, stack: 'staging' });
    expect(load(spec, { stack: 'prod' }).spec).toEqual({ ...base, stack: 'prod' });
  });

  it('refuse an undeclared stack, with a suggestion', () => {
    const r = load(spec, { stack: 'stagign' });
    expect(r.diagnostics.map((d) => [d.code, d.hint])).toEqual([['KL401', 'did you mean "staging"?']]);
  });

  it('report an error of the merged result at the overlay line that caused it', () => {
    const bad = write('bad-stack.yaml', BASE + 'stacks:\n  dev:\n    training:\n      resources: { gpus_per_node: 3 }\n');
    const r = validateFile(bad);
    expect(r.diagnostics.map((d) => [d.code, d.line, d.col, d.stack])).toEqual([['KL302', 16, 35, 'dev']]);
    expect(r.spec).toBeUndefined();
  });

  it('report a mistyped key in an overlay once, at the overlay line, for its stack', () => {
    const bad = write('typo-stack.yaml', BASE + 'stacks:\n  dev:\n    training:\n      tokn_budget: 5M\n    model: { n_layer: 4 }\n');
    const r = validateFile(bad);
    expect(r.diagnostics.map((d) => [d.code, d.line, d.col, d.stack])).toEqual([
      ['KL201', 16, 7, 'dev'],
      ['KL201', 17, 14, 'dev'],
    ]);
  });

  it('report an error the overlay inherits from the base once, at the base', () => {
    const bad = write('both.yaml', BASE.replace('preset: 125m', 'preset: 125m, n_heads: 5') + 'stacks:\n  dev: { training: { token_budget: 5M } }\n');
    const r = validateFile(bad);
    expect(r.diagnostics.map((d) => [d.code, d.line, d.stack])).toEqual([['KL301', 5, undefined]]);
  });

  it('apply an overlay file after the inline overlay', () => {
    const overlay = write('dev-extra.yaml', 'training:\n  token_budget: 20M\n');
    const s = load(spec, { stack: 'dev', overlay }).spec!;
    expect([s.training.token_budget, s.training.resources.nodes]).toEqual([20e6, 1]);
  });

  it('locate errors of an overlay file in that file', () => {
    const overlay = write('bad-overlay.yaml', 'training:\n  micro_batch: 0\n');
    const r = load(spec, { overlay });
    expect(r.diagnostics.map((d) => [d.code, d.file, d.line, d.col])).toEqual([['KL206', overlay, 2, 16]]);
  });

  it('refuse an overlay that is not a mapping, or that changes fixed fields', () => {
    expect(load(spec, { overlay: write('list.yaml', '- a\n') }).diagnostics.map((d) => d.code)).toEqual(['KL403']);
    expect(load(spec, { overlay: write('fixed.yaml', 'stacks: {}\nkind: Other\n') }).diagnostics.map((d) => d.code)).toEqual(['KL402', 'KL402']);
  });
});
