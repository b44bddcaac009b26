/**
 * Throughput of data-prep's heuristic filters (`check`, default config, one core) over real code: by default the
 * Python standard library's .py files (site-packages excluded).
 * Run: `node bench/data-prep-filters.ts [--dir DIR] [--ext py] [--rounds 5] [--redact] [--json]`. Prints figures; asserts nothing.
 * Files are read into memory first; only `check` is timed (best of `--rounds` full passes, after one warm-up pass).
 * With `--redact`, each kept file is also redacted (`redact`, all kinds), as the pipeline does: the issue's
 * "filtering with redaction" figure, MB/s over all bytes read.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { check, DROP_REASONS, DEFAULT_FILTERS, redact } from '@kiln/data-prep';

const { values } = parseArgs({
  options: { dir: { type: 'string' }, ext: { type: 'string', default: 'py' }, rounds: { type: 'string', default: '5' }, redact: { type: 'boolean' }, json: { type: 'boolean' } },
});
const dir =
  values.dir ?? execFileSync('python3', ['-c', "import sysconfig;print(sysconfig.get_paths()['stdlib'])"], { encoding: 'utf8' }).trim();
const suffix = `.${values.ext}`;

const files: { path: string; content: string }[] = [];
let bytes = 0;
for (const ent of readdirSync(dir, { recursive: true, withFileTypes: true })) {
  if (!ent.isFile() || !ent.name.endsWith(suffix)) continue;
  const full = join(ent.parentPath, ent.name);
  const path = relative(dir, full);
  if (path.split('/').includes('site-packages')) continue;
  const buf = readFileSync(full);
  bytes += buf.length;
  files.push({ path, content: buf.toString('utf8') });
}
files.sort((a, b) => (a.path < b.path ? -1 : 1));
if (files.length === 0) throw new Error(`no ${suffix} files under ${dir}`);

const counts = new Map<string, number>([['kept', 0], ...DROP_REASONS.map((r) => [r, 0] as [string, number])]);
const pass = (tally: boolean) => {
  for (const f of files) {
    const r = check(f, DEFAULT_FILTERS);
    if (r.keep && values.redact) redact(f.content);
    if (tally) {
      const k = r.keep ? 'kept' : r.reason;
      counts.set(k, (counts.get(k) ?? 0) + 1);
    }
  }
};
pass(true); // warm-up, and the tally
const times: number[] = [];
for (let i = 0; i < Number(values.rounds); i++) {
  const t = performance.now();
  pass(false);
  times.push(performance.now() - t);
}
const best = Math.min(...times);
const mbps = bytes / 1e6 / (best / 1000);
const maxRssMiB = process.resourceUsage().maxRSS / 1024; // maxRSS is in KiB
const nonzero = Object.fromEntries([...counts].filter(([, v]) => v > 0));

if (values.json) {
  console.log(JSON.stringify({ node: process.version, redact: !!values.redact, dir, files: files.length, bytes, best_ms: best, mb_per_s: mbps, counts: nonzero, max_rss_mib: maxRssMiB }, null, 2));
} else {
  console.log(`node ${process.version}, ${dir} (*${suffix}, site-packages excluded)`);
  console.log(`files: ${files.length}, ${(bytes / 1e6).toFixed(1)} MB`);
  console.log(`${values.redact ? 'check() + redact()' : 'check()'}: best of ${times.length} passes ${best.toFixed(1)} ms → ${mbps.toFixed(0)} MB/s on one core (${((best * 1e6) / files.length / 1000).toFixed(1)} µs/file)`);
  console.log(`kept: ${counts.get('kept')} (${((100 * counts.get('kept')!) / files.length).toFixed(1)}%)`);
  for (const [k, v] of Object.entries(nonzero)) if (k !== 'kept') console.log(`dropped ${k}: ${v}`);
  console.log(`peak RSS: ${maxRssMiB.toFixed(0)} MiB`);
}
