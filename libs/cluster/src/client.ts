/**
 * Generic object access through @kubernetes/client-node: server-side apply, read, create-if-absent, merge
 * patch, nodes, and waiting for the API server. Kinds resolve by the API server's discovery, so there is no
 * table of plurals to keep in step with the objects kiln makes.
 */
import { ApiException, CoreV1Api, Health, IsomorphicFetchHttpLibrary, KubernetesObjectApi, PatchStrategy, RequestContext, type HttpMethod, type KubeConfig, type KubernetesObject, type V1Node } from '@kubernetes/client-node';

/** The HTTP status of a failed API call (client-node's ApiException carries it as `code`); undefined otherwise. */
export function httpStatus(e: unknown): number | undefined {
  const code = (e as { code?: unknown })?.code;
  return typeof code === 'number' ? code : undefined;
}

/** The API server's own words about a failed call (its Status message), else the error's message. */
export function apiMessage(e: unknown): string {
  const body = (e as { body?: unknown })?.body;
  if (typeof body === 'string') {
    try {
      return (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      return body.slice(0, 300);
    }
  }
  if (body && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string') return (body as { message: string }).message;
  return (e as Error)?.message ?? String(e);
}

export interface ApplyOptions {
  /** Field manager; default `kiln`. */
  readonly manager?: string;
  /** Server-side dry run (validated and defaulted, not stored). Default false. */
  readonly dryRun?: boolean;
  /** Take over fields another manager owns. Default true. */
  readonly force?: boolean;
}

/**
 * client-node's object API, for the REST path of any object by the API server's discovery. Its own patch
 * and create send objects through its typed models, which drop keys they do not spell the same way
 * (`x-kubernetes-preserve-unknown-fields` in a CRD's schema): applying kiln's plain objects must not.
 */
class ObjectPaths extends KubernetesObjectApi {
  static for(kc: KubeConfig): ObjectPaths {
    const c = kc.makeApiClient(ObjectPaths);
    c.setDefaultNamespace(kc);
    return c;
  }

  pathOf(o: KubernetesObject): Promise<string> {
    return this.specUriPath({ ...o, metadata: { ...o.metadata } }, 'patch');
  }
}

/**
 * Server-side apply of one object, sent exactly as given; resolves to what the API server stored (or would
 * store). A refusal throws client-node's ApiException (`code`: the HTTP status, `body`: the Status as text).
 */
export async function applyObject<T extends KubernetesObject>(kc: KubeConfig, o: T, opts: ApplyOptions = {}): Promise<T> {
  const path = await ObjectPaths.for(kc).pathOf(o);
  const query = new URLSearchParams({ fieldManager: opts.manager ?? 'kiln', force: String(opts.force ?? true), ...(opts.dryRun ? { dryRun: 'All' } : {}) });
  const r = await requestRaw(kc, 'PATCH', `${path}?${query}`, o, { contentType: PatchStrategy.ServerSideApply });
  if (r.status >= 300) throw new ApiException(r.status, `applying ${o.kind} ${o.metadata?.name}: HTTP ${r.status}`, typeof r.body === 'string' ? r.body : JSON.stringify(r.body), {});
  return r.body as T;
}

/** An object by kind and name; undefined when it does not exist. */
export async function readObject<T extends KubernetesObject>(kc: KubeConfig, ref: { apiVersion: string; kind: string; name: string; namespace?: string }): Promise<T | undefined> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  try {
    return (await api.read({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, ...(ref.namespace ? { namespace: ref.namespace } : {}) } })) as T;
  } catch (e) {
    if (httpStatus(e) === 404) return undefined;
    throw e;
  }
}

/** Creates an object unless one of that name exists; true when this call created it. */
export async function createIfAbsent(kc: KubeConfig, o: KubernetesObject): Promise<boolean> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  try {
    await api.create(o);
    return true;
  } catch (e) {
    if (httpStatus(e) === 409) return false;
    throw e;
  }
}

/** A JSON merge patch of an existing object (`null` removes a field). */
export async function mergePatch(kc: KubeConfig, o: KubernetesObject): Promise<KubernetesObject> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  return api.patch(o, undefined, undefined, undefined, undefined, PatchStrategy.MergePatch);
}

/** The objects of one kind in a namespace (an empty list when there are none). */
export async function listObjects<T extends KubernetesObject = KubernetesObject>(kc: KubeConfig, apiVersion: string, kind: string, namespace: string): Promise<T[]> {
  return ((await KubernetesObjectApi.makeApiClient(kc).list(apiVersion, kind, namespace)).items ?? []) as T[];
}

/** The cluster's nodes, optionally by label selector. */
export async function listNodes(kc: KubeConfig, labelSelector?: string): Promise<V1Node[]> {
  const list = await kc.makeApiClient(CoreV1Api).listNode(labelSelector ? { labelSelector } : {});
  return list.items;
}

/** Whether a node's Ready condition is True. */
export const nodeReady = (n: V1Node): boolean => Boolean(n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));

/** Whether the API server answers /readyz with 200 within `timeoutMs`; false when it cannot be reached. */
export async function apiReady(kc: KubeConfig, timeoutMs = 2000): Promise<boolean> {
  try {
    return await new Health(kc).readyz({ signal: AbortSignal.timeout(timeoutMs) } as never);
  } catch {
    return false;
  }
}

/** Waits until the API server is ready; `check` may throw to give up early (say, the process died). */
export async function waitForApi(kc: KubeConfig, opts: { timeoutMs?: number; intervalMs?: number; check?: () => void } = {}): Promise<void> {
  const t0 = Date.now();
  const timeout = opts.timeoutMs ?? 60_000;
  for (;;) {
    if (await apiReady(kc)) return;
    opts.check?.();
    if (Date.now() - t0 > timeout) throw new Error(`the API server ${kc.getCurrentCluster()?.server ?? ''} was not ready after ${timeout / 1000}s`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 200));
  }
}

export interface RawResponse {
  readonly status: number;
  readonly body: unknown;
}

/**
 * One request to an API path through client-node's own transport and credentials: the escape hatch
 * `kubectl get --raw` is, for tests that look at status codes and Status bodies as the API server sends
 * them. Prefer the typed helpers above.
 */
export async function requestRaw(kc: KubeConfig, method: string, path: string, body?: unknown, opts: { timeoutMs?: number; contentType?: string } = {}): Promise<RawResponse> {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('the kubeconfig has no current cluster');
  const ctx = new RequestContext(new URL(path, server).toString(), method.toUpperCase() as HttpMethod);
  ctx.setHeaderParam('Accept', 'application/json');
  if (body !== undefined) {
    ctx.setHeaderParam('Content-Type', opts.contentType ?? 'application/json');
    ctx.setBody(JSON.stringify(body));
  }
  ctx.setSignal(AbortSignal.timeout(opts.timeoutMs ?? 10_000));
  await kc.applySecurityAuthentication(ctx);
  const res = await new IsomorphicFetchHttpLibrary().send(ctx).toPromise();
  const text = await res.body.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* plain text, e.g. /readyz */
  }
  return { status: res.httpStatusCode, body: parsed };
}

export interface PodLogQuery {
  /** The container; default: the pod's only one. */
  readonly container?: string;
  /** Only the last N lines. Default: the whole log. */
  readonly tailLines?: number;
  /** At most this many bytes (the API server counts from the start of what it would send). Default: no limit. */
  readonly limitBytes?: number;
  /** Only lines newer than this many seconds. Default: no limit. */
  readonly sinceSeconds?: number;
  /** Give up after this long, ms. Default 10 000. */
  readonly timeoutMs?: number;
}

/**
 * A pod's log as text, read once through the API server's `pods/log` (no follow). A refusal throws client-node's
 * ApiException (`code`: the HTTP status, `body`: the Status as text), so callers read it with httpStatus and
 * apiMessage. Text, never parsed: a log that happens to be one JSON line is still a log.
 */
export async function readPodLog(kc: KubeConfig, namespace: string, pod: string, q: PodLogQuery = {}): Promise<string> {
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new Error('the kubeconfig has no current cluster');
  const query = new URLSearchParams();
  if (q.container !== undefined) query.set('container', q.container);
  if (q.tailLines !== undefined) query.set('tailLines', String(q.tailLines));
  if (q.limitBytes !== undefined) query.set('limitBytes', String(q.limitBytes));
  if (q.sinceSeconds !== undefined) query.set('sinceSeconds', String(q.sinceSeconds));
  const qs = query.toString();
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/log${qs ? `?${qs}` : ''}`;
  const ctx = new RequestContext(new URL(path, server).toString(), 'GET' as HttpMethod);
  ctx.setHeaderParam('Accept', 'text/plain, application/json');
  ctx.setSignal(AbortSignal.timeout(q.timeoutMs ?? 10_000));
  await kc.applySecurityAuthentication(ctx);
  const res = await new IsomorphicFetchHttpLibrary().send(ctx).toPromise();
  const text = await res.body.text();
  if (res.httpStatusCode >= 300) throw new ApiException(res.httpStatusCode, `reading the log of pod ${namespace}/${pod}: HTTP ${res.httpStatusCode}`, text, {});
  return text;
}
