/**
 * The local node's Node object and Lease: registration with labels, taint, capacity (this machine's CPUs and
 * memory less a reserve, GPUs when `nvidia-smi -L` lists any), addresses and the kubelet endpoint; status
 * heartbeats through nodes/status and the Lease in kube-node-lease renewed every 10 s.
 */
import { execFileSync } from 'node:child_process';
import { statfsSync } from 'node:fs';
import { availableParallelism, hostname, totalmem } from 'node:os';
import type { KubeConfig, V1Node, V1NodeCondition, V1NodeStatus } from '@kubernetes/client-node';
import { call, MERGE_PATCH } from './kube.ts';

/** The local node's name (one per cluster). */
export const NODE_NAME = 'kiln-local-0';
/** The taint that keeps pods off the local node unless they tolerate it. */
export const LOCAL_TAINT = { key: 'kiln.dev/local', value: 'true', effect: 'NoSchedule' } as const;
/** Lease renewal period and duration, seconds (a kubelet's defaults). */
export const LEASE_RENEW_SECONDS = 10;
export const LEASE_DURATION_SECONDS = 40;
export const MAX_PODS = 32;

/** What the node reserves for the system and the control plane that shares the machine. */
export interface Reserve {
  readonly cpuMillis: number;
  readonly memoryBytes: number;
}
export const DEFAULT_RESERVE: Reserve = { cpuMillis: 200, memoryBytes: 2 ** 30 };

/** GPUs `nvidia-smi -L` lists (0 when it is missing or fails). */
export function countGpus(): number {
  try {
    return execFileSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] })
      .split('\n')
      .filter((l) => l.startsWith('GPU ')).length;
  } catch {
    return 0;
  }
}

export interface Machine {
  readonly cpus: number;
  readonly memoryBytes: number;
  readonly gpus: number;
  readonly storageBytes: number;
}

/** This machine's CPUs, memory, GPUs and free disk under `dir`. */
export function machine(dir: string): Machine {
  let storageBytes = 100 * 2 ** 30;
  try {
    const s = statfsSync(dir);
    storageBytes = s.bavail * s.bsize;
  } catch {
    /* keep the default */
  }
  return { cpus: availableParallelism(), memoryBytes: totalmem(), gpus: countGpus(), storageBytes };
}

/** Capacity and allocatable of the node (allocatable = capacity less the reserve). */
export function resources(m: Machine, reserve: Reserve = DEFAULT_RESERVE): { capacity: Record<string, string>; allocatable: Record<string, string> } {
  const gpu: Record<string, string> = m.gpus > 0 ? { 'nvidia.com/gpu': String(m.gpus) } : {};
  const capacity: Record<string, string> = { cpu: String(m.cpus), memory: `${Math.floor(m.memoryBytes / 1024)}Ki`, pods: String(MAX_PODS), 'ephemeral-storage': `${Math.floor(m.storageBytes / 1024)}Ki`, ...gpu };
  const allocatable = {
    cpu: `${Math.max(100, m.cpus * 1000 - reserve.cpuMillis)}m`,
    memory: `${Math.floor(Math.max(256 * 2 ** 20, m.memoryBytes - reserve.memoryBytes) / 1024)}Ki`,
    pods: String(MAX_PODS),
    'ephemeral-storage': capacity['ephemeral-storage']!,
    ...gpu,
  };
  return { capacity, allocatable };
}

const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

/** The node's conditions at a heartbeat (transition times kept from the node's previous ones). */
export function conditions(previous: readonly V1NodeCondition[] = []): V1NodeCondition[] {
  const t = now();
  const prev = new Map(previous.map((c) => [c.type, c]));
  const c = (type: string, status: 'True' | 'False', reason: string, message: string): V1NodeCondition => ({
    type,
    status,
    reason,
    message,
    lastHeartbeatTime: t as unknown as Date,
    lastTransitionTime: (prev.get(type)?.status === status ? prev.get(type)!.lastTransitionTime : t) as Date,
  });
  return [
    c('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kiln local node has sufficient memory available'),
    c('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kiln local node has no disk pressure'),
    c('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kiln local node has sufficient PID available'),
    c('Ready', 'True', 'KubeletReady', 'kiln local node agent is posting ready status'),
  ];
}

export interface NodeInfo {
  readonly name: string;
  readonly port: number;
  readonly machine: Machine;
  readonly reserve?: Reserve;
  readonly kubeletVersion: string;
  readonly podCidr: string;
}

/** The node's status (without conditions). */
export function nodeStatus(o: NodeInfo): V1NodeStatus {
  return {
    ...resources(o.machine, o.reserve),
    addresses: [
      { type: 'InternalIP', address: '127.0.0.1' },
      { type: 'Hostname', address: o.name },
    ],
    daemonEndpoints: { kubeletEndpoint: { Port: o.port } },
    nodeInfo: {
      architecture: process.arch === 'x64' ? 'amd64' : process.arch,
      bootID: '',
      containerRuntimeVersion: 'kiln://0.1.0',
      kernelVersion: '',
      kubeProxyVersion: '',
      kubeletVersion: o.kubeletVersion,
      machineID: hostname(),
      operatingSystem: 'linux',
      osImage: 'kiln local node',
      systemUUID: '',
    },
  };
}

/** The Node as first registered: labels, taint, pod CIDR and status. */
export function nodeObject(o: NodeInfo): V1Node {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: o.name,
      labels: { 'kubernetes.io/hostname': o.name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': process.arch === 'x64' ? 'amd64' : process.arch, type: 'local', 'kiln.dev/pool': 'local' },
      annotations: { 'node.alpha.kubernetes.io/ttl': '0' },
    },
    spec: { taints: [{ ...LOCAL_TAINT }], podCIDR: o.podCidr, podCIDRs: [o.podCidr] },
    status: { ...nodeStatus(o), conditions: conditions() },
  };
}

/** Registers the node (create when missing; its taints are never changed afterwards: NodeRestriction forbids it) and posts its status. */
export async function registerNode(kc: KubeConfig, o: NodeInfo): Promise<void> {
  const existing = await call<V1Node>(kc, 'GET', `/api/v1/nodes/${o.name}`, undefined, { allow404: true });
  if (!existing) {
    try {
      await call(kc, 'POST', '/api/v1/nodes', nodeObject(o));
    } catch (e) {
      if ((e as { status?: number }).status !== 409) throw e;
    }
  }
  await heartbeat(kc, o, existing?.status?.conditions);
}

/** Posts the node's status with fresh condition heartbeats. */
export async function heartbeat(kc: KubeConfig, o: NodeInfo, previous?: readonly V1NodeCondition[]): Promise<V1Node> {
  const prev = previous ?? (await call<V1Node>(kc, 'GET', `/api/v1/nodes/${o.name}`))?.status?.conditions;
  return (await call<V1Node>(kc, 'PATCH', `/api/v1/nodes/${o.name}/status`, { status: { ...nodeStatus(o), conditions: conditions(prev) } }, { contentType: MERGE_PATCH }))!;
}

const microTime = () => new Date().toISOString().replace(/Z$/, '000Z');

/** Renews (or creates) the node's Lease in kube-node-lease. */
export async function renewLease(kc: KubeConfig, name: string): Promise<void> {
  const path = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${name}`;
  const spec = { holderIdentity: name, leaseDurationSeconds: LEASE_DURATION_SECONDS, renewTime: microTime() };
  const r = await call(kc, 'PATCH', path, { spec }, { contentType: MERGE_PATCH, allow404: true });
  if (r !== undefined) return;
  const node = await call<V1Node>(kc, 'GET', `/api/v1/nodes/${name}`);
  await call(kc, 'POST', '/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name, namespace: 'kube-node-lease', ownerReferences: [{ apiVersion: 'v1', kind: 'Node', name, uid: node!.metadata!.uid! }] },
    spec,
  });
}
