import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { load, validateFile } from '@kiln/spec';
import { check, STAGE_KINDS, type Envelope, type StageSummary } from '@kiln/stage';
import { describe, expect, it } from 'vitest';
import { compile, type Plan, type Stage } from '../src/index.ts';

const configs = fileURLToPath(new URL('../../../configs/', import.meta.url));
const files = readdirSync(configs).filter((f) => f.endsWith('.yaml')).sort();

/** Every example spec, bare and with each stack it declares, compiled. */
const plans: [string, Plan][] = files.flatMap((f) => {
  const stacks = validateFile(configs + f).stacks;
  return [undefined, ...stacks].map((stack): [string, Plan] => [`${f}${stack ? ` (${stack})` : ''}`, compile(load(configs + f, stack ? { stack } : {}).spec!)]);
});

/** What the controller adds (libs/k8s stageObjects), as on a second attempt with every upstream stage done. */
function mounted(plan: Plan, stage: Stage): Envelope & Stage['config'] {
  const summary: StageSummary = { metrics: { records_out: 9 }, artifacts: [{ name: 'x', uri: `${plan.storagePrefix}/x`, digest: `sha256:${'0'.repeat(64)}`, bytes: 1 }] };
  const upstream = Object.fromEntries(stage.dependsOn.map((d) => [d, { summary, manifest: `${plan.storagePrefix}/manifests/${d}.json` }]));
  return { runId: plan.runId, stage: stage.name, attempt: 2, storagePrefix: plan.storagePrefix, manifest: stage.manifest, ...stage.config, resume: true, upstream };
}

describe('the stage configs the plan compiles', () => {
  it('GIVEN the example specs WHEN compiled bare and per stack THEN every stage kind occurs', () => {
    expect(plans.length).toBeGreaterThan(files.length);
    expect(new Set(plans.flatMap(([, p]) => p.stages.map((s) => s.kind)))).toEqual(new Set(STAGE_KINDS));
  });

  it.each(plans)('GIVEN %s WHEN each stage config gets the controller\'s envelope THEN it conforms to its schemas/stages schema', (_name, plan) => {
    for (const stage of plan.stages) expect(check(stage.kind, JSON.parse(JSON.stringify(mounted(plan, stage)))), stage.name).toEqual([]);
  });

  it('GIVEN a compiled config WHEN a field the contract requires is broken THEN the schema says which (the check can fail)', () => {
    const [, plan] = plans[0]!;
    const train = plan.stages.find((s) => s.kind === 'train')!;
    const broken = JSON.parse(JSON.stringify({ ...mounted(plan, train), checkpoints: 42, resume: 'yes' }));
    expect(check('train', broken).map((p) => p.pointer)).toEqual(expect.arrayContaining(['/checkpoints', '/resume']));
  });
});
