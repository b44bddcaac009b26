import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { parseDocument } from 'yaml';
import { paths, pulumiOnLocalCluster, STACKS_DIR } from '@kiln/local-cluster';
import { eventually, k, ROOT, uniq } from './helpers.ts';

// The real stacks/ project, on a stack of its own whose spec is a copy of configs/tiny.yaml in its own namespace.
const tiny = readFileSync(fileURLToPath(new URL('../../../../configs/tiny.yaml', import.meta.url)), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'kiln-stack-it-'));
const specPath = join(dir, 'kiln.yaml');
const stack = uniq('it');
const ns = uniq('kiln-it-stack');
const writeSpec = (edit: (t: string) => string = (t) => t) => writeFileSync(specPath, edit(tiny.replace('namespace: kiln-tiny', `namespace: ${ns}`)));
const pulumi = (...args: string[]) => pulumiOnLocalCluster(ROOT, [...args, '--stack', stack]);
const runs = async () =>
  ((await k('GET', `/apis/kiln.dev/v1alpha1/namespaces/${ns}/modelruns`)).body as { items: { spec: { runId: string } }[] }).items.map((r) => r.spec.runId).sort();
/** `kiln plan --json` of the test's spec against the local cluster. */
const kilnPlan = () => {
  const bin = fileURLToPath(new URL('../../bin/kiln.js', import.meta.url));
  const r = spawnSync(process.execPath, [bin, 'plan', specPath, '--stack', 'dev', '--json'], { encoding: 'utf8', env: { ...process.env, KUBECONFIG: paths(ROOT).kubeconfig } });
  return JSON.parse(r.stdout) as { plan: { runId: string }; cluster: { changes: { sameRun: boolean; existing: string[]; stages: { name: string; change: string }[] } } };
};
interface Outputs {
  runId: string | null;
  namespace: string;
  train: boolean;
  model: { run: string; digest: string; seq: number; from: string | null } | null;
  endpoints: Record<string, string>;
  serving: Record<string, { endpoint: string; triton: string; gateway?: string; model: string }>;
}
const outputsOf = async (name: string) => JSON.parse((await pulumiOnLocalCluster(ROOT, ['stack', 'output', '--json', '--stack', name])).out) as Outputs;
const outputs = () => outputsOf(stack);

/**
 * A promotion record as `kiln promote` writes it into a stack's config (`kiln:model`), pointing at a run's export
 * in the spec's storage. kwok pods run nothing: the repository need not exist for these objects.
 */
const record = (run: string, digest: string, seq: number) => ({
  action: 'promote',
  seq,
  run,
  namespace: ns,
  export: `pvc://kiln-artifacts/tiny/runs/${run}/export/`,
  repositories: { completions: `pvc://kiln-artifacts/tiny/runs/${run}/export/completions/` },
  digest,
  files: 3,
  from: null,
  evidence: { metrics: { 'humaneval.pass@1': 0.1 }, gates: [{ expr: 'humaneval.pass@1 >= 0', value: 0.1, passed: true }] },
  by: 'kiln it <it@example.com>',
  at: '2026-12-01T10:00:00Z',
});
/** Writes `kiln:<key>` of a stack's config file as a plain nested map (Pulumi structured config), keeping the rest of the file. */
function setConfig(name: string, key: string, value: unknown): void {
  const file = join(STACKS_DIR, `Pulumi.${name}.yaml`);
  const doc = parseDocument(readFileSync(file, 'utf8'));
  doc.setIn(['config', `kiln:${key}`], doc.createNode(value));
  writeFileSync(file, doc.toString());
}
const R1 = 'r-0123456789ab';
const R2 = 'r-ba9876543210';
const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
type Deployment = { metadata: { uid: string }; spec: { template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: { containers: { command: string[] }[] } } }; status?: { readyReplicas?: number } };
const deployment = async (name: string) => (await k('GET', `/apis/apps/v1/namespaces/${ns}/deployments/${name}`)).body as Deployment;

describe('the stacks/ Pulumi project against the local cluster', () => {
  beforeAll(async () => {
    writeSpec();
    expect((await pulumiOnLocalCluster(ROOT, ['stack', 'init', stack])).code).toBe(0);
    expect((await pulumi('config', 'set', 'kiln:spec', specPath)).code).toBe(0);
    expect((await pulumi('config', 'set', 'kiln:overlay', 'dev')).code).toBe(0);
  });
  afterAll(async () => {
    await pulumi('destroy', '--yes');
    await pulumiOnLocalCluster(ROOT, ['stack', 'rm', '--yes', '--force', stack]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('previews and applies a training stack without a model: the platform and the ModelRun, and nothing served', async () => {
    const preview = await pulumi('preview');
    expect(preview.code, preview.out).toBe(0);
    expect(preview.out).toMatch(/kubernetes:core\/v1:Namespace\s+tiny-namespace\s+create/);
    expect(preview.out).toMatch(/kubernetes:kiln\.dev\/v1alpha1:ModelRun\s+tiny-run-r-[0-9a-f]{12}\s+create/);
    expect(preview.out).not.toMatch(/tiny-completions/);
    const r = await pulumi('up', '--yes', '--skip-preview');
    expect(r.code, r.out).toBe(0);
    const o = await outputs();
    expect(o).toMatchObject({ namespace: ns, train: true, model: null, endpoints: {}, serving: {} });
    expect(await runs()).toEqual([o.runId]);
    expect((await k('GET', `/apis/apps/v1/namespaces/${ns}/deployments/tiny-completions`)).status).toBe(404);
  });

  it('reports no changes on a second up, and kiln plan knows the run exists', async () => {
    const r = await pulumi('preview', '--expect-no-changes');
    expect(r.code, r.out).toBe(0);
    expect(kilnPlan().cluster.changes).toMatchObject({ sameRun: true });
  });

  it('serves the model promoted to it: Triton on the record\'s repository, labelled with its run and annotated with its digest, behind the gateway', async () => {
    setConfig(stack, 'model', record(R1, D1, 1));
    const preview = await pulumi('preview');
    expect(preview.code, preview.out).toBe(0);
    for (const line of [
      /kubernetes:apps\/v1:Deployment\s+tiny-completions-deployment\s+create/,
      /kubernetes:apps\/v1:Deployment\s+tiny-completions-gateway\s+create/,
      /kubernetes:networking\.k8s\.io\/v1:NetworkPolicy\s+tiny-completions-triton-policy\s+create/,
    ]) {
      expect(preview.out).toMatch(line);
    }
    const r = await pulumi('up', '--yes', '--skip-preview');
    expect(r.code, r.out).toBe(0);
    const o = await outputs();
    expect(o.model).toMatchObject({ run: R1, digest: D1, seq: 1, from: null });
    const d = await eventually('Triton to be ready', async () => {
      const x = await deployment('tiny-completions');
      return x.status?.readyReplicas === 1 ? x : undefined;
    });
    expect(d.spec.template.spec.containers[0]!.command).toContain(`--model-repository=/artifacts/tiny/runs/${R1}/export/completions/`);
    expect(d.spec.template.metadata.labels['kiln.dev/run-id']).toBe(R1);
    expect(d.spec.template.metadata.annotations?.['kiln.dev/model-digest']).toBe(D1);
    // The gateway is the endpoint, and the API server holds its config and the policy closing Triton to all else.
    expect(o.endpoints).toEqual({ completions: `http://tiny-completions-gateway.${ns}.svc:8080/v1` });
    expect(o.serving.completions).toEqual({ endpoint: o.endpoints.completions, gateway: o.endpoints.completions, triton: `http://tiny-completions.${ns}.svc:8000`, model: R1 });
    const cm = (await k('GET', `/api/v1/namespaces/${ns}/configmaps/tiny-completions-gateway`)).body as { data: Record<string, string> };
    expect(JSON.parse(cm.data['config.json']!)).toMatchObject({ model: 'completions', upstreams: [{ name: 'stable', url: o.serving.completions!.triton, weight: 1 }] });
    const policy = (await k('GET', `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies/tiny-completions`)).body as { spec: { ingress: { from?: { podSelector: { matchLabels: Record<string, string> } }[] }[] } };
    expect(policy.spec.ingress[0]!.from![0]!.podSelector.matchLabels).toEqual({ 'app.kubernetes.io/part-of': 'tiny', 'kiln.dev/gateway': 'completions' });
  });

  it('rolls the same Triton Deployment to a new promotion, and leaves the run alone', async () => {
    const before = await deployment('tiny-completions');
    const run = (await outputs()).runId;
    setConfig(stack, 'model', record(R2, D2, 2));
    const r = await pulumi('up', '--yes', '--skip-preview');
    expect(r.code, r.out).toBe(0);
    const after = await deployment('tiny-completions');
    expect(after.metadata.uid).toBe(before.metadata.uid);
    expect(after.spec.template.metadata.annotations?.['kiln.dev/model-digest']).toBe(D2);
    expect(after.spec.template.spec.containers[0]!.command).toContain(`--model-repository=/artifacts/tiny/runs/${R2}/export/completions/`);
    expect((await outputs()).model).toMatchObject({ run: R2, seq: 2 });
    expect(await runs()).toEqual([run]);
  });

  it('keeps the same run when only replicas or labels change', async () => {
    const before = (await outputs()).runId;
    writeSpec((t) => t.replace('replicas: { min: 1, max: 1 }', 'replicas: { min: 1, max: 2 }').replace('  owner: kiln-dev', '  owner: kiln-dev\n  labels: { team: it }'));
    const r = await pulumi('up', '--yes', '--skip-preview');
    expect(r.code, r.out).toBe(0);
    expect((await outputs()).runId).toBe(before);
    expect(await runs()).toEqual([before]);
    const hpa = (await k('GET', `/apis/autoscaling/v2/namespaces/${ns}/horizontalpodautoscalers/tiny-completions`)).body as { spec: { maxReplicas: number } };
    expect(hpa.spec.maxReplicas).toBe(2);
  });

  it('starts a new run beside the old one when a hyperparameter changes', async () => {
    const before = (await outputs()).runId;
    writeSpec((t) => t.replace('micro_batch: 4', 'micro_batch: 4\n  optimizer: { lr: 0.001 }'));
    const planned = kilnPlan();
    expect(planned.cluster.changes).toEqual({ existing: [before], sameRun: false, stages: [{ name: 'train', change: 'changed' }] });
    const r = await pulumi('up', '--yes', '--skip-preview');
    expect(r.code, r.out).toBe(0);
    const after = (await outputs()).runId;
    expect(after).not.toBe(before);
    expect(await runs()).toEqual([before, after].sort());
    // A new run is not a new model: Triton serves what was promoted until something else is.
    expect((await deployment('tiny-completions')).spec.template.metadata.labels['kiln.dev/run-id']).toBe(R2);
  });

  it('applies a serving-only stack (kiln:train false) in the existing namespace: its serving targets alone, runId null', async () => {
    // A second pipeline name, so its objects do not collide with the training stack's in the same namespace.
    const servingSpec = join(dir, 'serving.yaml');
    writeFileSync(servingSpec, tiny.replace('namespace: kiln-tiny', `namespace: ${ns}`).replace('  name: tiny\n', '  name: tiny-serve\n'));
    const other = uniq('it-serve');
    const on = (...args: string[]) => pulumiOnLocalCluster(ROOT, [...args, '--stack', other]);
    expect((await pulumiOnLocalCluster(ROOT, ['stack', 'init', other])).code).toBe(0);
    try {
      expect((await on('config', 'set', 'kiln:spec', servingSpec)).code).toBe(0);
      expect((await on('config', 'set', 'kiln:overlay', 'staging')).code).toBe(0);
      setConfig(other, 'train', false);
      setConfig(other, 'model', { ...record(R1, D1, 1), from: stack });
      const before = await runs();
      const r = await on('up', '--yes', '--skip-preview');
      expect(r.code, r.out).toBe(0);
      expect(r.out).not.toMatch(/Namespace|ModelRun|CustomResourceDefinition|PriorityClass|kiln-controller/);
      const o = await outputsOf(other);
      expect(o).toMatchObject({ runId: null, train: false, namespace: ns, model: { run: R1, from: stack } });
      // The source stack's current model, read through a StackReference.
      expect((o as unknown as { source: { stack: string; model: { run: string } } }).source).toMatchObject({ stack, model: { run: R2 } });
      expect(o.endpoints).toEqual({ completions: `http://tiny-serve-completions-gateway.${ns}.svc:8080/v1` });
      expect((await deployment('tiny-serve-completions')).spec.template.metadata.labels['kiln.dev/run-id']).toBe(R1);
      expect(await runs()).toEqual(before);
    } finally {
      await on('destroy', '--yes');
      await pulumiOnLocalCluster(ROOT, ['stack', 'rm', '--yes', '--force', other]);
    }
    // Its destroy left the training stack's namespace and objects in place.
    expect((await k('GET', `/api/v1/namespaces/${ns}`)).status).toBe(200);
    expect((await k('GET', `/apis/apps/v1/namespaces/${ns}/deployments/tiny-serve-completions`)).status).toBe(404);
  });

  it('removes everything on destroy', async () => {
    const r = await pulumi('destroy', '--yes');
    expect(r.code, r.out).toBe(0);
    await eventually('the namespace to disappear', async () => ((await k('GET', `/api/v1/namespaces/${ns}`)).status === 404 ? true : undefined), 120_000);
  });
});
