import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import type { ModelRun, StageStatus } from '@kiln/cluster';
import { compileFile, type Plan } from '@kiln/plan';
import { evidenceOf, gateCheck, PromotionRefused } from '../src/index.ts';

const plan = compileFile(fileURLToPath(new URL('../../../configs/tiny.yaml', import.meta.url)), { stack: 'dev' }).plan!;

/** A ModelRun of the tiny plan as the controller writes it: every stage in `phase`, eval summaries with `pass`. */
function run(phase: 'Succeeded' | 'Running', pass: number): ModelRun {
  const { apiVersion: _a, ...spec } = plan;
  const stages: StageStatus[] = plan.stages.map((s) => ({
    name: s.name,
    kind: s.kind,
    phase: phase === 'Succeeded' ? 'Succeeded' : 'Running',
    reason: 'Succeeded',
    message: '',
    attempts: 1,
    maxAttempts: 3,
    manifest: s.manifest,
    ...(s.kind === 'eval' ? { summary: { metrics: { 'pass@1': pass, problems: 164 } } } : {}),
  }));
  const exp = plan.stages.find((s) => s.kind === 'export')!;
  return {
    apiVersion: 'kiln.dev/v1alpha1',
    kind: 'ModelRun',
    metadata: { name: `tiny-${plan.runId}`, namespace: 'kiln-tiny' },
    spec,
    status: {
      phase,
      message: phase === 'Succeeded' ? 'done' : 'training',
      currentStage: null,
      stages,
      conditions: [],
      artifacts: [
        { stage: 'export', name: 'model.safetensors', uri: `${exp.outputs[0]}hf/model.safetensors`, digest: `sha256:${'a'.repeat(64)}` },
        { stage: 'export', name: 'completions/kiln/config.pbtxt', uri: `${exp.outputs[0]}completions/kiln/config.pbtxt`, digest: `sha256:${'b'.repeat(64)}` },
        { stage: 'export', name: 'eval/kiln/config.pbtxt', uri: `${exp.outputs[0]}eval/kiln/config.pbtxt`, digest: `sha256:${'c'.repeat(64)}` },
        { stage: 'train', name: 'checkpoint', uri: 'pvc://x' },
      ],
      metrics: {},
      gates: {},
    },
  };
}

describe('run evidence', () => {
  it('a Succeeded run: `<suite>.<metric>` from its eval stages, the export stage\'s artifacts and repositories', () => {
    const e = evidenceOf(run('Succeeded', 0.12));
    expect(e.run).toBe(plan.runId);
    expect(e.metrics).toEqual({ 'humaneval.pass@1': 0.12, 'humaneval.problems': 164 });
    expect(e.artifacts.map((a) => a.name)).toEqual(['model.safetensors', 'completions/kiln/config.pbtxt', 'eval/kiln/config.pbtxt']);
    expect(e.repositories).toEqual(['completions']);
    expect(e.export).toMatch(/\/runs\/r-[0-9a-f]{12}\/export\/$/);
    expect(e.manifest).toMatch(/manifests\/export\.json$/);
  });

  it('refuses a run that has not succeeded, naming its phase', () => {
    expect(() => evidenceOf(run('Running', 0.12))).toThrow(PromotionRefused);
    expect(() => evidenceOf(run('Running', 0.12))).toThrow(/is Running, not Succeeded/);
  });

  it('gates of the target stack with their numbers; a stack without gates has none', () => {
    const target = { ...plan, gates: { staging: ['humaneval.pass@1 >= 0.05'] } } as Plan;
    expect(gateCheck(target, 'staging', { 'humaneval.pass@1': 0.01 })).toEqual([{ expr: 'humaneval.pass@1 >= 0.05', value: 0.01, passed: false, metric: 'humaneval.pass@1', op: '>=', threshold: 0.05 }]);
    expect(gateCheck(target, 'staging', {})[0]).toMatchObject({ value: null, passed: null });
    expect(gateCheck(target, 'prod', { 'humaneval.pass@1': 0.01 })).toEqual([]);
  });
});
