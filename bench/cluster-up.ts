/**
 * Time of `kiln cluster up` with a warm toolchain: from nothing to every component ready (certificates,
 * etcd, API server, controller manager, scheduler, kwok, nodes Ready, default service account, Pulumi
 * provider installed), and of a second, idempotent `up`. Each run uses a fresh directory and ends with `down`.
 * Run: `node bench/cluster-up.ts [--runs N] [--json]`. Prints figures; asserts nothing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, json: { type: 'boolean' } } });
const bin = fileURLToPath(new URL('../tools/kiln/bin/kiln.js', import.meta.url));

function kiln(dir: string, ...args: string[]): number {
  const t = performance.now();
  const r = spawnSync(process.execPath, [bin, 'cluster', ...args, '--dir', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`kiln cluster ${args.join(' ')} failed:\n${r.stderr}`);
  return (performance.now() - t) / 1000;
}

const cold: number[] = [];
const again: number[] = [];
const downs: number[] = [];
for (let i = 0; i < Number(values.runs); i++) {
  const dir = mkdtempSync(join(tmpdir(), 'kiln-bench-cluster-'));
  try {
    cold.push(kiln(dir, 'up'));
    again.push(kiln(dir, 'up'));
  } finally {
    downs.push(kiln(dir, 'down'));
    rmSync(dir, { recursive: true, force: true });
  }
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const f = (xs: number[]) => `median ${med(xs).toFixed(1)} s (runs: ${xs.map((x) => x.toFixed(1)).join(', ')})`;
if (values.json) console.log(JSON.stringify({ up_from_nothing_s: cold, up_again_s: again, down_s: downs }, null, 2));
else {
  console.log(`kiln cluster up, warm toolchain, from nothing: ${f(cold)}`);
  console.log(`kiln cluster up, already running:             ${f(again)}`);
  console.log(`kiln cluster down:                            ${f(downs)}`);
}
