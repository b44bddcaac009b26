import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { paths, pulumiEnv, resolveToolchain } from '@kiln/local-cluster';
import { eventually, k, ROOT, uniq } from './helpers.ts';

const program = fileURLToPath(new URL('../fixtures/pulumi-gpu-job/', import.meta.url));
const stack = uniq('it');
const ns = uniq('kiln-it-pulumi');

function pulumi(...args: string[]) {
  const p = paths(ROOT);
  const env = { ...process.env, ...pulumiEnv(p, resolveToolchain()), KUBECONFIG: p.kubeconfig };
  const r = spawnSync('pulumi', [...args, '--non-interactive', '--cwd', program], { env, encoding: 'utf8', timeout: 170_000 });
  return { code: r.status, out: `${r.stdout}\n${r.stderr}` };
}

describe('a Pulumi program applied with the real CLI', () => {
  beforeAll(() => {
    const init = pulumi('stack', 'init', stack);
    expect(init.code, init.out).toBe(0);
    expect(pulumi('config', 'set', 'namespace', ns, '--stack', stack).code).toBe(0);
  });
  afterAll(() => {
    pulumi('destroy', '--yes', '--stack', stack);
    pulumi('stack', 'rm', '--yes', '--force', stack);
  });

  it('creates a Namespace and a Job asking for 2 GPUs, whose pod runs on a GPU node and completes', async () => {
    const r = pulumi('up', '--yes', '--skip-preview', '--stack', stack);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/kubernetes:core\/v1:Namespace\s+ns\s+created/);
    expect((await k('GET', `/api/v1/namespaces/${ns}`)).status).toBe(200);
    const job = await eventually('the Job to complete', async () => {
      const j = (await k('GET', `/apis/batch/v1/namespaces/${ns}/jobs/train`)).body as { spec: { template: { spec: { containers: { resources: { limits: Record<string, string> } }[] } } }; status?: { succeeded?: number } };
      return j.status?.succeeded === 1 ? j : undefined;
    });
    expect(job.spec.template.spec.containers[0]?.resources.limits['nvidia.com/gpu']).toBe('2');
    const pods = (await k('GET', `/api/v1/namespaces/${ns}/pods?labelSelector=job-name%3Dtrain`)).body as { items: { spec: { nodeName: string } }[] };
    expect(pods.items[0]?.spec.nodeName).toMatch(/^kiln-gpu-/);
  });

  it('reports no changes on a second up', () => {
    const r = pulumi('preview', '--stack', stack, '--expect-no-changes');
    expect(r.code, r.out).toBe(0);
  });

  it('removes everything on destroy', async () => {
    const r = pulumi('destroy', '--yes', '--stack', stack);
    expect(r.code, r.out).toBe(0);
    await eventually('the namespace to disappear', async () => ((await k('GET', `/api/v1/namespaces/${ns}`)).status === 404 ? true : undefined), 120_000);
  });
});
