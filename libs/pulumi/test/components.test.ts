import { fileURLToPath } from 'node:url';
import * as pulumi from '@pulumi/pulumi';
import { compileFile, type Plan } from '@kiln/plan';
import { beforeAll, describe, expect, it } from 'vitest';

// Pulumi tests set mocks first and import the program after (STYLE.md §14).
const registered: { type: string; name: string; inputs: Record<string, unknown> }[] = [];
let lib: typeof import('../src/index.ts');

const configs = fileURLToPath(new URL('../../../configs/', import.meta.url));
const plan = (file: string, stack?: string): Plan => compileFile(configs + file, stack ? { stack } : {}).plan!;
const value = <T>(o: pulumi.Output<T>): Promise<T> => new Promise((resolve) => o.apply((v) => resolve(v)));

/** Resource registration is asynchronous: wait until no new registrations arrive. */
async function settle(): Promise<void> {
  let last = -1;
  while (last !== registered.length) {
    last = registered.length;
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs as Record<string, unknown> });
        return { id: `${args.name}-id`, state: args.inputs };
      },
      call: (args) => args.inputs,
    },
    'kiln',
    'dev',
    false,
  );
  lib = await import('../src/index.ts');
});

describe('pipeline', () => {
  it('declares the platform, the run and each serving target as components, with children named after them', async () => {
    registered.length = 0;
    const p = plan('tiny.yaml', 'dev');
    const out = lib.pipeline(p);
    expect(await value(out.namespace)).toBe('kiln-tiny');
    await settle();
    const types = registered.map((r) => `${r.type} ${r.name}`);
    expect(types).toEqual(
      expect.arrayContaining([
        'kiln:platform:Platform tiny',
        'kubernetes:core/v1:Namespace tiny-namespace',
        'kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition tiny-crd',
        'kubernetes:apps/v1:Deployment tiny-controller',
        'kiln:run:ModelRun tiny-run',
        `kubernetes:kiln.dev/v1alpha1:ModelRun tiny-run-${p.runId}`,
        'kiln:serving:ServingTarget tiny-completions',
        'kubernetes:apps/v1:Deployment tiny-completions-deployment',
        'kubernetes:autoscaling/v2:HorizontalPodAutoscaler tiny-completions-hpa',
        'kubernetes:policy/v1:PodDisruptionBudget tiny-completions-pdb',
      ]),
    );
  });

  it('hands the libs/k8s objects over unchanged (the mapping lives in the pure builders)', async () => {
    registered.length = 0;
    const p = plan('tiny.yaml');
    lib.pipeline(p);
    await settle();
    const run = registered.find((r) => r.type === 'kubernetes:kiln.dev/v1alpha1:ModelRun')!;
    expect((run.inputs.spec as { runId: string }).runId).toBe(p.runId);
    const pvc = registered.find((r) => r.type === 'kubernetes:core/v1:PersistentVolumeClaim')!;
    expect((pvc.inputs.metadata as { annotations: Record<string, string> }).annotations['pulumi.com/skipAwait']).toBe('true');
  });

  it('outputs the run id, endpoints and a plan summary, and nothing secret', () => {
    const p = plan('multinode-7b.yaml');
    const out = lib.pipeline(p);
    expect(out.runId).toBe(p.runId);
    expect(out.endpoints).toEqual({ completions: 'http://acme-code-7b-completions.acme-code.svc:8000' });
    expect(out.plan.stages).toEqual(['data-prep', 'dedup', 'tokenizer', 'pack', 'train', 'export', 'eval-humaneval', 'eval-multipl-e']);
    expect(Object.keys(out).sort()).toEqual(['endpoints', 'namespace', 'plan', 'runId']);
    expect(Object.keys(out.plan).sort()).toEqual(['cost', 'currency', 'gpuHours', 'gpus', 'stages', 'wallHours']);
  });

  it('fails a stack on an invalid spec with every located diagnostic', () => {
    const bad = fileURLToPath(new URL('../../spec/test/fixtures/invalid/many-errors.yaml', import.meta.url));
    expect(() => lib.pipelineFromSpec(bad, 'dev')).toThrow(/many-errors\.yaml:7:9 KL205[\s\S]*KL301/);
  });
});
