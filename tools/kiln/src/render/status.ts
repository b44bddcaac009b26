/** The views of `kiln status`: the table of runs, and one run in detail. */
import { simulatedStages, type ModelRun, type StageStatus } from '@kiln/cluster';
import { age, progressBar, table, trainingMetrics } from './table.ts';
import { formatCount } from '@kiln/spec';

const gateSummary = (run: ModelRun) =>
  Object.entries(run.status?.gates ?? {})
    .map(([env, v]) => `${env}:${v.passed === true ? 'pass' : v.passed === false ? 'FAIL' : 'pending'}`)
    .join(' ') || '-';

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
/** The figures of a stage's summary worth a glance, in this order: training loss and speed, pass@k, data counts. */
const SHOWN_METRICS: readonly [string, string, (v: number) => string][] = [
  ['loss', 'loss', (v) => v.toFixed(3)],
  ['tokens_per_s', 'tokens/s', (v) => formatCount(v)],
  ['tokens', 'tokens', (v) => formatCount(v)],
  ['pass@1', 'pass@1', (v) => v.toFixed(3)],
  ['problems_scored', 'problems', (v) => String(v)],
  ['records_out', 'records out', (v) => formatCount(v)],
  ['near_duplicates', 'near duplicates', (v) => formatCount(v)],
  ['bytes_per_token', 'bytes/token', (v) => v.toFixed(2)],
  ['sequences', 'sequences', (v) => formatCount(v)],
  ['parameters', 'parameters', (v) => formatCount(v)],
];

/** A stage's measured metrics (its summary's), the ones SHOWN_METRICS names, as `loss 7.012, tokens/s 7.37K`. */
export function summaryMetrics(s: Pick<StageStatus, 'summary'>): string | undefined {
  const m = s.summary?.metrics ?? {};
  const parts = SHOWN_METRICS.filter(([k]) => typeof m[k] === 'number').map(([k, label, f]) => `${label} ${f(m[k] as number)}`);
  return parts.length ? parts.slice(0, 4).join(', ') : undefined;
}

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
    const extra = s.progress && trainingMetrics(s.progress);
    const measured = s.phase === 'Running' ? undefined : summaryMetrics(s);
    const detail = `${s.progress && s.phase === 'Running' ? `${progressBar(s.progress)}${extra ? ` · ${extra}` : ''}` : s.message}${measured ? ` · ${measured}` : ''}${sim.has(s.name) ? ' (simulated)' : ''}`;
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
