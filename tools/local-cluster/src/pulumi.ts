/** The local Pulumi set-up: a file backend and a PULUMI_HOME holding the Kubernetes provider built offline. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { ClusterError, type Paths } from './paths.ts';
import { readVersions, type BuildProgress, type Toolchain } from './toolchain.ts';

/** Environment for the Pulumi CLI against the local backend, offline. */
export function pulumiEnv(p: Paths, tc: Toolchain): Record<string, string> {
  return {
    // Programs run on the `node` first on PATH: put this process's Node (24, with type stripping) there.
    PATH: `${tc.path.split(delimiter)[0]}${delimiter}${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`,
    PULUMI_HOME: p.pulumiHome,
    PULUMI_BACKEND_URL: `file://${p.pulumiState}`,
    // Local dev stacks encrypt their secrets with this passphrase; empty is allowed and documented.
    PULUMI_CONFIG_PASSPHRASE: process.env.PULUMI_CONFIG_PASSPHRASE ?? '',
    PULUMI_SKIP_UPDATE_CHECK: 'true',
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: 'true',
    // Use the provider installed into PULUMI_HOME (by version), not whatever is on PATH.
    PULUMI_IGNORE_AMBIENT_PLUGINS: 'true',
  };
}

export async function ensurePulumi(p: Paths, tc: Toolchain, env: Record<string, string>, log: BuildProgress): Promise<void> {
  mkdirSync(p.pulumiState, { recursive: true });
  mkdirSync(p.pulumiHome, { recursive: true });
  const v = readVersions().kubernetesProvider.version;
  if (existsSync(join(p.pulumiHome, 'plugins', `resource-kubernetes-v${v}`))) return;
  log(`installing the Kubernetes provider ${v} into ${p.pulumiHome}`);
  const r = spawnSync(tc.bins.pulumi!, ['plugin', 'install', 'resource', 'kubernetes', v, '--file', tc.bins['pulumi-resource-kubernetes']!], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new ClusterError('installing the Pulumi Kubernetes provider failed', `${r.stdout}${r.stderr}`);
}

