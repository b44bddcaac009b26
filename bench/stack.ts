/**
 * Pulumi on the local cluster: times `pulumi preview` and `pulumi up` of the dev stack's pipeline (a copy of
 * configs/tiny.yaml in its own namespace, on a stack of its own), first run and unchanged re-run, then
 * `pulumi destroy`; and `kiln plan` of the replit spec as a cold process (offline).
 * Run: `node bench/stack.ts [--runs N] [--json]`. Brings the local cluster up if needed. Prints figures only.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULTS, pulumiOnLocalCluster, up } from '@kiln/local-cluster';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, json: { type: 'boolean' } } });
const root = fileURLToPath(new URL('..', import.meta.url));
const runs = Number(values.runs);

const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const timed = async (fn: () => Promise<{ code: number; out: string }>) => {
  const t = performance.now();
  const r = await fn();
  if (r.code !== 0) throw new Error(r.out);
  return (performance.now() - t) / 1000;
};

// kiln plan, cold process, no cluster contact.
const plan: number[] = [];
for (let i = 0; i < runs + 1; i++) {
  const t = performance.now();
  const r = spawnSync(process.execPath, [join(root, 'tools/kiln/bin/kiln.js'), 'plan', join(root, 'configs/replit-code-v1-3b.yaml'), '--offline'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  if (i > 0) plan.push(performance.now() - t);
}

await up({ root, ...DEFAULTS }, () => {});
const tiny = readFileSync(join(root, 'configs/tiny.yaml'), 'utf8');
const results: Record<string, number[]> = { preview_new: [], up_new: [], preview_unchanged: [], up_unchanged: [], destroy: [] };
for (let i = 0; i < runs; i++) {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-bench-stack-'));
  const stack = `bench-${Date.now().toString(36)}`;
  writeFileSync(join(dir, 'kiln.yaml'), tiny.replace('namespace: kiln-tiny', `namespace: kiln-bench-${i}-${Date.now().toString(36)}`));
  const p = (...args: string[]) => pulumiOnLocalCluster(root, [...args, '--stack', stack]);
  try {
    await pulumiOnLocalCluster(root, ['stack', 'init', stack]);
    await p('config', 'set', 'kiln:spec', join(dir, 'kiln.yaml'));
    await p('config', 'set', 'kiln:overlay', 'dev');
    results.preview_new!.push(await timed(() => p('preview')));
    results.up_new!.push(await timed(() => p('up', '--yes', '--skip-preview')));
    results.preview_unchanged!.push(await timed(() => p('preview', '--expect-no-changes')));
    results.up_unchanged!.push(await timed(() => p('up', '--yes', '--skip-preview')));
    results.destroy!.push(await timed(() => p('destroy', '--yes')));
  } finally {
    await pulumiOnLocalCluster(root, ['stack', 'rm', '--yes', '--force', stack]);
    rmSync(dir, { recursive: true, force: true });
  }
}
if (values.json) console.log(JSON.stringify({ kiln_plan_cold_ms: plan, pulumi_s: results }, null, 2));
else {
  console.log(`kiln plan replit (cold process, offline): median ${med(plan).toFixed(0)} ms (runs: ${plan.map((x) => x.toFixed(0)).join(', ')})`);
  for (const [k, xs] of Object.entries(results)) console.log(`pulumi ${k.replace('_', ' ').padEnd(18)} median ${med(xs).toFixed(1)} s (runs: ${xs.map((x) => x.toFixed(1)).join(', ')})`);
}
