/**
 * What the run controller lets its host add, and nothing more: the production controller has no simulation
 * of its own. The local cluster (tools/local-cluster) supplies hooks that make kwok's pods end as a stage
 * would and that report the progress a simulated stage would have made.
 */
import type { V1Job, V1Pod } from '@kubernetes/client-node';
import type { Plan, Stage } from '@kiln/plan';
import type { Progress } from '@kiln/stage';
import type { ModelRun } from './status.ts';

/** One attempt of one stage of a run. */
export interface AttemptContext {
  readonly run: ModelRun;
  readonly plan: Plan;
  readonly stage: Stage;
  /** 1 for the first attempt. */
  readonly attempt: number;
}

/** A running attempt, as the informer caches show it. */
export interface RunningAttempt extends AttemptContext {
  readonly job: V1Job;
  readonly pods: readonly V1Pod[];
  readonly now: number;
}

/** A warning about a run, recorded as an Event when the controller first sees the run. */
export interface RunWarning {
  readonly reason: string;
  readonly message: string;
}

/** Extension points of the run controller; each is optional and none is set in production. */
export interface ControllerHooks {
  /** Extra annotations for the pods of one stage attempt. Default: none. */
  readonly podAnnotations?: (a: AttemptContext) => Readonly<Record<string, string>> | undefined;
  /** Progress of a running attempt, where something other than the stage reports it. Default: none. */
  readonly progress?: (a: RunningAttempt) => Progress | undefined;
  /** Warnings about a run (a malformed annotation a hook reads). Default: none. */
  readonly runWarnings?: (run: ModelRun) => readonly RunWarning[];
}
