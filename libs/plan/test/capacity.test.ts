import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkCapacity, compileFile, type NodeCapacity, type Plan } from '../src/index.ts';

const configs = fileURLToPath(new URL('../../../configs/', import.meta.url));
function plan(file: string): Plan {
  const r = compileFile(configs + file);
  if (!r.plan) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  return r.plan;
}
/** A node as the cluster reports it: labelled with its GPU model (or not), with some GPUs allocatable (or none). */
const node = (name: string, gpuProduct: string | undefined, gpus: number): NodeCapacity => ({ name, gpuProduct, allocatable: gpus ? { cpu: '96', 'nvidia.com/gpu': String(gpus) } : { cpu: '96' } });

describe('checkCapacity', () => {
  it('accepts a plan whose GPU pods fit the nodes', () => {
    expect(checkCapacity(plan('tiny.yaml'), [node('g0', 'NVIDIA-H100-80GB-HBM3', 8), node('c0', undefined, 0)])).toEqual([]);
  });
  it('says which stage asks for more GPUs per pod than the largest node of its type has', () => {
    const p = checkCapacity(plan('tiny.yaml'), [node('g0', 'NVIDIA-H100-80GB-HBM3', 1)]);
    expect(p.map((x) => x.message)).toEqual(['stage train asks for 2 × nvidia.com/gpu per pod, but the largest h100-80gb node has 1 (1 node: g0)']);
  });
  it('says when no node has the GPU model at all', () => {
    const p = checkCapacity(plan('replit-code-v1-3b.yaml'), [node('g0', 'NVIDIA-H100-80GB-HBM3', 8)]);
    // A tensorrtllm target's export builds its engine on a GPU of the target's type: the export asks for one too.
    expect(p.map((x) => x.what)).toEqual(['stage train', 'stage export', 'serving target completions']);
    expect(p[0]!.message).toContain('no node of the cluster has them');
  });
});
