/**
 * Data prep in three steps, so near dedup can span shards that run in different pods:
 * 1. **map** (`mapShard`, one per shard): read → heuristic filters → parse filter → exact dedup →
 *    decontamination → PII and secret redaction; the surviving records go to a candidates file
 *    (`shard-N.candidates.jsonl.zst`), their MinHash band keys to a band directory (`shard-N.bands/`), and
 *    the ledger so far, with the candidates still undecided, to `shard-N.partial.json`.
 * 2. **reduce** (`dedupShards`, once, over every shard's band directory): clusters near duplicates and
 *    writes a drop list per shard (`shard-N.drop`).
 * 3. **apply** (`applyShard`, per shard): the candidates minus the drop list become the cleaned shard
 *    (`shard-N.jsonl.zst`), with its manifest and report; the intermediate files are removed.
 * `prepare` runs all three for one shard in one process (near dedup then only sees that shard).
 * Memory stays bounded by the largest record in every step; the reduce step holds 8 bytes per record.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { constants as zlibConstants, createZstdCompress, createZstdDecompress } from 'node:zlib';
import { createInterface } from 'node:readline';
import type { Writable } from 'node:stream';
import type { BenchmarkText, DecontaminationConfig } from './decontaminate.ts';
import { DEFAULT_FILTERS, type FilterConfig } from './filters.ts';
import { Ledger, type LedgerTotals } from './ledger.ts';
import { optimalLsh } from '@kiln/spec';
import { defaultWorkers, WorkPool, type WorkInput, type WorkOutput } from './map-work.ts';
import { BandWriter, readDropList, reduceBands, writeDropList, MINHASH_DEFAULTS, type MinHashConfig } from './minhash.ts';
import { PII_KINDS, type PiiKind, type RedactOptions } from './pii.ts';
import { inputName, readInput, type Input } from './input.ts';
import { isMalformed, type ReadOptions } from './read.ts';
import { Log2Histogram, renderReport } from './report.ts';
import { ParseFilter } from './parse.ts';
import type { PartialShard, ShardManifest } from './manifest.ts';

export type { PartialShard, ShardManifest } from './manifest.ts';

export interface PrepOptions {
  /** Paths (directories, JSON Lines and Parquet files) and feedback logs. */
  readonly inputs: readonly Input[];
  /** Directory for the cleaned shard, its manifest and its report. */
  readonly output: string;
  /** Index of this shard (its outputs are named by it). Default 0. */
  readonly shard?: number;
  /** Take only the records of shard `index` of `count` (by a hash of their path); default: all. */
  readonly partition?: { readonly index: number; readonly count: number };
  readonly read?: ReadOptions;
  readonly filters?: FilterConfig;
  /** false turns redaction off. */
  readonly pii?: RedactOptions | false;
  /** false turns near dedup off. */
  readonly near?: (MinHashConfig & { readonly bands?: number; readonly rows?: number }) | false;
  /** Exact dedup by content hash. Default true. */
  readonly exact?: boolean;
  /** Languages whose files must parse (tree-sitter); [] turns the parse filter off. Default: python, javascript, typescript, json. */
  readonly parseLanguages?: readonly string[];
  /** Benchmark texts to decontaminate against; none: no decontamination. */
  readonly benchmarks?: readonly BenchmarkText[];
  readonly decontamination?: DecontaminationConfig;
  /** Called every few thousand records. */
  readonly onProgress?: (t: LedgerTotals) => void;
  /** Worker threads for the per-record work (filters, parse, redaction, MinHash); 0 runs it in this thread. Default: one per core, at most 8 (none on one core). */
  readonly workers?: number;
}

const pad = (n: number) => String(n).padStart(5, '0');

function fnv(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

async function write(out: Writable, s: string): Promise<void> {
  if (!out.write(s)) await once(out, 'drain');
}

export const shardFile = (shard: number, suffix: string) => `shard-${pad(shard)}.${suffix}`;

/**
 * The map step for one shard: everything up to near dedup. Writes the candidates, the band keys and the
 * partial ledger under `o.output`; nothing is final until `applyShard`.
 */
export async function mapShard(o: PrepOptions): Promise<PartialShard> {
  const t0 = performance.now();
  const shard = o.shard ?? 0;
  mkdirSync(o.output, { recursive: true });
  for (const stale of [shardFile(shard, 'drop'), shardFile(shard, 'manifest.json')]) rmSync(join(o.output, stale), { force: true });
  const ledger = new Ledger();
  const pii = Object.fromEntries(PII_KINDS.map((k) => [k, 0])) as Record<PiiKind, number>;
  const near = o.near === false ? undefined : { ...MINHASH_DEFAULTS, ...o.near };
  const lsh = near ? (o.near && o.near.bands && o.near.rows ? { bands: o.near.bands, rows: o.near.rows } : optimalLsh(near.threshold, near.numPerm)) : undefined;
  const pool = await WorkPool.create(
    {
      filters: o.filters ?? DEFAULT_FILTERS,
      parseLanguages: o.parseLanguages ?? ParseFilter.DEFAULT_LANGUAGES,
      pii: o.pii === false ? false : (o.pii ?? {}),
      near: near ? { numPerm: near.numPerm, ngram: near.ngram, threshold: near.threshold, seed: near.seed } : null,
      lsh: lsh ? { bands: lsh.bands, rows: lsh.rows } : null,
      benchmarks: o.benchmarks ?? [],
      ...(o.decontamination ? { decontamination: o.decontamination } : {}),
    },
    o.workers ?? defaultWorkers(),
  );
  const seen = new Set<string>();
  // The candidates file lives until the apply step: zstd's fastest level (the shard itself keeps the default).
  const zst = createZstdCompress({ params: { [zlibConstants.ZSTD_c_compressionLevel]: 1 } });
  const file = createWriteStream(join(o.output, shardFile(shard, 'candidates.jsonl.zst')));
  zst.pipe(file);
  const bands = near && lsh ? BandWriter.open(join(o.output, shardFile(shard, 'bands')), shard, lsh.bands, lsh.rows) : undefined;
  let candidates = 0;
  let n = 0;

  // Records go out in batches and their results are taken in the order sent, so every decision that depends
  // on order (the first copy is kept; candidates are numbered) is the same as in one thread.
  const inFlight: { records: WorkInput[]; repos: (string | undefined)[]; sources: (string | undefined)[]; outputs: Promise<WorkOutput[]> }[] = [];
  const most = Math.max(2, 2 * pool.size);
  let batch: WorkInput[] = [];
  let repos: (string | undefined)[] = [];
  let sources: (string | undefined)[] = [];
  let batchChars = 0;
  const settle = async () => {
    const b = inFlight.shift()!;
    const outputs = await b.outputs;
    for (const [i, r] of outputs.entries()) {
      if ('drop' in r) {
        ledger.drop(r.drop);
        continue;
      }
      if (o.exact !== false && seen.has(r.hash)) {
        ledger.drop('exact-duplicate');
        continue;
      }
      seen.add(r.hash);
      if (r.contaminated) {
        ledger.drop('decontaminated');
        continue;
      }
      for (const [k, v] of Object.entries(r.pii)) pii[k as PiiKind] += v;
      if (r.keys && bands) await bands.add(candidates, r.keys);
      // `source` only where data prep knows it (feedback), so packing can weigh the record by its source.
      const source = b.sources[i];
      await write(zst, `${JSON.stringify({ content: r.content ?? b.records[i]!.content, path: b.records[i]!.path, language: r.language, repository: b.repos[i] ?? null, ...(source !== undefined ? { source } : {}) })}\n`);
      candidates++;
    }
  };
  const send = async () => {
    if (!batch.length) return;
    inFlight.push({ records: batch, repos, sources, outputs: pool.submit(batch) });
    batch = [];
    repos = [];
    sources = [];
    batchChars = 0;
    while (inFlight.length >= most) await settle();
  };

  try {
    for (const input of o.inputs) {
      for await (const item of readInput(input, o.read)) {
        // Another shard's record: not read here, so not counted here.
        if (o.partition && o.partition.count > 1 && fnv(isMalformed(item) ? item.origin : item.path || item.origin) % o.partition.count !== o.partition.index) continue;
        ledger.read(item.bytes);
        if (++n % 5000 === 0) o.onProgress?.(ledger.totals());
        if (isMalformed(item)) {
          ledger.drop(item.malformed);
          continue;
        }
        batch.push({ path: item.path, content: item.content, ...(item.language ? { language: item.language } : {}) });
        repos.push(item.repository);
        sources.push(item.source);
        batchChars += item.content.length;
        if (batch.length >= 64 || batchChars >= 4 << 20) await send();
      }
    }
    await send();
    while (inFlight.length) await settle();
  } finally {
    await pool.close();
  }
  zst.end();
  await once(file, 'finish');
  await bands?.close();
  const partial: PartialShard = {
    kiln: 'data-prep/partial/v1',
    shard,
    inputs: o.inputs.map(inputName),
    records: ledger.totals(),
    candidates,
    pii,
    near: near && lsh ? { bands: lsh.bands, rows: lsh.rows, numPerm: near.numPerm, ngram: near.ngram, threshold: near.threshold, seed: near.seed } : null,
    seconds: Number(((performance.now() - t0) / 1000).toFixed(2)),
  };
  writeFileSync(join(o.output, shardFile(shard, 'partial.json')), `${JSON.stringify(partial, null, 2)}\n`);
  return partial;
}

function readPartial(dir: string, shard: number): PartialShard {
  const f = join(dir, shardFile(shard, 'partial.json'));
  try {
    const p = JSON.parse(readFileSync(f, 'utf8')) as PartialShard;
    if (p.kiln !== 'data-prep/partial/v1') throw new Error(`kiln is ${JSON.stringify(p.kiln)}`);
    return p;
  } catch (e) {
    throw new Error(`${f}: cannot read shard ${shard}'s map output (${(e as Error).message}); run its map step (kiln data prep --shard ${shard}/N) first`);
  }
}

/** The shards whose map step has finished in `dir` (they have a partial ledger). */
export function mappedShards(dir: string): number[] {
  return readdirSync(dir)
    .map((f) => /^shard-(\d+)\.partial\.json$/.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => a - b);
}

export interface DedupResult {
  readonly shards: number;
  readonly records: number;
  readonly clusters: number;
  readonly duplicates: number;
  readonly seconds: number;
}

/**
 * The reduce step over mapped shards in `dir` (all of them unless `shards` says which): reads their band
 * directories, clusters near duplicates across shards and writes each shard's drop list. Refuses shards
 * mapped with different near-dedup settings.
 */
export async function reduceShards(dir: string, opts: { shards?: readonly number[]; expect?: number; maxKeys?: number; /** Write `near-dedup.json` (default true). */ record?: boolean } = {}): Promise<DedupResult> {
  const t0 = performance.now();
  const shards = opts.shards ?? mappedShards(dir);
  if (opts.expect !== undefined) {
    const missing = Array.from({ length: opts.expect }, (_, i) => i).filter((i) => !shards.includes(i));
    if (missing.length) throw new Error(`${dir}: shards ${missing.join(', ')} of ${opts.expect} have not been mapped (no ${shardFile(missing[0]!, 'partial.json')})`);
  }
  const partials = shards.map((s) => readPartial(dir, s));
  const near = partials.filter((p) => p.near);
  if (near.length === 0) {
    for (const p of partials) writeDropList(join(dir, shardFile(p.shard, 'drop')), new Uint32Array(0));
    return { shards: shards.length, records: 0, clusters: 0, duplicates: 0, seconds: 0 };
  }
  const first = JSON.stringify(near[0]!.near);
  const odd = partials.find((p) => JSON.stringify(p.near) !== first);
  if (odd) throw new Error(`shard ${odd.shard} was mapped with near-dedup settings ${JSON.stringify(odd.near)}, shard ${near[0]!.shard} with ${first}; map every shard with the same settings`);
  const r = await reduceBands(
    partials.map((p) => join(dir, shardFile(p.shard, 'bands'))),
    opts.maxKeys !== undefined ? { maxKeys: opts.maxKeys } : {},
  );
  for (const p of partials) writeDropList(join(dir, shardFile(p.shard, 'drop')), r.drop.get(p.shard) ?? new Uint32Array(0));
  if (opts.record !== false) writeFileSync(join(dir, 'near-dedup.json'), `${JSON.stringify({ kiln: 'data-prep/near-dedup/v1', shards, ...near[0]!.near, records: r.records, clusters: r.clusters, duplicates: r.duplicates, passesPerBand: r.passesPerBand }, null, 2)}\n`);
  return { shards: shards.length, records: r.records, clusters: r.clusters, duplicates: r.duplicates, seconds: Number(((performance.now() - t0) / 1000).toFixed(2)) };
}

/**
 * The apply step for one shard: its candidates minus its drop list become `shard-N.jsonl.zst`, with the
 * manifest (the ledger closed: every record kept or dropped) and the report. Removes the intermediates.
 */
export async function applyShard(dir: string, shard: number, dedup?: DedupResult): Promise<ShardManifest> {
  const t0 = performance.now();
  const partial = readPartial(dir, shard);
  const ledger = Ledger.resume(partial.records, partial.candidates);
  const dropFile = join(dir, shardFile(shard, 'drop'));
  if (partial.near && !existsSync(dropFile)) throw new Error(`${dropFile}: no drop list for shard ${shard}; run the reduce step (kiln data dedup) over all shards first`);
  const drop = partial.near ? readDropList(dropFile) : new Set<number>();
  const outName = shardFile(shard, 'jsonl.zst');
  const outPath = join(dir, outName);
  const zst = createZstdCompress();
  const file = createWriteStream(outPath);
  const digest = createHash('sha256');
  let outBytes = 0;
  zst.on('data', (c: Buffer) => {
    digest.update(c);
    outBytes += c.length;
  });
  zst.pipe(file);
  const languages: Record<string, { files: number; bytes: number }> = {};
  const fileBytes = new Log2Histogram();
  const meanLine = new Log2Histogram();
  let index = 0;
  let written = 0;
  const candidates = createReadStream(join(dir, shardFile(shard, 'candidates.jsonl.zst'))).pipe(createZstdDecompress());
  for await (const line of createInterface({ input: candidates, crlfDelay: Infinity })) {
    if (!line) continue;
    if (drop.has(index++)) {
      ledger.drop('near-duplicate');
      continue;
    }
    const r = JSON.parse(line) as { content: string; path: string; language: string | null; repository: string | null };
    await write(zst, `${line}\n`);
    const bytes = Buffer.byteLength(r.content);
    ledger.keep(bytes);
    fileBytes.add(bytes);
    let lines = 1;
    for (let i = r.content.indexOf('\n'); i !== -1; i = r.content.indexOf('\n', i + 1)) lines++;
    meanLine.add(r.content.length / lines);
    const lang = r.language ?? 'unknown';
    languages[lang] = { files: (languages[lang]?.files ?? 0) + 1, bytes: (languages[lang]?.bytes ?? 0) + bytes };
    written++;
  }
  zst.end();
  await once(file, 'finish');
  if (index !== partial.candidates) throw new Error(`${shardFile(shard, 'candidates.jsonl.zst')}: ${index} candidates, the partial ledger says ${partial.candidates}; map shard ${shard} again`);

  const manifest: ShardManifest = {
    kiln: 'data-prep/v1',
    shard,
    inputs: partial.inputs,
    records: ledger.close(),
    pii: partial.pii,
    languages: Object.fromEntries(Object.entries(languages).sort(([, a], [, b]) => b.bytes - a.bytes)),
    outputs: [{ path: outName, format: 'jsonl.zst', records: written, bytes: outBytes, sha256: digest.digest('hex') }],
    nearDedup: partial.near ? { bands: partial.near.bands, rows: partial.near.rows, shards: dedup?.shards ?? 1, clusters: dedup?.clusters ?? 0, duplicates: dedup?.duplicates ?? 0 } : null,
    distributions: { fileBytes: fileBytes.toJSON(), meanLineLength: meanLine.toJSON() },
    seconds: Number((partial.seconds + (dedup?.seconds ?? 0) + (performance.now() - t0) / 1000).toFixed(2)),
  };
  writeFileSync(join(dir, shardFile(shard, 'manifest.json')), `${JSON.stringify(manifest, null, 2)}\n`);
  writeFileSync(join(dir, shardFile(shard, 'report.html')), renderReport(manifest, { fileBytes, meanLine }));
  for (const f of ['candidates.jsonl.zst', 'bands', 'partial.json', 'drop']) rmSync(join(dir, shardFile(shard, f)), { recursive: true, force: true });
  return manifest;
}

/** Reduce and apply over every mapped shard in `dir`: the second half of a sharded data prep. */
export async function dedupShards(dir: string, opts: { expect?: number; maxKeys?: number; onShard?: (m: ShardManifest) => void } = {}): Promise<{ dedup: DedupResult; manifests: ShardManifest[] }> {
  const shards = mappedShards(dir);
  if (shards.length === 0) throw new Error(`${dir}: no mapped shards (shard-N.partial.json); run kiln data prep --shard i/N for each shard first`);
  const dedup = await reduceShards(dir, { shards, ...(opts.expect !== undefined ? { expect: opts.expect } : {}), ...(opts.maxKeys !== undefined ? { maxKeys: opts.maxKeys } : {}) });
  const manifests: ShardManifest[] = [];
  for (const s of shards) {
    const m = await applyShard(dir, s, dedup);
    opts.onShard?.(m);
    manifests.push(m);
  }
  return { dedup, manifests };
}

/** Runs data prep over `inputs` in one process: map, reduce (this shard alone) and apply. */
export async function prepare(o: PrepOptions): Promise<ShardManifest> {
  const shard = o.shard ?? 0;
  await mapShard(o);
  const dedup = await reduceShards(o.output, { shards: [shard], record: false });
  return applyShard(o.output, shard, dedup);
}
