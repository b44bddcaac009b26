/**
 * MinHash signatures on one core, kiln against datasketch (256 permutations over BigCode's 5-gram shingles) and
 * datatrove's MinhashDedupSignature (25 buckets x 10 hashes, kiln's word tokens; bench/peers/minhash_peers.py),
 * over the same files: by default the Python standard library's .py files. kiln also computes its (25, 10) band
 * keys. Each side warms up on 200 files, then signs every file; rounds are interleaved and the figure is MB of
 * UTF-8 text per CPU-second of the signing pass (median of the rounds), with kiln/peer ratios.
 * Run: `node bench/data-prep-minhash.ts [--dir DIR] [--rounds 3] [--no-peer] [--json]`. Prints figures; asserts nothing.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { optimalLsh } from '@kiln/spec';
import { bandKeys, signature, walk } from '@kiln/data-prep';
import { peersPython } from './peers/env.mjs';

const { values } = parseArgs({ options: { dir: { type: 'string' }, rounds: { type: 'string', default: '3' }, 'no-peer': { type: 'boolean' }, json: { type: 'boolean' }, help: { type: 'boolean' } } });
if (values.help) {
  console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]!.replace(/^\/\*\*|^ \* ?/gm, '').trim());
  process.exit(0);
}
const dir = values.dir ?? execFileSync('python3', ['-c', "import sysconfig;print(sysconfig.get_paths()['stdlib'])"], { encoding: 'utf8' }).trim();
const paths: string[] = [];
const texts: string[] = [];
let bytes = 0;
for await (const f of walk(dir)) {
  if (!f.endsWith('.py') || f.includes('site-packages')) continue;
  const t = readFileSync(f, 'utf8');
  paths.push(f);
  texts.push(t);
  bytes += Buffer.byteLength(t);
}
const { bands, rows } = optimalLsh(0.7, 256);
const work = mkdtempSync(join(tmpdir(), 'kiln-minhash-bench-'));
const list = join(work, 'files.txt');
writeFileSync(list, paths.join('\n') + '\n');
const python = values['no-peer'] ? undefined : peersPython();
const peerScript = fileURLToPath(new URL('./peers/minhash_peers.py', import.meta.url));

const cpuSeconds = (f: () => void) => {
  const c0 = process.cpuUsage();
  f();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1e6;
};
let signed = 0;
const kilnPass = () => {
  signed = 0;
  for (const t of texts) {
    const s = signature(t);
    if (s) {
      bandKeys(s, bands, rows);
      signed++;
    }
  }
};
for (const t of texts.slice(0, 200)) signature(t);

const results: Record<string, number[]> = { kiln: [] };
const mb = bytes / 1e6;
const say = (s: string) => {
  if (!values.json) console.log(s);
};
say(`MinHash signatures on one core over ${dir} (*.py, site-packages excluded): ${mb.toFixed(1)} MB, ${texts.length} files`);
for (let round = 1; round <= Number(values.rounds); round++) {
  const k = cpuSeconds(kilnPass);
  results.kiln!.push(mb / k);
  say(`  round ${round}  kiln (256 perms + (${bands}, ${rows}) band keys)  ${(mb / k).toFixed(1).padStart(6)} MB/CPU-s  (${k.toFixed(2)} CPU-s, ${signed} files signed)`);
  if (!python) continue;
  const out = execFileSync(python, [peerScript, '--files', list], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  for (const line of out.trim().split('\n')) {
    const p = JSON.parse(line) as { peer: string; cpuSeconds: number; signed: number };
    (results[p.peer] ??= []).push(mb / p.cpuSeconds);
    say(`  round ${round}  ${p.peer.padEnd(42)} ${(mb / p.cpuSeconds).toFixed(1).padStart(6)} MB/CPU-s  (${p.cpuSeconds.toFixed(2)} CPU-s, ${p.signed} files signed)`);
  }
}
rmSync(work, { recursive: true, force: true });
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const medians = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, +median(v).toFixed(2)]));
const ratios = Object.fromEntries(Object.keys(medians).filter((k) => k !== 'kiln').map((k) => [k, +(medians.kiln! / medians[k]!).toFixed(1)]));
if (values.json) console.log(JSON.stringify({ dir, files: texts.length, megabytes: +mb.toFixed(1), bands, rows, rounds: results, mbPerCpuSecond: medians, kilnOver: ratios, peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) }, null, 2));
else {
  say(`  median MB/CPU-s: ${Object.entries(medians).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  if (Object.keys(ratios).length) say(`  kiln over ${Object.entries(ratios).map(([k, v]) => `${k} ${v}x`).join(', ')}`);
}
