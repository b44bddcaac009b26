/** @kiln/plan: the pure compiler from a resolved Spec to a Plan (stage graph, run id, estimate). */
export { compile, compileFile, topologicalOrder, type CompileFileResult, STAGE_RESOURCES, TRITON_RESOURCES, GATEWAY_RESOURCES, podResources, MAX_ATTEMPTS, type CompileOptions } from './compile.ts';
export { estimate, DEFAULT_MFU } from './estimate.ts';
export { dnsName } from './names.ts';
export { runId, runIdentity } from './run-id.ts';
export type * from './types.ts';
export { stageOf, stagesOf } from './types.ts';
export { evaluateGates, evalSuites, type GateResult, type GateVerdict, type SuiteMetrics } from './gates.ts';
export { checkCapacity, type CapacityProblem, type NodeCapacity } from './capacity.ts';
export { diffRuns, type Changes, type ExistingRun } from './diff.ts';
export { exportedRepositories, isEvalRepositoryFile, modelDigest, repositoryFor, type ModelFile, type PromotionEvidence, type PromotionGate, type ServedModel, type SmokeEvidence } from './promotion.ts';
