/**
 * @kiln/local-cluster: the embedded default cluster (see docs/local-cluster.md). A real control plane with
 * kwok's simulated nodes, the simulation the run controller is given there (never built into it), the local
 * Pulumi backend (and the Pulumi CLI run against it), the offline toolchain, and ModelRuns driven without
 * Pulumi for the integration tests and benchmarks. This file is the project's only public API.
 */
export { up, down, status, type UpResult, type ClusterStatus, type ComponentStatus } from './cluster.ts';
export { paths, readState, ClusterError, DEFAULTS, COMPONENTS, type ClusterOptions, type Component, type Paths, type State } from './paths.ts';
export { clusterKubeConfig, caCertificate } from './pki.ts';
export { runningPid, logTail } from './processes.ts';
export { nodeNames, LOCAL_VOLUMES } from './nodes.ts';
export { pulumiEnv, pulumiOnLocalCluster, STACKS_DIR, type PulumiEngineEvent, type PulumiResult, type PulumiRunOptions } from './pulumi.ts';
export { kubeconfigPath, isLocalKubeconfig } from './kubeconfig.ts';
export { SIM_ANNOTATIONS } from './kwok.ts';
export { CLUSTER_ROOT, tinyPlan, preparePlatform, createRun, startController, whenSynced, type ControllerProcess, type StartControllerOptions } from './runs.ts';
export {
  simulationHooks,
  simulatedSummary,
  simulationAnnotations,
  simulatedProgress,
  readSimulation,
  trainingBudget,
  SIM,
  SIMULATE_ANNOTATION,
  DEFAULT_SIM_DURATION_MS,
  type Simulation,
  type SimFault,
  type SimulationOptions,
} from './simulation.ts';
export {
  resolveToolchain,
  ensureToolchain,
  cacheRoot,
  cacheKey,
  diskUse,
  formatDuration,
  readVersions,
  binarySpecs,
  buildOne,
  acquireLock,
  alive,
  ToolchainError,
  TOOLCHAIN_SRC,
  type Toolchain,
  type Versions,
  type BinarySpec,
  type BuildProgress,
} from './toolchain.ts';
