/**
 * The near-dedup reduce step: band directories for N synthetic shards (random signatures, with a planted
 * share of near-identical copies across shards), then `reduceBands` over all of them. Prints records per
 * second and peak memory. Run: `node bench/data-prep-reduce.ts [--records 1000000] [--shards 8] [--max-keys N] [--json]`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { optimalLsh } from '@kiln/spec';
import { BandWriter, bandKeys, reduceBands } from '@kiln/data-prep';

const { values } = parseArgs({ options: { records: { type: 'string' }, shards: { type: 'string' }, 'max-keys': { type: 'string' }, json: { type: 'boolean' } } });
const total = Number(values.records ?? 1_000_000);
const shards = Number(values.shards ?? 8);
const { bands, rows } = optimalLsh(0.7, 256);
const dir = mkdtempSync(join(tmpdir(), 'kiln-reduce-bench-'));
let x = 7;
const rnd = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
const sig = new Uint32Array(bands * rows);
const copyEvery = 20; // 5% of the records are copies of the previous record's signature, in the next shard
const t0 = performance.now();
const writers = Array.from({ length: shards }, (_, s) => BandWriter.open(join(dir, `s${s}`), s, bands, rows));
const counts = new Array<number>(shards).fill(0);
for (let i = 0; i < total; i++) {
  if (i % copyEvery !== 0) for (let j = 0; j < sig.length; j++) sig[j] = rnd();
  const s = i % shards;
  await writers[s]!.add(counts[s]!++, bandKeys(sig, bands, rows));
}
for (const w of writers) await w.close();
const tWrite = (performance.now() - t0) / 1000;
const t1 = performance.now();
const r = await reduceBands(writers.map((_, s) => join(dir, `s${s}`)), values['max-keys'] ? { maxKeys: Number(values['max-keys']) } : {});
const secs = (performance.now() - t1) / 1000;
rmSync(dir, { recursive: true, force: true });
const out = { records: total, shards, bands, rows, duplicates: r.duplicates, expectedDuplicates: Math.floor((total - 1) / copyEvery), passesPerBand: r.passesPerBand, writeSeconds: +tWrite.toFixed(2), reduceSeconds: +secs.toFixed(2), recordsPerSecond: Math.round(total / secs), peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) };
if (values.json) console.log(JSON.stringify(out, null, 2));
else console.log(`reduce: ${total} records in ${shards} shards, ${bands} bands: ${out.reduceSeconds}s (${out.recordsPerSecond} records/s, ${r.passesPerBand} pass(es) per band), ${r.duplicates} duplicates found of ${out.expectedDuplicates} planted; band files written in ${out.writeSeconds}s; peak RSS ${out.peakRssMiB} MiB`);
