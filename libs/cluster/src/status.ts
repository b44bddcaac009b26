/**
 * The ModelRun status contract: what the controller writes through the status subresource and what
 * `kiln status` reads. Everything here is derived from the run's Jobs and pods, so a controller that
 * restarts recomputes the same status.
 */
import type { GateVerdict, Plan } from '@kiln/plan';
import type { Artifact, Progress, StageSummary } from '@kiln/stage';

export type RunPhase = 'Pending' | 'Running' | 'Suspended' | 'Succeeded' | 'Failed';
export type StagePhase = 'Pending' | 'Running' | 'Retrying' | 'Succeeded' | 'Failed';

/** Reasons of stage and run conditions: constants, so tools can match on them. */
export const REASONS = {
  /** Waiting for the stages it depends on. */
  Waiting: 'Waiting',
  /** The run is suspended: no new Jobs start; running ones are suspended. */
  Suspended: 'Suspended',
  /** Eval stages wait for the run's eval model server to be available. */
  WaitingForEvalModel: 'WaitingForEvalModel',
  Running: 'Running',
  /** The last attempt failed with a retryable cause; the next starts after a backoff. */
  BackingOff: 'BackingOff',
  Succeeded: 'Succeeded',
  /** The stage exited with its declared terminal code (bad config, missing input): no retry can fix it. */
  TerminalFailure: 'TerminalFailure',
  /** Every attempt failed with a retryable cause. */
  AttemptsExhausted: 'AttemptsExhausted',
  /** The run's spec cannot be turned into stage Jobs (the API server or the builders refused it). */
  InvalidSpec: 'InvalidSpec',
  /** Another stage failed, so this one will not run. */
  Aborted: 'Aborted',
} as const;
export type Reason = (typeof REASONS)[keyof typeof REASONS];

/** A Kubernetes-style condition (metav1.Condition). */
export interface Condition {
  readonly type: string;
  readonly status: 'True' | 'False' | 'Unknown';
  readonly reason: string;
  readonly message: string;
  readonly lastTransitionTime: string;
  readonly observedGeneration?: number;
}

export interface StageStatus {
  readonly name: string;
  readonly kind: string;
  readonly phase: StagePhase;
  readonly reason: Reason;
  readonly message: string;
  /** Attempts started so far (each is a Job of its own). */
  readonly attempts: number;
  readonly maxAttempts: number;
  /** The Job of the latest attempt. */
  readonly job?: string;
  readonly startTime?: string;
  readonly completionTime?: string;
  /** When the next attempt starts, while backing off. */
  readonly nextAttemptAt?: string;
  /** The stage's summary: its termination message (JSON), merged over shards. */
  readonly summary?: StageSummary;
  /** Where the stage wrote its manifest. */
  readonly manifest: string;
  /** How far it is, when it reports it (training: tokens of the budget). */
  readonly progress?: Progress;
  /** True when the stage's summary or progress is simulated (the summary says `simulated: true`): not a measurement. */
  readonly simulated?: boolean;
}

/** An artifact a stage reported in its summary, with the stage that reported it. */
export interface RunArtifact extends Artifact {
  readonly stage: string;
}

export interface ModelRunStatus {
  readonly phase: RunPhase;
  readonly message: string;
  readonly observedGeneration?: number;
  /** The stage a person should look at: the running one, or the one that failed. */
  readonly currentStage: string | null;
  readonly startTime?: string;
  readonly completionTime?: string;
  readonly stages: readonly StageStatus[];
  readonly conditions: readonly Condition[];
  readonly artifacts: readonly RunArtifact[];
  /** Numeric metrics of every stage's summary, as `<stage>.<metric>`. */
  readonly metrics: Readonly<Record<string, number>>;
  /** Each environment's gate verdict, from the eval suites' metrics and the spec's gates. */
  readonly gates: Readonly<Record<string, GateVerdict>>;
  readonly evalModel?: { readonly name: string; readonly ready: boolean };
  /** The stages whose summaries or progress are simulated; absent when none is. Their metrics, and the gates that read them, are not measurements. */
  readonly simulated?: readonly string[];
}

/** The ModelRun custom resource as the API returns it. */
export interface ModelRun {
  readonly apiVersion: string;
  readonly kind: 'ModelRun';
  readonly metadata: {
    readonly name: string;
    readonly namespace: string;
    readonly uid?: string;
    readonly resourceVersion?: string;
    readonly generation?: number;
    readonly creationTimestamp?: string;
    readonly deletionTimestamp?: string;
    readonly labels?: Readonly<Record<string, string>>;
    readonly annotations?: Readonly<Record<string, string>>;
  };
  readonly spec: Omit<Plan, 'apiVersion'> & { readonly suspend?: boolean };
  readonly status?: ModelRunStatus;
}

/** Condition type of one stage: `stage.kiln.dev/<stage>`. */
export const stageConditionType = (stage: string) => `stage.kiln.dev/${stage}`;
/** Condition type of the run as a whole. */
export const RUN_CONDITION = 'Succeeded';

/** Whether a stage's summary says its numbers are simulated (the stage contract's `simulated: true`). */
export const isSimulatedSummary = (summary: StageSummary | undefined): boolean => summary?.simulated === true;

/** Termination messages are at most 4096 bytes; a summary is the JSON object a stage writes there. */
export function parseSummary(message: string | undefined): StageSummary | undefined {
  if (!message?.trim()) return undefined;
  try {
    const v = JSON.parse(message) as unknown;
    // What the stage wrote, as it wrote it: the controller reads its fields defensively.
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as StageSummary;
  } catch {
    // Not JSON: FallbackToLogsOnError gave the last lines of the log instead.
  }
  return { message: message.trim().slice(-1024) };
}

/** Whether a stage's numbers are simulated: its status says so, or (a status from before the mark) its summary or progress. */
export const stageSimulated = (s: StageStatus): boolean => s.simulated === true || isSimulatedSummary(s.summary) || s.progress?.simulated === true;

/** The stages of a run whose summaries or progress are simulated (the local cluster), not measured. */
export function simulatedStages(run: ModelRun): string[] {
  return run.status?.simulated ? [...run.status.simulated] : (run.status?.stages ?? []).filter(stageSimulated).map((s) => s.name);
}
