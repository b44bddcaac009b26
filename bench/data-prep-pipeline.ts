/**
 * The whole data-prep pipeline on one shard (read → filters → parse → exact dedup → decontamination →
 * redaction → MinHash → near dedup → zstd shard + manifest) against datatrove doing the steps it has (BigCode's
 * line filters, its PIIFormatter, a zstd JSON Lines writer; with --peer-minhash its four MinHash stages too:
 * bench/peers/datatrove_pipeline.py), on the same input: by default the Python standard library's .py files
 * without site-packages, as JSON Lines. One thread and 2 workers (datatrove: 1 and 2 tasks over as many files),
 * interleaved round by round, each run a fresh process; MB/s of input per round, medians and kiln/peer ratios.
 * Times are taken inside each process around the pipeline (kiln's `prepare`, datatrove's executors), so
 * neither side pays for its runtime's start-up; CPU seconds (all threads and worker processes) come with them, and
 * MB per CPU-second is the figure to trust on a machine shared with other work.
 * Run: `node bench/data-prep-pipeline.ts [--rounds 3] [--workers 0,2] [--no-peer] [--peer-minhash] [--dir DIR] [--ext .py] [--json]`.
 * Prints figures; asserts nothing.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadHumanEval, ParseFilter, prepare } from '@kiln/data-prep';
import { peersPython } from './peers/env.mjs';

const { values } = parseArgs({
  options: {
    dir: { type: 'string' },
    ext: { type: 'string', default: '.py' },
    workers: { type: 'string', default: '0,2' },
    rounds: { type: 'string', default: '3' },
    'no-peer': { type: 'boolean' },
    'peer-minhash': { type: 'boolean' },
    json: { type: 'boolean' },
    help: { type: 'boolean' },
    // Internal: one kiln run in this process, its figures as one JSON line.
    child: { type: 'string' },
  },
});
if (values.help) {
  console.log(readFileSync(fileURLToPath(import.meta.url), 'utf8').split('*/')[0]!.replace(/^\/\*\*|^ \* ?/gm, '').trim());
  process.exit(0);
}

if (values.child) {
  const { input, output, workers } = JSON.parse(values.child) as { input: string; output: string; workers: number };
  const benchmarks = loadHumanEval(fileURLToPath(new URL('../data/humaneval/HumanEval.jsonl.gz', import.meta.url)));
  const backends = (await ParseFilter.create(ParseFilter.DEFAULT_LANGUAGES)).backends;
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const m = await prepare({ inputs: [input], output, benchmarks, workers });
  const seconds = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  console.log(JSON.stringify({ seconds, cpuSeconds: (c.user + c.system) / 1e6, records: m.records.recordsIn, kept: m.records.kept, bytesIn: m.records.bytesIn, sha256: m.outputs[0]!.sha256, backends, peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) }));
  process.exit(0);
}

const dir = values.dir ?? execFileSync('python3', ['-c', "import sysconfig;print(sysconfig.get_paths()['stdlib'])"], { encoding: 'utf8' }).trim();
const counts = values.workers.split(',').map(Number);
const rounds = Number(values.rounds);
const work = mkdtempSync(join(tmpdir(), 'kiln-pipeline-bench-'));
const input = join(work, 'corpus.jsonl');
const lines: string[] = [];
for (const ent of readdirSync(dir, { recursive: true, withFileTypes: true })) {
  if (!ent.isFile() || !ent.name.endsWith(values.ext)) continue;
  const full = join(ent.parentPath, ent.name);
  if (full.split('/').includes('site-packages')) continue;
  lines.push(JSON.stringify({ content: readFileSync(full, 'utf8'), path: full.slice(dir.length + 1) }));
}
lines.sort();
writeFileSync(input, lines.join('\n') + '\n');
// MB are of the JSON Lines input, as kiln's ledger counts them (the issue's 32.8 MB).
const bytesIn = lines.reduce((a, l) => a + Buffer.byteLength(l) + 1, 0);
// datatrove splits work by file: the same records, in as many files as tasks.
const peerInput = (tasks: number) => {
  const d = join(work, `peer-in-${tasks}`);
  mkdirSync(d, { recursive: true });
  for (let t = 0; t < tasks; t++) writeFileSync(join(d, `part-${t}.jsonl`), lines.filter((_, i) => i % tasks === t).join('\n') + '\n');
  return d;
};
const peerDirs = new Map(counts.map((w) => [w, peerInput(Math.max(1, w))]));
const python = values['no-peer'] ? undefined : peersPython();
const peerScript = fileURLToPath(new URL('./peers/datatrove_pipeline.py', import.meta.url));

type Row = { round: number; system: 'kiln' | 'datatrove'; workers: number; seconds: number; cpuSeconds: number; mbPerSecond: number; mbPerCpuSecond: number; kept: number; extra?: Record<string, unknown> };
const rows: Row[] = [];
const label = (w: number) => (w === 0 ? 'one thread' : `${w} workers`);
const say = (s: string) => {
  if (!values.json) console.log(s);
};
say(`data prep, whole pipeline, one shard: ${dir} (*${values.ext}, site-packages excluded; ${(bytesIn / 1e6).toFixed(1)} MB, ${lines.length} records) on ${availableParallelism()} cores; ${rounds} rounds, interleaved`);
let backends: Record<string, string> | undefined;
for (let round = 1; round <= rounds; round++) {
  for (const workers of counts) {
    const out = join(work, `out-${round}-${workers}`);
    const k = JSON.parse(execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify({ input, output: out, workers })], { encoding: 'utf8', maxBuffer: 1 << 24 }).trim().split('\n').pop()!) as { seconds: number; cpuSeconds: number; kept: number; sha256: string; backends: Record<string, string>; peakRssMiB: number };
    backends = k.backends;
    rows.push({ round, system: 'kiln', workers, seconds: k.seconds, cpuSeconds: k.cpuSeconds, mbPerSecond: bytesIn / 1e6 / k.seconds, mbPerCpuSecond: bytesIn / 1e6 / k.cpuSeconds, kept: k.kept, extra: { sha256: k.sha256.slice(0, 16), peakRssMiB: k.peakRssMiB } });
    say(`  round ${round}  kiln       ${label(workers).padEnd(10)} ${(bytesIn / 1e6 / k.seconds).toFixed(2).padStart(6)} MB/s  ${(bytesIn / 1e6 / k.cpuSeconds).toFixed(2).padStart(6)} MB/CPU-s  (${k.seconds.toFixed(2)}s, ${k.cpuSeconds.toFixed(2)} CPU-s, ${k.kept} kept, shard ${k.sha256.slice(0, 12)}…, peak RSS ${k.peakRssMiB} MiB)`);
    rmSync(out, { recursive: true, force: true });
    if (!python) continue;
    const pout = join(work, `peer-out-${round}-${workers}`);
    const tasks = Math.max(1, workers);
    const p = JSON.parse(execFileSync(python, [peerScript, '--input', peerDirs.get(workers)!, '--output', pout, '--tasks', String(tasks), ...(values['peer-minhash'] ? ['--minhash'] : [])], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 24 }).trim().split('\n').pop()!) as { seconds: number; cpuSeconds: number; documentsOut: number };
    rows.push({ round, system: 'datatrove', workers, seconds: p.seconds, cpuSeconds: p.cpuSeconds, mbPerSecond: bytesIn / 1e6 / p.seconds, mbPerCpuSecond: bytesIn / 1e6 / p.cpuSeconds, kept: p.documentsOut });
    say(`  round ${round}  datatrove  ${(tasks === 1 ? 'one task' : `${tasks} tasks`).padEnd(10)} ${(bytesIn / 1e6 / p.seconds).toFixed(2).padStart(6)} MB/s  ${(bytesIn / 1e6 / p.cpuSeconds).toFixed(2).padStart(6)} MB/CPU-s  (${p.seconds.toFixed(2)}s, ${p.cpuSeconds.toFixed(2)} CPU-s, ${p.documentsOut} kept${values['peer-minhash'] ? ', with MinHash dedup' : ''})`);
    rmSync(pout, { recursive: true, force: true });
  }
}
rmSync(work, { recursive: true, force: true });

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const med = (system: Row['system'], workers: number, key: 'mbPerSecond' | 'mbPerCpuSecond') => median(rows.filter((r) => r.system === system && r.workers === workers).map((r) => r[key]));
const summary = counts.map((workers) => {
  const kiln = { mbPerSecond: med('kiln', workers, 'mbPerSecond'), mbPerCpuSecond: med('kiln', workers, 'mbPerCpuSecond') };
  const peer = python ? { mbPerSecond: med('datatrove', workers, 'mbPerSecond'), mbPerCpuSecond: med('datatrove', workers, 'mbPerCpuSecond') } : undefined;
  const r2 = (x: number) => +x.toFixed(2);
  return {
    workers,
    kiln: { mbPerSecond: r2(kiln.mbPerSecond), mbPerCpuSecond: r2(kiln.mbPerCpuSecond) },
    ...(peer ? { datatrove: { mbPerSecond: r2(peer.mbPerSecond), mbPerCpuSecond: r2(peer.mbPerCpuSecond) }, ratio: { wall: r2(kiln.mbPerSecond / peer.mbPerSecond), cpu: r2(kiln.mbPerCpuSecond / peer.mbPerCpuSecond) } } : {}),
  };
});
if (values.json) console.log(JSON.stringify({ dir, cores: availableParallelism(), megabytesIn: +(bytesIn / 1e6).toFixed(1), records: lines.length, parseBackends: backends, peerMinhash: !!values['peer-minhash'], rounds: rows, medians: summary }, null, 2));
else {
  say(`  parse backends: ${Object.entries(backends ?? {}).map(([l, b]) => `${l} ${b}`).join(', ')}`);
  for (const s of summary) {
    say(`  median ${label(s.workers).padEnd(10)} kiln ${s.kiln.mbPerSecond} MB/s, ${s.kiln.mbPerCpuSecond} MB/CPU-s${s.datatrove && s.ratio ? `; datatrove${values['peer-minhash'] ? ' (+MinHash)' : ''} ${s.datatrove.mbPerSecond} MB/s, ${s.datatrove.mbPerCpuSecond} MB/CPU-s; kiln/datatrove ${s.ratio.wall}x wall, ${s.ratio.cpu}x CPU` : ''}`);
  }
}
