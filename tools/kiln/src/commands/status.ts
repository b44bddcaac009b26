/** `kiln controller`, `kiln status` and `kiln logs`: run ModelRuns and watch them. */
import { isAbsolute, resolve } from 'node:path';
import { Writable } from 'node:stream';
import type { KubeConfig } from '@kubernetes/client-node';
import { LABELS } from '@kiln/k8s';
import { findRun, isSimulatedSummary, kubeConfigFrom, listRuns, podLog, stagePods, watchRuns, type ModelRun, type StageStatus } from '@kiln/cluster';
import { formatCount } from '@kiln/spec';
import { EXIT, UsageError, type Io } from './io.ts';
import { isLocalKubeconfig, kubeconfigPath, SIM_ANNOTATIONS } from '@kiln/local-cluster';

function kubeconfig(values: Record<string, unknown>): { kc: KubeConfig; path: string; local: boolean } {
  const dir = values.dir ? resolve(String(values.dir)) : process.cwd();
  const path = kubeconfigPath(dir);
  // Inside a pod (the kiln-controller Deployment): the service account's token and CA.
  if (!path && process.env.KUBERNETES_SERVICE_HOST) return { kc: kubeConfigFrom(), path: 'in-cluster service account', local: false };
  if (!path) throw new UsageError('no cluster: set KUBECONFIG, or start the local one with `kiln cluster up`');
  const abs = isAbsolute(path) ? path : resolve(path);
  return { kc: kubeConfigFrom(abs), path: abs, local: isLocalKubeconfig(abs) };
}

const int = (v: unknown, name: string, min = 0): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} takes a whole number ≥ ${min}, not "${String(v)}"`);
  return n;
};

export async function runController(values: Record<string, unknown>, _pos: string[], io: Io): Promise<number> {
  const { kc, local, path } = kubeconfig(values);
  const simulate = values.simulate === true || (values.simulate === undefined && local);
  const simDurationMs = int(values['sim-duration-ms'], 'sim-duration-ms');
  const { controllerOptions, runController: serve, OptionError } = await import('@kiln/controller');
  let o;
  try {
    o = controllerOptions(values, kc);
  } catch (e) {
    if (e instanceof OptionError) throw new UsageError(e.message);
    throw e;
  }
  // The local cluster's kwok pods only end as a stage would when told how: its simulation, as hooks.
  const hooks = simulate ? (await import('@kiln/local-cluster')).simulationHooks(simDurationMs !== undefined ? { durationMs: simDurationMs } : {}) : undefined;
  io.err(`kiln controller: ${path}${simulate ? ' (simulating stage pods: local cluster)' : ''}`);
  return serve({ ...o, ...(hooks ? { hooks } : {}), log: (l) => io.err(l) }, (l) => io.err(l));
}

const age = (from?: string, to?: string | number): string => {
  if (!from) return '-';
  const s = Math.max(0, Math.round(((typeof to === 'number' ? to : to ? Date.parse(to) : Date.now()) - Date.parse(from)) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : s < 172800 ? `${(s / 3600).toFixed(1)}h` : `${Math.round(s / 86400)}d`;
};

/** `[███████░░░] 70% 350K/500K tokens` */
export function progressBar(p: { done: number; total: number; unit: string }, width = 20): string {
  const f = p.total > 0 ? Math.min(1, p.done / p.total) : 0;
  const n = Math.round(f * width);
  return `[${'█'.repeat(n)}${'░'.repeat(width - n)}] ${Math.floor(f * 100)}% ${formatCount(p.done)}/${formatCount(p.total)} ${p.unit}`;
}

function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ').trimEnd()).join('\n');
}

const gateSummary = (run: ModelRun) =>
  Object.entries(run.status?.gates ?? {})
    .map(([env, v]) => `${env}:${v.passed === true ? 'pass' : v.passed === false ? 'FAIL' : 'pending'}`)
    .join(' ') || '-';

/** Whether a stage's numbers are simulated: its status says so, or (a status from before the mark) its summary or progress. */
const stageSimulated = (s: StageStatus): boolean => s.simulated === true || isSimulatedSummary(s.summary) || s.progress?.simulated === true;

/** The stages of a run whose summaries or progress are simulated (the local cluster), not measured. */
export function simulatedStages(run: ModelRun): string[] {
  return run.status?.simulated ? [...run.status.simulated] : (run.status?.stages ?? []).filter(stageSimulated).map((s) => s.name);
}

const SIM_NOTE = 'stage pods were played by the local cluster, so these numbers are not measurements';

/** The table of runs. */
export function renderRuns(runs: readonly ModelRun[], now = Date.now()): string {
  if (!runs.length) return 'No ModelRuns. Declare one with `pulumi up` (see `npm run demo`).';
  const rows = [['RUN', 'NAMESPACE', 'PIPELINE', 'STACK', 'PHASE', 'STAGE', 'PROGRESS', 'GATES', 'AGE']];
  let anySimulated = false;
  for (const r of runs) {
    const st = r.status;
    const cur = st?.stages.find((s) => s.name === st.currentStage);
    const done = st?.stages.filter((s) => s.phase === 'Succeeded').length ?? 0;
    const sim = simulatedStages(r).length > 0;
    anySimulated ||= sim;
    rows.push([r.spec.runId, r.metadata.namespace, r.spec.name, r.spec.stack ?? '-', `${st?.phase ?? 'Pending'}${sim ? ' (sim)' : ''}`, st?.currentStage ?? '-', cur?.progress ? progressBar(cur.progress, 10) : `${done}/${r.spec.stages.length} stages`, gateSummary(r), age(r.metadata.creationTimestamp, now)]);
  }
  return table(rows) + (anySimulated ? `\n\n(sim) simulated: ${SIM_NOTE}.` : '');
}

/** One run in detail: stages, progress, gates, artifacts, metrics. */
export function renderRun(run: ModelRun, now = Date.now()): string {
  const st = run.status;
  const out: string[] = [];
  const sim = new Set(simulatedStages(run));
  out.push(`${run.metadata.name} (${run.spec.runId})  ${st?.phase ?? 'Pending'}${st?.message ? `: ${st.message}` : ''}`);
  if (sim.size) out.push(`SIMULATED: ${SIM_NOTE} (${[...sim].join(', ')})`);
  out.push(`pipeline ${run.spec.name}${run.spec.stack ? `, stack ${run.spec.stack}` : ''}, namespace ${run.metadata.namespace}, started ${st?.startTime ?? '-'}${st?.completionTime ? `, ended after ${age(st.startTime, st.completionTime)}` : ''}`);
  out.push('');
  const stages: readonly StageStatus[] = st?.stages ?? run.spec.stages.map((s) => ({ name: s.name, kind: s.kind, phase: 'Pending', reason: 'Waiting', message: '', attempts: 0, maxAttempts: s.maxAttempts, manifest: s.manifest }));
  const rows = [['STAGE', 'PHASE', 'ATTEMPTS', 'TIME', 'DETAIL']];
  for (const s of stages) {
    const detail = `${s.progress && s.phase === 'Running' ? progressBar(s.progress) : s.message}${sim.has(s.name) ? ' (simulated)' : ''}`;
    rows.push([s.name, s.phase, `${s.attempts}/${s.maxAttempts}`, s.startTime ? age(s.startTime, s.completionTime ?? now) : '-', detail]);
  }
  out.push(table(rows));
  const gates = Object.entries(st?.gates ?? {});
  if (gates.length) {
    const evalSim = run.spec.stages.some((s) => s.kind === 'eval' && sim.has(s.name));
    out.push('', evalSim ? 'Gates (read against simulated eval metrics):' : 'Gates:');
    for (const [env, v] of gates) {
      out.push(`  ${env}: ${v.passed === true ? 'PASSED' : v.passed === false ? 'FAILED' : 'pending'}`);
      for (const r of v.results) out.push(`    ${r.passed === true ? '✓' : r.passed === false ? '✗' : '·'} ${r.expr}${r.value !== null ? `  (${r.suite}.${r.metric} = ${r.value})` : ''}`);
    }
  }
  if (st?.artifacts.length) {
    out.push('', 'Artifacts:');
    out.push(table(st.artifacts.map((a) => [`  ${a.stage}/${a.name}`, a.uri, a.digest ? `${a.digest.slice(0, 19)}…` : ''])));
  }
  return out.join('\n');
}

/** What went wrong talking to the cluster, said so a person can act on it; undefined for anything else. */
export function clusterProblem(e: unknown, kc: KubeConfig): string | undefined {
  const server = kc.getCurrentCluster()?.server ?? 'the cluster';
  const code = (e as { code?: number }).code;
  if (code === 401 || code === 403) return `${server} refused the request (HTTP ${code}): the kubeconfig's user may not read ModelRuns, pods or logs here`;
  if (code === 404) return `${server} has no ModelRuns API: the ModelRun CRD is not installed (pulumi up of a stack installs it; see npm run demo)`;
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  if ((e as Error)?.message === 'fetch failed' || cause?.code) return `cannot reach ${server} (${cause?.code ?? cause?.message ?? 'no answer'}): is it running? For the local cluster: kiln cluster status`;
  return undefined;
}

/** Runs `fn`; a failure to talk to the cluster becomes a clear message and exit 1. */
async function withCluster(name: string, kc: KubeConfig, io: Io, fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (e) {
    const problem = clusterProblem(e, kc);
    if (!problem) throw e;
    io.err(`kiln ${name}: ${problem}`);
    return EXIT.invalid;
  }
}

export async function runStatus(values: Record<string, unknown>, pos: string[], io: Io): Promise<number> {
  const { kc } = kubeconfig(values);
  return withCluster('status', kc, io, () => status(kc, values, pos, io));
}

async function status(kc: KubeConfig, values: Record<string, unknown>, pos: string[], io: Io): Promise<number> {
  if (pos.length > 1) throw new UsageError(`expected at most one run, got ${pos.length}`);
  const ns = values.namespace as string | undefined;
  const ref = pos[0];
  const json = values.format === 'json' || values.json === true;
  const pick = (runs: ModelRun[]): ModelRun | { error: string } | ModelRun[] => (ref ? findRun(runs, ref) : runs);
  const show = (runs: ModelRun[]): number => {
    const sel = pick(runs);
    if (!Array.isArray(sel) && 'error' in sel) {
      io.err(`kiln status: ${sel.error}`);
      return EXIT.invalid;
    }
    if (json) io.out(JSON.stringify(sel, (k, v) => (k === 'managedFields' ? undefined : v), 2));
    else io.out(Array.isArray(sel) ? renderRuns(sel) : renderRun(sel));
    return !Array.isArray(sel) && sel.status?.phase === 'Failed' ? EXIT.invalid : EXIT.ok;
  };
  const first = await listRuns(kc, ns);
  const code = show(first);
  if (!values.watch || code === EXIT.invalid && ref && 'error' in (pick(first) as object)) return code;
  // Watch: redraw on every change; a single run's watch ends when the run does (exit 1 if it failed).
  const runs = new Map(first.map((r) => [`${r.metadata.namespace}/${r.metadata.name}`, r]));
  return await new Promise<number>((res, rej) => {
    let stop: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    const redraw = () => {
      timer = undefined;
      const list = [...runs.values()].sort((a, b) => (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? ''));
      if (io.isTTY) io.out('\x1b[2J\x1b[H');
      else io.out('');
      const c = show(list);
      const sel = ref ? findRun(list, ref) : undefined;
      if (sel && !('error' in sel) && (sel.status?.phase === 'Succeeded' || sel.status?.phase === 'Failed')) {
        stop?.();
        res(c);
      }
    };
    redraw();
    watchRuns(
      kc,
      ns,
      (type, run) => {
        const k = `${run.metadata.namespace}/${run.metadata.name}`;
        if (type === 'DELETED') runs.delete(k);
        else runs.set(k, run);
        timer ??= setTimeout(redraw, 100);
      },
      (err) => (err ? rej(err) : res(EXIT.ok)),
    ).then((s) => (stop = s), rej);
  });
}

export async function runLogs(values: Record<string, unknown>, pos: string[], io: Io): Promise<number> {
  if (pos.length !== 2) throw new UsageError('give a run and a stage: kiln logs <run> <stage>');
  const { kc } = kubeconfig(values);
  return withCluster('logs', kc, io, () => logs(kc, values, pos as [string, string], io));
}

async function logs(kc: KubeConfig, values: Record<string, unknown>, [ref, stageName]: [string, string], io: Io): Promise<number> {
  const found = findRun(await listRuns(kc, values.namespace as string | undefined), ref);
  if ('error' in found) {
    io.err(`kiln logs: ${found.error}`);
    return EXIT.invalid;
  }
  const stage = found.spec.stages.find((s) => s.name === stageName);
  if (!stage) {
    io.err(`kiln logs: run ${found.spec.runId} has no stage "${stageName}"; stages: ${found.spec.stages.map((s) => s.name).join(', ')}`);
    return EXIT.invalid;
  }
  const pods = await stagePods(kc, found.metadata.namespace, found.spec.runId, stage.name);
  const attempts = [...new Set(pods.map((p) => Number(p.metadata?.labels?.[LABELS.attempt] ?? 1)))].sort((a, b) => a - b);
  const attempt = int(values.attempt, 'attempt', 1) ?? attempts.at(-1);
  const index = int(values.index, 'index') ?? 0;
  const pod = pods.filter((p) => Number(p.metadata?.labels?.[LABELS.attempt] ?? 1) === attempt && Number(p.metadata?.annotations?.['batch.kubernetes.io/job-completion-index'] ?? 0) === index).at(-1);
  if (!pod) {
    io.err(`kiln logs: stage ${stage.name} of ${found.spec.runId} has no pod${attempt ? ` for attempt ${attempt}, index ${index}` : ' yet'} (phase: ${found.status?.stages.find((s) => s.name === stage.name)?.phase ?? 'Pending'})`);
    return EXIT.invalid;
  }
  const name = pod.metadata!.name!;
  io.err(`==> ${found.metadata.namespace}/${name} (attempt ${attempt}, index ${index}, ${pod.status?.phase ?? 'Pending'})`);
  const out = new Writable({
    write(chunk, _enc, cb) {
      process.stdout.write(chunk, cb);
    },
  });
  try {
    await podLog(kc, found.metadata.namespace, name, pod.spec!.containers[0]!.name, out, { follow: values.follow === true, ...(values.tail !== undefined ? { tailLines: int(values.tail, 'tail') } : {}) });
    return EXIT.ok;
  } catch (e) {
    const code = (e as { code?: number }).code;
    const why = code ? `HTTP ${code}` : ((e as Error).message ?? String(e)).split('\n')[0];
    const msg = pod.status?.containerStatuses?.[0]?.state?.terminated?.message;
    io.err(`kiln logs: the node of ${name} did not serve its log (${String(why).slice(0, 200)}).${pod.metadata?.annotations?.[SIM_ANNOTATIONS.exitCode] !== undefined ? ' Its pod is simulated (local cluster), so it has no log.' : ''}`);
    if (msg) io.err(`Its termination message:\n${msg}`);
    return EXIT.invalid;
  }
}
