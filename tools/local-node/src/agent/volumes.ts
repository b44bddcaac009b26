/**
 * A pod's volumes materialized on the host, under `<podDir>/volumes/<name>`: configMap and secret (all keys or
 * `items`, `defaultMode`/`mode`, `optional`), downwardAPI files, projected (service-account token through TokenRequest, configMap, secret, downwardAPI), emptyDir (a directory; medium Memory: a tmpfs of
 * its sizeLimit, mounted by the runtime in each container's namespace), persistentVolumeClaim (its bound
 * PersistentVolume's hostPath: the local cluster's volumes are hostPath) and hostPath. Files are written once,
 * when the pod starts; later ConfigMap/Secret changes are not propagated (docs/local-node.md).
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { V1ConfigMap, V1KeyToPath, V1PersistentVolume, V1PersistentVolumeClaim, V1Pod, V1Secret, V1Volume } from '@kubernetes/client-node';
import { ConfigError, fieldValue, resourceValue, type HostVolume } from './translate.ts';
import { parseQuantity } from './quantity.ts';

/** Reads the API objects volumes refer to; undefined when an object does not exist. */
export interface ObjectReader {
  configMap(namespace: string, name: string): Promise<V1ConfigMap | undefined>;
  secret(namespace: string, name: string): Promise<V1Secret | undefined>;
  claim(namespace: string, name: string): Promise<V1PersistentVolumeClaim | undefined>;
  volume(name: string): Promise<V1PersistentVolume | undefined>;
  /** A bound service-account token for the pod (TokenRequest). */
  token(pod: V1Pod, serviceAccount: string, audiences: string[] | undefined, expirationSeconds: number): Promise<string>;
}

/** A file below a volume's directory, refusing paths that climb out of it. */
function fileIn(dir: string, rel: string): string {
  if (rel.startsWith('/') || rel.split('/').includes('..')) throw new ConfigError(`volume item path "${rel}" must be relative and without ".."`);
  return join(dir, rel);
}

function writeKeys(dir: string, data: Record<string, Buffer>, items: V1KeyToPath[] | undefined, defaultMode: number, what: string): void {
  mkdirSync(dir, { recursive: true });
  const list: V1KeyToPath[] = items?.length ? items : Object.keys(data).map((key) => ({ key, path: key }));
  for (const it of list) {
    const v = data[it.key];
    if (v === undefined) throw new ConfigError(`${what} has no key "${it.key}"`);
    const f = fileIn(dir, it.path);
    mkdirSync(dirname(f), { recursive: true });
    writeFileSync(f, v);
    chmodSync(f, it.mode ?? defaultMode);
  }
}

const textData = (d?: Record<string, string>): Record<string, Buffer> => Object.fromEntries(Object.entries(d ?? {}).map(([k, v]) => [k, Buffer.from(v)]));
const b64Data = (d?: Record<string, string>): Record<string, Buffer> => Object.fromEntries(Object.entries(d ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]));

/** Materializes one volume of a pod; returns how containers mount it. */
export async function materializeVolume(pod: V1Pod, v: V1Volume, podDir: string, api: ObjectReader, ips: { podIP: string; hostIP: string }, alloc: { cpu: number; memory: number }): Promise<HostVolume> {
  const ns = pod.metadata?.namespace ?? 'default';
  const dir = join(podDir, 'volumes', v.name);
  if (v.configMap) {
    const name = v.configMap.name ?? '';
    const cm = await api.configMap(ns, name);
    if (!cm) {
      if (v.configMap.optional) return mkdirSync(dir, { recursive: true }), { kind: 'bind', hostPath: dir, readOnly: true };
      throw new ConfigError(`ConfigMap "${ns}/${name}" of volume "${v.name}" not found`);
    }
    writeKeys(dir, { ...textData(cm.data), ...b64Data(cm.binaryData) }, v.configMap.items, v.configMap.defaultMode ?? 0o644, `ConfigMap "${ns}/${name}"`);
    return { kind: 'bind', hostPath: dir, readOnly: true };
  }
  if (v.secret) {
    const name = v.secret.secretName ?? '';
    const s = await api.secret(ns, name);
    if (!s) {
      if (v.secret.optional) return mkdirSync(dir, { recursive: true }), { kind: 'bind', hostPath: dir, readOnly: true };
      throw new ConfigError(`Secret "${ns}/${name}" of volume "${v.name}" not found`);
    }
    writeKeys(dir, { ...b64Data(s.data), ...textData(s.stringData) }, v.secret.items, v.secret.defaultMode ?? 0o644, `Secret "${ns}/${name}"`);
    return { kind: 'bind', hostPath: dir, readOnly: true };
  }
  if (v.downwardAPI) {
    mkdirSync(dir, { recursive: true });
    for (const it of v.downwardAPI.items ?? []) {
      const c = it.resourceFieldRef?.containerName ? pod.spec?.containers.find((x) => x.name === it.resourceFieldRef!.containerName) : pod.spec?.containers[0];
      const value = it.fieldRef ? fieldValue(pod, it.fieldRef.fieldPath, ips.podIP, ips.hostIP) : it.resourceFieldRef ? resourceValue(c, it.resourceFieldRef, alloc) : '';
      const f = fileIn(dir, it.path);
      mkdirSync(dirname(f), { recursive: true });
      writeFileSync(f, value);
      chmodSync(f, it.mode ?? v.downwardAPI.defaultMode ?? 0o644);
    }
    return { kind: 'bind', hostPath: dir, readOnly: true };
  }
  if (v.projected) {
    // The service-account token volume (kube-api-access-*) and friends: each source's files in one directory.
    mkdirSync(dir, { recursive: true });
    const mode = v.projected.defaultMode ?? 0o644;
    for (const src of v.projected.sources ?? []) {
      if (src.serviceAccountToken) {
        const tok = await api.token(pod, pod.spec?.serviceAccountName ?? 'default', src.serviceAccountToken.audience ? [src.serviceAccountToken.audience] : undefined, src.serviceAccountToken.expirationSeconds ?? 3607);
        writeKeys(dir, { [src.serviceAccountToken.path]: Buffer.from(tok) }, undefined, mode, 'serviceAccountToken');
      } else if (src.configMap) {
        const cm = await api.configMap(ns, src.configMap.name ?? '');
        if (!cm && !src.configMap.optional) throw new ConfigError(`ConfigMap "${ns}/${src.configMap.name}" of volume "${v.name}" not found`);
        if (cm) writeKeys(dir, { ...textData(cm.data), ...b64Data(cm.binaryData) }, src.configMap.items, mode, `ConfigMap "${ns}/${src.configMap.name}"`);
      } else if (src.secret) {
        const sec = await api.secret(ns, src.secret.name ?? '');
        if (!sec && !src.secret.optional) throw new ConfigError(`Secret "${ns}/${src.secret.name}" of volume "${v.name}" not found`);
        if (sec) writeKeys(dir, b64Data(sec.data), src.secret.items, mode, `Secret "${ns}/${src.secret.name}"`);
      } else if (src.downwardAPI) {
        for (const it of src.downwardAPI.items ?? []) {
          const c = it.resourceFieldRef?.containerName ? pod.spec?.containers.find((x) => x.name === it.resourceFieldRef!.containerName) : pod.spec?.containers[0];
          const value = it.fieldRef ? fieldValue(pod, it.fieldRef.fieldPath, ips.podIP, ips.hostIP) : it.resourceFieldRef ? resourceValue(c, it.resourceFieldRef, alloc) : '';
          writeKeys(dir, { [it.path]: Buffer.from(value) }, undefined, it.mode ?? mode, 'downwardAPI');
        }
      }
    }
    return { kind: 'bind', hostPath: dir, readOnly: true };
  }
  if (v.emptyDir) {
    if (v.emptyDir.medium === 'Memory') {
      return { kind: 'tmpfs', readOnly: false, ...(v.emptyDir.sizeLimit !== undefined ? { sizeBytes: Math.floor(parseQuantity(v.emptyDir.sizeLimit)) } : {}) };
    }
    mkdirSync(dir, { recursive: true });
    // Kubernetes' emptyDir is world-writable: non-root pods (the gateway, eval sandboxes) write there.
    chmodSync(dir, 0o777);
    return { kind: 'bind', hostPath: dir, readOnly: false };
  }
  if (v.persistentVolumeClaim) {
    const claimName = v.persistentVolumeClaim.claimName;
    const claim = await api.claim(ns, claimName);
    if (!claim) throw new ConfigError(`PersistentVolumeClaim "${ns}/${claimName}" of volume "${v.name}" not found`);
    const pvName = claim.spec?.volumeName;
    if (!pvName || claim.status?.phase !== 'Bound') throw new ConfigError(`PersistentVolumeClaim "${ns}/${claimName}" is not bound yet (phase ${claim.status?.phase ?? 'unknown'})`);
    const pv = await api.volume(pvName);
    const path = pv?.spec?.hostPath?.path ?? pv?.spec?.local?.path;
    if (!path) throw new ConfigError(`PersistentVolume "${pvName}" (claim "${ns}/${claimName}") has no hostPath or local path: the local node mounts only those`);
    mkdirSync(path, { recursive: true });
    return { kind: 'bind', hostPath: path, readOnly: Boolean(v.persistentVolumeClaim.readOnly) };
  }
  if (v.hostPath) {
    const t = v.hostPath.type ?? '';
    if (t === 'DirectoryOrCreate') mkdirSync(v.hostPath.path, { recursive: true });
    return { kind: 'bind', hostPath: v.hostPath.path, readOnly: false };
  }
  throw new ConfigError(`volume "${v.name}" is of a type the local node does not support (it supports configMap, secret, downwardAPI, emptyDir, persistentVolumeClaim, hostPath, projected)`);
}

/** Materializes every volume of a pod. */
export async function materializeVolumes(pod: V1Pod, podDir: string, api: ObjectReader, ips: { podIP: string; hostIP: string }, alloc: { cpu: number; memory: number }): Promise<Map<string, HostVolume>> {
  const out = new Map<string, HostVolume>();
  for (const v of pod.spec?.volumes ?? []) out.set(v.name, await materializeVolume(pod, v, podDir, api, ips, alloc));
  return out;
}
