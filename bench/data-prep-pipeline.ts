/**
 * The whole data-prep pipeline on one shard (read → filters → parse → exact dedup → decontamination →
 * redaction → MinHash → near dedup → zstd shard + manifest) over real code, by default the Python standard
 * library's .py files without site-packages (the corpus of the other data-prep benches), given as one JSON
 * Lines file, in one thread and with worker threads. Prints MB/s of input and peak memory.
 * Run: `node bench/data-prep-pipeline.ts [--dir DIR] [--ext .py] [--workers 0,2] [--json]`. Prints figures; asserts nothing.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadHumanEval, prepare } from '@kiln/data-prep';

const { values } = parseArgs({ options: { dir: { type: 'string' }, ext: { type: 'string', default: '.py' }, workers: { type: 'string' }, json: { type: 'boolean' } } });
const dir = values.dir ?? execFileSync('python3', ['-c', "import sysconfig;print(sysconfig.get_paths()['stdlib'])"], { encoding: 'utf8' }).trim();
const counts = (values.workers ?? `0,${availableParallelism()}`).split(',').map(Number);
const benchmarks = loadHumanEval(fileURLToPath(new URL('../data/humaneval/HumanEval.jsonl.gz', import.meta.url)));
const work = mkdtempSync(join(tmpdir(), 'kiln-pipeline-bench-'));
const input = join(work, 'corpus.jsonl');
const lines: string[] = [];
for (const ent of readdirSync(dir, { recursive: true, withFileTypes: true })) {
  if (!ent.isFile() || !ent.name.endsWith(values.ext!)) continue;
  const full = join(ent.parentPath, ent.name);
  if (full.split('/').includes('site-packages')) continue;
  lines.push(JSON.stringify({ content: readFileSync(full, 'utf8'), path: full.slice(dir.length + 1) }));
}
writeFileSync(input, lines.sort().join('\n') + '\n');
const rows = [];
for (const workers of counts) {
  const out = join(work, `out-${workers}`);
  const t0 = performance.now();
  const m = await prepare({ inputs: [input], output: out, benchmarks, workers });
  const secs = (performance.now() - t0) / 1000;
  rows.push({ workers, records: m.records.recordsIn, kept: m.records.kept, megabytesIn: +(m.records.bytesIn / 1e6).toFixed(1), seconds: +secs.toFixed(1), mbPerSecond: +(m.records.bytesIn / 1e6 / secs).toFixed(1), shardSha256: m.outputs[0]!.sha256.slice(0, 16) });
}
rmSync(work, { recursive: true, force: true });
const peakRssMiB = Math.round(process.resourceUsage().maxRSS / 1024);
if (values.json) console.log(JSON.stringify({ dir, cores: availableParallelism(), rows, peakRssMiB }, null, 2));
else {
  console.log(`data prep, whole pipeline, one shard: ${dir} (*${values.ext}, site-packages excluded) on ${availableParallelism()} cores`);
  for (const r of rows) console.log(`  ${r.workers === 0 ? 'one thread ' : `${r.workers} workers  `}  ${r.mbPerSecond} MB/s  (${r.megabytesIn} MB, ${r.records} records, ${r.kept} kept, ${r.seconds}s; shard sha256 ${r.shardSha256}…)`);
  console.log(`  peak RSS ${peakRssMiB} MiB (all runs in one process)`);
}
