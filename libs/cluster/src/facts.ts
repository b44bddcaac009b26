/** What `kiln plan` checks a plan against: the nodes of a cluster and the runs of the plan's pipeline already declared there. */
import type { KubeConfig } from '@kubernetes/client-node';
import { labelSelector, pipelineSelector } from '@kiln/k8s';
import type { ExistingRun, NodeCapacity, Plan } from '@kiln/plan';
import { requestRaw } from './client.ts';
import { runsPath } from './runs.ts';

/** The node label that names a node's GPU model (what a GpuRequest's `product` selects). */
const GPU_PRODUCT_LABEL = 'nvidia.com/gpu.product';

export interface ClusterFacts {
  /** The kubeconfig context they were read from. */
  readonly context: string;
  readonly nodes: NodeCapacity[];
  /** The ModelRuns of the plan's pipeline in its namespace, in the order the API lists them. */
  readonly runs: ExistingRun[];
}

type NodeItem = { metadata: { name: string; labels?: Record<string, string> }; status?: { allocatable?: Record<string, string> } };
type RunItem = { metadata: { creationTimestamp: string }; spec: { runId: string; stages?: ExistingRun['stages'] } };

/** A node as the capacity check sees it. */
export const nodeCapacity = (n: NodeItem): NodeCapacity => ({ name: n.metadata.name, gpuProduct: n.metadata.labels?.[GPU_PRODUCT_LABEL], allocatable: n.status?.allocatable ?? {} });

/**
 * Reads the nodes and the pipeline's ModelRuns (each request at most `timeoutMs`). An API answer other than
 * success is an `error`; a cluster without the ModelRun CRD has no runs. Transport failures throw.
 */
export async function clusterFacts(kc: KubeConfig, plan: Pick<Plan, 'name' | 'namespace'>, timeoutMs = 3000): Promise<ClusterFacts | { error: string }> {
  const r = await requestRaw(kc, 'GET', '/api/v1/nodes', undefined, { timeoutMs });
  if (r.status !== 200) return { error: `listing nodes returned HTTP ${r.status}` };
  const nodes = (r.body as { items: NodeItem[] }).items;
  const selector = encodeURIComponent(labelSelector(pipelineSelector(plan.name)));
  const mr = await requestRaw(kc, 'GET', `${runsPath(plan.namespace)}?labelSelector=${selector}`, undefined, { timeoutMs });
  // 404: no ModelRun CRD in this cluster yet, so no runs.
  const runs = mr.status === 200 ? (mr.body as { items: RunItem[] }).items : [];
  return {
    context: kc.getCurrentContext(),
    nodes: nodes.map(nodeCapacity),
    runs: runs.map((x) => ({ runId: x.spec.runId, created: x.metadata.creationTimestamp, stages: x.spec.stages ?? [] })),
  };
}
