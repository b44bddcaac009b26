/**
 * The embedded local cluster: a real etcd, kube-apiserver, kube-controller-manager and kube-scheduler, with
 * kwok simulating GPU and CPU nodes and their pods, plus a local Pulumi file backend. Everything listens on
 * 127.0.0.1 on free ports and lives under `<root>/.kiln/` (kubeconfig, certificates, data, logs, pid files).
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, readlinkSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, dirname, join } from 'node:path';
import { LABELS, MANAGED_BY } from '@kiln/k8s';
import { GPUS, type GpuType } from '@kiln/spec';
import { parseAllDocuments, stringify } from 'yaml';
import { kube, healthz, type KubeAuth } from './kube-http.ts';
import { alive, ensureToolchain, readVersions, type BuildProgress, type Toolchain } from './toolchain.ts';

export interface ClusterOptions {
  /** Directory holding `.kiln/`; defaults to the current directory. */
  readonly root: string;
  readonly gpuNodes: number;
  readonly gpusPerNode: number;
  readonly gpuType: GpuType;
  readonly cpuNodes: number;
  /** How long a Job's pod runs before kwok marks it Succeeded, ms (pods may override with an annotation). */
  readonly jobDurationMs: number;
}

export const DEFAULTS: Omit<ClusterOptions, 'root'> = { gpuNodes: 4, gpusPerNode: 8, gpuType: 'h100-80gb', cpuNodes: 2, jobDurationMs: 2000 };

/** Components in start order; `down` stops them in reverse. */
export const COMPONENTS = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok'] as const;
export type Component = (typeof COMPONENTS)[number];

export interface State {
  readonly ports: Record<'etcdClient' | 'etcdPeer' | 'apiserver' | 'controllerManager' | 'scheduler', number>;
  readonly toolchain: string;
  readonly options: Omit<ClusterOptions, 'root'>;
}

export interface Paths {
  readonly home: string;
  readonly cluster: string;
  readonly pki: string;
  readonly logs: string;
  readonly pids: string;
  readonly kubeconfig: string;
  readonly state: string;
  readonly pulumiState: string;
  readonly pulumiHome: string;
}

export function paths(root: string): Paths {
  const home = join(root, '.kiln');
  const cluster = join(home, 'cluster');
  return {
    home,
    cluster,
    pki: join(cluster, 'pki'),
    logs: join(cluster, 'logs'),
    pids: join(cluster, 'pids'),
    kubeconfig: join(cluster, 'kubeconfig'),
    state: join(cluster, 'state.json'),
    pulumiState: join(home, 'pulumi', 'state'),
    pulumiHome: join(home, 'pulumi', 'home'),
  };
}

export class ClusterError extends Error {
  readonly detail: string | undefined;
  constructor(message: string, detail?: string) {
    super(message);
    this.detail = detail;
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new ClusterError(`openssl ${args[0]} failed`, r.stderr);
}

/** A CA, the API server's serving certificate, an admin client certificate and the service-account key. */
function makeCertificates(pki: string): void {
  mkdirSync(pki, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3650', '-subj', '/CN=kiln-local-ca'], pki);
  const sign = (name: string, subject: string, ext: string) => {
    openssl(['req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], pki);
    writeFileSync(join(pki, `${name}.ext`), ext);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '3650', '-extfile', `${name}.ext`], pki);
  };
  sign('apiserver', '/CN=kube-apiserver', 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n');
  sign('admin', '/O=system:masters/CN=kiln-admin', 'extendedKeyUsage=clientAuth\n');
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'sa.key'], pki);
  openssl(['ec', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], pki);
}

function writeKubeconfig(p: Paths, port: number): void {
  const b64 = (f: string) => readFileSync(join(p.pki, f)).toString('base64');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'kiln-local', cluster: { server: `https://127.0.0.1:${port}`, 'certificate-authority-data': b64('ca.crt') } }],
    users: [{ name: 'kiln-admin', user: { 'client-certificate-data': b64('admin.crt'), 'client-key-data': b64('admin.key') } }],
    contexts: [{ name: 'kiln-local', context: { cluster: 'kiln-local', user: 'kiln-admin' } }],
    'current-context': 'kiln-local',
  };
  writeFileSync(p.kubeconfig, stringify(config), { mode: 0o600 });
}

/** The recorded state of the cluster under `p` (ports, options); undefined when there is none. */
export function readState(p: Paths): State | undefined {
  return existsSync(p.state) ? (JSON.parse(readFileSync(p.state, 'utf8')) as State) : undefined;
}

/** Admin credentials for the cluster under `root`; throws when there is no cluster there. */
export function clusterAuth(root: string): KubeAuth {
  const p = paths(root);
  const state = readState(p);
  if (!state) throw new ClusterError(`no local cluster in ${p.cluster}`, 'start one with `kiln cluster up`');
  return auth(p, state.ports.apiserver);
}

export function auth(p: Paths, port: number): KubeAuth {
  return {
    server: `https://127.0.0.1:${port}`,
    ca: readFileSync(join(p.pki, 'ca.crt'), 'utf8'),
    cert: readFileSync(join(p.pki, 'admin.crt'), 'utf8'),
    key: readFileSync(join(p.pki, 'admin.key'), 'utf8'),
  };
}

/**
 * How a simulated Job pod ends: with the exit code and termination message its annotations ask for (the
 * controller's simulation sets them per stage and attempt), else exit 0 and no message. `pod-complete.stage.
 * kwok.x-k8s.io/delay` (a Go duration) overrides how long it runs.
 */
export const SIM_ANNOTATIONS = { exitCode: 'kiln.dev/sim-exit-code', message: 'kiln.dev/sim-message', duration: 'pod-complete.stage.kwok.x-k8s.io/delay' } as const;
/** A kwok status template that ends every container of a pod (`terminated`) and sets the pod's phase. */
function endPod(t: { vars?: string; exitCode: string; reason: string; message: string; phase: string }): string {
  return `{{ $now := Now }}
{{ $root := . }}
${t.vars ?? ''}
containerStatuses:
{{ range $index, $item := .spec.containers }}
- image: {{ $item.image | Quote }}
  name: {{ $item.name | Quote }}
  ready: false
  restartCount: 0
  started: false
  state:
    terminated:
      exitCode: ${t.exitCode}
      finishedAt: {{ $now | Quote }}
      reason: ${t.reason}
      message: ${t.message}
      startedAt: {{ $root.status.startTime | default $now | Quote }}
{{ end }}
phase: ${t.phase}
`;
}

const SIMULATED_EXIT = endPod({
  vars: `{{ $a := .metadata.annotations | default dict }}
{{ $code := get $a "${SIM_ANNOTATIONS.exitCode}" | default "0" }}
{{ $msg := get $a "${SIM_ANNOTATIONS.message}" }}`,
  exitCode: '{{ $code }}',
  reason: '{{ if eq $code "0" }}Completed{{ else }}Error{{ end }}',
  message: '{{ $msg | Quote }}',
  phase: '{{ if eq $code "0" }}Succeeded{{ else }}Failed{{ end }}',
});

/** A deleted (or evicted) pod of a Job ends Failed with exit 137, as the kubelet would end it. */
const POD_TERMINATE = {
  apiVersion: 'kwok.x-k8s.io/v1alpha1',
  kind: 'Stage',
  metadata: { name: 'kiln-pod-terminate' },
  spec: {
    resourceRef: { apiGroup: 'v1', kind: 'Pod' },
    selector: {
      matchExpressions: [
        { key: '.metadata.deletionTimestamp', operator: 'Exists' },
        { key: '.status.phase', operator: 'In', values: ['Running', 'Pending'] },
        { key: '.metadata.ownerReferences.[].kind', operator: 'In', values: ['Job'] },
      ],
    },
    next: {
      statusTemplate: endPod({ exitCode: '137', reason: 'Error', message: '"terminated: the pod was deleted"', phase: 'Failed' }),
    },
  },
};

/** kwok stages: node set-up and heartbeats, pods Ready when scheduled, Job pods end after a delay. */
function writeStages(p: Paths, tc: Toolchain, jobDurationMs: number): string {
  const stage = join(tc.dir, 'share', 'kwok', 'stage');
  const files = ['node/fast/node-initialize.yaml', 'node/heartbeat-with-lease/node-heartbeat-with-lease.yaml', 'pod/fast/pod-ready.yaml', 'pod/general/pod-complete.yaml', 'pod/fast/pod-delete.yaml'];
  const docs = files.flatMap((f) => parseAllDocuments(readFileSync(join(stage, f), 'utf8')).map((d) => d.toJS() as Record<string, unknown>));
  for (const d of docs) {
    const meta = d.metadata as { name: string };
    const spec = d.spec as { delay?: { durationMilliseconds?: number; jitterDurationMilliseconds?: number; durationFrom?: unknown; jitterDurationFrom?: unknown } };
    if (meta.name === 'pod-complete' && spec.delay) {
      // kwok waits min(duration, jitter) when jitter ≤ duration: a jitter of 0 would end pods at once. Equal
      // values (from the same annotation, when a pod has it) give exactly the duration.
      spec.delay.durationMilliseconds = jobDurationMs;
      spec.delay.jitterDurationMilliseconds = jobDurationMs;
      spec.delay.jitterDurationFrom = spec.delay.durationFrom;
      (spec as { next: { statusTemplate: string } }).next.statusTemplate = SIMULATED_EXIT;
    } else if (meta.name === 'pod-delete') {
      // A pod a Job still tracks (finalizer) is not deleted outright: kiln-pod-terminate ends it first, as a
      // kubelet would, so the Job controller sees the failure (and its DisruptionTarget, on eviction).
      const sel = (d.spec as { selector: { matchExpressions: unknown[] } }).selector;
      sel.matchExpressions.push({ key: '.metadata.finalizers', operator: 'DoesNotExist' });
    } else if (meta.name === 'pod-ready' && spec.delay) {
      spec.delay.durationMilliseconds = 0;
      spec.delay.jitterDurationMilliseconds = 0;
    }
  }
  docs.push(POD_TERMINATE);
  const out = join(p.cluster, 'kwok-stages.yaml');
  writeFileSync(out, docs.map((d) => stringify(d)).join('---\n'));
  return out;
}

function pidFile(p: Paths, c: Component): string {
  return join(p.pids, `${c}.pid`);
}

/** The pid of a component we started, if that process is still ours and alive. */
export function runningPid(p: Paths, c: Component): number | undefined {
  const f = pidFile(p, c);
  if (!existsSync(f)) return undefined;
  const pid = Number(readFileSync(f, 'utf8'));
  if (!Number.isFinite(pid) || !alive(pid)) return undefined;
  // A recycled pid belongs to someone else: only claim it if it runs the component's binary.
  try {
    if (!readlinkSync(`/proc/${pid}/exe`).endsWith(`/${c}`)) return undefined;
  } catch {
    /* no /proc: trust the pid file */
  }
  return pid;
}

export function logTail(p: Paths, c: Component, lines = 20): string {
  const f = join(p.logs, `${c}.log`);
  if (!existsSync(f)) return '(no log)';
  return readFileSync(f, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

function commandFor(c: Component, p: Paths, s: State, tc: Toolchain): string[] {
  const pki = (f: string) => join(p.pki, f);
  const kc = p.kubeconfig;
  switch (c) {
    case 'etcd':
      return [
        tc.bins.etcd!, '--name=kiln', `--data-dir=${join(p.cluster, 'etcd')}`,
        `--listen-client-urls=http://127.0.0.1:${s.ports.etcdClient}`, `--advertise-client-urls=http://127.0.0.1:${s.ports.etcdClient}`,
        `--listen-peer-urls=http://127.0.0.1:${s.ports.etcdPeer}`, `--initial-advertise-peer-urls=http://127.0.0.1:${s.ports.etcdPeer}`,
        `--initial-cluster=kiln=http://127.0.0.1:${s.ports.etcdPeer}`, '--unsafe-no-fsync=true', '--log-level=warn',
      ];
    case 'kube-apiserver':
      return [
        tc.bins['kube-apiserver']!, `--etcd-servers=http://127.0.0.1:${s.ports.etcdClient}`, '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1',
        `--secure-port=${s.ports.apiserver}`, `--tls-cert-file=${pki('apiserver.crt')}`, `--tls-private-key-file=${pki('apiserver.key')}`,
        `--client-ca-file=${pki('ca.crt')}`, '--authorization-mode=Node,RBAC', '--service-account-issuer=https://kubernetes.default.svc',
        `--service-account-key-file=${pki('sa.pub')}`, `--service-account-signing-key-file=${pki('sa.key')}`,
        '--service-cluster-ip-range=10.0.0.0/24', '--allow-privileged=true', `--cert-dir=${p.pki}`, '--profiling=false', '--v=1',
      ];
    case 'kube-controller-manager':
      return [
        tc.bins['kube-controller-manager']!, `--kubeconfig=${kc}`, `--authentication-kubeconfig=${kc}`, `--authorization-kubeconfig=${kc}`,
        '--leader-elect=false', `--service-account-private-key-file=${pki('sa.key')}`, `--root-ca-file=${pki('ca.crt')}`,
        '--use-service-account-credentials=true', '--service-cluster-ip-range=10.0.0.0/24', '--bind-address=127.0.0.1',
        `--secure-port=${s.ports.controllerManager}`, '--profiling=false', '--v=1',
        // Client-side rate limits (20 QPS per controller by default) would pace the Job controller, not the
        // machine: a few hundred stage Jobs took minutes. kwokctl lifts them the same way.
        '--kube-api-qps=5000', '--kube-api-burst=10000', '--concurrent-job-syncs=20',
      ];
    case 'kube-scheduler':
      return [
        tc.bins['kube-scheduler']!, `--kubeconfig=${kc}`, `--authentication-kubeconfig=${kc}`, `--authorization-kubeconfig=${kc}`,
        '--leader-elect=false', '--bind-address=127.0.0.1', `--secure-port=${s.ports.scheduler}`, '--profiling=false', '--v=1',
        '--kube-api-qps=5000', '--kube-api-burst=10000',
      ];
    case 'kwok':
      return [
        tc.bins.kwok!, `--kubeconfig=${kc}`, '--manage-all-nodes=false', '--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake',
        '--manage-nodes-with-label-selector=', '--manage-single-node=', '--cidr=10.244.0.0/16', '--node-ip=10.0.0.1',
        '--node-lease-duration-seconds=40', `--config=${join(p.cluster, 'kwok-stages.yaml')}`,
      ];
  }
}

function start(c: Component, p: Paths, s: State, tc: Toolchain): number {
  const [bin, ...args] = commandFor(c, p, s, tc);
  const fd = openSync(join(p.logs, `${c}.log`), 'a');
  const child = spawn(bin!, args, { detached: true, stdio: ['ignore', fd, fd], cwd: p.cluster });
  closeSync(fd);
  if (child.pid === undefined) throw new ClusterError(`could not start ${c} (${bin})`);
  child.unref();
  writeFileSync(pidFile(p, c), String(child.pid));
  return child.pid;
}

async function waitFor(what: string, p: Paths, c: Component, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    if (await check().catch(() => false)) return;
    if (!runningPid(p, c)) throw new ClusterError(`${c} exited while starting`, `last lines of ${join(p.logs, `${c}.log`)}:\n${logTail(p, c)}`);
    if (Date.now() - t0 > timeoutMs) throw new ClusterError(`timed out after ${timeoutMs / 1000}s waiting for ${what}`, `last lines of ${join(p.logs, `${c}.log`)}:\n${logTail(p, c)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A node that kwok manages (by its annotation), created with its capacity already in its status. */
function simulatedNode(name: string, labels: Record<string, string>, capacity: Record<string, string>): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
      labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', type: 'kwok', ...labels },
    },
    status: { capacity, allocatable: capacity },
  };
}

function gpuNode(name: string, o: Omit<ClusterOptions, 'root'>): unknown {
  const gpu = GPUS[o.gpuType];
  return simulatedNode(
    name,
    { [LABELS.pool]: 'gpu', [LABELS.gpuType]: o.gpuType, 'nvidia.com/gpu.product': gpu.product, 'nvidia.com/gpu.count': String(o.gpusPerNode) },
    { cpu: '96', memory: '1000Gi', pods: '110', 'ephemeral-storage': '2Ti', [gpu.resource]: String(o.gpusPerNode) },
  );
}

function cpuNode(name: string): unknown {
  return simulatedNode(name, { [LABELS.pool]: 'cpu' }, { cpu: '32', memory: '128Gi', pods: '110', 'ephemeral-storage': '500Gi' });
}

export function nodeNames(o: Omit<ClusterOptions, 'root'>): string[] {
  return [...Array.from({ length: o.gpuNodes }, (_, i) => `kiln-gpu-${i}`), ...Array.from({ length: o.cpuNodes }, (_, i) => `kiln-cpu-${i}`)];
}

async function ensureNodes(a: KubeAuth, o: Omit<ClusterOptions, 'root'>): Promise<void> {
  const wanted = nodeNames(o);
  for (const name of wanted) {
    const r = await kube(a, 'GET', `/api/v1/nodes/${name}`);
    if (r.status === 200) continue;
    const node = name.startsWith('kiln-gpu') ? gpuNode(name, o) : cpuNode(name);
    const c = await kube(a, 'POST', '/api/v1/nodes', node);
    if (c.status !== 201 && c.status !== 409) throw new ClusterError(`creating node ${name} failed (HTTP ${c.status})`, JSON.stringify(c.body));
  }
}

/** Static volumes for `pvc://` storage: the local cluster has no provisioner, so claims bind to these. */
export const LOCAL_VOLUMES = 16;

async function ensureVolumes(a: KubeAuth, p: Paths): Promise<void> {
  for (let i = 0; i < LOCAL_VOLUMES; i++) {
    const name = `kiln-local-pv-${i}`;
    const r = await kube(a, 'GET', `/api/v1/persistentvolumes/${name}`);
    if (r.status === 404) {
      const pv = {
        apiVersion: 'v1',
        kind: 'PersistentVolume',
        metadata: { name, labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.localVolume]: 'true' } },
        spec: {
          capacity: { storage: '1Ti' },
          accessModes: ['ReadWriteOnce', 'ReadWriteMany', 'ReadOnlyMany'],
          persistentVolumeReclaimPolicy: 'Retain',
          storageClassName: '',
          hostPath: { path: join(p.cluster, 'volumes', String(i)), type: 'DirectoryOrCreate' },
        },
      };
      const c = await kube(a, 'POST', '/api/v1/persistentvolumes', pv);
      if (c.status !== 201 && c.status !== 409) throw new ClusterError(`creating volume ${name} failed (HTTP ${c.status})`, JSON.stringify(c.body));
    } else if ((r.body as { status?: { phase?: string } }).status?.phase === 'Released') {
      // Its claim was deleted: make it available again (a manual recycle).
      await kube(a, 'PATCH', `/api/v1/persistentvolumes/${name}`, { spec: { claimRef: null } }, 10_000, 'application/merge-patch+json');
    }
  }
}

async function nodesReady(a: KubeAuth, names: string[]): Promise<boolean> {
  const r = await kube(a, 'GET', '/api/v1/nodes?labelSelector=type%3Dkwok');
  const items = (r.body as { items?: { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } }[] }).items ?? [];
  const ready = new Set(items.filter((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).map((n) => n.metadata.name));
  return names.every((n) => ready.has(n));
}

export interface UpResult {
  readonly kubeconfig: string;
  readonly started: Component[];
  readonly reused: Component[];
  readonly env: Record<string, string>;
  readonly seconds: number;
}

/** Brings the cluster up, starting only what is not already running (idempotent). */
export async function up(opts: ClusterOptions, log: BuildProgress, toolchain?: Toolchain): Promise<UpResult> {
  const t0 = Date.now();
  const tc = toolchain ?? (await ensureToolchain(log));
  const p = paths(opts.root);
  for (const d of [p.cluster, p.logs, p.pids]) mkdirSync(d, { recursive: true });
  const { root: _root, ...options } = opts;
  let state = readState(p);
  if (state) {
    if (JSON.stringify(state.options) !== JSON.stringify(options)) {
      log(`this cluster was created with ${JSON.stringify(state.options)}; keeping that (run \`kiln cluster down\` first to change nodes or job duration)`);
    }
  } else {
    if (!existsSync(join(p.pki, 'admin.crt'))) makeCertificates(p.pki);
    const [etcdClient, etcdPeer, apiserver, controllerManager, scheduler] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    state = { ports: { etcdClient: etcdClient!, etcdPeer: etcdPeer!, apiserver: apiserver!, controllerManager: controllerManager!, scheduler: scheduler! }, toolchain: tc.dir, options };
    writeFileSync(p.state, JSON.stringify(state, null, 2));
  }
  writeKubeconfig(p, state.ports.apiserver);
  writeStages(p, tc, state.options.jobDurationMs);
  const a = auth(p, state.ports.apiserver);
  const started: Component[] = [];
  const reused: Component[] = [];
  for (const c of COMPONENTS) {
    if (runningPid(p, c)) {
      reused.push(c);
    } else {
      log(`starting ${c}`);
      start(c, p, state, tc);
      started.push(c);
    }
    switch (c) {
      case 'etcd':
        await waitFor('etcd', p, c, async () => (await fetch(`http://127.0.0.1:${state.ports.etcdClient}/health`)).ok);
        break;
      case 'kube-apiserver':
        await waitFor('the API server to be ready', p, c, async () => (await kube(a, 'GET', '/readyz', undefined, 2000)).status === 200);
        break;
      case 'kube-controller-manager':
        await waitFor('the controller manager', p, c, () => healthz(state.ports.controllerManager));
        break;
      case 'kube-scheduler':
        await waitFor('the scheduler', p, c, () => healthz(state.ports.scheduler));
        break;
      case 'kwok':
        await ensureNodes(a, state.options);
        await ensureVolumes(a, p);
        await waitFor('the simulated nodes to be Ready', p, c, () => nodesReady(a, nodeNames(state.options)));
        break;
    }
  }
  // Pods need the namespace's default service account, which the controller manager creates.
  await waitFor('the default service account', p, 'kube-controller-manager', async () => (await kube(a, 'GET', '/api/v1/namespaces/default/serviceaccounts/default')).status === 200);
  const env = pulumiEnv(p, tc);
  if (tc.bins.pulumi) await ensurePulumi(p, tc, env, log);
  return { kubeconfig: p.kubeconfig, started, reused, env: { KUBECONFIG: p.kubeconfig, ...env }, seconds: (Date.now() - t0) / 1000 };
}

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

async function ensurePulumi(p: Paths, tc: Toolchain, env: Record<string, string>, log: BuildProgress): Promise<void> {
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

export interface ComponentStatus {
  readonly component: Component;
  readonly pid: number | null;
  readonly running: boolean;
  readonly healthy: boolean;
  readonly logTail?: string;
}

export interface ClusterStatus {
  readonly exists: boolean;
  readonly healthy: boolean;
  readonly kubeconfig: string;
  readonly server?: string;
  readonly components: ComponentStatus[];
  readonly nodes: { name: string; ready: boolean; gpus: string }[];
}

export async function status(root: string): Promise<ClusterStatus> {
  const p = paths(root);
  const state = readState(p);
  if (!state) return { exists: false, healthy: false, kubeconfig: p.kubeconfig, components: [], nodes: [] };
  const a = auth(p, state.ports.apiserver);
  const components: ComponentStatus[] = [];
  for (const c of COMPONENTS) {
    const pid = runningPid(p, c) ?? null;
    let healthy = false;
    if (pid) {
      if (c === 'etcd') healthy = await fetch(`http://127.0.0.1:${state.ports.etcdClient}/health`).then((r) => r.ok, () => false);
      else if (c === 'kube-apiserver') healthy = await kube(a, 'GET', '/readyz', undefined, 2000).then((r) => r.status === 200, () => false);
      else if (c === 'kube-controller-manager') healthy = await healthz(state.ports.controllerManager);
      else if (c === 'kube-scheduler') healthy = await healthz(state.ports.scheduler);
      else healthy = true;
    }
    components.push({ component: c, pid, running: pid !== null, healthy, ...(pid ? {} : { logTail: logTail(p, c, 10) }) });
  }
  let nodes: ClusterStatus['nodes'] = [];
  if (components.find((c) => c.component === 'kube-apiserver')?.healthy) {
    const r = await kube(a, 'GET', '/api/v1/nodes').catch(() => undefined);
    const items = ((r?.body as { items?: { metadata: { name: string }; status?: { allocatable?: Record<string, string>; conditions?: { type: string; status: string }[] } }[] })?.items ?? []);
    nodes = items.map((n) => ({
      name: n.metadata.name,
      ready: Boolean(n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')),
      gpus: n.status?.allocatable?.['nvidia.com/gpu'] ?? n.status?.allocatable?.['amd.com/gpu'] ?? '0',
    }));
  }
  return { exists: true, healthy: components.every((c) => c.healthy), kubeconfig: p.kubeconfig, server: a.server, components, nodes };
}

async function stopAll(procs: { c: Component; pid: number }[], log: BuildProgress): Promise<void> {
  for (const { c, pid } of procs) {
    log(`stopping ${c} (pid ${pid})`);
    process.kill(pid, 'SIGTERM');
  }
  const t0 = Date.now();
  while (procs.some(({ pid }) => alive(pid)) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 100));
  for (const { c, pid } of procs) {
    if (alive(pid)) {
      log(`${c} (pid ${pid}) ignored SIGTERM for 10s; killing it`);
      process.kill(pid, 'SIGKILL');
    }
  }
}

/** Stops exactly the processes `up` started (by pid file) and removes the cluster's data. */
export async function down(root: string, log: BuildProgress): Promise<Component[]> {
  const p = paths(root);
  const running = [...COMPONENTS].reverse().flatMap((c) => {
    const pid = runningPid(p, c);
    return pid ? [{ c, pid }] : [];
  });
  // Everything but etcd at once (each takes a second or two to shut down); etcd last, since the API server
  // blocks its own shutdown on it.
  await stopAll(running.filter((x) => x.c !== 'etcd'), log);
  await stopAll(running.filter((x) => x.c === 'etcd'), log);
  rmSync(p.cluster, { recursive: true, force: true });
  rmSync(join(p.home, 'pulumi'), { recursive: true, force: true });
  return running.map(({ c }) => c);
}
