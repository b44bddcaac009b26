import type { GpuRequest, Plan } from './types.ts';

/** What a capacity check needs to know of one node of a cluster; the fetcher reads it from the node's labels and status. */
export interface NodeCapacity {
  readonly name: string;
  /** The GPU model the node is labelled with (a GpuRequest's `product`); undefined when it has no such label. */
  readonly gpuProduct?: string | undefined;
  /** Allocatable resources by name, as the cluster reports them (`nvidia.com/gpu: "8"`). */
  readonly allocatable: Readonly<Record<string, string>>;
}

/** A capacity problem found against a live cluster: a pod that could never be scheduled. */
export interface CapacityProblem {
  readonly what: string;
  readonly message: string;
}

/** Checks each GPU request of the plan against the nodes of a cluster: more GPUs per pod than any node has is an error now, not a pod Pending forever. */
export function checkCapacity(plan: Plan, nodes: readonly NodeCapacity[]): CapacityProblem[] {
  const problems: CapacityProblem[] = [];
  const check = (what: string, g: GpuRequest) => {
    // A node with GPUs but no model label may be of any model.
    const ofType = nodes.filter((n) => n.gpuProduct === g.product || (!n.gpuProduct && Number(n.allocatable[g.resource] ?? 0) > 0));
    if (ofType.length === 0) {
      problems.push({ what, message: `${what} needs ${g.type} GPUs (${g.product}), and no node of the cluster has them` });
      return;
    }
    const most = Math.max(...ofType.map((n) => Number(n.allocatable[g.resource] ?? 0)));
    if (g.count > most) {
      problems.push({ what, message: `${what} asks for ${g.count} × ${g.resource} per pod, but the largest ${g.type} node has ${most} (${ofType.length} node${ofType.length === 1 ? '' : 's'}: ${ofType.map((n) => n.name).slice(0, 4).join(', ')}${ofType.length > 4 ? ', …' : ''})` });
    }
  };
  for (const s of plan.stages) if (s.resources.gpu) check(`stage ${s.name}`, s.resources.gpu);
  for (const t of plan.serving) if (t.gpu.count > 0) check(`serving target ${t.name}`, t.gpu);
  return problems;
}
