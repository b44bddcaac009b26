/** Where the local cluster lives under `<root>/.kiln/`, its options and its recorded state. */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GpuType } from '@kiln/spec';

export interface ClusterOptions {
  /** Directory holding `.kiln/`; defaults to the current directory. */
  readonly root: string;
  readonly gpuNodes: number;
  readonly gpusPerNode: number;
  readonly gpuType: GpuType;
  readonly cpuNodes: number;
  /** How long a Job's pod runs before kwok marks it Succeeded, ms (pods may override with an annotation). */
  readonly jobDurationMs: number;
}

export const DEFAULTS: Omit<ClusterOptions, 'root'> = { gpuNodes: 4, gpusPerNode: 8, gpuType: 'h100-80gb', cpuNodes: 2, jobDurationMs: 2000 };

/** Components in start order; `down` stops them in reverse. */
export const COMPONENTS = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok', 'local-node'] as const;
export type Component = (typeof COMPONENTS)[number];

/** The local node's network of one cluster: unique on this host, since several clusters run side by side. */
export interface ClusterNetwork {
  /** Short id of this cluster's bridge, netns and cgroups (6 hex). */
  readonly name: string;
  /** The local node's pod CIDR (a /24 in 10.208.0.0/12). */
  readonly podCidr: string;
  /** The API server's --service-cluster-ip-range (a /24 in 10.192.0.0/12); its first host is the `kubernetes` Service. */
  readonly serviceCidr: string;
}

export interface State {
  readonly ports: Record<'etcdClient' | 'etcdPeer' | 'apiserver' | 'controllerManager' | 'scheduler', number> & { readonly localNode?: number };
  readonly toolchain: string;
  readonly options: Omit<ClusterOptions, 'root'>;
  /** Absent in the state of a cluster made before the local node (its Service CIDR was 10.0.0.0/24). */
  readonly network?: ClusterNetwork;
}

export interface Paths {
  readonly home: string;
  readonly cluster: string;
  readonly pki: string;
  readonly logs: string;
  readonly pids: string;
  readonly kubeconfig: string;
  readonly state: string;
  readonly pulumiState: string;
  readonly pulumiHome: string;
  /** The local node's state: containers, sandboxes, volumes. */
  readonly node: string;
  /** The local node's kubeconfig (its own client certificate). */
  readonly nodeKubeconfig: string;
}

export function paths(root: string): Paths {
  const home = join(root, '.kiln');
  const cluster = join(home, 'cluster');
  return {
    home,
    cluster,
    pki: join(cluster, 'pki'),
    logs: join(cluster, 'logs'),
    pids: join(cluster, 'pids'),
    kubeconfig: join(cluster, 'kubeconfig'),
    state: join(cluster, 'state.json'),
    pulumiState: join(home, 'pulumi', 'state'),
    pulumiHome: join(home, 'pulumi', 'home'),
    node: join(cluster, 'node'),
    nodeKubeconfig: join(cluster, 'node.kubeconfig'),
  };
}

export class ClusterError extends Error {
  readonly detail: string | undefined;
  constructor(message: string, detail?: string) {
    super(message);
    this.detail = detail;
  }
}

/** The recorded state of the cluster under `p` (ports, options); undefined when there is none. */
export function readState(p: Paths): State | undefined {
  return existsSync(p.state) ? (JSON.parse(readFileSync(p.state, 'utf8')) as State) : undefined;
}

