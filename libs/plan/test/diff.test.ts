import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { compileFile, diffRuns, type Plan } from '../src/index.ts';

const configs = fileURLToPath(new URL('../../../configs/', import.meta.url));
function plan(file: string): Plan {
  const r = compileFile(configs + file);
  if (!r.plan) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  return r.plan;
}

describe('diffRuns', () => {
  const p = plan('tiny.yaml');
  // A recorded run: its artifact paths carry its own run id.
  const asRun = (runId: string, created: string, stages = p.stages) => ({ runId, created, stages: JSON.parse(JSON.stringify(stages).split(p.runId).join(runId)) as typeof stages });

  it('knows when the planned run already exists', () => {
    expect(diffRuns(p, [asRun('r-000000000000', '2026-01-01T00:00:00Z'), asRun(p.runId, '2026-01-02T00:00:00Z')])).toMatchObject({ sameRun: true, stages: [] });
  });
  it('names the stages whose config changed against the newest run', () => {
    const changed = p.stages.map((s): typeof s => (s.kind === 'train' ? { ...s, config: { ...s.config, training: { ...s.config.training, seed: 7 } } } : s));
    const d = diffRuns(p, [asRun('r-111111111111', '2026-01-02T00:00:00Z', changed), asRun('r-000000000000', '2026-01-01T00:00:00Z', [])]);
    expect(d).toEqual({ existing: ['r-000000000000', 'r-111111111111'], sameRun: false, stages: [{ name: 'train', change: 'changed' }] });
  });
  it('does not count the run id inside artifact paths as a change', () => {
    const other = 'r-222222222222';
    const moved = JSON.parse(JSON.stringify(p.stages).split(p.runId).join(other)) as typeof p.stages;
    expect(diffRuns(p, [asRun(other, '2026-01-02T00:00:00Z', moved)]).stages).toEqual([]);
  });

  it('reports added and removed stages', () => {
    const d = diffRuns(p, [asRun('r-111111111111', '2026-01-02T00:00:00Z', [...p.stages.filter((s) => s.name !== 'export'), { ...p.stages[0]!, name: 'eval-old' }])]);
    expect(d.stages).toEqual([{ name: 'export', change: 'added' }, { name: 'eval-old', change: 'removed' }]);
  });
});
