import type { V1EnvVar, V1Volume } from '@kubernetes/client-node';
import type { Plan } from '@kiln/plan';

/** The claim of a `pvc://<claim>/path` storage prefix. */
export function pvcClaim(plan: Plan): string | undefined {
  const m = /^pvc:\/\/([^/]+)/.exec(plan.storagePrefix);
  return m?.[1];
}

/** Volumes a stage needs to reach its artifacts: the claim, for pvc:// storage (mounted at /artifacts). */
export function storageVolumes(plan: Plan): V1Volume[] {
  const claim = pvcClaim(plan);
  return claim ? [{ name: 'artifacts', persistentVolumeClaim: { claimName: claim } }] : [];
}

/** Where stages find artifacts: the prefix, and for pvc:// the local path it maps to. */
export function storageEnv(plan: Plan): V1EnvVar[] {
  const env: V1EnvVar[] = [{ name: 'KILN_STORAGE_PREFIX', value: plan.storagePrefix }];
  const claim = pvcClaim(plan);
  if (claim) env.push({ name: 'KILN_STORAGE_ROOT', value: `/artifacts` });
  return env;
}

/**
 * Where a process in a pod finds an artifact URI: object-store URIs as they are (Triton and the stages read
 * s3:// and gs:// themselves), pvc:// under the claim's mount at /artifacts, file:// as a local path.
 */
export function podPath(uri: string): string {
  const pvc = /^pvc:\/\/[^/]+\/?(.*)$/.exec(uri);
  if (pvc) return `/artifacts/${pvc[1]}`;
  if (uri.startsWith('file://')) return uri.slice('file://'.length);
  return uri;
}
