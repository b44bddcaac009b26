/**
 * Simulation for the local cluster, where kwok plays the pods. The controller has none of its own: this
 * module hands it hooks (`simulationHooks`) that annotate each stage pod with how it should end (exit code,
 * termination message), which kwok's pod-complete stage obeys (kwok.ts), and that report a training
 * stage's progress from the clock. Summaries follow
 * the stage contract so everything downstream (upstream outputs, artifacts, metrics, gates) runs for real.
 * A ModelRun may ask for faults with the `kiln.dev/simulate` annotation (JSON):
 *   { "durationMs": 1000, "stageDurationMs": { "train": 5000 }, "faults": [{ "stage": "train", "attempt": 1, "exitCode": 1, "message": "..." }],
 *     "metrics": { "eval-humaneval": { "pass@1": 0.31 } } }
 */
import { createHash } from 'node:crypto';
import type { V1Pod } from '@kubernetes/client-node';
import type { AttemptContext, ControllerHooks, ModelRun, RunningAttempt } from '@kiln/cluster';
import type { Plan, Stage } from '@kiln/plan';
import type { Progress, StageSummary } from '@kiln/stage';
import { SIM_ANNOTATIONS } from './kwok.ts';

export const SIMULATE_ANNOTATION = 'kiln.dev/simulate';
/** Annotations kwok's pod-complete stage reads on the local cluster (see kwok.ts). */
export const SIM = SIM_ANNOTATIONS;

export interface SimFault {
  readonly stage: string;
  /** The attempt that fails; default 1. */
  readonly attempt?: number;
  readonly exitCode: number;
  readonly message?: string;
}

export interface Simulation {
  readonly durationMs?: number;
  /** Per stage, overriding durationMs. */
  readonly stageDurationMs?: Readonly<Record<string, number>>;
  readonly faults?: readonly SimFault[];
  readonly metrics?: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

/** The run's simulation request; a malformed one is reported, never fatal to the controller. */
export function readSimulation(annotations: Readonly<Record<string, string>> | undefined): { sim: Simulation; error?: string } {
  const raw = annotations?.[SIMULATE_ANNOTATION];
  if (!raw) return { sim: {} };
  try {
    const v = JSON.parse(raw) as Simulation;
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return { sim: v };
  } catch (e) {
    return { sim: {}, error: `annotation ${SIMULATE_ANNOTATION} is not valid JSON (${(e as Error).message}); simulating a clean run` };
  }
}

const digest = (...parts: string[]) => `sha256:${createHash('sha256').update(parts.join('\0')).digest('hex')}`;

/** The summary a real stage of this kind would report (numbers are made up, marked `simulated`). */
export function simulatedSummary(plan: Plan, stage: Stage, attempt: number, sim: Simulation): StageSummary {
  const out = (stage.outputs[0] ?? `${plan.storagePrefix}/${stage.name}/`) as string;
  const artifact = (name: string, uri = out) => ({ name, uri, digest: digest(plan.runId, stage.name, name, String(attempt)) });
  const base = { simulated: true as const, attempt };
  switch (stage.kind) {
    case 'data-prep':
      return { ...base, metrics: { records_in: 12_000, records_out: 9_412, dedup_removed: 1_733, redacted: 41 }, artifacts: [artifact('shards')] };
    case 'dedup':
      return { ...base, metrics: { records_in: 9_412, records_out: 8_007, near_duplicates: 1_405, clusters: 611 }, artifacts: [artifact('shards')] };
    case 'tokenizer':
      return { ...base, metrics: { vocab_size: stage.config.tokenizer.vocab_size }, artifacts: [artifact('tokenizer')] };
    case 'pack':
      return { ...base, metrics: { sequences: 7_812, tokens: 2_000_000 }, artifacts: [artifact('packed')] };
    case 'train': {
      const budget = trainingBudget(stage);
      return { ...base, metrics: { tokens: budget, loss: 2.41 }, resumedFrom: attempt > 1 ? `${out}latest` : null, artifacts: [artifact('checkpoint', `${out}final/`)] };
    }
    case 'export':
      return { ...base, artifacts: [artifact('model-repository'), artifact('eval-model', stage.config.eval_model)] };
    case 'eval': {
      const suite = stage.config.suite;
      const metrics = sim.metrics?.[stage.name] ?? Object.fromEntries(suite.k.map((k) => [`pass@${k}`, Math.min(1, 0.12 + 0.05 * (k - 1))]));
      return { ...base, suite: suite.name, metrics, artifacts: [artifact('results')] };
    }
  }
}

/** Tokens a training stage is to see (its progress total). */
export function trainingBudget(stage: Stage): number {
  return stage.kind === 'train' ? stage.config.training.token_budget : 0;
}

/** The pod annotations that make kwok end this attempt as the simulation says. */
export function simulationAnnotations(plan: Plan, stage: Stage, attempt: number, sim: Simulation): Record<string, string> {
  const fault = sim.faults?.find((f) => f.stage === stage.name && (f.attempt ?? 1) === attempt);
  const a: Record<string, string> = fault
    ? { [SIM.exitCode]: String(fault.exitCode), [SIM.message]: fault.message ?? `simulated failure (exit ${fault.exitCode})` }
    : { [SIM.exitCode]: '0', [SIM.message]: JSON.stringify(simulatedSummary(plan, stage, attempt, sim)) };
  const ms = sim.stageDurationMs?.[stage.name] ?? sim.durationMs;
  if (ms !== undefined) a[SIM.duration] = `${Math.max(0, Math.round(ms))}ms`;
  return a;
}

/** How long a simulated stage runs when neither the run nor the caller says, ms. */
export const DEFAULT_SIM_DURATION_MS = 2000;

/** A training stage's progress, from how long its pods have run of the time the simulation gives them. */
export function simulatedProgress(stage: Stage, pods: readonly V1Pod[], now: number, durationMs: number): Progress | undefined {
  if (stage.kind !== 'train') return undefined;
  const total = trainingBudget(stage);
  // Listed pods carry Dates, watched ones strings.
  const ms = (t: Date | string | undefined) => (t instanceof Date ? t.getTime() : Date.parse(t ?? ''));
  const started = pods.map((p) => ms(p.status?.startTime)).filter(Number.isFinite);
  if (!total || !started.length || durationMs <= 0) return undefined;
  const frac = Math.min(1, Math.max(0, (now - Math.min(...started)) / durationMs));
  return { done: Math.round(total * frac), total, unit: 'tokens', simulated: true };
}

export interface SimulationOptions {
  /** How long a simulated stage runs unless the run's annotation says otherwise, ms. Default 2000. */
  readonly durationMs?: number;
}

/**
 * The controller hooks of the local cluster: stage pods end as the run's `kiln.dev/simulate` annotation
 * says (else cleanly, with a stage-shaped summary marked `simulated: true`), training reports simulated
 * progress, and a malformed annotation is a BadSimulation warning.
 */
export function simulationHooks(opts: SimulationOptions = {}): ControllerHooks {
  const fallback = opts.durationMs ?? DEFAULT_SIM_DURATION_MS;
  const simOf = (run: ModelRun) => readSimulation(run.metadata.annotations).sim;
  return {
    podAnnotations: ({ run, plan, stage, attempt }: AttemptContext) => {
      const sim = simOf(run);
      return simulationAnnotations(plan, stage, attempt, { ...sim, durationMs: sim.durationMs ?? fallback });
    },
    progress: ({ run, stage, pods, now }: RunningAttempt) => {
      const sim = simOf(run);
      return simulatedProgress(stage, pods, now, sim.stageDurationMs?.[stage.name] ?? sim.durationMs ?? fallback);
    },
    runWarnings: (run: ModelRun) => {
      const { error } = readSimulation(run.metadata.annotations);
      return error ? [{ reason: 'BadSimulation', message: error }] : [];
    },
  };
}
