/**
 * Start latency of the local execution node: N Jobs created one after another (each once the last has
 * finished) on the local node of a cluster from `up()`, timed from just before the Job's create call to the
 * container's process start (its first act is to print the clock, `date +%s%3N`; same host, same clock).
 * That spans the Job controller, the scheduler, the agent's watch, sandbox, volumes and the runtime's shim.
 * Run: `node bench/local-node-start.ts [--jobs N] [--dir DIR] [--json]` (as root; a temporary cluster unless --dir
 * names one that is up; a temporary one is taken down at the end). Prints p50/p90/max; asserts nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { KubernetesObject } from '@kubernetes/client-node';
import { readObject, readPodLog, requestRaw } from '@kiln/cluster';
import { clusterKubeConfig, DEFAULTS, down, up } from '@kiln/local-cluster';

const { values } = parseArgs({ options: { jobs: { type: 'string', default: '20' }, dir: { type: 'string' }, json: { type: 'boolean' } } });
const root = values.dir ?? mkdtempSync(join(tmpdir(), 'kiln-bench-local-node-'));
const NS = 'default';

const job = (name: string): KubernetesObject =>
  ({
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: NS },
    spec: {
      backoffLimit: 0,
      template: {
        spec: {
          restartPolicy: 'Never',
          nodeSelector: { 'kiln.dev/pool': 'local' },
          tolerations: [{ key: 'kiln.dev/local', operator: 'Exists', effect: 'NoSchedule' }],
          containers: [{ name: 'c', image: 'kiln/data-prep:0.1.0', command: ['date', '+%s%3N'] }],
        },
      },
    },
  }) as KubernetesObject;

const lat: number[] = [];
try {
  if (!values.dir) await up({ root, ...DEFAULTS, gpuNodes: 0, cpuNodes: 0 }, () => {});
  const kc = await clusterKubeConfig(root);
  const tag = Date.now().toString(36);
  for (let i = 0; i < Number(values.jobs); i++) {
    const name = `start-${tag}-${i}`;
    const t0 = Date.now();
    const r = await requestRaw(kc, 'POST', `/apis/batch/v1/namespaces/${NS}/jobs`, job(name));
    if (r.status >= 300) throw new Error(`creating Job ${name}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    for (;;) {
      const j = await readObject<KubernetesObject & { status?: { succeeded?: number; failed?: number } }>(kc, { apiVersion: 'batch/v1', kind: 'Job', name, namespace: NS });
      if (j?.status?.failed) throw new Error(`Job ${name} failed`);
      if (j?.status?.succeeded) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    const pods = (await requestRaw(kc, 'GET', `/api/v1/namespaces/${NS}/pods?labelSelector=job-name%3D${name}`)).body as { items: { metadata: { name: string } }[] };
    const started = Number((await readPodLog(kc, NS, pods.items[0]!.metadata.name)).trim());
    lat.push(started - t0);
  }
} finally {
  if (!values.dir) {
    await down(root, () => {});
    rmSync(root, { recursive: true, force: true });
  }
}
const sorted = [...lat].sort((a, b) => a - b);
const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
if (values.json) console.log(JSON.stringify({ jobs: lat.length, ms: lat, p50_ms: q(0.5), p90_ms: q(0.9), max_ms: sorted.at(-1) }, null, 2));
else console.log(`local node, Job created → process started, ${lat.length} Jobs one after another: p50 ${q(0.5)} ms, p90 ${q(0.9)} ms, max ${sorted.at(-1)} ms`);
