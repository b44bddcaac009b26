import { canonicalJson } from '@kiln/stage';
import type { Plan, Stage } from './types.ts';

/** A run already declared in the cluster, as its ModelRun object records it. */
export interface ExistingRun {
  readonly runId: string;
  readonly created: string;
  readonly stages: readonly Pick<Stage, 'name' | 'config' | 'image' | 'resources'>[];
}

/** What applying a plan would change about runs. */
export interface Changes {
  /** Runs of this pipeline in the cluster, oldest first. */
  readonly existing: string[];
  /** Whether the planned run already exists: applying changes nothing about runs. */
  readonly sameRun: boolean;
  /** Compared with the newest existing run: stages added, removed, or whose config, image or resources differ. */
  readonly stages: { readonly name: string; readonly change: 'added' | 'removed' | 'changed' }[];
}

/** What applying the plan would change, against the runs already in the cluster. */
export function diffRuns(plan: Plan, existing: readonly ExistingRun[]): Changes {
  const sorted = [...existing].sort((a, b) => a.created.localeCompare(b.created));
  const sameRun = sorted.some((r) => r.runId === plan.runId);
  const latest = sorted.at(-1);
  const stages: Changes['stages'] = [];
  if (latest && !sameRun) {
    // Artifact paths contain the run id, which always differs: compare with it masked. Nulls are dropped:
    // server-side apply does not store them, so the recorded run has none.
    const key = (s: Pick<Stage, 'config' | 'image' | 'resources'>, runId: string) =>
      canonicalJson(JSON.parse(JSON.stringify({ config: s.config, image: s.image, resources: s.resources }, (_k, v: unknown) => (v === null ? undefined : v))))
        .split(runId)
        .join('<run>');
    const old = new Map(latest.stages.map((s) => [s.name, s]));
    for (const s of plan.stages) {
      const o = old.get(s.name);
      if (!o) stages.push({ name: s.name, change: 'added' });
      else if (key(o, latest.runId) !== key(s, plan.runId)) stages.push({ name: s.name, change: 'changed' });
    }
    for (const name of old.keys()) if (!plan.stages.some((s) => s.name === name)) stages.push({ name, change: 'removed' });
  }
  return { existing: sorted.map((r) => r.runId), sameRun, stages };
}
