/**
 * The local execution node in a real cluster brought up by `up()` in a temporary root: a Job runs on it for
 * real (its ConfigMap at /etc/kiln/stage.json, a termination message, logs through the API server), a memory
 * limit OOM-kills, deletion sends SIGTERM, an image it cannot run fails the pod, and a kill -9 of the agent while a
 * pod runs neither loses the pod nor starts it twice. Needs root and cgroup v1 (as CI runs here).
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { KubeConfig, KubernetesObject, V1Pod } from '@kubernetes/client-node';
import { createIfAbsent, readObject, readPodLog, requestRaw } from '@kiln/cluster';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive, clusterKubeConfig, DEFAULTS, down, paths, readState, runningPid, up } from '../src/index.ts';

const root = mkdtempSync(join(tmpdir(), 'kiln-local-node-'));
const shared = join(root, 'shared');
const NS = 'default';
let kc: KubeConfig;

function needRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('the local node test needs root (it makes cgroups, network namespaces and mounts): run it as root');
  if (!existsSync('/sys/fs/cgroup/memory')) throw new Error('the local node test needs cgroup v1 memory at /sys/fs/cgroup/memory (see docs/local-node.md)');
}

async function until<T>(what: string, f: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const local = { nodeSelector: { 'kiln.dev/pool': 'local' }, tolerations: [{ key: 'kiln.dev/local', operator: 'Exists', effect: 'NoSchedule' }] };
const volume = { name: 'shared', hostPath: { path: shared, type: 'DirectoryOrCreate' } };

const podOf = (name: string, command: string, extra: Record<string, unknown> = {}, container: Record<string, unknown> = {}): KubernetesObject =>
  ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS }, spec: { restartPolicy: 'Never', ...local, volumes: [volume], ...extra, containers: [{ name: 'main', image: 'kiln/data-prep:0.1.0', command: ['sh', '-c', command], volumeMounts: [{ name: 'shared', mountPath: '/shared' }], ...container }] } }) as KubernetesObject;

/** Pids whose command line is exactly `cmdline` (NUL-separated, as /proc has it). */
const processesOf = (cmdline: string): string[] =>
  readdirSync('/proc').filter((d) => {
    if (!/^\d+$/.test(d)) return false;
    try {
      return readFileSync(`/proc/${d}/cmdline`, 'utf8') === cmdline;
    } catch {
      return false;
    }
  });

const getPod = (name: string) => readObject<V1Pod>(kc, { apiVersion: 'v1', kind: 'Pod', name, namespace: NS });
const terminated = async (name: string) => (await getPod(name))?.status?.containerStatuses?.[0]?.state?.terminated ?? undefined;

beforeAll(async () => {
  needRoot();
  await up({ root, ...DEFAULTS, gpuNodes: 0, cpuNodes: 0 }, () => {});
  kc = await clusterKubeConfig(root);
}, 240_000);

afterAll(async () => {
  await down(root, () => {}).catch(() => {});
  rmSync(root, { recursive: true, force: true });
}, 120_000);

describe('the local node', () => {
  it('is registered Ready with its labels, taint and kubelet endpoint', async () => {
    const node = (await readObject<KubernetesObject & { spec: { taints: unknown[] }; status: { daemonEndpoints: { kubeletEndpoint: { Port: number } }; conditions: { type: string; status: string }[] } }>(kc, { apiVersion: 'v1', kind: 'Node', name: 'kiln-local-0' }))!;
    expect(node.metadata?.labels).toMatchObject({ 'kiln.dev/pool': 'local', type: 'local', 'kubernetes.io/hostname': 'kiln-local-0' });
    expect(node.spec.taints).toContainEqual({ key: 'kiln.dev/local', value: 'true', effect: 'NoSchedule' });
    expect(node.status.conditions.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(node.status.daemonEndpoints.kubeletEndpoint.Port).toBeGreaterThan(0);
  });

  it('runs a Job: its ConfigMap at /etc/kiln/stage.json, a termination message, success, logs through pods/log', async () => {
    await createIfAbsent(kc, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'job1-config', namespace: NS }, data: { 'stage.json': '{"stage":"hello"}' } } as KubernetesObject);
    await createIfAbsent(kc, {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'job1', namespace: NS },
      spec: {
        backoffLimit: 0,
        template: {
          spec: {
            restartPolicy: 'Never',
            ...local,
            volumes: [{ name: 'config', configMap: { name: 'job1-config' } }],
            containers: [{
              name: 'stage',
              image: 'kiln/data-prep:0.1.0',
              command: ['sh', '-c', 'echo "config: $(cat /etc/kiln/stage.json)"; echo "rank $(RANK) on $HOSTNAME"; echo "wrote 3 shards" > /dev/termination-log'],
              env: [{ name: 'RANK', value: '7' }],
              volumeMounts: [{ name: 'config', mountPath: '/etc/kiln', readOnly: true }],
              terminationMessagePolicy: 'FallbackToLogsOnError',
            }],
          },
        },
      },
    } as KubernetesObject);
    const done = await until('job1 to complete', async () => {
      const j = await readObject<KubernetesObject & { status?: { succeeded?: number; failed?: number } }>(kc, { apiVersion: 'batch/v1', kind: 'Job', name: 'job1', namespace: NS });
      return j?.status?.succeeded || j?.status?.failed ? j.status : undefined;
    });
    expect(done.succeeded).toBe(1);
    const list = (await requestRaw(kc, 'GET', `/api/v1/namespaces/${NS}/pods?labelSelector=job-name%3Djob1`)).body as { items: V1Pod[] };
    const pod = list.items[0]!;
    expect(pod.spec?.nodeName).toBe('kiln-local-0');
    expect(pod.status?.containerStatuses?.[0]?.state?.terminated).toMatchObject({ exitCode: 0, reason: 'Completed', message: 'wrote 3 shards\n' });
    const log = await readPodLog(kc, NS, pod.metadata!.name!);
    expect(log).toBe(`config: {"stage":"hello"}\nrank 7 on ${pod.metadata!.name}\n`);
    expect(await readPodLog(kc, NS, pod.metadata!.name!, { tailLines: 1 })).toBe(`rank 7 on ${pod.metadata!.name}\n`);
  }, 120_000);

  it('reports OOMKilled for a pod over its memory limit', async () => {
    await createIfAbsent(kc, podOf('oom', 'exit 1', {}, { image: 'kiln/trainer:0.1.0', command: ['python3', '-c', 'x = bytearray(400 * 1024 * 1024); print(len(x))'], resources: { limits: { memory: '64Mi' } } }));
    const t = await until('the oom pod to end', () => terminated('oom'));
    expect(t).toMatchObject({ reason: 'OOMKilled', exitCode: 137 });
    expect((await getPod('oom'))?.status?.phase).toBe('Failed');
  }, 120_000);

  it('fails a pod whose image it cannot run, naming the images it can', async () => {
    await createIfAbsent(kc, podOf('busybox', 'true', {}, { image: 'busybox:1.36' }));
    const p = await until('the busybox pod to fail', async () => ((await getPod('busybox'))?.status?.phase === 'Failed' ? getPod('busybox') : undefined));
    expect(p!.status).toMatchObject({ reason: 'ErrImagePull' });
    expect(p!.status?.message).toMatch(/cannot run image "busybox:1\.36".*kiln\/trainer/);
  }, 60_000);

  it('sends SIGTERM on deletion and the pod goes away', async () => {
    await createIfAbsent(kc, podOf('sleeper', 'trap "echo TERM > /shared/sleeper.term; exit 0" TERM; echo up > /shared/sleeper.up; while :; do sleep 0.1; done', { terminationGracePeriodSeconds: 10 }));
    await until('the sleeper to run', async () => (existsSync(join(shared, 'sleeper.up')) ? true : undefined));
    const r = await requestRaw(kc, 'DELETE', `/api/v1/namespaces/${NS}/pods/sleeper`);
    expect(r.status).toBeLessThan(300);
    await until('the sleeper to be gone', async () => ((await getPod('sleeper')) === undefined ? true : undefined));
    expect(readFileSync(join(shared, 'sleeper.term'), 'utf8')).toBe('TERM\n');
  }, 90_000);

  it('survives kill -9 of the agent: the running pod is adopted, not started twice, and completes', async () => {
    const p = paths(root);
    await createIfAbsent(kc, podOf('survivor', 'echo start >> /shared/survivor.starts; while [ ! -e /shared/survivor.go ]; do sleep 0.1; done; echo finished'));
    await createIfAbsent(kc, podOf('orphan', 'echo up > /shared/orphan.up; exec sleep 601'));
    await until('the survivor and the orphan to run', async () => (existsSync(join(shared, 'survivor.starts')) && existsSync(join(shared, 'orphan.up')) ? true : undefined));
    const pid = runningPid(p, 'local-node')!;
    process.kill(pid, 'SIGKILL');
    await until('the agent to die', async () => (runningPid(p, 'local-node') === undefined ? true : undefined));
    // Deleted for good while the agent is down: the restarted agent must stop what is left of it.
    expect((await requestRaw(kc, 'DELETE', `/api/v1/namespaces/${NS}/pods/orphan`, { gracePeriodSeconds: 0 })).status).toBeLessThan(300);
    expect(processesOf('sleep\x00601\x00')).toHaveLength(1);
    const again = await up({ root, ...DEFAULTS, gpuNodes: 0, cpuNodes: 0 }, () => {});
    expect(again.started).toEqual(['local-node']);
    // Let it finish only now, so the new agent must have adopted a running container.
    await import('node:fs').then((fs) => fs.writeFileSync(join(shared, 'survivor.go'), ''));
    const t = await until('the survivor to end', () => terminated('survivor'));
    expect(t).toMatchObject({ exitCode: 0, reason: 'Completed' });
    expect(readFileSync(join(shared, 'survivor.starts'), 'utf8')).toBe('start\n');
    expect(await readPodLog(kc, NS, 'survivor')).toBe('finished\n');
    await until('the orphan\'s process to be stopped', async () => (processesOf('sleep\x00601\x00').length === 0 ? true : undefined));
  }, 180_000);

  it('is taken down by `down`: the agent, its running pods, its bridge and its cgroups', async () => {
    const p = paths(root);
    const net = readState(p)!.network!;
    await createIfAbsent(kc, podOf('lingerer', 'echo up > /shared/lingerer.up; exec sleep 600'));
    await until('the lingerer to run', async () => (existsSync(join(shared, 'lingerer.up')) ? true : undefined));
    const agent = runningPid(p, 'local-node')!;
    const stopped = await down(root, () => {});
    expect(stopped).toContain('local-node');
    expect(alive(agent)).toBe(false);
    expect(processesOf('sleep\x00600\x00')).toEqual([]);
    expect(existsSync(`/sys/class/net/kb-${net.name}`)).toBe(false);
    expect(existsSync(`/sys/fs/cgroup/memory/kiln/${net.name}`)).toBe(false);
  }, 120_000);
});
