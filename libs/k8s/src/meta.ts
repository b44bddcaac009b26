import type { V1ObjectMeta } from '@kubernetes/client-node';
import type { Plan } from '@kiln/plan';

/** Metadata of every object of a run: its name and namespace, the plan's labels and the component's. */
export function metadata(plan: Plan, name: string, component: string, extra: Record<string, string> = {}): V1ObjectMeta {
  return { name, namespace: plan.namespace, labels: { ...plan.labels, 'app.kubernetes.io/component': component, ...extra } };
}

/** Labels that select the pods of one stage of one run (stable: they never include user labels). */
export function stageSelector(plan: Plan, stage: string): Record<string, string> {
  return { 'kiln.dev/run-id': plan.runId, 'kiln.dev/stage': stage };
}
