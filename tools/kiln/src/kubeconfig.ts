/** Reads the current context of a kubeconfig into what kube-http needs (client certificates or a token). */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join, dirname } from 'node:path';
import { parse } from 'yaml';
import type { KubeAuth } from './kube-http.ts';

interface Named<T> {
  name: string;
  [key: string]: unknown;
  cluster?: T;
  user?: T;
  context?: T;
}

/** The kubeconfig to use: $KUBECONFIG (first entry), the local cluster under ./.kiln, or ~/.kube/config. */
export function kubeconfigPath(cwd = process.cwd(), env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fromEnv = env.KUBECONFIG?.split(':').find(Boolean);
  if (fromEnv) return fromEnv;
  const local = join(cwd, '.kiln', 'cluster', 'kubeconfig');
  if (existsSync(local)) return local;
  const home = join(homedir(), '.kube', 'config');
  return existsSync(home) ? home : undefined;
}

export function readKubeconfig(path: string): KubeAuth & { context: string } {
  const doc = parse(readFileSync(path, 'utf8')) as {
    'current-context'?: string;
    contexts?: Named<{ cluster: string; user: string }>[];
    clusters?: Named<Record<string, string | boolean>>[];
    users?: Named<Record<string, string>>[];
  };
  const ctxName = doc['current-context'];
  const ctx = doc.contexts?.find((c) => c.name === ctxName)?.context;
  if (!ctxName || !ctx) throw new Error(`${path} has no current context`);
  const cluster = doc.clusters?.find((c) => c.name === ctx.cluster)?.cluster;
  const user = doc.users?.find((u) => u.name === ctx.user)?.user ?? {};
  if (!cluster) throw new Error(`${path}: context ${ctxName} names unknown cluster ${ctx.cluster}`);
  const file = (p: string) => readFileSync(isAbsolute(p) ? p : join(dirname(path), p), 'utf8');
  const data = (obj: Record<string, unknown>, key: string): string | undefined => {
    if (typeof obj[`${key}-data`] === 'string') return Buffer.from(obj[`${key}-data`] as string, 'base64').toString('utf8');
    if (typeof obj[key] === 'string') return file(obj[key] as string);
    return undefined;
  };
  return {
    context: ctxName,
    server: String(cluster.server),
    ca: data(cluster, 'certificate-authority') ?? '',
    cert: data(user, 'client-certificate') ?? '',
    key: data(user, 'client-key') ?? '',
    ...(user.token ? { token: user.token } : {}),
    ...(cluster['insecure-skip-tls-verify'] === true ? { insecure: true } : {}),
  };
}
