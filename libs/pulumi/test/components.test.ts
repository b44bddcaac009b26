import { fileURLToPath } from 'node:url';
import * as pulumi from '@pulumi/pulumi';
import { compileFile, type Plan, type ServedModel } from '@kiln/plan';
import { beforeAll, describe, expect, it } from 'vitest';

// Pulumi tests set mocks first and import the program after (STYLE.md §14).
const registered: { type: string; name: string; inputs: Record<string, unknown> }[] = [];
let lib: typeof import('../src/index.ts');

const configs = fileURLToPath(new URL('../../../configs/', import.meta.url));
const plan = (file: string, stack?: string): Plan => compileFile(configs + file, stack ? { stack } : {}).plan!;
const value = <T>(o: pulumi.Output<T>): Promise<T> => new Promise((resolve) => o.apply((v) => resolve(v)));

/** What the source stack of a StackReference outputs as its `model`, in these tests. */
const SOURCE_MODEL = { run: 'r-50urce000000', digest: `sha256:${'11'.repeat(32)}` };

/** Resource registration is asynchronous: wait until no new registrations arrive. */
async function settle(): Promise<void> {
  let last = -1;
  while (last !== registered.length) {
    last = registered.length;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A promotion record of `run` for every serving target of the plan, as `kiln promote` writes `kiln:model`. */
function record(p: Plan, run: string, digest: string, over: Partial<ServedModel> = {}): ServedModel {
  const exported = `${p.storagePrefix.replace(p.runId, run)}/export/`;
  return {
    action: 'promote',
    seq: 1,
    run,
    namespace: p.namespace,
    export: exported,
    repositories: Object.fromEntries(p.serving.map((t) => [t.name, `${exported}${t.name}/`])),
    digest,
    files: 7,
    from: 'dev',
    evidence: { metrics: { 'humaneval.pass@1': 0.1 }, gates: [{ expr: 'humaneval.pass@1 >= 0.05', value: 0.1, passed: true }] },
    by: 'Ada <ada@example.com>',
    at: '2026-12-01T10:00:00Z',
    ...over,
  };
}
const STABLE = 'r-5ab1e5ab1e00';
const CANDIDATE = 'r-ca0d1da7e000';
const D1 = `sha256:${'ab'.repeat(32)}`;
const D2 = `sha256:${'cd'.repeat(32)}`;

const byName = (name: string) => registered.find((r) => r.name === name);
type Template = { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: { containers: { command: string[] }[] } };
const template = (name: string) => (byName(name)!.inputs.spec as { template: Template }).template;

beforeAll(async () => {
  pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        registered.push({ type: args.type, name: args.name, inputs: args.inputs as Record<string, unknown> });
        const state = args.type === 'pulumi:pulumi:StackReference' ? { ...args.inputs, outputs: { model: SOURCE_MODEL } } : args.inputs;
        return { id: `${args.name}-id`, state };
      },
      call: (args) => args.inputs,
    },
    'kiln',
    'staging',
    false,
    'acme',
  );
  lib = await import('../src/index.ts');
});

describe('pipeline', () => {
  it('GIVEN a training stack and a model WHEN declared THEN the platform, the run and each serving target are components, with children named after them', async () => {
    registered.length = 0;
    const p = plan('tiny.yaml', 'dev');
    const out = lib.pipeline(p, { model: record(p, STABLE, D1) });
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

  it('GIVEN no model WHEN declared THEN the platform and the run, but no Triton and no gateway; the outputs say nothing is served', async () => {
    registered.length = 0;
    const p = plan('tiny.yaml', 'dev');
    const out = lib.pipeline(p);
    await settle();
    expect(registered.map((r) => r.type)).toEqual(expect.arrayContaining(['kiln:platform:Platform', 'kiln:run:ModelRun']));
    expect(registered.filter((r) => r.type === 'kiln:serving:ServingTarget' || r.type === 'kubernetes:core/v1:ConfigMap' || r.name.startsWith('tiny-completions'))).toEqual([]);
    expect(out).toMatchObject({ runId: p.runId, train: true, model: null, canary: null, endpoints: {}, serving: {} });
  });

  it('GIVEN a model WHEN Triton is declared THEN it serves the promoted repository, its pods labelled with the run and annotated with the digest', async () => {
    registered.length = 0;
    const p = plan('tiny.yaml', 'dev');
    lib.pipeline(p, { model: record(p, STABLE, D1) });
    await settle();
    const t = template('tiny-completions-deployment');
    expect(t.spec.containers[0]!.command).toContain(`--model-repository=/artifacts/tiny/runs/${STABLE}/export/completions/`);
    expect(t.metadata.labels['kiln.dev/run-id']).toBe(STABLE);
    expect(t.metadata.annotations).toEqual({ 'kiln.dev/model-digest': D1 });
    // Promotion moves the stable Triton: Pulumi holds none of its fields.
    expect(JSON.stringify(registered)).not.toContain('ignoreChanges');
  });

  it('GIVEN a new promotion WHEN declared again THEN the same Deployment gets the new model (a rollout, not a new object)', async () => {
    const p = plan('tiny.yaml', 'dev');
    registered.length = 0;
    lib.pipeline(p, { model: record(p, STABLE, D1) });
    await settle();
    const before = template('tiny-completions-deployment');
    registered.length = 0;
    lib.pipeline(p, { model: record(p, CANDIDATE, D2, { seq: 2 }) });
    await settle();
    const after = template('tiny-completions-deployment');
    expect([before.metadata.annotations!['kiln.dev/model-digest'], after.metadata.annotations!['kiln.dev/model-digest']]).toEqual([D1, D2]);
    expect(after.spec.containers[0]!.command).toContain(`--model-repository=/artifacts/tiny/runs/${CANDIDATE}/export/completions/`);
  });

  it('GIVEN train false WHEN declared THEN no Platform, no namespace, no ModelRun: only the serving targets, in the spec\'s namespace; runId is null', async () => {
    registered.length = 0;
    const p = plan('tiny.yaml', 'staging');
    const out = lib.pipeline(p, { train: false, model: record(p, STABLE, D1) });
    await settle();
    const types = registered.map((r) => r.type);
    for (const absent of ['kiln:platform:Platform', 'kiln:run:ModelRun', 'kubernetes:core/v1:Namespace', 'kubernetes:kiln.dev/v1alpha1:ModelRun', 'kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition', 'kubernetes:rbac.authorization.k8s.io/v1:Role']) {
      expect(types).not.toContain(absent);
    }
    expect(types).toContain('kiln:serving:ServingTarget');
    expect((byName('tiny-completions-deployment')!.inputs.metadata as { namespace: string }).namespace).toBe('kiln-tiny');
    expect(out.runId).toBeNull();
    expect(out.train).toBe(false);
    expect(await value(out.namespace)).toBe('kiln-tiny');
  });

  it('GIVEN a model without a repository for a target WHEN declared THEN the program fails naming the target and the repositories it has', () => {
    const p = plan('tiny.yaml', 'dev');
    const m = record(p, STABLE, D1, { repositories: { chat: 'pvc://kiln-artifacts/chat/' } });
    expect(() => lib.pipeline(p, { train: false, model: m })).toThrow(/serving target completions: the promotion of run r-5ab1e5ab1e00 has no model repository for it \(it has chat\)/);
  });

  it('GIVEN a model and a canary WHEN outputs are made THEN they hold the promotion (evidence, override), the endpoints, and nothing secret', () => {
    const p = plan('multinode-7b.yaml');
    const m = record(p, STABLE, D1, { override: { by: 'Ada <ada@example.com>', reason: 'known flaky eval' } });
    const out = lib.pipeline(p, { model: m, canary: record(p, CANDIDATE, D2) });
    expect(out.runId).toBe(p.runId);
    // The target has a gateway: clients call it, not Triton.
    expect(out.endpoints).toEqual({ completions: 'http://acme-code-7b-completions-gateway.acme-code.svc:8080/v1' });
    expect(out.serving).toEqual({
      completions: {
        endpoint: 'http://acme-code-7b-completions-gateway.acme-code.svc:8080/v1',
        gateway: 'http://acme-code-7b-completions-gateway.acme-code.svc:8080/v1',
        triton: 'http://acme-code-7b-completions.acme-code.svc:8000',
        canary: 0.1,
        canaryModel: CANDIDATE,
        model: STABLE,
      },
    });
    expect(out.model).toEqual({ run: STABLE, digest: D1, seq: 1, action: 'promote', from: 'dev', at: m.at, by: m.by, override: m.override, evidence: m.evidence });
    expect(out.canary).toMatchObject({ run: CANDIDATE, digest: D2 });
    expect(out.plan.stages).toEqual(['data-prep', 'dedup', 'tokenizer', 'pack', 'train', 'export', 'eval-humaneval', 'eval-multipl-e']);
    expect(Object.keys(out).sort()).toEqual(['canary', 'endpoints', 'model', 'namespace', 'plan', 'runId', 'serving', 'train']);
    expect(Object.keys(out.plan).sort()).toEqual(['cost', 'currency', 'gpuHours', 'gpus', 'stages', 'wallHours']);
    expect(JSON.stringify(out)).not.toMatch(/secret|password|token"/i);
  });

  it('keeps Triton as the endpoint of a target without a gateway', () => {
    const p = plan('fim.yaml');
    const out = lib.pipeline(p, { model: record(p, STABLE, D1) });
    expect(out.endpoints).toEqual({ completions: 'http://fim-350m-completions.kiln-fim-350m.svc:8000' });
    expect(out.serving.completions).toEqual({ endpoint: out.endpoints.completions, triton: out.endpoints.completions, model: STABLE });
  });

  it('fails a stack on an invalid spec with every located diagnostic', () => {
    const bad = fileURLToPath(new URL('../../spec/test/fixtures/invalid/many-errors.yaml', import.meta.url));
    expect(() => lib.pipelineFromSpec(bad, 'dev')).toThrow(/many-errors\.yaml:7:9 KL205[\s\S]*KL301/);
  });
});

describe('ServingTarget', () => {
  it('GIVEN a gateway and a declared canary (tiny-loop) WHEN declared THEN Triton, the canary Triton on the candidate, the gateway weighted 0.9/0.1 and its policies are children, handed over from libs/k8s unchanged', async () => {
    registered.length = 0;
    const p = plan('tiny-loop.yaml');
    const k8s = await import('@kiln/k8s');
    const t = p.serving[0]!;
    const c = new lib.ServingTarget('tl-completions', { plan: p, target: t, model: record(p, STABLE, D1), canary: record(p, CANDIDATE, D2) });
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
    const canary = template('tl-completions-canary-deployment');
    expect(canary.spec.containers[0]!.command).toContain(`--model-repository=/artifacts/tiny-loop/runs/${CANDIDATE}/export/completions/`);
    expect(canary.metadata.labels['kiln.dev/run-id']).toBe(CANDIDATE);
    expect(canary.metadata.annotations).toEqual({ 'kiln.dev/model-digest': D2 });
    expect(template('tl-completions-deployment').metadata.labels['kiln.dev/run-id']).toBe(STABLE);
    const config = JSON.parse((byName('tl-completions-gateway-config')!.inputs.data as Record<string, string>)['config.json']!);
    expect(config).toEqual(k8s.gatewayConfig(p, t, { canary: true }));
    expect(config.upstreams.map((u: { name: string; weight: number }) => [u.name, u.weight])).toEqual([['stable', 0.9], ['canary', 0.1]]);
    const policy = byName('tl-completions-triton-policy')!;
    expect(policy.inputs.spec).toEqual(JSON.parse(JSON.stringify(k8s.gatewayObjects(p, t, { canary: true }).tritonPolicy.spec)));
    expect(c.endpoint).toBe(c.gatewayEndpoint);
    expect(c.gatewayEndpoint).toBe('http://tiny-loop-completions-gateway.kiln-tiny-loop.svc:8080/v1');
    expect(c.tritonEndpoint).toBe('http://tiny-loop-completions.kiln-tiny-loop.svc:8000');
  });

  it('GIVEN a canary share but no canary declared WHEN declared THEN no canary Triton or policy, and the gateway sends everything to the stable one', async () => {
    registered.length = 0;
    const p = plan('tiny-loop.yaml');
    new lib.ServingTarget('tl-completions', { plan: p, target: p.serving[0]!, model: record(p, STABLE, D1) });
    await settle();
    expect(registered.map((r) => r.name).filter((n) => n.includes('canary'))).toEqual([]);
    const config = JSON.parse((byName('tl-completions-gateway-config')!.inputs.data as Record<string, string>)['config.json']!);
    expect(config.upstreams).toEqual([{ name: 'stable', url: 'http://tiny-loop-completions.kiln-tiny-loop.svc:8000', weight: 1 }]);
  });

  it('GIVEN no gateway and no canary (fim) WHEN declared THEN only the four Triton objects', async () => {
    registered.length = 0;
    const p = plan('fim.yaml');
    new lib.ServingTarget('fim-completions', { plan: p, target: p.serving[0]!, model: record(p, STABLE, D1) });
    await settle();
    expect(registered.map((r) => r.type).sort()).toEqual([
      'kiln:serving:ServingTarget',
      'kubernetes:apps/v1:Deployment',
      'kubernetes:autoscaling/v2:HorizontalPodAutoscaler',
      'kubernetes:core/v1:Service',
      'kubernetes:policy/v1:PodDisruptionBudget',
    ]);
  });
});

describe('promotionSource', () => {
  it('GIVEN a model promoted from another stack WHEN read THEN that stack\'s model output, through a StackReference of <org>/<project>/<from>', async () => {
    registered.length = 0;
    const p = plan('tiny.yaml', 'staging');
    const s = lib.promotionSource(record(p, STABLE, D1, { from: 'dev' }))!;
    expect(s.stack).toBe('dev');
    expect(await value(s.model)).toEqual(SOURCE_MODEL);
    await settle();
    expect(registered.find((r) => r.type === 'pulumi:pulumi:StackReference')!.inputs.name).toBe('acme/kiln/dev');
  });

  it('GIVEN a model named by run alone, none, or from this very stack WHEN read THEN no source', () => {
    const p = plan('tiny.yaml', 'staging');
    expect(lib.promotionSource(record(p, STABLE, D1, { from: null }))).toBeUndefined();
    expect(lib.promotionSource(undefined)).toBeUndefined();
    expect(lib.promotionSource(record(p, STABLE, D1, { from: 'staging' }))).toBeUndefined();
  });
});
