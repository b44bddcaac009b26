/** Reading runs, their stage pods and logs through @kubernetes/client-node (shared by the CLI and the controller). */
import { CoreV1Api, CustomObjectsApi, KubeConfig, Log, Watch, type V1Pod } from '@kubernetes/client-node';
import { GROUP, LABELS, labelSelector, stageSelector, VERSION } from '@kiln/k8s';
import type { Writable } from 'node:stream';
import type { ModelRun } from './status.ts';

export const PLURAL = 'modelruns';

/** A KubeConfig from a file (the local cluster's, $KUBECONFIG's first entry or ~/.kube/config). */
export function kubeConfigFrom(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) kc.loadFromFile(path);
  else kc.loadFromDefault();
  return kc;
}

/** The API path of ModelRuns: in one namespace, or in all. */
export function runsPath(namespace?: string): string {
  return namespace ? `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}` : `/apis/${GROUP}/${VERSION}/${PLURAL}`;
}

/** Every ModelRun, newest first. */
export async function listRuns(kc: KubeConfig, namespace?: string): Promise<ModelRun[]> {
  const api = kc.makeApiClient(CustomObjectsApi);
  const list = (namespace
    ? await api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL })
    : await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })) as { items: ModelRun[] };
  return list.items.sort((a, b) => (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? '') || a.metadata.name.localeCompare(b.metadata.name));
}

/** A run by its object name, its run id, or a unique prefix of either. */
export function findRun(runs: readonly ModelRun[], ref: string): ModelRun | { error: string } {
  const exact = runs.find((r) => r.metadata.name === ref || r.spec.runId === ref);
  if (exact) return exact;
  const hits = runs.filter((r) => r.metadata.name.startsWith(ref) || r.spec.runId.startsWith(ref));
  if (hits.length === 1) return hits[0]!;
  if (hits.length === 0) return { error: `no run "${ref}"${runs.length ? `; runs: ${runs.map((r) => r.metadata.name).join(', ')}` : ' (there are no ModelRuns)'}` };
  return { error: `"${ref}" matches ${hits.length} runs: ${hits.map((r) => r.metadata.name).join(', ')}; give more of the name` };
}

/** Watches ModelRuns; calls `onChange` for every added, changed or deleted run. Returns a stop function. */
export async function watchRuns(kc: KubeConfig, namespace: string | undefined, onChange: (type: string, run: ModelRun) => void, onDone: (err?: unknown) => void): Promise<() => void> {
  const req = await new Watch(kc).watch(runsPath(namespace), {}, (type, obj) => onChange(type, obj as ModelRun), (err) => onDone(err ?? undefined));
  return () => req.abort();
}

/** The pods of one stage of a run (every attempt), oldest first. */
export async function stagePods(kc: KubeConfig, namespace: string, runId: string, stage: string): Promise<V1Pod[]> {
  const api = kc.makeApiClient(CoreV1Api);
  const list = await api.listNamespacedPod({ namespace, labelSelector: labelSelector(stageSelector(runId, stage)) });
  return list.items.sort((a, b) => String(a.metadata?.creationTimestamp ?? '').localeCompare(String(b.metadata?.creationTimestamp ?? '')));
}

/** The attempt a stage pod belongs to (1 when unlabelled). */
const podAttempt = (p: V1Pod): number => Number(p.metadata?.labels?.[LABELS.attempt] ?? 1);

/** The attempts that have pods, in order. */
export const podAttempts = (pods: readonly V1Pod[]): number[] => [...new Set(pods.map(podAttempt))].sort((a, b) => a - b);

/** The newest pod of one attempt and completion index (shard, or node of training) among a stage's pods. */
export function stagePod(pods: readonly V1Pod[], attempt: number | undefined, index: number): V1Pod | undefined {
  return pods.filter((p) => podAttempt(p) === attempt && Number(p.metadata?.annotations?.['batch.kubernetes.io/job-completion-index'] ?? 0) === index).at(-1);
}

/** Streams one pod's log into `out`; resolves when the log ends (or at once, without `follow`, after the text). */
export async function podLog(kc: KubeConfig, namespace: string, pod: string, container: string, out: Writable, opts: { follow?: boolean; tailLines?: number } = {}): Promise<void> {
  const done = new Promise<void>((resolve, reject) => {
    out.once('finish', resolve);
    out.once('error', reject);
  });
  const req = await new Log(kc).log(namespace, pod, container, out, { follow: opts.follow ?? false, ...(opts.tailLines !== undefined ? { tailLines: opts.tailLines } : {}) });
  await done.finally(() => req.abort());
}
