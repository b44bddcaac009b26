import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compileFile } from '@kiln/plan';
import { allObjects, modelRunCrd } from '@kiln/k8s';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apply as applyAs, eventually, k } from './helpers.ts';

const configs = fileURLToPath(new URL('../../../../configs/', import.meta.url));
const files = readdirSync(configs).filter((f) => f.endsWith('.yaml')).sort();

const apply = (o: unknown, dryRun: boolean) => applyAs(o, { dryRun });

const namespaces = new Set<string>();

describe('every example spec compiles to objects the API server accepts (server-side dry-run apply)', () => {
  beforeAll(async () => {
    // Custom resources can only be validated once their definition exists.
    const crd = await apply(modelRunCrd(), false);
    expect(crd.status, JSON.stringify(crd.body)).toBeLessThan(300);
    await eventually('the ModelRun CRD to be established', async () => {
      const r = await k('GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/modelruns.kiln.dev');
      const conds = (r.body as { status?: { conditions?: { type: string; status: string }[] } }).status?.conditions ?? [];
      return conds.some((c) => c.type === 'Established' && c.status === 'True') ? true : undefined;
    });
  });
  afterAll(async () => {
    for (const ns of namespaces) await k('DELETE', `/api/v1/namespaces/${ns}`);
  });

  it('rejects an invalid object through the same path (so this check can fail)', async () => {
    const bad = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'bad', namespace: 'default' }, spec: { completionMode: 'Indexed', template: { spec: { restartPolicy: 'Always', containers: [{ name: 'c', image: 'x' }] } } } };
    const res = await apply(bad, true);
    expect(res.status).toBe(422);
  });

  it.each(files)('%s', async (f) => {
    const r = compileFile(configs + f);
    expect(r.plan).toBeDefined();
    const p = r.plan!;
    // Serving objects exist only for a promoted model: check them on a record of the plan's own export, canary included.
    const own = { run: p.runId, digest: `sha256:${'0'.repeat(64)}`, repositories: Object.fromEntries(p.serving.map((t) => [t.name, t.modelRepository])) };
    const objects = allObjects(p, { model: own, canary: own });
    // Namespaced objects are only checked inside an existing namespace: create it for real.
    const ns = objects.find((o) => o.kind === 'Namespace')!;
    // Remove it afterwards only if this test made it (a reused cluster may hold the demo's kiln-tiny).
    if ((await k('GET', `/api/v1/namespaces/${ns.metadata!.name}`)).status === 404) namespaces.add(ns.metadata!.name!);
    expect((await apply(ns, false)).status).toBeLessThan(300);
    const rejected: string[] = [];
    for (const o of objects) {
      if (o.kind === 'Namespace' || o.kind === 'CustomResourceDefinition') continue;
      const res = await apply(o, true);
      if (res.status >= 300) rejected.push(`${o.kind} ${o.metadata?.name}: ${(res.body as { message?: string }).message ?? res.status}`);
    }
    expect(rejected).toEqual([]);
  });
});
