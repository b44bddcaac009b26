/** Promotion records for tests: what a stack's `kiln:model` would hold, pointing at a run's export in the plan's storage. */
import type { Plan, ServingPlan } from '@kiln/plan';
import { targetModel, type ServingModel } from '../src/index.ts';

export const DIGEST = `sha256:${'ab'.repeat(32)}`;

/** The record of run `run` (default: the plan's own), with a repository for every serving target of the plan. */
export function record(p: Plan, run = p.runId, digest = DIGEST): { run: string; digest: string; repositories: Record<string, string> } {
  const exported = `${p.storagePrefix.replace(p.runId, run)}/export/`;
  return { run, digest, repositories: Object.fromEntries(p.serving.map((t) => [t.name, `${exported}${t.name}/`])) };
}

/** What target `t` serves of that record. */
export const served = (p: Plan, t: Pick<ServingPlan, 'name'>, run?: string, digest?: string): ServingModel => targetModel(t, record(p, run, digest));
