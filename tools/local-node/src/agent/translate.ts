/**
 * Pod → container translation: one container of a pod, with the pod's volumes already materialized on the host
 * and its image resolved, as the Runtime's ContainerSpec (argv, the whole environment, mounts, user, limits).
 * Pure: every input the API would be asked for (ConfigMaps, Secrets) comes in `sources`, so tests need no cluster.
 */
import type { V1Container, V1EnvVar, V1ObjectFieldSelector, V1Pod, V1ResourceFieldSelector } from '@kubernetes/client-node';
import type { ContainerSpec, Mount } from '../runtime/types.ts';
import { under } from '../runtime/shim.ts';
import { expand, expandAll } from './expand.ts';
import { SYSTEM_PATH, type ImageEnv } from './images.ts';
import { delimiter, isAbsolute } from 'node:path';
import { cpuMillis, parseQuantity } from './quantity.ts';

/** A pod volume as it is on the host: a directory or file to bind, or a tmpfs. */
export interface HostVolume {
  readonly kind: 'bind' | 'tmpfs';
  readonly hostPath?: string;
  readonly sizeBytes?: number;
  /** Kubernetes mounts configMap, secret and downwardAPI volumes read-only whatever the mount says. */
  readonly readOnly: boolean;
}

/** The API objects a container's environment may refer to (Secrets decoded to text), by name. */
export interface EnvSources {
  readonly configMaps: ReadonlyMap<string, Readonly<Record<string, string>>>;
  readonly secrets: ReadonlyMap<string, Readonly<Record<string, string>>>;
}

export interface TranslateInput {
  readonly pod: V1Pod;
  readonly container: V1Container;
  readonly restartCount: number;
  readonly image: ImageEnv;
  readonly volumes: ReadonlyMap<string, HostVolume>;
  readonly sources: EnvSources;
  /** The pod's /etc/hosts on the host (bind-mounted over /etc/hosts). */
  readonly hostsFile?: string;
  /** The pod's /etc/resolv.conf on the host (bind-mounted over /etc/resolv.conf); absent: the host's. */
  readonly resolvFile?: string;
  readonly podIP: string;
  readonly hostIP: string;
  /** Path of the pod's network namespace; absent for hostNetwork pods. */
  readonly netns?: string;
  /** KUBERNETES_SERVICE_HOST and friends (always given, as a kubelet does; other Services' link variables are not). */
  readonly serviceEnv?: Readonly<Record<string, string>>;
  /** The node's allocatable CPU (cores) and memory (bytes): what resourceFieldRef reports for an unset limit. */
  readonly nodeAllocatable: { readonly cpu: number; readonly memory: number };
}

/** A pod that cannot be started as written (Kubernetes' CreateContainerConfigError). */
export class ConfigError extends Error {
  readonly reason = 'CreateContainerConfigError';
}

function bracketKey(path: string, prefix: string): string | undefined {
  const m = new RegExp(`^${prefix.replace('.', '\\.')}\\[['"](.+)['"]\\]$`).exec(path);
  return m?.[1];
}

/** The value of a downward-API field of a pod (fieldRef.fieldPath). */
export function fieldValue(pod: V1Pod, path: string, podIP: string, hostIP: string): string {
  const md = pod.metadata ?? {};
  switch (path) {
    case 'metadata.name':
      return md.name ?? '';
    case 'metadata.namespace':
      return md.namespace ?? 'default';
    case 'metadata.uid':
      return md.uid ?? '';
    case 'spec.nodeName':
      return pod.spec?.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? 'default';
    case 'status.hostIP':
    case 'status.hostIPs':
      return hostIP;
    case 'status.podIP':
    case 'status.podIPs':
      return podIP;
    case 'metadata.labels':
      return Object.entries(md.labels ?? {}).map(([k, v]) => `${k}="${v}"`).sort().join('\n');
    case 'metadata.annotations':
      return Object.entries(md.annotations ?? {}).map(([k, v]) => `${k}="${v}"`).sort().join('\n');
  }
  const label = bracketKey(path, 'metadata.labels');
  if (label !== undefined) return md.labels?.[label] ?? '';
  const ann = bracketKey(path, 'metadata.annotations');
  if (ann !== undefined) return md.annotations?.[ann] ?? '';
  throw new ConfigError(`fieldRef "${path}" is not a field the downward API offers`);
}

/** The value of a resourceFieldRef (limits.cpu, requests.memory, …) of a container, in units of its divisor. */
export function resourceValue(c: V1Container | undefined, ref: V1ResourceFieldSelector, alloc: { cpu: number; memory: number }): string {
  const [kind, res] = ref.resource.split('.') as ['limits' | 'requests', string];
  const r = c?.resources;
  const set = (kind === 'limits' ? r?.limits : r?.requests)?.[res] ?? (kind === 'requests' ? r?.limits?.[res] : undefined);
  const divisor = ref.divisor !== undefined ? parseQuantity(ref.divisor as string) : 1;
  if (res === 'cpu') {
    const v = set !== undefined ? parseQuantity(set) : kind === 'limits' ? alloc.cpu : 0;
    return String(Math.ceil(v / divisor - 1e-9));
  }
  if (res === 'memory' || res === 'ephemeral-storage' || res.startsWith('hugepages-')) {
    const v = set !== undefined ? parseQuantity(set) : kind === 'limits' ? alloc.memory : 0;
    return String(Math.ceil(v / divisor - 1e-9));
  }
  throw new ConfigError(`resourceFieldRef "${ref.resource}" is not a resource this node reports`);
}

function envValue(v: V1EnvVar, input: TranslateInput, vars: Record<string, string>): string | undefined {
  const { pod, sources } = input;
  if (v.valueFrom === undefined) return expand(v.value ?? '', (n) => (Object.hasOwn(vars, n) ? vars[n] : undefined));
  const f = v.valueFrom;
  if (f.fieldRef) return fieldValue(pod, (f.fieldRef as V1ObjectFieldSelector).fieldPath, input.podIP, input.hostIP);
  if (f.resourceFieldRef) {
    const name = f.resourceFieldRef.containerName;
    const c = name ? [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])].find((x) => x.name === name) : input.container;
    return resourceValue(c, f.resourceFieldRef, input.nodeAllocatable);
  }
  const ref = f.configMapKeyRef ?? f.secretKeyRef;
  if (ref) {
    const what = f.configMapKeyRef ? 'ConfigMap' : 'Secret';
    const obj = (f.configMapKeyRef ? sources.configMaps : sources.secrets).get(ref.name ?? '');
    const val = obj?.[ref.key];
    if (val === undefined) {
      if (ref.optional) return undefined;
      throw new ConfigError(obj ? `${what} "${ref.name}" has no key "${ref.key}" (env ${v.name})` : `${what} "${ref.name}" not found (env ${v.name})`);
    }
    return val;
  }
  return '';
}

/** The container's whole environment: the image's, envFrom in order, then env in order (each `$(VAR)`-expanded against what came before). */
export function containerEnv(input: TranslateInput): Record<string, string> {
  const { pod, container: c, sources } = input;
  const vars: Record<string, string> = { ...input.image.env, HOSTNAME: pod.spec?.hostname ?? pod.metadata?.name ?? '', ...input.serviceEnv };
  for (const from of c.envFrom ?? []) {
    const ref = from.configMapRef ?? from.secretRef;
    if (!ref) continue;
    const what = from.configMapRef ? 'ConfigMap' : 'Secret';
    const obj = (from.configMapRef ? sources.configMaps : sources.secrets).get(ref.name ?? '');
    if (!obj) {
      if (ref.optional) continue;
      throw new ConfigError(`${what} "${ref.name}" not found (envFrom)`);
    }
    for (const [k, val] of Object.entries(obj)) vars[`${from.prefix ?? ''}${k}`] = val;
  }
  for (const v of c.env ?? []) {
    const val = envValue(v, input, vars);
    if (val !== undefined) vars[v.name] = val;
  }
  return vars;
}

/** The host folders an image is made of: its working directory and the non-system folders on its PATH, outermost only. */
export function imageRoots(image: ImageEnv): string[] {
  const system = new Set(SYSTEM_PATH.split(delimiter));
  const dirs = [image.workingDir, ...(image.env['PATH'] ?? '').split(delimiter)].filter((d) => isAbsolute(d) && !system.has(d)).map((d) => d.replace(/\/+$/, '') || '/');
  const unique = [...new Set(dirs)].sort((a, b) => a.length - b.length);
  return unique.filter((d, i) => !unique.slice(0, i).some((o) => under(d, o)));
}

/** The container's mounts: its volumeMounts in order (subPath honoured), the image's roots where a mount covers them, then /etc/hosts. */
export function containerMounts(input: TranslateInput): Mount[] {
  const mounts: Mount[] = [];
  for (const m of input.container.volumeMounts ?? []) {
    const v = input.volumes.get(m.name);
    if (!v) throw new ConfigError(`volumeMount "${m.name}" names no volume of the pod`);
    const readOnly = v.readOnly || Boolean(m.readOnly);
    if (v.kind === 'tmpfs') {
      mounts.push({ kind: 'tmpfs', containerPath: m.mountPath, readOnly, ...(v.sizeBytes !== undefined ? { sizeBytes: v.sizeBytes } : {}) });
    } else {
      const sub = m.subPath ? `/${m.subPath.replace(/^\/+/, '')}` : '';
      if (sub.split('/').includes('..')) throw new ConfigError(`subPath "${m.subPath}" of volumeMount "${m.name}" may not contain ".."`);
      mounts.push({ kind: 'bind', containerPath: m.mountPath, hostPath: `${v.hostPath}${sub}`, readOnly });
    }
  }
  // The image's own files (this checkout, the Python environments on its PATH) are the container's image: a pod
  // volume mounted over one of them (an emptyDir at /tmp, with the checkout under /tmp) must not hide it, so each
  // covered root is bound again at its own path right after the mount that covers it.
  const readOnlyImage = Boolean(input.container.securityContext?.readOnlyRootFilesystem);
  for (const root of imageRoots(input.image)) {
    const at = mounts.findIndex((m) => under(root, m.containerPath));
    if (at >= 0) mounts.splice(at + 1, 0, { kind: 'bind', containerPath: root, hostPath: root, readOnly: readOnlyImage });
  }
  if (input.hostsFile && !mounts.some((m) => m.containerPath === '/etc/hosts')) mounts.push({ kind: 'bind', containerPath: '/etc/hosts', hostPath: input.hostsFile, readOnly: false });
  if (input.resolvFile && !mounts.some((m) => m.containerPath === '/etc/resolv.conf')) mounts.push({ kind: 'bind', containerPath: '/etc/resolv.conf', hostPath: input.resolvFile, readOnly: true });
  return mounts;
}

/**
 * A pod's /etc/resolv.conf. There is no cluster DNS and a pod's network namespace cannot reach the host's
 * resolver (no NAT here), so names come from /etc/hosts and the resolver fails at once (127.0.0.1, one attempt)
 * instead of waiting out a timeout; search domains as a cluster's. dnsConfig's nameservers, searches and options
 * are honoured.
 */
export function resolvConf(pod: V1Pod): string {
  const ns = pod.metadata?.namespace ?? 'default';
  const cfg = pod.spec?.dnsConfig;
  const none = pod.spec?.dnsPolicy === 'None';
  const nameservers = [...(cfg?.nameservers ?? []), ...(none ? [] : ['127.0.0.1'])];
  const searches = [...(none ? [] : [`${ns}.svc.cluster.local`, 'svc.cluster.local', 'cluster.local']), ...(cfg?.searches ?? [])];
  const options = [...(none ? [] : ['ndots:5', 'timeout:1', 'attempts:1']), ...(cfg?.options ?? []).map((o) => (o.value !== undefined ? `${o.name}:${o.value}` : o.name))];
  return [
    '# kiln local node: no cluster DNS; Services resolve through /etc/hosts.',
    ...(searches.length ? [`search ${searches.join(' ')}`] : []),
    ...nameservers.slice(0, 3).map((n) => `nameserver ${n}`),
    ...(options.length ? [`options ${options.join(' ')}`] : []),
  ].join('\n') + '\n';
}

/** One container of a pod as the Runtime runs it. */
export function containerSpec(input: TranslateInput): ContainerSpec {
  const { pod, container: c } = input;
  const env = containerEnv(input);
  if (!c.command?.length) {
    throw new ConfigError(`container "${c.name}" has no command: the local node's images have no entrypoint, so a pod here must give command (and args)`);
  }
  const argv = [...expandAll(c.command, env), ...expandAll(c.args ?? [], env)];
  const sc = { ...pod.spec?.securityContext, ...c.securityContext };
  const uid = sc.runAsUser;
  const user = uid !== undefined && uid !== null ? { uid, gid: sc.runAsGroup ?? uid } : undefined;
  const lim = c.resources?.limits ?? {};
  const limits = {
    ...(lim.memory !== undefined ? { memoryBytes: Math.floor(parseQuantity(lim.memory)) } : {}),
    ...(lim.cpu !== undefined ? { cpuMillis: cpuMillis(lim.cpu) } : {}),
  };
  return {
    podUid: pod.metadata?.uid ?? '',
    podKey: `${pod.metadata?.namespace ?? 'default'}/${pod.metadata?.name ?? ''}`,
    container: c.name,
    restartCount: input.restartCount,
    argv,
    env,
    workingDir: c.workingDir || input.image.workingDir,
    mounts: containerMounts(input),
    ...(user ? { user } : {}),
    ...(c.securityContext?.readOnlyRootFilesystem ? { readOnlyRoot: true } : {}),
    limits,
    terminationMessagePath: c.terminationMessagePath || '/dev/termination-log',
    ...(input.netns ? { netns: input.netns } : {}),
  };
}
