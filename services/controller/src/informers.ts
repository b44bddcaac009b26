/**
 * Informers (list + watch into a cache) for ModelRuns, stage Jobs, stage pods and eval model servers.
 * @kubernetes/client-node's informer stops for good on errors other than 410 Gone; each one here is supervised
 * and restarted with a backoff, and `synced` resolves once every cache holds a first full list.
 */
import { AppsV1Api, BatchV1Api, CoreV1Api, CustomObjectsApi, makeInformer, type Informer, type KubeConfig, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import { GROUP, LABELS, VERSION } from '@kiln/k8s';
import { PLURAL, type ModelRun } from '@kiln/cluster';
import type { V1Deployment, V1Job, V1Pod } from '@kubernetes/client-node';

export type Kind = 'runs' | 'jobs' | 'pods' | 'deployments';

export interface Caches {
  readonly runs: ObjectCache<ModelRun & KubernetesObject>;
  readonly jobs: ObjectCache<V1Job>;
  readonly pods: ObjectCache<V1Pod>;
  readonly deployments: ObjectCache<V1Deployment>;
}

/** Every object kiln's stages and eval servers carry: the run id label. */
const RUN_SELECTOR = LABELS.runId;

export interface InformerSet {
  readonly caches: Caches;
  readonly synced: Promise<void>;
  stop(): Promise<void>;
}

export function startInformers(kc: KubeConfig, namespace: string | undefined, onEvent: (kind: Kind, obj: KubernetesObject) => void, log: (m: string) => void): InformerSet {
  const custom = kc.makeApiClient(CustomObjectsApi);
  const batch = kc.makeApiClient(BatchV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  const apps = kc.makeApiClient(AppsV1Api);
  const nsPath = (group: string, res: string) => (namespace ? `${group}/namespaces/${namespace}/${res}` : `${group}/${res}`);
  const sel = { labelSelector: RUN_SELECTOR };
  const defs = {
    runs: {
      path: nsPath(`/apis/${GROUP}/${VERSION}`, PLURAL),
      list: () => (namespace ? custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL }) : custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })),
      selector: undefined,
    },
    jobs: { path: nsPath('/apis/batch/v1', 'jobs'), list: () => (namespace ? batch.listNamespacedJob({ namespace, ...sel }) : batch.listJobForAllNamespaces(sel)), selector: RUN_SELECTOR },
    pods: { path: nsPath('/api/v1', 'pods'), list: () => (namespace ? core.listNamespacedPod({ namespace, ...sel }) : core.listPodForAllNamespaces(sel)), selector: RUN_SELECTOR },
    deployments: {
      path: nsPath('/apis/apps/v1', 'deployments'),
      list: () => (namespace ? apps.listNamespacedDeployment({ namespace, ...sel }) : apps.listDeploymentForAllNamespaces(sel)),
      selector: RUN_SELECTOR,
    },
  } as const;
  const informers = new Map<Kind, Informer<KubernetesObject> & ObjectCache<KubernetesObject>>();
  let stopped = false;
  const syncs: Promise<void>[] = [];
  for (const [kind, d] of Object.entries(defs) as [Kind, (typeof defs)[Kind]][]) {
    // The list functions return the typed list the informer caches; the generic signature cannot say so.
    const inf = makeInformer<KubernetesObject>(kc, d.path, d.list as never, d.selector);
    for (const verb of ['add', 'update', 'delete'] as const) inf.on(verb, (o) => onEvent(kind, o));
    let delay = 500;
    inf.on('error', (err: unknown) => {
      if (stopped) return;
      log(`informer ${kind}: ${(err as Error)?.message ?? String(err)}; restarting in ${delay} ms`);
      const t = setTimeout(() => {
        if (!stopped) inf.start().catch(() => undefined);
      }, delay);
      t.unref?.();
      delay = Math.min(delay * 2, 30_000);
    });
    inf.on('connect', () => {
      delay = 500;
    });
    informers.set(kind, inf);
    syncs.push(startWithRetry(inf, kind, () => stopped, log));
  }
  const cache = <T>(k: Kind) => informers.get(k) as unknown as ObjectCache<T>;
  return {
    caches: { runs: cache('runs'), jobs: cache('jobs'), pods: cache('pods'), deployments: cache('deployments') },
    synced: Promise.all(syncs).then(() => undefined),
    async stop() {
      stopped = true;
      await Promise.all([...informers.values()].map((i) => i.stop().catch(() => undefined)));
    },
  };
}

/** The first list can fail (API server restarting, RBAC not there yet); the error handler restarts the informer. Synced once a list has landed. */
async function startWithRetry(inf: Informer<KubernetesObject>, kind: Kind, stopped: () => boolean, log: (m: string) => void): Promise<void> {
  const rv = () => (inf as unknown as { latestResourceVersion(): string }).latestResourceVersion();
  await inf.start().catch((e: Error) => log(`informer ${kind}: ${e.message}`));
  while (!rv() && !stopped()) await new Promise((r) => setTimeout(r, 50));
}
