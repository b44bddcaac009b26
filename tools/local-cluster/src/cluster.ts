/**
 * The embedded local cluster: a real etcd, kube-apiserver, kube-controller-manager and kube-scheduler, with
 * kwok simulating GPU and CPU nodes and their pods, plus a local Pulumi file backend. Everything listens on
 * 127.0.0.1 on free ports and lives under `<root>/.kiln/` (kubeconfig, certificates, data, logs, pid files).
 * This file brings it up, reports on it and takes it down; each part lives in its own module.
 */
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeStages } from './kwok.ts';
import { ensureNodes, ensureVolumes, nodeNames, nodesReady } from './nodes.ts';
import { localNodeReady, ensureLocalNodeAccess } from './local-node.ts';
import { chooseNetwork, kubernetesServiceIP } from './network.ts';
import { COMPONENTS, paths, readState, type ClusterOptions, type Component, type State } from './paths.ts';
import { makeCertificates, makeNodeCertificates, writeKubeconfig, writeNodeKubeconfig } from './pki.ts';
import { freePort, healthz, logTail, runningPid, start, stopAll, waitFor } from './processes.ts';
import { ensurePulumi, pulumiEnv } from './pulumi.ts';
import { ensureToolchain, type BuildProgress, type Toolchain } from './toolchain.ts';

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
    const network = chooseNetwork(p.cluster);
    if (!existsSync(join(p.pki, 'admin.crt'))) makeCertificates(p.pki, kubernetesServiceIP(network.serviceCidr));
    const [etcdClient, etcdPeer, apiserver, controllerManager, scheduler, localNode] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
    state = { ports: { etcdClient: etcdClient!, etcdPeer: etcdPeer!, apiserver: apiserver!, controllerManager: controllerManager!, scheduler: scheduler!, localNode: localNode! }, toolchain: tc.dir, options, network };
    writeFileSync(p.state, JSON.stringify(state, null, 2));
  }
  if (!state.network || !state.ports.localNode) {
    // A cluster from before the local node: its API server serves 10.0.0.0/24 (kept: its Services have those IPs).
    log('this cluster predates the local node: adding it (for a Service CIDR of its own, run `kiln cluster down` and `up` again)');
    const network = { ...chooseNetwork(p.cluster), serviceCidr: '10.0.0.0/24' };
    const upgraded: State = { ...state, ports: { ...state.ports, localNode: state.ports.localNode ?? (await freePort()) }, network };
    state = upgraded;
    writeFileSync(p.state, JSON.stringify(state, null, 2));
  }
  makeNodeCertificates(p.pki);
  writeKubeconfig(p, state.ports.apiserver);
  writeNodeKubeconfig(p, state.ports.apiserver);
  writeStages(p, tc, state.options.jobDurationMs);
  // The client loads here, not at import: `kiln cluster down` and `kiln toolchain` never need it.
  const { apiReady, kubeConfigFrom, readObject } = await import('@kiln/cluster');
  const kc = kubeConfigFrom(p.kubeconfig);
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
        await waitFor('the API server to be ready', p, c, () => apiReady(kc, 2000));
        break;
      case 'kube-controller-manager':
        await waitFor('the controller manager', p, c, () => healthz(state.ports.controllerManager));
        break;
      case 'kube-scheduler':
        await waitFor('the scheduler', p, c, () => healthz(state.ports.scheduler));
        break;
      case 'kwok':
        await ensureNodes(kc, state.options);
        await ensureVolumes(kc, p);
        await waitFor('the simulated nodes to be Ready', p, c, () => nodesReady(kc, nodeNames(state.options)));
        // What the agent reads beyond the Node authorizer's grant (EndpointSlices), before it starts.
        await ensureLocalNodeAccess(kc);
        break;
      case 'local-node':
        await waitFor('the local node to be Ready', p, c, () => localNodeReady(kc));
        break;
    }
  }
  // Pods need the namespace's default service account, which the controller manager creates.
  await waitFor('the default service account', p, 'kube-controller-manager', async () => (await readObject(kc, { apiVersion: 'v1', kind: 'ServiceAccount', name: 'default', namespace: 'default' })) !== undefined);
  const env = pulumiEnv(p, tc);
  if (tc.bins.pulumi) await ensurePulumi(p, tc, env, log);
  return { kubeconfig: p.kubeconfig, started, reused, env: { KUBECONFIG: p.kubeconfig, ...env }, seconds: (Date.now() - t0) / 1000 };
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

/** Each component's pid and health, and the nodes; starts nothing. */
export async function status(root: string): Promise<ClusterStatus> {
  const p = paths(root);
  const state = readState(p);
  if (!state) return { exists: false, healthy: false, kubeconfig: p.kubeconfig, components: [], nodes: [] };
  const server = `https://127.0.0.1:${state.ports.apiserver}`;
  const cluster = await import('@kiln/cluster');
  const kc = existsSync(p.kubeconfig) ? cluster.kubeConfigFrom(p.kubeconfig) : undefined;
  const components: ComponentStatus[] = [];
  for (const c of COMPONENTS) {
    const pid = runningPid(p, c) ?? null;
    let healthy = false;
    if (pid) {
      if (c === 'etcd') healthy = await fetch(`http://127.0.0.1:${state.ports.etcdClient}/health`).then((r) => r.ok, () => false);
      else if (c === 'kube-apiserver') healthy = kc ? await cluster.apiReady(kc, 2000) : false;
      else if (c === 'kube-controller-manager') healthy = await healthz(state.ports.controllerManager);
      else if (c === 'kube-scheduler') healthy = await healthz(state.ports.scheduler);
      else if (c === 'local-node') healthy = state.ports.localNode !== undefined && (await healthz(state.ports.localNode)) && kc !== undefined && (await localNodeReady(kc).catch(() => false));
      else healthy = true;
    }
    components.push({ component: c, pid, running: pid !== null, healthy, ...(pid ? {} : { logTail: logTail(p, c, 10) }) });
  }
  let nodes: ClusterStatus['nodes'] = [];
  if (kc && components.find((c) => c.component === 'kube-apiserver')?.healthy) {
    const items = await cluster.listNodes(kc).catch(() => []);
    nodes = items.map((n) => ({
      name: n.metadata?.name ?? '',
      ready: cluster.nodeReady(n),
      gpus: n.status?.allocatable?.['nvidia.com/gpu'] ?? n.status?.allocatable?.['amd.com/gpu'] ?? '0',
    }));
  }
  return { exists: true, healthy: components.every((c) => c.healthy), kubeconfig: p.kubeconfig, server, components, nodes };
}

/** Stops exactly the processes `up` started (by pid file) and removes the cluster's data. */
export async function down(root: string, log: BuildProgress): Promise<Component[]> {
  const p = paths(root);
  const running = [...COMPONENTS].reverse().flatMap((c) => {
    const pid = runningPid(p, c);
    return pid ? [{ c, pid }] : [];
  });
  // The agent first (its pods outlive it by design), then every pod process of the node and its network.
  await stopAll(running.filter((x) => x.c === 'local-node'), log);
  const state = readState(p);
  if (state?.network && existsSync(p.node)) {
    const { cleanupNode } = await import('@kiln/local-node');
    const n = await cleanupNode({ stateDir: p.node, networkName: state.network.name, podCidr: state.network.podCidr }).catch((e: Error) => {
      log(`stopping the local node's pods failed: ${e.message}`);
      return 0;
    });
    if (n) log(`stopped the local node's ${n} container(s) and removed its network`);
  }
  // Everything but etcd at once (each takes a second or two to shut down); etcd last, since the API server
  // blocks its own shutdown on it.
  await stopAll(running.filter((x) => x.c !== 'etcd' && x.c !== 'local-node'), log);
  await stopAll(running.filter((x) => x.c === 'etcd'), log);
  rmSync(p.cluster, { recursive: true, force: true });
  rmSync(join(p.home, 'pulumi'), { recursive: true, force: true });
  return running.map(({ c }) => c);
}
