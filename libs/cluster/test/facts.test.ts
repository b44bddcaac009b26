import type { V1Pod } from '@kubernetes/client-node';
import { LABELS } from '@kiln/k8s';
import { describe, expect, it } from 'vitest';
import { nodeCapacity, podAttempts, simulatedStages, stagePod, type ModelRun } from '../src/index.ts';

describe('nodeCapacity', () => {
  it("GIVEN a node labelled with its GPU model WHEN read for the capacity check THEN the label's value is its gpuProduct", () => {
    const n = nodeCapacity({ metadata: { name: 'g0', labels: { 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' } }, status: { allocatable: { 'nvidia.com/gpu': '8' } } });
    expect(n).toEqual({ name: 'g0', gpuProduct: 'NVIDIA-H100-80GB-HBM3', allocatable: { 'nvidia.com/gpu': '8' } });
  });
  it('GIVEN a node without labels or status WHEN read THEN it has no GPU model and nothing allocatable', () => {
    expect(nodeCapacity({ metadata: { name: 'c0' } })).toEqual({ name: 'c0', gpuProduct: undefined, allocatable: {} });
  });
});

describe('stagePod and podAttempts', () => {
  const pod = (name: string, attempt: number | undefined, index: number | undefined): V1Pod => ({
    metadata: { name, labels: attempt === undefined ? {} : { [LABELS.attempt]: String(attempt) }, annotations: index === undefined ? {} : { 'batch.kubernetes.io/job-completion-index': String(index) } },
  });
  const pods = [pod('a1-0', 1, 0), pod('a1-1', 1, 1), pod('a2-0', 2, 0), pod('a2-0-again', 2, 0)];

  it('GIVEN pods of two attempts WHEN listing attempts THEN each attempt appears once, in order; an unlabelled pod is attempt 1', () => {
    expect(podAttempts([pods[2]!, pods[0]!, pods[3]!])).toEqual([1, 2]);
    expect(podAttempts([pod('x', undefined, 0)])).toEqual([1]);
  });
  it('GIVEN several pods of one attempt and index WHEN picking THEN the newest (last) one is taken, and none for an index that has no pod', () => {
    expect(stagePod(pods, 2, 0)?.metadata?.name).toBe('a2-0-again');
    expect(stagePod(pods, 1, 1)?.metadata?.name).toBe('a1-1');
    expect(stagePod(pods, 1, 5)).toBeUndefined();
    expect(stagePod([pod('x', undefined, undefined)], 1, 0)?.metadata?.name).toBe('x');
  });
});

describe('simulatedStages', () => {
  it('GIVEN a status that lists its simulated stages WHEN asked THEN that list is the answer, without looking at the stages', () => {
    const run = { status: { simulated: ['train'], stages: [{ name: 'data-prep', simulated: true }] } } as unknown as ModelRun;
    expect(simulatedStages(run)).toEqual(['train']);
  });
  it('GIVEN a status from before the list WHEN asked THEN stages marked, or whose summary or progress says simulated, are named', () => {
    const run = { status: { stages: [{ name: 'a', simulated: true }, { name: 'b', summary: { simulated: true } }, { name: 'c', progress: { simulated: true } }, { name: 'd' }] } } as unknown as ModelRun;
    expect(simulatedStages(run)).toEqual(['a', 'b', 'c']);
  });
});
