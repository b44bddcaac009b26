import { clusterAuth as authFor } from '../../src/cluster.ts';
import { kube, type KubeAuth } from '../../src/kube-http.ts';
import { ROOT } from './global-setup.ts';

export { ROOT };

export function clusterAuth(root = ROOT): KubeAuth {
  return authFor(root);
}

export async function k(method: string, path: string, body?: unknown, timeoutMs?: number, contentType?: string) {
  return kube(clusterAuth(), method, path, body, timeoutMs, contentType);
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
