/** Which kubeconfig a command uses: the one a person named, else the local cluster's, else their own. */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { paths } from './paths.ts';

/** The kubeconfig to use: $KUBECONFIG (first entry), the local cluster under ./.kiln, or ~/.kube/config. */
export function kubeconfigPath(cwd = process.cwd(), env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fromEnv = env.KUBECONFIG?.split(':').find(Boolean);
  if (fromEnv) return fromEnv;
  const local = paths(cwd).kubeconfig;
  if (existsSync(local)) return local;
  const home = join(homedir(), '.kube', 'config');
  return existsSync(home) ? home : undefined;
}

/** Whether a kubeconfig path is a local cluster's (under some `.kiln/` directory). */
export function isLocalKubeconfig(path: string): boolean {
  return /(^|[\\/])\.kiln[\\/]/.test(path);
}
