/** A run's evidence for a promotion: its ModelRun's status (phase, eval metrics, the export's artifacts) and the gates read against it. */
import type { KubeConfig } from '@kubernetes/client-node';
import { findRun, listRuns, simulatedStages, type ModelRun, type RunArtifact, type RunPhase } from '@kiln/cluster';
import { evaluateGates, exportedRepositories, stageOf, type GateResult, type Plan, type PromotionGate, type SuiteMetrics } from '@kiln/plan';

/** A promotion kiln refuses (a gate failed, digests mismatch, the run has not succeeded): exit 1, with the numbers. */
export class PromotionRefused extends Error {
  /** One line per reason. */
  readonly reasons: readonly string[];
  constructor(message: string, reasons: readonly string[] = []) {
    super(message);
    this.reasons = reasons;
  }
}

/** What a run offers for promotion, read from its ModelRun. */
export interface RunEvidence {
  /** The run id (`r-0123456789ab`) and its ModelRun's name and namespace. */
  readonly run: string;
  readonly name: string;
  readonly namespace: string;
  readonly phase: RunPhase;
  /** `<suite>.<metric>` → value, from the run's succeeded eval stages (`humaneval.pass@1`). */
  readonly metrics: Readonly<Record<string, number>>;
  /** The export prefix (`…/runs/<run>/export/`), ending in `/`. */
  readonly export: string;
  /** Where the export stage wrote its manifest (every file with its digest). */
  readonly manifest: string;
  /** The export stage's summary artifacts (with their digests), as the run's status records them. */
  readonly artifacts: readonly RunArtifact[];
  /** The export's model repositories (not the eval one), from those artifacts. */
  readonly repositories: readonly string[];
  /** Stages whose numbers are simulated (the local cluster); empty when every number was measured. */
  readonly simulated: readonly string[];
  /** The run's own plan (the ModelRun's spec). */
  readonly plan: Omit<Plan, 'apiVersion'>;
}

/** A gate read against a run's metrics, with the parts a person reads (`humaneval.pass@1 = 0.1 (gate >= 0.05: pass)`). */
export interface GateCheck extends PromotionGate {
  readonly metric: string;
  readonly op: string;
  readonly threshold: number;
}

/** `<suite>.<metric>` metrics as evaluateGates reads them: by suite, then metric. */
export function suiteMetrics(metrics: Readonly<Record<string, number>>): SuiteMetrics {
  const out: Record<string, Record<string, number>> = {};
  for (const [k, v] of Object.entries(metrics)) {
    const dot = k.indexOf('.');
    if (dot <= 0) continue;
    (out[k.slice(0, dot)] ??= {})[k.slice(dot + 1)] = v;
  }
  return out;
}

/** The evidence of one ModelRun as the API returned it. Pure: refuses (PromotionRefused) a run that has not succeeded or has no export. */
export function evidenceOf(run: ModelRun): RunEvidence {
  const plan = run.spec;
  const status = run.status;
  const name = `${run.metadata.namespace}/${run.metadata.name}`;
  if (status?.phase !== 'Succeeded') throw new PromotionRefused(`run ${plan.runId} (${name}) is ${status?.phase ?? 'not started'}, not Succeeded: only a run that finished every stage can be promoted`, status?.message ? [status.message] : []);
  const exp = stageOf(plan, 'export');
  if (!exp) throw new PromotionRefused(`run ${plan.runId} (${name}) has no export stage: there is no model to serve`);
  const metrics: Record<string, number> = {};
  for (const s of status.stages) {
    const planned = plan.stages.find((x) => x.name === s.name);
    if (planned?.kind !== 'eval' || s.phase !== 'Succeeded') continue;
    for (const [k, v] of Object.entries(s.summary?.metrics ?? {})) if (typeof v === 'number' && Number.isFinite(v)) metrics[`${planned.config.suite.name}.${k}`] = v;
  }
  const artifacts = status.artifacts.filter((a) => a.stage === exp.name);
  const prefix = exp.config.output.endsWith('/') ? exp.config.output : `${exp.config.output}/`;
  return {
    run: plan.runId,
    name: run.metadata.name,
    namespace: run.metadata.namespace,
    phase: status.phase,
    metrics,
    export: prefix,
    manifest: status.stages.find((s) => s.name === exp.name)?.manifest ?? exp.manifest,
    artifacts,
    repositories: exportedRepositories(artifacts),
    simulated: simulatedStages(run),
    plan,
  };
}

/** Reads a run's evidence from the cluster: the ModelRun by id or name (or a unique prefix), cluster-wide unless `namespace`. */
export async function runEvidence(kc: KubeConfig, runId: string, namespace?: string): Promise<RunEvidence> {
  const found = findRun(await listRuns(kc, namespace), runId);
  if ('error' in found) throw new PromotionRefused(`${found.error}${namespace ? ` in namespace ${namespace}` : ''}`);
  return evidenceOf(found);
}

/** The target stack's gates (`eval.gates.<stack>` of its plan) read against the run's metrics; [] when the stack has none. */
export function gateCheck(targetPlan: Pick<Plan, 'gates' | 'stages'>, targetStack: string, metrics: Readonly<Record<string, number>>): GateCheck[] {
  const verdict = evaluateGates(targetPlan as Plan, suiteMetrics(metrics))[targetStack];
  return (verdict?.results ?? []).map((r: GateResult) => ({ expr: r.expr, value: r.value, passed: r.passed, metric: r.suite ? `${r.suite}.${r.metric}` : r.metric, op: r.op, threshold: r.threshold }));
}

/** One gate as a person reads it: `humaneval.pass@1 = 0.1 (gate >= 0.05: pass)`. */
export function gateLine(g: GateCheck | PromotionGate): string {
  const verdict = g.passed === true ? 'pass' : g.passed === false ? 'FAIL' : 'not reported';
  if ('op' in g && g.op) return `${g.metric} = ${g.value ?? 'none'} (gate ${g.op} ${g.threshold}: ${verdict})`;
  // A stored gate keeps its expression only: `humaneval.pass@1 >= 0.05`.
  const m = /^\s*(\S+)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*$/.exec(g.expr);
  return m ? `${m[1]} = ${g.value ?? 'none'} (gate ${m[2]} ${m[3]}: ${verdict})` : `${g.expr}: ${g.value ?? 'none'} (${verdict})`;
}
