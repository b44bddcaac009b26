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
    // The target has a gateway: clients call it, not Triton.
    expect(out.endpoints).toEqual({ completions: 'http://acme-code-7b-completions-gateway.acme-code.svc:8080/v1' });
    expect(out.serving).toEqual({
      completions: {
        endpoint: 'http://acme-code-7b-completions-gateway.acme-code.svc:8080/v1',
        gateway: 'http://acme-code-7b-completions-gateway.acme-code.svc:8080/v1',
        triton: 'http://acme-code-7b-completions.acme-code.svc:8000',
        canary: 0.1,
      },
    });
    expect(out.plan.stages).toEqual(['data-prep', 'dedup', 'tokenizer', 'pack', 'train', 'export', 'eval-humaneval', 'eval-multipl-e']);
    expect(Object.keys(out).sort()).toEqual(['endpoints', 'namespace', 'plan', 'runId', 'serving']);
    expect(Object.keys(out.plan).sort()).toEqual(['cost', 'currency', 'gpuHours', 'gpus', 'stages', 'wallHours']);
  });

  it('keeps Triton as the endpoint of a target without a gateway', () => {
    const p = plan('fim.yaml');
    const out = lib.pipeline(p);
    expect(out.endpoints).toEqual({ completions: 'http://fim-350m-completions.kiln-fim-350m.svc:8000' });
    expect(out.serving.completions).toEqual({ endpoint: out.endpoints.completions, triton: out.endpoints.completions });
  });

  it('fails a stack on an invalid spec with every located diagnostic', () => {
    const bad = fileURLToPath(new URL('../../spec/test/fixtures/invalid/many-errors.yaml', import.meta.url));
    expect(() => lib.pipelineFromSpec(bad, 'dev')).toThrow(/many-errors\.yaml:7:9 KL205[\s\S]*KL301/);
  });
});

describe('ServingTarget', () => {
  it('GIVEN a gateway and a canary (tiny-loop) WHEN declared THEN Triton, the canary Triton, the gateway and its policies are children, handed over from libs/k8s unchanged', async () => {
    registered.length = 0;
    const p = plan('tiny-loop.yaml');
    const k8s = await import('@kiln/k8s');
    const t = p.serving[0]!;
    const c = new lib.ServingTarget('tl-completions', { plan: p, target: t });
    await settle();
    const names = registered.map((r) => `${r.type} ${r.name}`);
    expect(names).toEqual(
      expect.arrayContaining([
        'kiln:serving:ServingTarget tl-completions',
        'kubernetes:apps/v1:Deployment tl-completions-deployment',
        'kubernetes:apps/v1:Deployment tl-completions-canary-deployment',
        'kubernetes:core/v1:Service tl-completions-canary-service',
        'kubernetes:core/v1:ConfigMap tl-completions-gateway-config',
        'kubernetes:apps/v1:Deployment tl-completions-gateway',
        'kubernetes:core/v1:Service tl-completions-gateway-service',
        'kubernetes:autoscaling/v2:HorizontalPodAutoscaler tl-completions-gateway-hpa',
        'kubernetes:policy/v1:PodDisruptionBudget tl-completions-gateway-pdb',
        'kubernetes:networking.k8s.io/v1:NetworkPolicy tl-completions-triton-policy',
        'kubernetes:networking.k8s.io/v1:NetworkPolicy tl-completions-canary-policy',
        'kubernetes:networking.k8s.io/v1:NetworkPolicy tl-completions-gateway-policy',
      ]),
    );
    const config = registered.find((r) => r.name === 'tl-completions-gateway-config')!;
    expect(JSON.parse((config.inputs.data as Record<string, string>)['config.json']!)).toEqual(k8s.gatewayConfig(p, t));
    const policy = registered.find((r) => r.name === 'tl-completions-triton-policy')!;
    expect(policy.inputs.spec).toEqual(JSON.parse(JSON.stringify(k8s.gatewayObjects(p, t).tritonPolicy.spec)));
    expect(c.endpoint).toBe(c.gatewayEndpoint);
    expect(c.gatewayEndpoint).toBe('http://tiny-loop-completions-gateway.kiln-tiny-loop.svc:8080/v1');
    expect(c.tritonEndpoint).toBe('http://tiny-loop-completions.kiln-tiny-loop.svc:8000');
  });

  it('GIVEN no gateway and no canary (fim) WHEN declared THEN only the four Triton objects', async () => {
    registered.length = 0;
    const p = plan('fim.yaml');
    new lib.ServingTarget('fim-completions', { plan: p, target: p.serving[0]! });
    await settle();
    expect(registered.map((r) => r.type).sort()).toEqual([
      'kiln:serving:ServingTarget',
      'kubernetes:apps/v1:Deployment',
      'kubernetes:autoscaling/v2:HorizontalPodAutoscaler',
      'kubernetes:core/v1:Service',
      'kubernetes:policy/v1:PodDisruptionBudget',
    ]);
  });

  it('GIVEN a canary share WHEN the stable Deployment is declared THEN Pulumi holds the fields naming its model; without one it rolls as before', () => {
    expect(lib.stableDeploymentOptions({ canary: 0.1 }).ignoreChanges).toEqual([
      'spec.template.spec.containers[0].command',
      'spec.template.spec.containers[0].env',
      'spec.template.metadata.labels["kiln.dev/run-id"]',
    ]);
    expect(lib.stableDeploymentOptions({ canary: 0 })).toEqual({});
  });
});
