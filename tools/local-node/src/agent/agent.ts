/**
 * The local node's agent: registers the Node and keeps its Lease, watches the pods bound to it and runs each as
 * local processes through the Runtime (sandbox from PodNetwork, volumes, /etc/hosts from Services, image
 * resolution, restartPolicy with CrashLoopBackOff, probes), reports their status through pods/status, honours
 * deletion (SIGTERM, grace, SIGKILL, then the final delete), adopts containers that outlived an earlier agent
 * (never starting one twice: a container's id holds its restart count), and feeds the userspace Service proxy.
 *
 * Level-triggered: every change of a pod, and a 500 ms poll of running containers, enqueues the pod; its
 * reconcile reads the cached pod and the Runtime's records and does what is missing. One reconcile per pod at a
 * time; a change during one runs it again after.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync, openSync, readSync, fstatSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeConfig, V1ConfigMap, V1Container, V1EndpointSlice, V1PersistentVolume, V1PersistentVolumeClaim, V1Pod, V1Secret, V1Service } from '@kubernetes/client-node';
import { hostsFile, PodNetwork, serviceNames, ServiceProxy, type ProxyService } from '../network/index.ts';
import { containerId, Runtime, type ContainerRecord } from '../runtime/index.ts';
import { ImageError, Images } from './images.ts';
import { ApiError, call, MERGE_PATCH, Reflector } from './kube.ts';
import { heartbeat, LEASE_RENEW_SECONDS, machine, registerNode, renewLease, type Machine, type NodeInfo, type Reserve } from './node.ts';
import { Prober } from './probes.ts';
import { parseQuantity } from './quantity.ts';
import { fallbackMessage, podStatus, restartDelayMs, shouldRestart, type ContainerView } from './status.ts';
import { ConfigError, containerSpec, type EnvSources, type HostVolume } from './translate.ts';
import { materializeVolumes, type ObjectReader } from './volumes.ts';

export interface AgentOptions {
  /** The node's own kubeconfig (CN=system:node:<name>, O=system:nodes). */
  readonly kc: KubeConfig;
  readonly nodeName: string;
  /** Everything of this node: runtime/, network/, pods/<uid>/ (volumes, hosts), images/. */
  readonly stateDir: string;
  readonly podCidr: string;
  /** Cluster-unique short id: names the bridge, netns and cgroups of this node. */
  readonly networkName: string;
  /** The kubelet API's HTTPS port (published in the Node's daemonEndpoints). */
  readonly port: number;
  readonly reserve?: Reserve;
  readonly log: (msg: string) => void;
  /** Poll period of running containers, ms. Default 500. */
  readonly pollMs?: number;
}

interface ContainerRun {
  restartCount: number;
  backoffUntil?: number;
  backoffTimer?: NodeJS.Timeout;
  failed?: { reason: string; message: string };
  ready: boolean;
  readiness?: Prober;
  liveness?: Prober;
  /** The record's state last seen by the poll ('running' / 'exited' / 'none'). */
  seen?: string;
}

interface PodState {
  readonly uid: string;
  key: string;
  pod: V1Pod;
  sandbox?: { ip: string; netns?: string };
  volumes?: Map<string, HostVolume>;
  hosts?: string;
  startTime: Date;
  readonly containers: Map<string, ContainerRun>;
  running: Promise<void> | undefined;
  dirty: boolean;
  lastStatus?: string;
  terminated?: boolean;
  torn?: boolean;
}

const errText = (e: unknown) => (e as Error)?.message ?? String(e);

/** The pod's key in the caches. */
const podKey = (p: V1Pod) => `${p.metadata?.namespace ?? ''}/${p.metadata?.name ?? ''}`;

export class Agent {
  readonly runtime: Runtime;
  readonly network: PodNetwork;
  private proxy: ServiceProxy | undefined;
  private readonly images: Images;
  private readonly pods: Reflector<V1Pod>;
  private readonly services: Reflector<V1Service>;
  private readonly slices: Reflector<V1EndpointSlice>;
  private readonly states = new Map<string, PodState>();
  private readonly o: AgentOptions;
  private readonly machine: Machine;
  private nodeInfo!: NodeInfo;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private proxyTimer: NodeJS.Timeout | undefined;
  private hostsTimer: NodeJS.Timeout | undefined;

  constructor(o: AgentOptions) {
    this.o = o;
    this.runtime = new Runtime({ stateDir: join(o.stateDir, 'runtime'), cgroupName: `kiln/${o.networkName}` });
    this.network = new PodNetwork({ name: o.networkName, podCidr: o.podCidr, stateDir: join(o.stateDir, 'network') });
    this.images = new Images({ stateDir: o.stateDir });
    this.machine = machine(o.stateDir);
    const onPod = (_t: string, p: V1Pod) => this.enqueue(p.metadata?.uid ?? '');
    this.pods = new Reflector<V1Pod>(o.kc, '/api/v1/pods', { fieldSelector: `spec.nodeName=${o.nodeName}` }, onPod, o.log);
    const onNet = () => this.networkChanged();
    this.services = new Reflector<V1Service>(o.kc, '/api/v1/services', {}, onNet, o.log);
    this.slices = new Reflector<V1EndpointSlice>(o.kc, '/apis/discovery.k8s.io/v1/endpointslices', {}, onNet, o.log);
  }

  /** The node's allocatable CPU (cores) and memory (bytes). */
  get allocatable(): { cpu: number; memory: number } {
    const r = this.o.reserve ?? { cpuMillis: 200, memoryBytes: 2 ** 30 };
    return { cpu: Math.max(0.1, this.machine.cpus - r.cpuMillis / 1000), memory: Math.max(256 * 2 ** 20, this.machine.memoryBytes - r.memoryBytes) };
  }

  /** Registers the node, starts the watches, adopts what an earlier agent left, and keeps the Lease. */
  async start(): Promise<void> {
    const { kc, nodeName: name } = this.o;
    const version = await call<{ gitVersion: string }>(kc, 'GET', '/version').catch(() => undefined);
    this.nodeInfo = { name, port: this.o.port, machine: this.machine, ...(this.o.reserve ? { reserve: this.o.reserve } : {}), kubeletVersion: version?.gitVersion ?? 'v1.33.0', podCidr: this.o.podCidr };
    const net = await this.network.ensure();
    this.proxy = new ServiceProxy({ bridge: net.bridge });
    await registerNode(kc, this.nodeInfo);
    await renewLease(kc, name);
    const every = (ms: number, f: () => Promise<unknown>) => {
      const t = setInterval(() => void f().catch((e) => this.o.log(`node heartbeat failed: ${errText(e)}`)), ms);
      this.timers.push(t);
    };
    every(LEASE_RENEW_SECONDS * 1000, () => renewLease(kc, name));
    every(LEASE_RENEW_SECONDS * 1000, () => heartbeat(kc, this.nodeInfo));
    this.services.start();
    this.slices.start();
    this.pods.start();
    await this.pods.ready;
    this.adoptOrphans();
    every(this.o.pollMs ?? 500, async () => this.poll());
    this.o.log(`node ${name} registered (kubelet API on port ${this.o.port}, pod CIDR ${this.o.podCidr}); ${this.pods.items.size} pod(s) bound to it`);
  }

  /** Stops the agent's loops; the containers keep running (a restarted agent adopts them). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.pods.stop();
    this.services.stop();
    this.slices.stop();
    for (const s of this.states.values()) for (const c of s.containers.values()) stopProbes(c);
    await this.proxy?.close().catch(() => {});
  }

  /** The cached pod of `namespace/name`. */
  pod(namespace: string, name: string): V1Pod | undefined {
    return this.pods.items.get(`${namespace}/${name}`);
  }

  /** The record of a container of a pod: its current run, or with `previous` the run before it. */
  containerRecord(pod: V1Pod, container: string, previous = false): ContainerRecord | undefined {
    const uid = pod.metadata?.uid ?? '';
    const count = this.states.get(uid)?.containers.get(container)?.restartCount ?? this.lastRestartCount(uid, container);
    const n = previous ? count - 1 : count;
    return n < 0 ? undefined : this.runtime.get(containerId(uid, container, n));
  }

  private lastRestartCount(uid: string, container: string): number {
    let n = 0;
    for (const r of this.runtime.list()) if (r.spec.podUid === uid && r.spec.container === container) n = Math.max(n, r.spec.restartCount);
    return n;
  }

  /** Containers of pods the API no longer has (deleted while the agent was down) are stopped and forgotten. */
  private adoptOrphans(): void {
    const uids = new Set([...this.pods.items.values()].map((p) => p.metadata?.uid));
    const orphans = new Set<string>();
    for (const r of this.runtime.list()) if (!uids.has(r.spec.podUid)) orphans.add(r.spec.podUid);
    for (const sb of this.network.sandboxes()) if (!uids.has(sb.podUid)) orphans.add(sb.podUid);
    for (const uid of orphans) {
      this.o.log(`pod ${uid} is gone from the API: stopping what is left of it`);
      void this.teardown(uid, 0).catch((e) => this.o.log(`cleaning up pod ${uid}: ${errText(e)}`));
    }
  }

  private poll(): void {
    for (const s of this.states.values()) {
      if (s.terminated) continue;
      for (const [name, c] of s.containers) {
        const r = this.runtime.get(containerId(s.uid, name, c.restartCount));
        const seen = r ? r.status.state : 'none';
        if (seen !== c.seen) {
          c.seen = seen;
          this.enqueue(s.uid);
        }
      }
    }
  }

  private enqueue(uid: string): void {
    if (!uid || this.stopped) return;
    let s = this.states.get(uid);
    if (!s) {
      const pod = [...this.pods.items.values()].find((p) => p.metadata?.uid === uid);
      if (!pod) return;
      s = { uid, key: podKey(pod), pod, startTime: pod.status?.startTime ? new Date(pod.status.startTime) : new Date(), containers: new Map(), running: undefined, dirty: false };
      for (const c of pod.spec?.containers ?? []) s.containers.set(c.name, { restartCount: this.lastRestartCount(uid, c.name), ready: false });
      this.states.set(uid, s);
    }
    if (s.running) {
      s.dirty = true;
      return;
    }
    const st = s;
    st.running = (async () => {
      do {
        st.dirty = false;
        try {
          await this.reconcile(st);
        } catch (e) {
          this.o.log(`pod ${st.key}: ${errText(e)}`);
          // Retry later: the API may be briefly away.
          setTimeout(() => this.enqueue(st.uid), 2000).unref();
        }
      } while (st.dirty && !this.stopped);
      st.running = undefined;
    })();
  }

  private currentPod(s: PodState): V1Pod | undefined {
    const p = this.pods.items.get(s.key);
    return p && p.metadata?.uid === s.uid ? p : undefined;
  }

  private async reconcile(s: PodState): Promise<void> {
    const pod = this.currentPod(s);
    if (!pod) {
      // Gone from the API (deleted with grace 0, or by force).
      if (!s.torn) await this.teardown(s.uid, 0);
      return;
    }
    s.pod = pod;
    if (pod.metadata?.deletionTimestamp) return this.terminate(s, pod);
    if (s.terminated) return;
    const phase = pod.status?.phase;
    if ((phase === 'Succeeded' || phase === 'Failed') && s.lastStatus === undefined && this.allExited(s)) {
      // Finished before an agent restart: nothing to run, nothing to change.
      return;
    }
    await this.ensureSandbox(s, pod);
    const policy = pod.spec?.restartPolicy ?? 'Always';
    for (const c of pod.spec?.containers ?? []) {
      const run = s.containers.get(c.name)!;
      if (run.failed) continue;
      const rec = this.runtime.get(containerId(s.uid, c.name, run.restartCount));
      if (!rec) {
        if (!this.runtime.list().some((r) => r.id === containerId(s.uid, c.name, run.restartCount))) await this.startContainer(s, pod, c, run);
        continue;
      }
      if (rec.status.state === 'running') {
        this.ensureProbes(s, c, run);
        continue;
      }
      stopProbes(run);
      run.ready = false;
      if (!shouldRestart(policy, rec.status.exitCode)) continue;
      const t = Date.now();
      if (run.backoffUntil === undefined) {
        const delay = restartDelayMs(run.restartCount);
        run.backoffUntil = t + delay;
        run.backoffTimer = setTimeout(() => this.enqueue(s.uid), delay);
        run.backoffTimer.unref();
      } else if (t >= run.backoffUntil) {
        run.backoffUntil = undefined;
        run.restartCount++;
        await this.startContainer(s, pod, c, run);
      }
    }
    await this.writeStatus(s, pod);
  }

  private allExited(s: PodState): boolean {
    return [...s.containers.entries()].every(([n, c]) => c.failed || this.runtime.get(containerId(s.uid, n, c.restartCount))?.status.state !== 'running');
  }

  private async ensureSandbox(s: PodState, pod: V1Pod): Promise<void> {
    if (s.sandbox && s.volumes) return;
    const api = this.reader();
    const hostNetwork = Boolean(pod.spec?.hostNetwork);
    const podDir = join(this.o.stateDir, 'pods', s.uid);
    mkdirSync(podDir, { recursive: true });
    const sandboxP = hostNetwork ? Promise.resolve({ ip: '127.0.0.1' }) : this.network.createSandbox(s.uid);
    const sandbox = await sandboxP;
    s.sandbox = sandbox;
    try {
      s.volumes = await materializeVolumes(pod, podDir, api, { podIP: sandbox.ip, hostIP: '127.0.0.1' }, this.allocatable);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      for (const run of s.containers.values()) run.failed = { reason: e.reason, message: e.message };
      s.volumes = new Map();
    }
    s.hosts = join(podDir, 'hosts');
    writeFileSync(s.hosts, this.hostsFor(pod, sandbox.ip));
  }

  private reader(): ObjectReader & { sources(pod: V1Pod, c: V1Container): Promise<EnvSources> } {
    const kc = this.o.kc;
    const get = <T>(path: string) => call<T>(kc, 'GET', path, undefined, { allow404: true });
    const r = {
      configMap: (ns: string, name: string) => get<V1ConfigMap>(`/api/v1/namespaces/${ns}/configmaps/${name}`),
      secret: (ns: string, name: string) => get<V1Secret>(`/api/v1/namespaces/${ns}/secrets/${name}`),
      claim: (ns: string, name: string) => get<V1PersistentVolumeClaim>(`/api/v1/namespaces/${ns}/persistentvolumeclaims/${name}`),
      volume: (name: string) => get<V1PersistentVolume>(`/api/v1/persistentvolumes/${name}`),
      async token(pod: V1Pod, sa: string, audiences: string[] | undefined, expirationSeconds: number): Promise<string> {
        const ns = pod.metadata?.namespace ?? 'default';
        const body = { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { ...(audiences ? { audiences } : {}), expirationSeconds, boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata?.name, uid: pod.metadata?.uid } } };
        const r = await call<{ status: { token: string } }>(kc, 'POST', `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, body);
        return r!.status.token;
      },
      async sources(pod: V1Pod, c: V1Container): Promise<EnvSources> {
        const ns = pod.metadata?.namespace ?? 'default';
        const cms = new Set<string>();
        const secrets = new Set<string>();
        for (const f of c.envFrom ?? []) {
          if (f.configMapRef?.name) cms.add(f.configMapRef.name);
          if (f.secretRef?.name) secrets.add(f.secretRef.name);
        }
        for (const e of c.env ?? []) {
          if (e.valueFrom?.configMapKeyRef?.name) cms.add(e.valueFrom.configMapKeyRef.name);
          if (e.valueFrom?.secretKeyRef?.name) secrets.add(e.valueFrom.secretKeyRef.name);
        }
        const configMaps = new Map<string, Record<string, string>>();
        const secretMap = new Map<string, Record<string, string>>();
        await Promise.all([
          ...[...cms].map(async (n) => {
            const cm = await r.configMap(ns, n);
            if (cm) configMaps.set(n, { ...cm.data });
          }),
          ...[...secrets].map(async (n) => {
            const s = await r.secret(ns, n);
            if (s) secretMap.set(n, Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')])));
          }),
        ]);
        return { configMaps, secrets: secretMap };
      },
    };
    return r;
  }

  private async startContainer(s: PodState, pod: V1Pod, c: V1Container, run: ContainerRun): Promise<void> {
    try {
      const image = await this.images.resolve(c.image ?? '');
      const sources = await this.reader().sources(pod, c);
      const spec = containerSpec({
        pod,
        container: c,
        restartCount: run.restartCount,
        image,
        volumes: s.volumes ?? new Map(),
        sources,
        ...(s.hosts ? { hostsFile: s.hosts } : {}),
        podIP: s.sandbox!.ip,
        hostIP: '127.0.0.1',
        ...(s.sandbox!.netns ? { netns: s.sandbox!.netns } : {}),
        nodeAllocatable: this.allocatable,
        serviceEnv: this.serviceEnv(),
      });
      const rec = await this.runtime.start(spec);
      run.seen = rec.status.state;
      if (rec.status.state === 'running') this.ensureProbes(s, c, run);
      // Already over: reconcile again for the restart decision (the poll sees no change from here).
      else s.dirty = true;
    } catch (e) {
      const reason = e instanceof ImageError ? e.reason : e instanceof ConfigError ? e.reason : 'StartError';
      this.o.log(`pod ${s.key} container ${c.name}: ${reason}: ${errText(e)}`);
      run.failed = { reason, message: errText(e) };
    }
  }

  private ensureProbes(s: PodState, c: V1Container, run: ContainerRun): void {
    const target = () => {
      const r = this.runtime.get(containerId(s.uid, c.name, run.restartCount));
      if (!r || r.status.state !== 'running') return undefined;
      return { ip: s.sandbox?.ip ?? '127.0.0.1', pid: r.status.pid, env: { ...r.spec.env } };
    };
    if (!c.readinessProbe) {
      run.ready = true;
    } else if (!run.readiness) {
      run.readiness = new Prober(c.readinessProbe, c, target, (ok) => {
        run.ready = ok;
        this.enqueue(s.uid);
      });
      run.readiness.start();
    }
    if (c.livenessProbe && !run.liveness) {
      run.liveness = new Prober(c.livenessProbe, c, target, (ok) => {
        if (ok) return;
        const id = containerId(s.uid, c.name, run.restartCount);
        this.o.log(`pod ${s.key} container ${c.name} failed its liveness probe: restarting it`);
        void this.runtime.stop(id, s.pod.spec?.terminationGracePeriodSeconds ?? 30).then(() => this.enqueue(s.uid));
      });
      run.liveness.start();
    }
  }

  private views(s: PodState, pod: V1Pod): ContainerView[] {
    return (pod.spec?.containers ?? []).map((c) => {
      const run = s.containers.get(c.name)!;
      const record = this.runtime.get(containerId(s.uid, c.name, run.restartCount));
      const previous = run.restartCount > 0 ? this.runtime.get(containerId(s.uid, c.name, run.restartCount - 1)) : undefined;
      let message: string | undefined;
      if (record?.status.state === 'exited' && !record.status.message && record.status.exitCode !== 0 && c.terminationMessagePolicy === 'FallbackToLogsOnError') {
        message = fallbackMessage(tailOf(this.runtime.logFile(record.id), 8192));
      }
      const waiting = run.backoffUntil !== undefined ? { reason: 'CrashLoopBackOff', message: `back-off ${Math.round(restartDelayMs(run.restartCount) / 1000)}s restarting failed container=${c.name} pod=${pod.metadata?.name}` } : undefined;
      return {
        name: c.name,
        image: c.image ?? '',
        restartCount: run.restartCount,
        ...(record ? { record } : {}),
        ...(previous ? { previous } : {}),
        ...(waiting ? { waiting } : {}),
        ...(run.failed ? { failed: run.failed } : {}),
        ...(message !== undefined ? { message } : {}),
        ready: run.ready && record?.status.state === 'running',
      };
    });
  }

  private async writeStatus(s: PodState, pod: V1Pod, force?: 'terminal'): Promise<void> {
    const status = podStatus({ pod, containers: this.views(s, pod), ...(s.sandbox ? { podIP: s.sandbox.ip } : {}), hostIP: '127.0.0.1', startTime: s.startTime, now: new Date() });
    if (force === 'terminal' && status.phase !== 'Succeeded' && status.phase !== 'Failed') {
      const ok = (status.containerStatuses ?? []).every((c) => c.state?.terminated?.exitCode === 0);
      status.phase = ok ? 'Succeeded' : 'Failed';
    }
    const text = JSON.stringify({ ...status, conditions: status.conditions?.map(({ lastTransitionTime: _t, ...c }) => c) });
    if (text === s.lastStatus) return;
    const ns = pod.metadata?.namespace ?? 'default';
    await call(this.o.kc, 'PATCH', `/api/v1/namespaces/${ns}/pods/${pod.metadata?.name}/status`, { metadata: { uid: s.uid }, status }, { contentType: MERGE_PATCH });
    s.lastStatus = text;
  }

  /** A pod marked for deletion: stop its containers within its grace period, post the final status, confirm the delete. */
  private async terminate(s: PodState, pod: V1Pod): Promise<void> {
    if (s.terminated) return;
    const grace = pod.metadata?.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30;
    for (const run of s.containers.values()) {
      stopProbes(run);
      if (run.backoffTimer) clearTimeout(run.backoffTimer);
      run.backoffUntil = undefined;
    }
    await Promise.all(
      [...s.containers.entries()].map(async ([name, run]) => {
        const id = containerId(s.uid, name, run.restartCount);
        if (this.runtime.get(id)?.status.state === 'running') await this.runtime.stop(id, grace);
      }),
    );
    await this.writeStatus(s, pod, 'terminal').catch((e) => this.o.log(`pod ${s.key}: final status: ${errText(e)}`));
    const ns = pod.metadata?.namespace ?? 'default';
    try {
      await call(this.o.kc, 'DELETE', `/api/v1/namespaces/${ns}/pods/${pod.metadata?.name}`, { apiVersion: 'v1', kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid: s.uid } }, { allow404: true });
    } catch (e) {
      // 409: the uid changed (a new pod of that name): ours is gone already.
      if (!(e instanceof ApiError && e.status === 409)) throw e;
    }
    s.terminated = true;
    await this.teardown(s.uid, 0);
  }

  /** Removes everything of a pod on this node: containers (stopped first), sandbox, volumes, records. */
  private async teardown(uid: string, grace: number): Promise<void> {
    const s = this.states.get(uid);
    if (s) {
      s.torn = true;
      for (const run of s.containers.values()) {
        stopProbes(run);
        if (run.backoffTimer) clearTimeout(run.backoffTimer);
      }
    }
    const records = this.runtime.list().filter((r) => r.spec.podUid === uid);
    await Promise.all(records.filter((r) => r.status.state === 'running').map((r) => this.runtime.stop(r.id, grace)));
    for (const r of records) this.runtime.remove(r.id);
    await this.network.removeSandbox(uid);
    rmSync(join(this.o.stateDir, 'pods', uid), { recursive: true, force: true });
    // Keep the state while the pod is still in the cache (with a finalizer): `s.terminated` stops any restart.
    if (!s || ![...this.pods.items.values()].some((p) => p.metadata?.uid === uid)) this.states.delete(uid);
  }

  // --- Services: /etc/hosts of every pod, and the proxy ---

  private networkChanged(): void {
    if (this.stopped) return;
    // Batched: a burst of changes (a run's Services and slices) makes one rewrite.
    this.proxyTimer ??= setTimeout(() => {
      this.proxyTimer = undefined;
      void this.proxy?.sync(this.proxyServices()).catch((e) => this.o.log(`service proxy: ${errText(e)}`));
    }, 100);
    this.hostsTimer ??= setTimeout(() => {
      this.hostsTimer = undefined;
      for (const s of this.states.values()) {
        if (!s.hosts || !s.sandbox || s.torn) continue;
        try {
          // In place (same inode): the file is bind-mounted into the pod's containers.
          writeFileSync(s.hosts, this.hostsFor(s.pod, s.sandbox.ip));
        } catch (e) {
          this.o.log(`pod ${s.key}: rewriting /etc/hosts: ${errText(e)}`);
        }
      }
    }, 100);
  }

  private slicesOf(svc: V1Service): V1EndpointSlice[] {
    const ns = svc.metadata?.namespace;
    const name = svc.metadata?.name;
    return [...this.slices.items.values()].filter((e) => e.metadata?.namespace === ns && e.metadata?.labels?.['kubernetes.io/service-name'] === name);
  }

  /** The pod's /etc/hosts: Services by name (ClusterIP, or a headless Service's ready pods), and its own FQDN. */
  hostsFor(pod: V1Pod, ip: string): string {
    const ns = pod.metadata?.namespace ?? 'default';
    const entries: { ip: string; names: string[] }[] = [];
    for (const svc of this.services.items.values()) {
      const sns = svc.metadata?.namespace ?? 'default';
      const name = svc.metadata?.name ?? '';
      const cip = svc.spec?.clusterIP;
      if (cip && cip !== 'None') {
        entries.push({ ip: cip, names: serviceNames(name, sns, ns) });
        continue;
      }
      const publish = Boolean(svc.spec?.publishNotReadyAddresses);
      for (const sl of this.slicesOf(svc)) {
        for (const ep of sl.endpoints ?? []) {
          if (!publish && ep.conditions?.ready === false) continue;
          for (const a of ep.addresses ?? []) {
            const names = serviceNames(name, sns, ns);
            if (ep.hostname) names.unshift(`${ep.hostname}.${name}.${sns}.svc.cluster.local`, `${ep.hostname}.${name}.${sns}.svc`, `${ep.hostname}.${name}`);
            entries.push({ ip: a, names });
          }
        }
      }
    }
    const sub = pod.spec?.subdomain;
    return hostsFile(entries, { ip, hostname: pod.spec?.hostname ?? pod.metadata?.name ?? '', ...(sub ? { subdomainFqdn: `${sub}.${ns}.svc.cluster.local` } : {}) });
  }

  /** The API server's Service for in-cluster clients (the controller's pod). */
  private serviceEnv(): Record<string, string> {
    const k = this.services.items.get('default/kubernetes');
    const ip = k?.spec?.clusterIP;
    const port = k?.spec?.ports?.find((p) => p.name === 'https')?.port ?? k?.spec?.ports?.[0]?.port;
    if (!ip || !port) return {};
    return { KUBERNETES_SERVICE_HOST: ip, KUBERNETES_SERVICE_PORT: String(port), KUBERNETES_SERVICE_PORT_HTTPS: String(port), KUBERNETES_PORT: `tcp://${ip}:${port}` };
  }

  private proxyServices(): ProxyService[] {
    const out: ProxyService[] = [];
    for (const svc of this.services.items.values()) {
      const cip = svc.spec?.clusterIP;
      if (!cip || cip === 'None' || !/^\d+\.\d+\.\d+\.\d+$/.test(cip)) continue;
      const slices = this.slicesOf(svc);
      const ports = (svc.spec?.ports ?? [])
        .filter((p) => (p.protocol ?? 'TCP') === 'TCP')
        .map((p) => {
          const endpoints: { ip: string; port: number }[] = [];
          for (const sl of slices) {
            const sp = (sl.ports ?? []).find((x) => (x.name ?? '') === (p.name ?? ''));
            const target = sp?.port ?? (typeof p.targetPort === 'number' ? p.targetPort : p.port);
            for (const ep of sl.endpoints ?? []) {
              if (ep.conditions?.ready === false) continue;
              for (const a of ep.addresses ?? []) endpoints.push({ ip: a, port: target });
            }
          }
          return { port: p.port, protocol: 'TCP' as const, endpoints };
        });
      out.push({ clusterIP: cip, ports });
    }
    return out;
  }
}

function stopProbes(run: ContainerRun): void {
  run.readiness?.stop();
  run.liveness?.stop();
  run.readiness = undefined;
  run.liveness = undefined;
}

/** The last `bytes` of a file as text ('' when it does not exist). */
export function tailOf(file: string, bytes: number): string {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const n = Math.min(size, bytes);
    const buf = Buffer.alloc(n);
    readSync(fd, buf, 0, n, size - n);
    return buf.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

export { parseQuantity, readFileSync };
