import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { paths, pulumiOnLocalCluster } from '@kiln/local-cluster';
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
const outputs = async () => JSON.parse((await pulumi('stack', 'output', '--json')).out) as { runId: string; namespace: string; endpoints: Record<string, string>; serving: Record<string, { endpoint: string; triton: string; gateway?: string }> };

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

  it('previews and applies the pipeline: platform, the ModelRun and Triton serving', async () => {
    const preview = await pulumi('preview');
    expect(preview.code, preview.out).toBe(0);
    for (const line of [
      /kubernetes:core\/v1:Namespace\s+tiny-namespace\s+create/,
      /kubernetes:kiln\.dev\/v1alpha1:ModelRun\s+tiny-run-r-[0-9a-f]{12}\s+create/,
      /kubernetes:apps\/v1:Deployment\s+tiny-completions-deployment\s+create/,
      /kubernetes:apps\/v1:Deployment\s+tiny-completions-gateway\s+create/,
      /kubernetes:networking\.k8s\.io\/v1:NetworkPolicy\s+tiny-completions-triton-policy\s+create/,
    ]) {
      expect(preview.out).toMatch(line);
    }
    const r = await pulumi('up', '--yes', '--skip-preview');
    expect(r.code, r.out).toBe(0);
    const o = await outputs();
    expect(o.namespace).toBe(ns);
    expect(await runs()).toEqual([o.runId]);
    await eventually('Triton to be ready', async () => {
      const d = (await k('GET', `/apis/apps/v1/namespaces/${ns}/deployments/tiny-completions`)).body as { status?: { readyReplicas?: number } };
      return d.status?.readyReplicas === 1 ? true : undefined;
    });
    // The gateway is the endpoint, and the API server holds its config and the policy closing Triton to all else.
    expect(o.endpoints).toEqual({ completions: `http://tiny-completions-gateway.${ns}.svc:8080/v1` });
    expect(o.serving.completions).toEqual({ endpoint: o.endpoints.completions, gateway: o.endpoints.completions, triton: `http://tiny-completions.${ns}.svc:8000` });
    const cm = (await k('GET', `/api/v1/namespaces/${ns}/configmaps/tiny-completions-gateway`)).body as { data: Record<string, string> };
    expect(JSON.parse(cm.data['config.json']!)).toMatchObject({ model: 'completions', upstreams: [{ name: 'stable', url: o.serving.completions!.triton, weight: 1 }] });
    const policy = (await k('GET', `/apis/networking.k8s.io/v1/namespaces/${ns}/networkpolicies/tiny-completions`)).body as { spec: { ingress: { from?: { podSelector: { matchLabels: Record<string, string> } }[] }[] } };
    expect(policy.spec.ingress[0]!.from![0]!.podSelector.matchLabels).toEqual({ 'app.kubernetes.io/part-of': 'tiny', 'kiln.dev/gateway': 'completions' });
  });

  it('reports no changes on a second up, and kiln plan knows the run exists', async () => {
    const r = await pulumi('preview', '--expect-no-changes');
    expect(r.code, r.out).toBe(0);
    expect(kilnPlan().cluster.changes).toMatchObject({ sameRun: true });
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
  });

  it('removes everything on destroy', async () => {
    const r = await pulumi('destroy', '--yes');
    expect(r.code, r.out).toBe(0);
    await eventually('the namespace to disappear', async () => ((await k('GET', `/api/v1/namespaces/${ns}`)).status === 404 ? true : undefined), 120_000);
  });
});
