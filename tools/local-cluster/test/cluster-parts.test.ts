import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LABELS } from '@kiln/k8s';
import { cpuNode, gpuNode } from '../src/nodes.ts';
import { DEFAULTS, isLocalKubeconfig, kubeconfigPath, nodeNames, paths } from '../src/index.ts';

const tmp = mkdtempSync(join(tmpdir(), 'kiln-local-cluster-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('the simulated nodes', () => {
  it('are the GPU nodes, then the CPU nodes, by stable names', () => {
    expect(nodeNames({ ...DEFAULTS, gpuNodes: 2, cpuNodes: 1 })).toEqual(['kiln-gpu-0', 'kiln-gpu-1', 'kiln-cpu-0']);
  });

  it('are managed by kwok and carry their GPUs in capacity and in the product label the scheduler matches', () => {
    const n = gpuNode('kiln-gpu-0', DEFAULTS, { product: 'NVIDIA-H100-80GB-HBM3', resource: 'nvidia.com/gpu' }, LABELS);
    expect(n.metadata?.annotations?.['kwok.x-k8s.io/node']).toBe('fake');
    expect(n.metadata?.labels).toMatchObject({ 'kiln.dev/pool': 'gpu', 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3', type: 'kwok' });
    expect(n.status?.allocatable?.['nvidia.com/gpu']).toBe('8');
    expect(cpuNode('kiln-cpu-0', LABELS).status?.allocatable?.['nvidia.com/gpu']).toBeUndefined();
  });
});

describe('the kubeconfig a command uses', () => {
  it('is $KUBECONFIG first, else the local cluster under the directory, else none here', () => {
    expect(kubeconfigPath(tmp, { KUBECONFIG: '/a:/b' })).toBe('/a');
    mkdirSync(paths(tmp).cluster, { recursive: true });
    writeFileSync(paths(tmp).kubeconfig, '');
    expect(kubeconfigPath(tmp, {})).toBe(paths(tmp).kubeconfig);
  });

  it("is recognised as a local cluster's by its .kiln directory", () => {
    expect(isLocalKubeconfig(paths(tmp).kubeconfig)).toBe(true);
    expect(isLocalKubeconfig('/home/x/.kube/config')).toBe(false);
  });
});
