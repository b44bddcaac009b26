/** What every run of a pipeline shares: namespace, service accounts with least-privilege RBAC, storage, priorities. */
import type { V1Namespace, V1PersistentVolumeClaim, V1PriorityClass, V1Role, V1RoleBinding, V1ServiceAccount } from '@kubernetes/client-node';
import type { Plan } from '@kiln/plan';
import { GROUP } from './crd.ts';
import { LABELS, MANAGED_BY, priorityClassName, type Priority } from './names.ts';
import { STAGE_SERVICE_ACCOUNT } from './stages.ts';
import { pvcClaim } from './storage.ts';

export const CONTROLLER_SERVICE_ACCOUNT = 'kiln-controller';

/** PriorityClasses for training priority `low`, `normal`, `high` (cluster-scoped, shared by all pipelines). */
export const PRIORITIES = { low: 1000, normal: 10000, high: 100000 } as const satisfies Record<Priority, number>;

function platformMeta(plan: Plan, name: string, component: string) {
  return { name, namespace: plan.namespace, labels: { [LABELS.partOf]: plan.name, [LABELS.managedBy]: MANAGED_BY, [LABELS.component]: component } };
}

export interface PlatformObjects {
  readonly namespace: V1Namespace;
  readonly serviceAccounts: V1ServiceAccount[];
  readonly roles: V1Role[];
  readonly roleBindings: V1RoleBinding[];
  readonly pvc?: V1PersistentVolumeClaim;
  readonly priorityClasses: V1PriorityClass[];
}

export function platformObjects(plan: Plan, opts: { storageSize?: string; storageClass?: string } = {}): PlatformObjects {
  const { namespace: _ns, ...nsMeta } = platformMeta(plan, plan.namespace, 'platform');
  const namespace: V1Namespace = { apiVersion: 'v1', kind: 'Namespace', metadata: { ...nsMeta, labels: { ...nsMeta.labels, 'pod-security.kubernetes.io/warn': 'restricted' } } };
  const serviceAccounts: V1ServiceAccount[] = [
    // Stage pods never call the API: no token, no bindings.
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: platformMeta(plan, STAGE_SERVICE_ACCOUNT, 'stage'), automountServiceAccountToken: false },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: platformMeta(plan, CONTROLLER_SERVICE_ACCOUNT, 'controller') },
  ];
  // The controller runs stage Jobs and reports status in this namespace, and nothing else.
  const roles: V1Role[] = [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: platformMeta(plan, 'kiln-controller', 'controller'),
      rules: [
        { apiGroups: [GROUP], resources: ['modelruns'], verbs: ['get', 'list', 'watch', 'update', 'patch'] },
        { apiGroups: [GROUP], resources: ['modelruns/status'], verbs: ['get', 'update', 'patch'] },
        { apiGroups: ['batch'], resources: ['jobs'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] },
        { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch'] },
        // Rank 0's training progress lines (the progress channel): get reads a tail; nothing else on logs.
        { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] },
        { apiGroups: [''], resources: ['configmaps', 'services'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] },
        // The eval model server: started after export, removed when the evals end.
        { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] },
        { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] },
        { apiGroups: [''], resources: ['events'], verbs: ['create', 'patch'] },
        { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
        { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
      ],
    },
  ];
  const roleBindings: V1RoleBinding[] = [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: platformMeta(plan, 'kiln-controller', 'controller'),
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'kiln-controller' },
      subjects: [{ kind: 'ServiceAccount', name: CONTROLLER_SERVICE_ACCOUNT, namespace: plan.namespace }],
    },
  ];
  const claim = pvcClaim(plan);
  const pvc: V1PersistentVolumeClaim | undefined = claim
    ? {
        apiVersion: 'v1',
        kind: 'PersistentVolumeClaim',
        metadata: platformMeta(plan, claim, 'storage'),
        spec: {
          accessModes: ['ReadWriteMany'],
          resources: { requests: { storage: opts.storageSize ?? '100Gi' } },
          ...(opts.storageClass ? { storageClassName: opts.storageClass } : {}),
        },
      }
    : undefined;
  const priorityClasses: V1PriorityClass[] = (Object.entries(PRIORITIES) as [Priority, number][]).map(([p, value]) => ({
    apiVersion: 'scheduling.k8s.io/v1',
    kind: 'PriorityClass',
    metadata: { name: priorityClassName(p), labels: { [LABELS.managedBy]: MANAGED_BY } },
    value,
    globalDefault: false,
    preemptionPolicy: p === 'low' ? 'Never' : 'PreemptLowerPriority',
    description: `kiln training priority ${p}`,
  }));
  return { namespace, serviceAccounts, roles, roleBindings, ...(pvc ? { pvc } : {}), priorityClasses };
}
