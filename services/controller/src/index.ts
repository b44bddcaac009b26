/** @kiln/controller: runs ModelRuns stage by stage (see ARCHITECTURE.md and docs/controller.md). */
export { Controller, keyOf, FIELD_MANAGER, TerminalError, type ControllerOptions, type ControllerStats } from './controller.ts';
export { decide, planOf, backoffMs, ATTEMPT_LABEL, type Decision, type DecideOptions, type Observed, type KilnEvent, type ObjectRef } from './reconcile.ts';
export { WorkQueue, type QueueOptions } from './queue.ts';
export { ManualClock, systemClock, type Clock } from './clock.ts';
export { tryAcquire, campaign, type LeaderOptions } from './leader.ts';
export { readSimulation, simulationAnnotations, simulatedSummary, SIM, SIMULATE_ANNOTATION, type Simulation, type SimFault } from './simulate.ts';
