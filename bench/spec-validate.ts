/**
 * Validation speed of the replit-code-v1-3b spec, beside a peer.
 *   warm: in-process `load()` (read, parse, schema, checks, defaults) per call, after warm-up
 *   cold: whole processes, start to exit, in interleaved rounds (one of each per round):
 *         `kiln validate` through node_modules/.bin/kiln; `npx kiln validate`, the form the README shows (the
 *         npx on PATH, on the node that `env node` finds there); check-jsonschema (the peer, Python: it checks
 *         the JSON Schema alone, none of kiln's other checks) from the peers' environment (bench/peers); and a
 *         bare `node -e 0` for reference. Ratios are the peer's time over kiln's (above 1: kiln is faster).
 *   aliases: a whole `kiln validate` of configs/tiny.yaml with 8,000 `*alias` labels (~213 KB), the file
 *            that took about a minute when every alias was resolved by a walk of the whole document
 * Run: `npm run bench` (or `node bench/spec-validate.ts [--runs N] [--no-peer] [--json]`). Prints figures; asserts nothing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { load } from '@kiln/spec';
import { ensurePeers } from './peers/env.mjs';

const USAGE = `usage: node bench/spec-validate.ts [--runs N] [--no-peer] [--json]
  --runs N    cold rounds after two warm-up rounds (default 20)
  --no-peer   leave out check-jsonschema (no Python environment is made)
  --json      one JSON object instead of the table`;
let parsed;
try {
  parsed = parseArgs({ options: { runs: { type: 'string', default: '20' }, 'no-peer': { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
} catch (e) {
  console.error(`spec-validate: ${(e as Error).message}\n${USAGE}`);
  process.exit(2);
}
const { values } = parsed;
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
if (!/^[1-9][0-9]*$/.test(values.runs)) {
  console.error(`spec-validate: --runs takes a whole number above 0, not ${JSON.stringify(values.runs)}\n${USAGE}`);
  process.exit(2);
}
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

const runs = Number(values.runs);
const schemaFile = `${root}schemas/kiln.schema.json`;
const peerBin = values['no-peer'] ? undefined : join(ensurePeers(), 'bin', 'check-jsonschema');
const npxNode = String(spawnSync('node', ['--version'], { encoding: 'utf8' }).stdout).trim();
const npxVersion = String(spawnSync('npx', ['--version'], { encoding: 'utf8' }).stdout).trim();
/** A whole process, start to exit, in milliseconds; it must succeed. */
// npx is a script run by `env node`: on a machine whose own node is older than 24, it is also timed on
// Node 24 (node_modules/.bin first on PATH), the npx that a machine with kiln's Node has.
const node24Path = `${root}node_modules/.bin${delimiter}${process.env.PATH ?? ''}`;
const npxNode24 = Number(npxNode.replace(/^v/, '').split('.')[0]) < 24 ? node24Path : undefined;
const timed = (name: string, cmd: string, args: string[], path?: string): number => {
  const t = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: root, ...(path ? { env: { ...process.env, PATH: path } } : {}) });
  const elapsed = performance.now() - t;
  if (r.status !== 0) throw new Error(`${name} failed (exit ${r.status}): ${r.stderr || r.error?.message}`);
  return elapsed;
};
const contenders: [string, () => number][] = [
  ['kiln', () => timed('kiln validate', process.execPath, [bin, 'validate', spec])],
  ['npxKiln', () => timed('npx kiln validate', 'npx', ['kiln', 'validate', spec])],
  ...(npxNode24 ? [['npxKilnNode24', () => timed('npx kiln validate (Node 24)', 'npx', ['kiln', 'validate', spec], npxNode24)] as [string, () => number]] : []),
  // npm's own start-up, the floor under any `npx kiln ...`.
  ['npxAlone', () => timed('npx --version', 'npx', ['--version'])],
  // npm exec's floor: a local bin that does nothing (node_modules/.bin/node -e 0). libnpmexec loads arborist and
  // pacote before it runs any bin, so every `npx <local bin>` pays this whatever the bin is.
  ['npxExecFloor', () => timed('npx node -e 0', 'npx', ['node', '-e', '0'])],
  ...(peerBin ? [['checkJsonschema', () => timed('check-jsonschema', peerBin, ['--schemafile', schemaFile, spec])] as [string, () => number]] : []),
  ['node', () => timed('node -e 0', process.execPath, ['-e', '0'])],
];
const coldRuns: Record<string, number[]> = Object.fromEntries(contenders.map(([k]) => [k, []]));
for (let i = 0; i < runs + 2; i++) {
  for (const [k, run] of contenders) {
    const elapsed = run();
    if (i >= 2) coldRuns[k]!.push(elapsed); // the first rounds warm the file and compile caches
  }
}
const cold = coldRuns.kiln!;
const baseline = coldRuns.node!;

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
const x = stats(coldRuns.npxKiln!);
const n0 = stats(coldRuns.npxAlone!);
const nf = stats(coldRuns.npxExecFloor!);
const x24 = npxNode24 ? stats(coldRuns.npxKilnNode24!) : undefined;
const p = peerBin ? stats(coldRuns.checkJsonschema!) : undefined;
const ratio = (peer: number, kiln: number) => Number((peer / kiln).toFixed(2));
const peer = p ? { check_jsonschema_cold_ms: p, ratio_p50_vs_kiln: ratio(p.p50, c.p50), ratio_p50_vs_npx_kiln: ratio(p.p50, x.p50) } : undefined;
if (values.json) {
  console.log(JSON.stringify({ node: process.version, npx: { version: npxVersion, node: npxNode }, warm_ms: w, cold_ms: c, npx_cold_ms: x, npx_version_alone_ms: n0, npx_exec_floor_ms: nf, ...(x24 ? { npx_node24_cold_ms: x24 } : {}), aliases_8000_cold_ms: a, node_startup_ms: b, ...(peer ? { peer } : {}) }, null, 2));
} else {
  console.log(`node ${process.version}, ${spec.replace(root, '')}; rounds interleaved: ${contenders.map(([k]) => k).join(', ')}`);
  console.log(`warm load() per call:      p50 ${ms(w.p50)} ms, p90 ${ms(w.p90)} ms, p99 ${ms(w.p99)} ms (n=${w.n})`);
  console.log(`cold kiln validate:        p50 ${ms(c.p50)} ms, p90 ${ms(c.p90)} ms, min ${ms(c.min)} ms (n=${c.n}, node_modules/.bin/kiln)`);
  console.log(`cold npx kiln validate:    p50 ${ms(x.p50)} ms, p90 ${ms(x.p90)} ms, min ${ms(x.min)} ms (n=${x.n}, npx ${npxVersion} on node ${npxNode})`);
  console.log(`cold npx --version alone:  p50 ${ms(n0.p50)} ms, min ${ms(n0.min)} ms (n=${n0.n}): npm's start-up, under every npx command`);
  console.log(`cold npx node -e 0:        p50 ${ms(nf.p50)} ms, min ${ms(nf.min)} ms (n=${nf.n}): npm exec's floor for any local bin`);
  if (x24) console.log(`cold npx kiln, Node 24:    p50 ${ms(x24.p50)} ms, p90 ${ms(x24.p90)} ms, min ${ms(x24.min)} ms (n=${x24.n}, the same npx on node ${process.version})`);
  if (p) console.log(`cold check-jsonschema:     p50 ${ms(p.p50)} ms, p90 ${ms(p.p90)} ms, min ${ms(p.min)} ms (n=${p.n}, the schema alone); its time over kiln's: ${peer!.ratio_p50_vs_kiln}x, over npx kiln's: ${peer!.ratio_p50_vs_npx_kiln}x`);
  console.log(`8,000 aliases (${aliasKb.toFixed(0)} kB):    p50 ${ms(a.p50)} ms, max ${ms(a.max)} ms (n=${a.n}, cold kiln validate)`);
  console.log(`bare node startup:         p50 ${ms(b.p50)} ms (n=${b.n}), for reference`);
}
