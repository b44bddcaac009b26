/**
 * The run controller on the local cluster: reconcile latency, from a stage Job completing to the next stage's
 * Job existing (both as a watch on Jobs sees them), p50 and p99; and runs completed per minute with N runs
 * at once. The eval stage is reported apart: it waits for the eval model server to be available first.
 * Run: `node bench/controller.ts [--runs 20] [--sim-duration-ms 500] [--workers 4] [--json]`.
 * Brings the local cluster up if needed; leaves it running. Prints figures only.
 */
import { parseArgs } from 'node:util';
import { KubeConfig, Watch } from '@kubernetes/client-node';
import { requestRaw } from '@kiln/cluster';
import { CLUSTER_ROOT as ROOT, createRun, DEFAULTS, paths, preparePlatform, startController, tinyPlan, up, whenSynced } from '@kiln/local-cluster';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' }, 'sim-duration-ms': { type: 'string', default: '500' }, workers: { type: 'string', default: '8' }, json: { type: 'boolean' } } });
const runs = Number(values.runs);

await up({ root: ROOT, ...DEFAULTS }, () => {});
const ns = `kiln-bench-ctl-${Date.now().toString(36)}`;
const plans = Array.from({ length: runs }, (_, i) => tinyPlan(ns, 5000 + i));
await preparePlatform(plans[0]!);

// When the watch first saw each Job, and first saw it Complete.
const added = new Map<string, number>();
const completed = new Map<string, number>();
const kc = new KubeConfig();
kc.loadFromFile(paths(ROOT).kubeconfig);
const req = await new Watch(kc).watch(
  `/apis/batch/v1/namespaces/${ns}/jobs`,
  {},
  (_type, job: { metadata: { name: string }; status?: { conditions?: { type: string; status: string }[] } }) => {
    const t = performance.now();
    if (!added.has(job.metadata.name)) added.set(job.metadata.name, t);
    if (!completed.has(job.metadata.name) && job.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True')) completed.set(job.metadata.name, t);
  },
  () => undefined,
);

const ctl = startController(['--namespace', ns, '--sim-duration-ms', String(values['sim-duration-ms']), '--workers', String(values.workers)], { name: `bench-${process.pid}` });
await whenSynced(ctl);
let runsWatch: AbortController | undefined;
const t0 = performance.now();
await Promise.all(plans.map((p) => createRun(p)));
// One watch on the runs (polling 50 of them would load the API server the benchmark measures).
const phase = new Map<string, string>();
const phases = await new Promise<string[]>((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`runs did not finish: ${JSON.stringify(Object.fromEntries(phase))}`)), 600_000);
  void new Watch(kc)
    .watch(`/apis/kiln.dev/v1alpha1/namespaces/${ns}/modelruns`, {}, (_t, run: { spec: { runId: string }; status?: { phase?: string } }) => {
      phase.set(run.spec.runId, run.status?.phase ?? 'Pending');
      const done = plans.map((p) => phase.get(p.runId)).filter((x) => x === 'Succeeded' || x === 'Failed');
      if (done.length === plans.length) {
        clearTimeout(timer);
        resolve(done as string[]);
      }
    }, (err) => err && reject(err))
    .then((r) => (runsWatch = r));
});
runsWatch?.abort();
const wall = (performance.now() - t0) / 1000;
req.abort();
await ctl.stop();

const lat: number[] = [];
const evalLat: number[] = [];
for (const p of plans) {
  for (const s of p.stages) {
    if (!s.dependsOn.length) continue;
    const start = added.get(`${p.runId}-${s.name}`);
    const deps = s.dependsOn.map((d) => completed.get(`${p.runId}-${d}`));
    if (start === undefined || deps.some((d) => d === undefined)) continue;
    (s.kind === 'eval' ? evalLat : lat).push(start - Math.max(...(deps as number[])));
  }
}
// Where the rest of the time goes: a Job's life from creation to Complete (scheduler, kwok, Job controller).
const life = [...completed].map(([name, t]) => t - added.get(name)!);
const pct = (xs: number[], q: number) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((q / 100) * xs.length) - 1)]! : NaN);
const result = {
  runs,
  succeeded: phases.filter((p) => p === 'Succeeded').length,
  simDurationMs: Number(values['sim-duration-ms']),
  workers: Number(values.workers),
  stageToStage: { samples: lat.length, p50Ms: Math.round(pct(lat, 50)), p99Ms: Math.round(pct(lat, 99)), maxMs: Math.round(Math.max(...lat)) },
  exportToEval: { samples: evalLat.length, p50Ms: Math.round(pct(evalLat, 50)), p99Ms: Math.round(pct(evalLat, 99)) },
  jobLifetime: { p50Ms: Math.round(pct(life, 50)), p99Ms: Math.round(pct(life, 99)) },
  wallSeconds: Number(wall.toFixed(1)),
  runsPerMinute: Number(((runs / wall) * 60).toFixed(1)),
};
await requestRaw(kc, 'DELETE', `/api/v1/namespaces/${ns}`);
if (values.json) console.log(JSON.stringify(result, null, 2));
else {
  console.log(`${result.succeeded}/${runs} runs succeeded in ${result.wallSeconds}s (${result.runsPerMinute} runs/min; simulated stages ${result.simDurationMs} ms; ${result.workers} workers)`);
  console.log(`stage Job complete → next stage Job exists: p50 ${result.stageToStage.p50Ms} ms, p99 ${result.stageToStage.p99Ms} ms, max ${result.stageToStage.maxMs} ms (${lat.length} transitions)`);
  console.log(`a stage Job's life, created → Complete (scheduler, kwok, Job controller): p50 ${result.jobLifetime.p50Ms} ms, p99 ${result.jobLifetime.p99Ms} ms`);
  console.log(`export complete → eval Job exists (starts the eval model server first): p50 ${result.exportToEval.p50Ms} ms, p99 ${result.exportToEval.p99Ms} ms`);
}
process.exit(0);
