/** The local cluster's simulated nodes (kwok manages them) and its static volumes, through @kubernetes/client-node. */
import { join } from 'node:path';
import type { KubeConfig, KubernetesObject, V1Node, V1PersistentVolume } from '@kubernetes/client-node';
import type { GpuType } from '@kiln/spec';
import { ClusterError, type ClusterOptions, type Paths } from './paths.ts';

// @kiln/cluster (and with it @kubernetes/client-node, ~1 s to load) only when the API is called, so commands
// that never talk to the cluster (`kiln toolchain status`) start fast.
const api = () => import('@kiln/cluster');
// kiln's label keys, from @kiln/k8s; loaded with the client, only when nodes or volumes are made.
const names = () => import('@kiln/k8s');
type Labels = Awaited<ReturnType<typeof names>>['LABELS'];

/** A node that kwok manages (by its annotation), created with its capacity already in its status. */
export function simulatedNode(name: string, labels: Record<string, string>, capacity: Record<string, string>): V1Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
      labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', type: 'kwok', ...labels },
    },
    status: { capacity, allocatable: capacity },
  };
}

/** A simulated GPU node of the cluster's GPU type (`gpu`: that type's entry in @kiln/spec's GPUS), with its GPU product label. */
export function gpuNode(name: string, o: Omit<ClusterOptions, 'root'>, gpu: { readonly product: string; readonly resource: string }, LABELS: Labels): V1Node {
  return simulatedNode(
    name,
    { [LABELS.pool]: 'gpu', [LABELS.gpuType]: o.gpuType, 'nvidia.com/gpu.product': gpu.product, 'nvidia.com/gpu.count': String(o.gpusPerNode) },
    { cpu: '96', memory: '1000Gi', pods: '110', 'ephemeral-storage': '2Ti', [gpu.resource]: String(o.gpusPerNode) },
  );
}

export function cpuNode(name: string, LABELS: Labels): V1Node {
  return simulatedNode(name, { [LABELS.pool]: 'cpu' }, { cpu: '32', memory: '128Gi', pods: '110', 'ephemeral-storage': '500Gi' });
}

/** The nodes a cluster with these options has: kiln-gpu-0.., then kiln-cpu-0... */
export function nodeNames(o: Omit<ClusterOptions, 'root'>): string[] {
  return [...Array.from({ length: o.gpuNodes }, (_, i) => `kiln-gpu-${i}`), ...Array.from({ length: o.cpuNodes }, (_, i) => `kiln-cpu-${i}`)];
}

/** Creates the nodes that are missing (a node is created with its capacity: kwok keeps it Ready). */
export async function ensureNodes(kc: KubeConfig, o: Omit<ClusterOptions, 'root'>): Promise<void> {
  const { apiMessage, createIfAbsent, httpStatus, readObject } = await api();
  // The spec library (its schema validator) loads only here, when nodes are made.
  const gpu = (await import('@kiln/spec')).GPUS[o.gpuType as GpuType];
  const { LABELS } = await names();
  const wanted = nodeNames(o);
  for (const name of wanted) {
    if (await readObject(kc, { apiVersion: 'v1', kind: 'Node', name })) continue;
    const node = name.startsWith('kiln-gpu') ? gpuNode(name, o, gpu, LABELS) : cpuNode(name, LABELS);
    await createIfAbsent(kc, node as KubernetesObject).catch((e) => {
      throw new ClusterError(`creating node ${name} failed (HTTP ${httpStatus(e) ?? '?'})`, apiMessage(e));
    });
  }
}

/** Static volumes for `pvc://` storage: the local cluster has no provisioner, so claims bind to these. */
export const LOCAL_VOLUMES = 16;

/** Creates the static volumes that are missing, and makes released ones available again. */
export async function ensureVolumes(kc: KubeConfig, p: Paths): Promise<void> {
  const { apiMessage, createIfAbsent, httpStatus, mergePatch, readObject } = await api();
  const { LABELS, MANAGED_BY } = await names();
  for (let i = 0; i < LOCAL_VOLUMES; i++) {
    const name = `kiln-local-pv-${i}`;
    const existing = await readObject<V1PersistentVolume>(kc, { apiVersion: 'v1', kind: 'PersistentVolume', name });
    if (!existing) {
      const pv: V1PersistentVolume = {
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name, labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.localVolume]: 'true' } },
        spec: {
          capacity: { storage: '1Ti' },
          accessModes: ['ReadWriteOnce', 'ReadWriteMany', 'ReadOnlyMany'],
          persistentVolumeReclaimPolicy: 'Retain',
          storageClassName: '',
          hostPath: { path: join(p.cluster, 'volumes', String(i)), type: 'DirectoryOrCreate' },
        },
      };
      await createIfAbsent(kc, pv as KubernetesObject).catch((e) => {
        throw new ClusterError(`creating volume ${name} failed (HTTP ${httpStatus(e) ?? '?'})`, apiMessage(e));
      });
    } else if (existing.status?.phase === 'Released') {
      // Its claim was deleted: make it available again (a manual recycle).
      await mergePatch(kc, { apiVersion: 'v1', kind: 'PersistentVolume', metadata: { name }, spec: { claimRef: null } } as KubernetesObject);
    }
  }
}

/** Whether every named simulated node is Ready. */
export async function nodesReady(kc: KubeConfig, names: string[]): Promise<boolean> {
  const { listNodes, nodeReady } = await api();
  const ready = new Set((await listNodes(kc, 'type=kwok')).filter(nodeReady).map((n) => n.metadata?.name));
  return names.every((n) => ready.has(n));
}

