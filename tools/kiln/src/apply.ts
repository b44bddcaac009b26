/** Server-side apply of kiln's objects through the minimal REST client (tests, benchmarks, the demo). */
import { kube, type KubeAuth, type KubeResponse } from './kube-http.ts';

const PLURALS: Record<string, string> = {
  Namespace: 'namespaces',
  ServiceAccount: 'serviceaccounts',
  Role: 'roles',
  RoleBinding: 'rolebindings',
  PersistentVolumeClaim: 'persistentvolumeclaims',
  PriorityClass: 'priorityclasses',
  CustomResourceDefinition: 'customresourcedefinitions',
  Deployment: 'deployments',
  ModelRun: 'modelruns',
  Service: 'services',
  HorizontalPodAutoscaler: 'horizontalpodautoscalers',
  PodDisruptionBudget: 'poddisruptionbudgets',
  ConfigMap: 'configmaps',
  Job: 'jobs',
  NetworkPolicy: 'networkpolicies',
  Lease: 'leases',
};

type Obj = { apiVersion?: string; kind?: string; metadata?: { name?: string; namespace?: string } };

/** The REST path of an object (or of its collection, with `collection`). */
export function objectPath(o: Obj, collection = false): string {
  const plural = PLURALS[o.kind ?? ''];
  if (!plural) throw new Error(`no REST path known for kind ${o.kind}`);
  const base = o.apiVersion === 'v1' ? '/api/v1' : `/apis/${o.apiVersion}`;
  const ns = o.metadata?.namespace ? `/namespaces/${o.metadata.namespace}` : '';
  return `${base}${ns}/${plural}${collection ? '' : `/${o.metadata!.name}`}`;
}

/** Server-side apply under `manager`, taking over conflicting fields. */
export function applyObject(auth: KubeAuth, o: unknown, opts: { dryRun?: boolean; manager?: string } = {}): Promise<KubeResponse> {
  return kube(auth, 'PATCH', `${objectPath(o as Obj)}?fieldManager=${opts.manager ?? 'kiln'}&force=true${opts.dryRun ? '&dryRun=All' : ''}`, o, 10_000, 'application/apply-patch+yaml');
}
