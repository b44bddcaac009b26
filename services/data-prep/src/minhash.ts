/**
 * Near-duplicate detection with MinHash and LSH, BigCode's way (256 permutations, 5-gram shingles of
 * `[A-Za-z_0-9]+` tokens, Jaccard 0.7, bands × rows from @kiln/spec `optimalLsh`), in
 * three steps that scale out: each shard computes band keys per record and writes them to its band
 * directory (`BandWriter`); one reduce step reads those directories band by band, joins records that share
 * a band key with union-find, and keeps one record per cluster, chosen deterministically (`reduceBands`),
 * writing a drop list per shard; each shard then drops what is on its list.
 */
import { createReadStream, createWriteStream, mkdirSync, readFileSync, rmSync, statSync, writeFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { nativeAddon } from './native.ts';

export interface MinHashConfig {
  /** Hash functions per signature. Default 256. */
  readonly numPerm?: number;
  /** Tokens per shingle; records with fewer tokens are not near-deduplicated. Default 5. */
  readonly ngram?: number;
  /** Jaccard similarity above which two records are duplicates. Default 0.7. */
  readonly threshold?: number;
  /** Seed of the hash family. Default 42. */
  readonly seed?: number;
}

export const MINHASH_DEFAULTS = { numPerm: 256, ngram: 5, threshold: 0.7, seed: 42 } as const;

/** A small deterministic PRNG (mulberry32) for the hash family's coefficients. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

const families = new Map<string, { a: Uint32Array; b: Uint32Array }>();
function family(numPerm: number, seed: number) {
  const key = `${numPerm}/${seed}`;
  let f = families.get(key);
  if (!f) {
    const r = prng(seed);
    const a = new Uint32Array(numPerm);
    const b = new Uint32Array(numPerm);
    for (let i = 0; i < numPerm; i++) {
      a[i] = r() | 1; // odd multipliers: a bijection on 32-bit values
      b[i] = r();
    }
    f = { a, b };
    families.set(key, f);
  }
  return f;
}

const isWord = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;

/** FNV-1a hashes of the `[A-Za-z_0-9]+` tokens of a text, in order (no intermediate strings). */
export function tokenHashes(text: string): Uint32Array {
  const out: number[] = [];
  let h = 0;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (isWord(c)) {
      if (!inWord) {
        h = 0x811c9dc5;
        inWord = true;
      }
      h = Math.imul(h ^ c, 0x01000193);
    } else if (inWord) {
      out.push(h >>> 0);
      inWord = false;
    }
  }
  if (inWord) out.push(h >>> 0);
  return Uint32Array.from(out);
}

/** The MinHash signature of a text; undefined when it has fewer tokens than one shingle. */
export function signature(text: string, cfg: MinHashConfig = {}): Uint32Array | undefined {
  return signatureOfTokens(tokenHashes(text), cfg);
}

/**
 * `signature` from a text's `tokenHashes`, for callers that already have them. The loop runs in data-prep's
 * native addon when it is built (`native: false` forces the JavaScript one; both give the same signature).
 */
export function signatureOfTokens(tokens: Uint32Array, cfg: MinHashConfig & { readonly native?: boolean } = {}): Uint32Array | undefined {
  const numPerm = cfg.numPerm ?? MINHASH_DEFAULTS.numPerm;
  const n = cfg.ngram ?? MINHASH_DEFAULTS.ngram;
  if (tokens.length < n) return undefined;
  const { a, b } = family(numPerm, cfg.seed ?? MINHASH_DEFAULTS.seed);
  const addon = cfg.native === false ? undefined : nativeAddon();
  if (addon && 'ok' in addon) return addon.ok.minhash(tokens, n, a, b, new Uint32Array(numPerm));
  const sig = new Uint32Array(numPerm).fill(0xffffffff);
  const seen = new Set<number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    // A shingle's hash: its n token hashes mixed in order.
    let s = 0x9e3779b9;
    for (let j = 0; j < n; j++) s = Math.imul(s ^ tokens[i + j]!, 0x85ebca6b) ^ (s >>> 13);
    s = (s ^ (s >>> 16)) >>> 0;
    if (seen.has(s)) continue;
    seen.add(s);
    for (let p = 0; p < numPerm; p++) {
      const v = (Math.imul(a[p]!, s) + b[p]!) >>> 0;
      if (v < sig[p]!) sig[p] = v;
    }
  }
  return sig;
}

/** Estimated Jaccard similarity of two signatures. */
export function similarity(x: Uint32Array, y: Uint32Array): number {
  let same = 0;
  for (let i = 0; i < x.length; i++) if (x[i] === y[i]) same++;
  return same / x.length;
}

/**
 * One 64-bit key per band (two 32-bit halves, `[hi0, lo0, hi1, lo1, …]`): the band's rows hashed together
 * with two different mixes. 32-bit keys would collide by chance between unrelated records once a corpus
 * holds millions of them (about N²/2³³ false pairs per band), and an LSH collision drops a record.
 */
export function bandKeys(sig: Uint32Array, bands: number, rows: number): Uint32Array {
  const out = new Uint32Array(bands * 2);
  for (let b = 0; b < bands; b++) {
    let h = 0x811c9dc5 ^ b;
    let g = Math.imul(0x9e3779b9, b + 1) ^ 0x7f4a7c15;
    for (let r = 0; r < rows; r++) {
      const v = sig[b * rows + r]!;
      h = Math.imul(h ^ v, 0x01000193);
      g = Math.imul(g ^ v, 0xcc9e2d51);
      g = (g << 13) | (g >>> 19);
      g = Math.imul(g, 5) + 0xe6546b64;
    }
    g ^= g >>> 16;
    g = Math.imul(g, 0x85ebca6b);
    g ^= g >>> 13;
    out[2 * b] = h >>> 0;
    out[2 * b + 1] = g >>> 0;
  }
  return out;
}

/**
 * A shard's band keys on disk, one directory per shard, written as records stream by (memory: one buffer
 * per band):
 * - `meta.json`: `{ shard, bands, rows, records }`;
 * - `ids.u32`: the record index (position among the shard's candidates) of each signed record, uint32 LE;
 * - `band-BBB.u64`: that band's key for each of those records in the same order, two uint32 LE (hi, lo).
 * Band-major files let the reduce step read one band of every shard at a time.
 */
export class BandWriter {
  private readonly dir: string;
  private readonly shard: number;
  private readonly bands: number;
  private readonly rows: number;
  private readonly files: WriteStream[];
  private readonly ids: WriteStream;
  private readonly idBuf: Buffer;
  private readonly keyBufs: Buffer[];
  private buffered = 0;
  private records = 0;
  private static readonly BATCH = 4096;
  private constructor(dir: string, shard: number, bands: number, rows: number) {
    this.dir = dir;
    this.shard = shard;
    this.bands = bands;
    this.rows = rows;
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    this.ids = createWriteStream(join(dir, 'ids.u32'));
    this.files = Array.from({ length: bands }, (_, b) => createWriteStream(join(dir, `band-${String(b).padStart(3, '0')}.u64`)));
    this.idBuf = Buffer.alloc(BandWriter.BATCH * 4);
    this.keyBufs = Array.from({ length: bands }, () => Buffer.alloc(BandWriter.BATCH * 8));
  }

  static open(dir: string, shard: number, bands: number, rows: number): BandWriter {
    return new BandWriter(dir, shard, bands, rows);
  }

  /** Adds one record's keys (from `bandKeys`). */
  async add(index: number, keys: Uint32Array): Promise<void> {
    if (keys.length !== this.bands * 2) throw new Error(`expected ${this.bands} band keys, got ${keys.length / 2}`);
    const at = this.buffered;
    this.idBuf.writeUInt32LE(index, at * 4);
    for (let b = 0; b < this.bands; b++) {
      this.keyBufs[b]!.writeUInt32LE(keys[2 * b]!, at * 8);
      this.keyBufs[b]!.writeUInt32LE(keys[2 * b + 1]!, at * 8 + 4);
    }
    this.records++;
    if (++this.buffered === BandWriter.BATCH) await this.flush();
  }

  private async flush(): Promise<void> {
    const n = this.buffered;
    if (!n) return;
    const waits: Promise<unknown>[] = [];
    // Copies: the buffers are reused for the next batch while these writes are pending.
    if (!this.ids.write(Buffer.from(this.idBuf.subarray(0, n * 4)))) waits.push(once(this.ids, 'drain'));
    for (let b = 0; b < this.bands; b++) if (!this.files[b]!.write(Buffer.from(this.keyBufs[b]!.subarray(0, n * 8)))) waits.push(once(this.files[b]!, 'drain'));
    this.buffered = 0;
    if (waits.length) await Promise.all(waits);
  }

  /** Stops writing and removes the directory (a failed map step). */
  async abort(): Promise<void> {
    const all = [this.ids, ...this.files];
    await Promise.all(all.map((f) => new Promise<void>((res) => (f.closed ? res() : f.destroy().once('close', () => res())))));
    rmSync(this.dir, { recursive: true, force: true });
  }

  async close(): Promise<number> {
    await this.flush();
    const all = [this.ids, ...this.files];
    for (const f of all) f.end();
    await Promise.all(all.map((f) => once(f, 'finish')));
    writeFileSync(join(this.dir, 'meta.json'), `${JSON.stringify({ kiln: 'bands/v1', shard: this.shard, bands: this.bands, rows: this.rows, records: this.records })}\n`);
    return this.records;
  }
}

/** Writes one shard's band directory from an in-memory list (tests, small tools). */
export async function writeBands(dir: string, shard: number, bands: number, rows: number, records: Iterable<{ index: number; keys: Uint32Array }>): Promise<number> {
  const w = BandWriter.open(dir, shard, bands, rows);
  try {
    for (const r of records) await w.add(r.index, r.keys);
  } catch (e) {
    await w.abort();
    throw e;
  }
  return w.close();
}

interface BandMeta {
  readonly shard: number;
  readonly bands: number;
  readonly rows: number;
  readonly records: number;
}

function readMeta(dir: string): BandMeta {
  let m: BandMeta;
  try {
    m = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as BandMeta;
  } catch (e) {
    throw new Error(`${dir}: not a finished band directory (${(e as Error).message}); was its shard's map step completed?`);
  }
  const ids = statSync(join(dir, 'ids.u32')).size;
  if (ids !== m.records * 4) throw new Error(`${dir}/ids.u32: truncated band file (${ids} bytes for ${m.records} records)`);
  for (let b = 0; b < m.bands; b++) {
    const f = join(dir, `band-${String(b).padStart(3, '0')}.u64`);
    const size = statSync(f).size;
    if (size !== m.records * 8) throw new Error(`${f}: truncated band file (${size} bytes for ${m.records} records)`);
  }
  return m;
}

async function* chunksOf(file: string): AsyncGenerator<Buffer> {
  // 1 MiB reads, a multiple of 8: a key never straddles two chunks.
  for await (const c of createReadStream(file, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) yield c;
}

export interface ReduceResult {
  /** Per shard, the record indexes to drop (sorted). */
  readonly drop: Map<number, Uint32Array>;
  /** Signed records read. */
  readonly records: number;
  /** Clusters of two or more near-duplicates. */
  readonly clusters: number;
  readonly duplicates: number;
  /** Passes over each band (more than one when the distinct keys of a band exceed `maxKeys`). */
  readonly passesPerBand: number;
}

/**
 * The reduce step: reads the band directories of every shard one band at a time, joins records sharing a
 * band key with union-find, and in every cluster keeps the record with the lowest (shard, index).
 * Memory: 8 bytes per signed record (record ids and the union-find forest) plus one map of at most
 * `maxKeys` band keys; when a band has more records than that, it is read in several passes, each taking
 * the keys of one hash range. The corpus itself is never read.
 */
export async function reduceBands(dirs: readonly string[], opts: { maxKeys?: number } = {}): Promise<ReduceResult> {
  const metas = dirs.map(readMeta);
  const bands = metas[0]?.bands ?? 0;
  for (const [i, m] of metas.entries()) {
    if (m.bands !== bands || m.rows !== metas[0]!.rows) throw new Error(`${dirs[i]}: banding ${m.bands}×${m.rows} differs from ${dirs[0]}'s ${bands}×${metas[0]!.rows}; every shard must use the same near-dedup settings`);
  }
  const seenShards = new Set<number>();
  for (const [i, m] of metas.entries()) {
    if (seenShards.has(m.shard)) throw new Error(`${dirs[i]}: shard ${m.shard} appears twice`);
    seenShards.add(m.shard);
  }
  // Global ids ordered by (shard, index), so the smaller id is the copy kept.
  const order = metas.map((m, i) => ({ m, dir: dirs[i]! })).sort((a, b) => a.m.shard - b.m.shard);
  const offsets: number[] = [];
  let n = 0;
  for (const o of order) {
    offsets.push(n);
    n += o.m.records;
  }
  const shardOf = new Int32Array(n);
  const indexOf = new Uint32Array(n);
  for (const [k, o] of order.entries()) {
    const ids = readFileSync(join(o.dir, 'ids.u32'));
    for (let j = 0; j < o.m.records; j++) {
      shardOf[offsets[k]! + j] = o.m.shard;
      indexOf[offsets[k]! + j] = ids.readUInt32LE(j * 4);
    }
    for (let j = 1; j < o.m.records; j++) if (indexOf[offsets[k]! + j]! <= indexOf[offsets[k]! + j - 1]!) throw new Error(`${o.dir}/ids.u32: record indexes are not increasing`);
  }
  const parent = new Int32Array(n);
  for (let i = 0; i < n; i++) parent[i] = i;
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]!]!;
      x = parent[x]!;
    }
    return x;
  };
  const maxKeys = opts.maxKeys ?? 8_000_000;
  const passes = Math.max(1, Math.ceil(n / maxKeys));
  for (let b = 0; b < bands; b++) {
    const name = `band-${String(b).padStart(3, '0')}.u64`;
    for (let p = 0; p < passes; p++) {
      const first = new Map<number, number>();
      for (const [k, o] of order.entries()) {
        let id = offsets[k]!;
        for await (const c of chunksOf(join(o.dir, name))) {
          for (let off = 0; off + 8 <= c.length; off += 8, id++) {
            const hi = c.readUInt32LE(off);
            if (passes > 1 && hi % passes !== p) continue;
            // 53 of the 64 bits as a Map key (a chance collision: about N²/2⁵⁴ per band).
            const key = (hi >>> 11) * 4294967296 + c.readUInt32LE(off + 4);
            const other = first.get(key);
            if (other === undefined) first.set(key, id);
            else {
              const x = find(id);
              const y = find(other);
              if (x !== y) {
                if (x < y) parent[y] = x;
                else parent[x] = y;
              }
            }
          }
        }
      }
    }
  }
  const drops = new Map<number, number[]>();
  const sizes = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const r = find(i);
    sizes.set(r, (sizes.get(r) ?? 0) + 1);
    if (r !== i) {
      const s = shardOf[i]!;
      let list = drops.get(s);
      if (!list) drops.set(s, (list = []));
      list.push(indexOf[i]!);
    }
  }
  let clusters = 0;
  let duplicates = 0;
  for (const size of sizes.values()) {
    if (size > 1) {
      clusters++;
      duplicates += size - 1;
    }
  }
  const drop = new Map<number, Uint32Array>();
  for (const o of order) drop.set(o.m.shard, Uint32Array.from(drops.get(o.m.shard) ?? []));
  return { drop, records: n, clusters, duplicates, passesPerBand: passes };
}

/** A drop list on disk: the record indexes of a shard that the reduce step dropped, sorted uint32 LE. */
export function writeDropList(file: string, indexes: Uint32Array): void {
  writeFileSync(file, Buffer.from(indexes.buffer, indexes.byteOffset, indexes.byteLength));
}

export function readDropList(file: string): Set<number> {
  const b = readFileSync(file);
  if (b.length % 4) throw new Error(`${file}: truncated drop list`);
  const out = new Set<number>();
  for (let i = 0; i < b.length; i += 4) out.add(b.readUInt32LE(i));
  return out;
}
