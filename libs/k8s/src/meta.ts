import type { V1ObjectMeta } from '@kubernetes/client-node';
import type { Plan } from '@kiln/plan';
import { LABELS, runLabels } from './names.ts';

/** Metadata of every object of a run: its name and namespace, the spec's labels, kiln's and the component's. */
export function metadata(plan: Plan, name: string, component: string, extra: Record<string, string> = {}): V1ObjectMeta {
  return { name, namespace: plan.namespace, labels: { ...plan.labels, ...runLabels(plan), [LABELS.component]: component, ...extra } };
}

export { stageSelector } from './names.ts';
