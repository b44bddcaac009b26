/**
 * The local cluster's side of its execution node (@kiln/local-node runs the agent): the RBAC the agent needs
 * beyond what the Node authorizer gives a node, and whether the node is Ready.
 */
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { LOCAL_NODE } from './pki.ts';

/** The ClusterRole and binding that let the local node read EndpointSlices (for its Service proxy and pods' /etc/hosts). */
export const LOCAL_NODE_ROLE = 'kiln:local-node';

export function localNodeAccess(): KubernetesObject[] {
  return [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: LOCAL_NODE_ROLE },
      rules: [{ apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] }],
    } as KubernetesObject,
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: LOCAL_NODE_ROLE },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: LOCAL_NODE_ROLE },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: `system:node:${LOCAL_NODE}` }],
    } as KubernetesObject,
  ];
}

export async function ensureLocalNodeAccess(kc: KubeConfig): Promise<void> {
  const { applyObject } = await import('@kiln/cluster');
  for (const o of localNodeAccess()) await applyObject(kc, o, { manager: 'kiln-local-cluster' });
}

/** Whether the local node is registered and Ready. */
export async function localNodeReady(kc: KubeConfig): Promise<boolean> {
  const { listNodes, nodeReady } = await import('@kiln/cluster');
  return (await listNodes(kc, 'type=local')).some((n) => n.metadata?.name === LOCAL_NODE && nodeReady(n));
}
