/**
 * The agent's API access: a few REST calls through @kiln/cluster's requestRaw (the node's own credentials), and a
 * reflector (list, then watch from its resourceVersion; relist after a 410 or any error, so a dropped watch never
 * leaves the cache stale) that keeps a cache of one kind of object and reports changes.
 */
import { Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { requestRaw } from '@kiln/cluster';

export class ApiError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const statusMessage = (body: unknown): string => (body && typeof body === 'object' && 'message' in body ? String((body as { message: unknown }).message) : String(body).slice(0, 300));

/** One API call; resolves to the body, or undefined for a 404 when `allow404`. */
export async function call<T>(kc: KubeConfig, method: string, path: string, body?: unknown, opts: { contentType?: string; allow404?: boolean; timeoutMs?: number } = {}): Promise<T | undefined> {
  const r = await requestRaw(kc, method, path, body, { ...(opts.contentType ? { contentType: opts.contentType } : {}), timeoutMs: opts.timeoutMs ?? 15_000 });
  if (r.status === 404 && opts.allow404) return undefined;
  if (r.status >= 300) throw new ApiError(r.status, `${method} ${path}: HTTP ${r.status}: ${statusMessage(r.body)}`);
  return r.body as T;
}

export const MERGE_PATCH = 'application/merge-patch+json';

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** A list+watch cache of one resource (by `namespace/name`), with a change callback. */
export class Reflector<T extends KubernetesObject> {
  readonly items = new Map<string, T>();
  private resourceVersion = '';
  private abort: AbortController | undefined;
  private stopped = false;
  private synced!: () => void;
  /** Resolves once the first list is in the cache. */
  readonly ready = new Promise<void>((r) => (this.synced = r));

  private readonly kc: KubeConfig;
  private readonly path: string;
  private readonly query: Record<string, string>;
  private readonly onChange: (type: ChangeType, obj: T) => void;
  private readonly log: (msg: string) => void;

  constructor(kc: KubeConfig, path: string, query: Record<string, string>, onChange: (type: ChangeType, obj: T) => void, log: (msg: string) => void) {
    this.kc = kc;
    this.path = path;
    this.query = query;
    this.onChange = onChange;
    this.log = log;
  }

  static key(o: KubernetesObject): string {
    return `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
  }

  start(): void {
    void this.loop();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }

  private async list(): Promise<void> {
    const qs = new URLSearchParams(this.query).toString();
    const list = (await call<{ metadata: { resourceVersion: string }; items: T[] }>(this.kc, 'GET', `${this.path}${qs ? `?${qs}` : ''}`))!;
    const seen = new Set<string>();
    for (const item of list.items) {
      const k = Reflector.key(item);
      seen.add(k);
      const old = this.items.get(k);
      this.items.set(k, item);
      if (!old || old.metadata?.resourceVersion !== item.metadata?.resourceVersion) this.onChange(old ? 'MODIFIED' : 'ADDED', item);
    }
    for (const [k, old] of this.items) {
      if (!seen.has(k)) {
        this.items.delete(k);
        this.onChange('DELETED', old);
      }
    }
    this.resourceVersion = list.metadata.resourceVersion;
  }

  private async loop(): Promise<void> {
    let needList = true;
    while (!this.stopped) {
      try {
        if (needList) {
          await this.list();
          this.synced();
          needList = false;
        }
        const ended = await new Promise<{ gone: boolean; err?: unknown }>((resolve) => {
          let gone = false;
          new Watch(this.kc)
            .watch(
              this.path,
              { ...this.query, resourceVersion: this.resourceVersion, allowWatchBookmarks: true },
              (phase, obj: T) => {
                if (phase === 'ERROR') {
                  gone = (obj as unknown as { code?: number }).code === 410;
                  return;
                }
                if (obj?.metadata?.resourceVersion) this.resourceVersion = obj.metadata.resourceVersion;
                if (phase === 'BOOKMARK') return;
                const k = Reflector.key(obj);
                if (phase === 'DELETED') this.items.delete(k);
                else this.items.set(k, obj);
                this.onChange(phase as ChangeType, obj);
              },
              (err) => resolve({ gone: gone || (err as { code?: number })?.code === 410, err }),
            )
            .then((a) => (this.abort = a), (err) => resolve({ gone: (err as { code?: number })?.code === 410, err }));
        });
        if (ended.gone) needList = true;
        else if (ended.err && !this.stopped) {
          // The API server went away: list again once it is back (what changed meanwhile is in the list).
          needList = true;
          await new Promise((r) => setTimeout(r, 1000));
        }
      } catch (e) {
        if (this.stopped) return;
        this.log(`watch of ${this.path} failed (${(e as Error).message}); listing again in 1 s`);
        needList = true;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }
}
