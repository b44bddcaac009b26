/** Supervision of the cluster's processes: free ports, start (detached, logging to a file), pid files, health, stop. */
import { closeSync, existsSync, openSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { request } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClusterError, type Component, type Paths, type State } from './paths.ts';
import { alive, type BuildProgress, type Toolchain } from './toolchain.ts';

export async function freePort(): Promise<number> {
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

function pidFile(p: Paths, c: Component): string {
  return join(p.pids, `${c}.pid`);
}

/** The pid of a component we started, if that process is still ours and alive. */
export function runningPid(p: Paths, c: Component): number | undefined {
  const f = pidFile(p, c);
  if (!existsSync(f)) return undefined;
  const pid = Number(readFileSync(f, 'utf8'));
  if (!Number.isFinite(pid) || !alive(pid)) return undefined;
  // A recycled pid belongs to someone else: only claim it if it runs the component's binary (the local node:
  // Node running the agent's bin).
  try {
    if (c === 'local-node') {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').some((a) => a.endsWith('/kiln-local-node.js'))) return undefined;
    } else if (!readlinkSync(`/proc/${pid}/exe`).endsWith(`/${c}`)) return undefined;
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

/** The agent's entry point (@kiln/local-node's bin), run by this Node. */
const LOCAL_NODE_BIN = fileURLToPath(new URL('../../local-node/bin/kiln-local-node.js', import.meta.url));

/** Seconds a lost node's pods stay bound (the API server's default tolerations of not-ready/unreachable); Kubernetes' 300 s would hold a lost pod for five minutes on a one-node machine. */
export const LOST_NODE_TOLERATION_SECONDS = 15;
/** How long the node controller waits for a heartbeat before it marks a node NotReady (Kubernetes: 40 s; the agent renews every 10 s). */
export const NODE_MONITOR_GRACE = '20s';

export function commandFor(c: Component, p: Paths, s: State, tc: Toolchain): string[] {
  const pki = (f: string) => join(p.pki, f);
  const kc = p.kubeconfig;
  const serviceCidr = s.network?.serviceCidr ?? '10.0.0.0/24';
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
        `--service-cluster-ip-range=${serviceCidr}`, '--allow-privileged=true', `--cert-dir=${p.pki}`, '--profiling=false', '--v=1',
        // The local node's kubelet API (logs): reached at its InternalIP, with a client certificate it trusts.
        `--kubelet-client-certificate=${pki('apiserver-kubelet-client.crt')}`, `--kubelet-client-key=${pki('apiserver-kubelet-client.key')}`,
        `--kubelet-certificate-authority=${pki('ca.crt')}`, '--kubelet-preferred-address-types=InternalIP,Hostname',
        `--default-not-ready-toleration-seconds=${LOST_NODE_TOLERATION_SECONDS}`, `--default-unreachable-toleration-seconds=${LOST_NODE_TOLERATION_SECONDS}`,
      ];
    case 'kube-controller-manager':
      return [
        tc.bins['kube-controller-manager']!, `--kubeconfig=${kc}`, `--authentication-kubeconfig=${kc}`, `--authorization-kubeconfig=${kc}`,
        '--leader-elect=false', `--service-account-private-key-file=${pki('sa.key')}`, `--root-ca-file=${pki('ca.crt')}`,
        '--use-service-account-credentials=true', `--service-cluster-ip-range=${serviceCidr}`, '--bind-address=127.0.0.1',
        `--node-monitor-grace-period=${NODE_MONITOR_GRACE}`,
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
    case 'local-node': {
      const net = s.network;
      if (!net || !s.ports.localNode) throw new ClusterError('this cluster has no local node network in its state.json', 'run `kiln cluster up` again (it adds one)');
      return [
        process.execPath, LOCAL_NODE_BIN, `--kubeconfig=${p.nodeKubeconfig}`, `--state-dir=${p.node}`, `--pod-cidr=${net.podCidr}`,
        `--network-name=${net.name}`, `--port=${s.ports.localNode}`, `--tls-cert=${pki('kubelet.crt')}`, `--tls-key=${pki('kubelet.key')}`, `--client-ca=${pki('ca.crt')}`,
      ];
    }
  }
}

export function start(c: Component, p: Paths, s: State, tc: Toolchain): number {
  const [bin, ...args] = commandFor(c, p, s, tc);
  const fd = openSync(join(p.logs, `${c}.log`), 'a');
  const child = spawn(bin!, args, { detached: true, stdio: ['ignore', fd, fd], cwd: p.cluster });
  closeSync(fd);
  if (child.pid === undefined) throw new ClusterError(`could not start ${c} (${bin})`);
  child.unref();
  writeFileSync(pidFile(p, c), String(child.pid));
  return child.pid;
}

export async function waitFor(what: string, p: Paths, c: Component, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    if (await check().catch(() => false)) return;
    if (!runningPid(p, c)) throw new ClusterError(`${c} exited while starting`, `last lines of ${join(p.logs, `${c}.log`)}:\n${logTail(p, c)}`);
    if (Date.now() - t0 > timeoutMs) throw new ClusterError(`timed out after ${timeoutMs / 1000}s waiting for ${what}`, `last lines of ${join(p.logs, `${c}.log`)}:\n${logTail(p, c)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** GETs an https health endpoint of a component that serves a self-signed certificate on loopback (not the Kubernetes API). */
export function healthz(port: number, path = '/healthz', timeoutMs = 2000): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, rejectUnauthorized: false, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

export async function stopAll(procs: { c: Component; pid: number }[], log: BuildProgress): Promise<void> {
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

