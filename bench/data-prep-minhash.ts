/**
 * MinHash signatures and band keys on one core: MB/s over real code (the Python standard library by default),
 * 256 permutations, 5-gram shingles, (25, 10) bands. Run: `node bench/data-prep-minhash.ts [--dir DIR] [--json]`.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { optimalLsh } from '@kiln/spec';
import { bandKeys, signature, walk } from '@kiln/data-prep';

const { values } = parseArgs({ options: { dir: { type: 'string' }, json: { type: 'boolean' } } });
const dir = values.dir ?? execFileSync('python3', ['-c', "import sysconfig;print(sysconfig.get_paths()['stdlib'])"], { encoding: 'utf8' }).trim();
const texts: string[] = [];
let bytes = 0;
for await (const f of walk(dir)) {
  if (!f.endsWith('.py')) continue;
  const t = readFileSync(f, 'utf8');
  texts.push(t);
  bytes += Buffer.byteLength(t);
}
const { bands, rows } = optimalLsh(0.7, 256);
// One warm-up pass over a slice, then the timed pass over everything.
for (const t of texts.slice(0, 200)) signature(t);
const t0 = performance.now();
let signed = 0;
for (const t of texts) {
  const s = signature(t);
  if (s) {
    bandKeys(s, bands, rows);
    signed++;
  }
}
const secs = (performance.now() - t0) / 1000;
const r = { dir, files: texts.length, signed, megabytes: +(bytes / 1e6).toFixed(1), seconds: +secs.toFixed(2), mbPerSecond: +(bytes / 1e6 / secs).toFixed(1), peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) };
if (values.json) console.log(JSON.stringify(r, null, 2));
else console.log(`MinHash (256 perms, 5-grams) + (${bands}, ${rows}) band keys: ${r.mbPerSecond} MB/s on one core over ${r.megabytes} MB, ${r.files} files (${r.signed} long enough) in ${r.seconds}s; peak RSS ${r.peakRssMiB} MiB`);
