import type { KubeConfig } from '@kubernetes/client-node';
import { kubeConfigFrom, requestRaw, type RawResponse } from '@kiln/cluster';
import { paths } from '@kiln/local-cluster';
import { ROOT } from './global-setup.ts';

export { ROOT };

/** The local cluster's admin kubeconfig, loaded through @kubernetes/client-node. */
export function clusterKubeConfig(root = ROOT): KubeConfig {
  return kubeConfigFrom(paths(root).kubeconfig);
}

/** A raw API request as the admin (status code and body as the API server sends them). */
export async function k(method: string, path: string, body?: unknown, timeoutMs?: number, contentType?: string): Promise<RawResponse> {
  return requestRaw(clusterKubeConfig(), method, path, body, { ...(timeoutMs !== undefined ? { timeoutMs } : {}), ...(contentType ? { contentType } : {}) });
}

/** Server-side apply as `manager`, answering like a raw request: the stored object, or the API server's Status with its code. */
export async function apply(o: unknown, opts: { dryRun?: boolean; manager?: string } = {}): Promise<RawResponse> {
  const { applyObject, httpStatus } = await import('@kiln/cluster');
  try {
    return { status: 200, body: await applyObject(clusterKubeConfig(), o as never, opts) };
  } catch (e) {
    const status = httpStatus(e);
    if (status === undefined) throw e;
    const raw = (e as { body?: unknown }).body;
    let body: unknown = raw;
    try {
      body = typeof raw === 'string' ? JSON.parse(raw) : raw;
    } catch {
      /* text */
    }
    return { status, body };
  }
}

/** Polls until `check` returns a value, or fails with what it last saw. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const t0 = Date.now();
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export const uniq = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e4)}`;
