/**
 * One data-prep run over local inputs, in one process: read → heuristic filters → exact dedup →
 * decontamination → PII and secret redaction → near dedup → cleaned shard (`.jsonl.zst`) and manifest.
 * Near dedup needs every signature before it can decide, so kept records wait in a spill file (not in
 * memory) until the reduce step has run; the ledger holds them as undecided until then.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join } from 'node:path';
import { createZstdCompress } from 'node:zlib';
import { createInterface } from 'node:readline';
import type { Writable } from 'node:stream';
import { Decontaminator, type BenchmarkText, type DecontaminationConfig } from './decontaminate.ts';
import { check, DEFAULT_FILTERS, type FilterConfig } from './filters.ts';
import { detectLanguage } from './language.ts';
import { Ledger, type LedgerTotals } from './ledger.ts';
import { optimalLsh } from '@kiln/spec';
import { bandKeys, reduceBands, signature, writeBands, MINHASH_DEFAULTS, type MinHashConfig } from './minhash.ts';
import { PII_KINDS, redact, type PiiKind, type RedactOptions } from './pii.ts';
import { isMalformed, readInput, type ReadOptions } from './read.ts';
import { Log2Histogram, renderReport } from './report.ts';
import { ParseFilter } from './parse.ts';

export interface PrepOptions {
  readonly inputs: readonly string[];
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
}

export interface ShardManifest {
  readonly kiln: 'data-prep/v1';
  readonly shard: number;
  readonly inputs: readonly string[];
  readonly records: LedgerTotals;
  readonly pii: Readonly<Record<PiiKind, number>>;
  readonly languages: Readonly<Record<string, { readonly files: number; readonly bytes: number }>>;
  readonly outputs: readonly { readonly path: string; readonly format: 'jsonl.zst'; readonly records: number; readonly bytes: number; readonly sha256: string }[];
  readonly nearDedup: { readonly bands: number; readonly rows: number; readonly clusters: number } | null;
  /** Distributions of the kept files: sizes in bytes and mean line lengths, in power-of-two buckets. */
  readonly distributions: { readonly fileBytes: ReturnType<Log2Histogram['toJSON']>; readonly meanLineLength: ReturnType<Log2Histogram['toJSON']> };
  readonly seconds: number;
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

/** Runs data prep over `inputs`; writes `shard-NNNNN.jsonl.zst` and `shard-NNNNN.manifest.json` under `output`. */
export async function prepare(o: PrepOptions): Promise<ShardManifest> {
  const t0 = performance.now();
  const shard = o.shard ?? 0;
  mkdirSync(o.output, { recursive: true });
  const ledger = new Ledger();
  const filters = o.filters ?? DEFAULT_FILTERS;
  const decon = o.benchmarks?.length ? new Decontaminator(o.benchmarks, o.decontamination) : undefined;
  const pii = Object.fromEntries(PII_KINDS.map((k) => [k, 0])) as Record<PiiKind, number>;
  const near = o.near === false ? undefined : { ...MINHASH_DEFAULTS, ...o.near };
  const lsh = near ? (o.near && o.near.bands && o.near.rows ? { bands: o.near.bands, rows: o.near.rows } : optimalLsh(near.threshold, near.numPerm)) : undefined;
  const seen = new Set<string>();
  const langs = o.parseLanguages ?? ParseFilter.DEFAULT_LANGUAGES;
  const parser = langs.length ? await ParseFilter.create(langs) : undefined;
  const spillPath = join(o.output, `.shard-${pad(shard)}.spill.jsonl`);
  const bandsPath = join(o.output, `.shard-${pad(shard)}.bands`);
  const spill = createWriteStream(spillPath);
  const bands: { index: number; keys: Uint32Array }[] = [];
  let spilled = 0;
  let n = 0;

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
      const language = item.language ?? detectLanguage(item.path, item.content.slice(0, 200));
      const verdict = check({ path: item.path, content: item.content, ...(language ? { language } : {}) }, filters);
      if (!verdict.keep) {
        ledger.drop(verdict.reason);
        continue;
      }
      if (parser?.parses(item.content, language, item.path) === false) {
        ledger.drop('unparseable');
        continue;
      }
      const hash = createHash('sha256').update(item.content).digest('base64');
      if (o.exact !== false && seen.has(hash)) {
        ledger.drop('exact-duplicate');
        continue;
      }
      seen.add(hash);
      if (decon?.check(item.content)) {
        ledger.drop('decontaminated');
        continue;
      }
      let content = item.content;
      if (o.pii !== false) {
        const r = redact(content, o.pii ?? {});
        content = r.text;
        for (const k of PII_KINDS) pii[k] += r.counts[k] ?? 0;
      }
      const sig = near ? signature(content, near) : undefined;
      if (sig && lsh) bands.push({ index: spilled, keys: bandKeys(sig, lsh.bands, lsh.rows) });
      await write(spill, `${JSON.stringify({ content, path: item.path, language: language ?? null, repository: item.repository ?? null, bytes: item.bytes })}\n`);
      spilled++;
    }
  }
  spill.end();
  await once(spill, 'finish');

  let dropNear = new Set<number>();
  let nearDedup: ShardManifest['nearDedup'] = null;
  if (near && lsh) {
    await writeBands(bandsPath, shard, bands);
    const r = await reduceBands([bandsPath], lsh.bands);
    dropNear = r.drop.get(shard) ?? new Set();
    nearDedup = { bands: lsh.bands, rows: lsh.rows, clusters: r.clusters };
  }

  // Second pass: the spill file becomes the shard, without the near duplicates.
  const outName = `shard-${pad(shard)}.jsonl.zst`;
  const outPath = join(o.output, outName);
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
  for await (const line of createInterface({ input: createReadStream(spillPath), crlfDelay: Infinity })) {
    if (!line) continue;
    if (dropNear.has(index++)) {
      ledger.drop('near-duplicate');
      continue;
    }
    const r = JSON.parse(line) as { content: string; path: string; language: string | null; repository: string | null };
    const out = `${JSON.stringify({ content: r.content, path: r.path, language: r.language, repository: r.repository })}\n`;
    await write(zst, out);
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
  rmSync(spillPath, { force: true });
  rmSync(bandsPath, { force: true });

  const manifest: ShardManifest = {
    kiln: 'data-prep/v1',
    shard,
    inputs: [...o.inputs],
    records: ledger.close(),
    pii,
    languages: Object.fromEntries(Object.entries(languages).sort(([, a], [, b]) => b.bytes - a.bytes)),
    outputs: [{ path: outName, format: 'jsonl.zst', records: written, bytes: outBytes, sha256: digest.digest('hex') }],
    nearDedup,
    distributions: { fileBytes: fileBytes.toJSON(), meanLineLength: meanLine.toJSON() },
    seconds: Number(((performance.now() - t0) / 1000).toFixed(2)),
  };
  writeFileSync(join(o.output, `shard-${pad(shard)}.manifest.json`), `${JSON.stringify(manifest, null, 2)}\n`);
  writeFileSync(join(o.output, `shard-${pad(shard)}.report.html`), renderReport(manifest, { fileBytes, meanLine }));
  return manifest;
}
