/** @kiln/controller: runs ModelRuns stage by stage (see ARCHITECTURE.md and docs/controller.md). */
export { Controller, keyOf, nextStep, FIELD_MANAGER, TerminalError, type ControllerOptions, type ControllerStats, type ReconcileResult, type NextStep } from './controller.ts';
export { decide, planOf, backoffMs, ATTEMPT_LABEL, type Decision, type DecideOptions, type Observed, type KilnEvent, type ObjectRef } from './reconcile.ts';
export { WorkQueue, type QueueOptions } from './queue.ts';
export { ManualClock, systemClock, type Clock } from './clock.ts';
export { tryAcquire, campaign, type LeaderOptions } from './leader.ts';
export type { ControllerHooks, AttemptContext, RunningAttempt, RunWarning } from '@kiln/cluster';
export { main, controllerOptions, runController, OptionError, CONTROLLER_FLAGS } from './main.ts';
