/** @kiln/cluster: the ModelRun status contract and @kubernetes/client-node helpers shared by the controller and the CLI. */
export * from './status.ts';
export * from './hooks.ts';
export { kubeConfigFrom, runsPath, listRuns, findRun, watchRuns, stagePods, stagePod, podAttempts, podLog, PLURAL } from './runs.ts';
export { applyObject, readObject, createIfAbsent, mergePatch, listObjects, listNodes, nodeReady, apiReady, waitForApi, requestRaw, readPodLog, httpStatus, apiMessage, type ApplyOptions, type RawResponse, type PodLogQuery } from './client.ts';
export { clusterFacts, nodeCapacity, type ClusterFacts } from './facts.ts';
