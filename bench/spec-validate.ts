/**
 * Validation speed of the replit-code-v1-3b spec.
 *   warm: in-process `load()` (read, parse, schema, checks, defaults) per call, after warm-up
 *   cold: a whole `kiln validate` process, start to exit
 *   aliases: a whole `kiln validate` of configs/tiny.yaml with 8,000 `*alias` labels (~213 KB), the file
 *            that took about a minute when every alias was resolved by a walk of the whole document
 * Run: `npm run bench` (or `node bench/spec-validate.ts [--runs N] [--json]`). Prints figures; asserts nothing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { load } from '@kiln/spec';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' }, json: { type: 'boolean' } } });
const root = fileURLToPath(new URL('..', import.meta.url));
const spec = `${root}configs/replit-code-v1-3b.yaml`;
const bin = `${root}tools/kiln/bin/kiln.js`;

const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  return { n: s.length, min: s[0]!, p50: q(0.5), p90: q(0.9), p99: q(0.99), max: s.at(-1)! };
};
const ms = (x: number) => Number(x.toFixed(3));

// Warm: the first calls JIT-compile everything; measure after that.
for (let i = 0; i < 200; i++) load(spec);
const warm: number[] = [];
for (let i = 0; i < 2000; i++) {
  const t = performance.now();
  const r = load(spec);
  warm.push(performance.now() - t);
  if (!r.spec) throw new Error('the replit spec should be valid');
}

const cold: number[] = [];
const runs = Number(values.runs);
for (let i = 0; i < runs + 2; i++) {
  const t = performance.now();
  const r = spawnSync(process.execPath, [bin, 'validate', spec], { encoding: 'utf8' });
  const elapsed = performance.now() - t;
  if (r.status !== 0) throw new Error(`kiln validate failed: ${r.stderr}`);
  if (i >= 2) cold.push(elapsed); // the first runs warm the file cache
}
const baseline: number[] = [];
for (let i = 0; i < runs; i++) {
  const t = performance.now();
  spawnSync(process.execPath, ['-e', '0']);
  baseline.push(performance.now() - t);
}

// Many aliases: 8,000 labels that all refer to one anchor.
const dir = mkdtempSync(join(tmpdir(), 'kiln-bench-'));
const aliasSpec = join(dir, 'aliases.yaml');
const labels = Array.from({ length: 8000 }, (_, i) => `    lbl-name-${String(i).padStart(5, '0')}: *team\n`).join('');
writeFileSync(aliasSpec, readFileSync(`${root}configs/tiny.yaml`, 'utf8').replace('  owner: kiln-dev\n', `  owner: kiln-dev\n  labels:\n    team: &team kiln-dev\n${labels}`));
const aliasKb = readFileSync(aliasSpec).length / 1000;
const aliases: number[] = [];
for (let i = 0; i < Math.max(3, Math.ceil(runs / 4)); i++) {
  const t = performance.now();
  const r = spawnSync(process.execPath, [bin, 'validate', aliasSpec], { encoding: 'utf8' });
  aliases.push(performance.now() - t);
  if (r.status !== 0) throw new Error(`kiln validate of the alias spec failed: ${r.stderr}`);
}
rmSync(dir, { recursive: true, force: true });

const w = stats(warm);
const a = stats(aliases);
const c = stats(cold);
const b = stats(baseline);
if (values.json) {
  console.log(JSON.stringify({ node: process.version, warm_ms: w, cold_ms: c, aliases_8000_cold_ms: a, node_startup_ms: b }, null, 2));
} else {
  console.log(`node ${process.version}, ${spec.replace(root, '')}`);
  console.log(`warm load() per call:   p50 ${ms(w.p50)} ms, p90 ${ms(w.p90)} ms, p99 ${ms(w.p99)} ms (n=${w.n})`);
  console.log(`cold kiln validate:     p50 ${ms(c.p50)} ms, p90 ${ms(c.p90)} ms, min ${ms(c.min)} ms (n=${c.n})`);
  console.log(`8,000 aliases (${aliasKb.toFixed(0)} kB): p50 ${ms(a.p50)} ms, max ${ms(a.max)} ms (n=${a.n}, cold kiln validate)`);
  console.log(`bare node startup:      p50 ${ms(b.p50)} ms (n=${b.n}), for reference`);
}
