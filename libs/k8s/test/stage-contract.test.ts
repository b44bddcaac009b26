import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileFile, type Plan, type Stage } from '@kiln/plan';
import { check, STAGE_KINDS, type StageSummary } from '@kiln/stage';
import { describe, expect, it } from 'vitest';
import { stageConfig, stageObjects } from '../src/index.ts';

const configs = fileURLToPath(new URL('../../../configs/', import.meta.url));
const files = readdirSync(configs).filter((f) => f.endsWith('.yaml')).sort();

function compiled(file: string, stack?: string): Plan {
  const r = compileFile(configs + file, stack ? { stack } : {});
  if (!r.plan) throw new Error(`${file}: ${r.diagnostics.map((d) => d.message).join('; ')}`);
  return r.plan;
}

/** Every example spec, bare and with each stack it declares, compiled. */
const plans: [string, Plan][] = files.flatMap((f) =>
  [undefined, ...compileFile(configs + f).stacks].map((stack): [string, Plan] => [`${f}${stack ? ` (${stack})` : ''}`, compiled(f, stack)]),
);

/** What a stage reads: the config libs/k8s mounts, as on a second attempt with every upstream stage done. */
function mounted(plan: Plan, stage: Stage): unknown {
  const summary: StageSummary = { metrics: { records_out: 9 }, artifacts: [{ name: 'x', uri: `${plan.storagePrefix}/x`, digest: `sha256:${'0'.repeat(64)}`, bytes: 1 }] };
  const upstream = Object.fromEntries(stage.dependsOn.map((d) => [d, { summary, manifest: `${plan.storagePrefix}/manifests/${d}.json` }]));
  return JSON.parse(stageObjects(plan, stage, { attempt: 2, upstream }).configMap.data!['stage.json']!);
}

describe('the stage configs libs/k8s mounts', () => {
  it('GIVEN the example specs WHEN compiled bare and per stack THEN every stage kind occurs', () => {
    expect(plans.length).toBeGreaterThan(files.length);
    expect(new Set(plans.flatMap(([, p]) => p.stages.map((s) => s.kind)))).toEqual(new Set(STAGE_KINDS));
  });

  it.each(plans)('GIVEN %s WHEN each stage\'s ConfigMap is rendered THEN its config conforms to its schemas/stages schema', (_name, plan) => {
    for (const stage of plan.stages) expect(check(stage.kind, mounted(plan, stage)), stage.name).toEqual([]);
  });

  it('GIVEN an eval stage WHEN its config is rendered THEN the endpoint is the eval model server, which the plan does not carry', () => {
    const [, plan] = plans.find(([, p]) => p.stages.some((s) => s.kind === 'eval'))!;
    const evalStage = plan.stages.find((s) => s.kind === 'eval')!;
    expect(evalStage.config).not.toHaveProperty('endpoint');
    const { endpoint: _e, ...withoutEndpoint } = stageConfig(plan, evalStage as Stage<'eval'>);
    expect(JSON.stringify(check('eval', JSON.parse(JSON.stringify(withoutEndpoint))))).toMatch(/endpoint/);
    expect(stageConfig(plan, evalStage as Stage<'eval'>).endpoint).toMatch(/^http:\/\/r-[0-9a-f]{12}-eval-model\.[a-z0-9-]+\.svc:8000$/);
  });

  it('GIVEN micro_batch auto WHEN the train config is rendered THEN it carries "auto" without an accumulation, and the contract takes no other word', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kiln-auto-'));
    const file = join(dir, 'fim-auto.yaml');
    writeFileSync(file, readFileSync(configs + 'fim.yaml', 'utf8').replace('micro_batch: 16', 'micro_batch: auto'));
    const r = compileFile(file);
    rmSync(dir, { recursive: true, force: true });
    if (!r.plan) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
    const plan = r.plan;
    const train = mounted(plan, plan.stages.find((s) => s.kind === 'train')!) as { training: Record<string, unknown> };
    expect(train.training.micro_batch).toBe('auto');
    expect(train.training).not.toHaveProperty('gradient_accumulation');
    expect(check('train', train)).toEqual([]);
    for (const bad of ['max', 0, 2.5]) expect(check('train', { ...train, training: { ...train.training, micro_batch: bad } }).map((p) => p.pointer), String(bad)).toContain('/training/micro_batch');
    expect(check('train', { ...train, training: { ...train.training, gradient_accumulation: 0 } }).map((p) => p.pointer)).toEqual(['/training/gradient_accumulation']);
  });

  it('GIVEN a rendered config WHEN a field the contract requires is broken THEN the schema says which (the check can fail)', () => {
    const [, plan] = plans[0]!;
    const train = plan.stages.find((s) => s.kind === 'train')!;
    const broken = { ...(mounted(plan, train) as object), checkpoints: 42, resume: 'yes' };
    expect(check('train', broken).map((p) => p.pointer)).toEqual(expect.arrayContaining(['/checkpoints', '/resume']));
  });
});
