/**
 * Near-duplicate detection with MinHash and LSH, BigCode's way (256 permutations, 5-gram shingles of
 * `[A-Za-z_0-9]+` tokens, Jaccard 0.7, bands × rows from @kiln/spec `optimalLsh`), in
 * three steps that scale out: each shard computes band keys per record and writes them to a file
 * (`writeBands`); one reduce step reads those files, joins records that share a band key with union-find,
 * and keeps one record per cluster, chosen deterministically (`reduceBands`); each shard then drops what is
 * not on its keep list.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { once } from 'node:events';

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
  const numPerm = cfg.numPerm ?? MINHASH_DEFAULTS.numPerm;
  const n = cfg.ngram ?? MINHASH_DEFAULTS.ngram;
  const tokens = tokenHashes(text);
  if (tokens.length < n) return undefined;
  const { a, b } = family(numPerm, cfg.seed ?? MINHASH_DEFAULTS.seed);
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

/** One 32-bit key per band: the band's rows hashed together. */
export function bandKeys(sig: Uint32Array, bands: number, rows: number): Uint32Array {
  const out = new Uint32Array(bands);
  for (let b = 0; b < bands; b++) {
    let h = 0x811c9dc5 ^ b;
    for (let r = 0; r < rows; r++) h = Math.imul(h ^ sig[b * rows + r]!, 0x01000193);
    out[b] = h >>> 0;
  }
  return out;
}

/** A record's identity across shards: its shard and its index in the shard. */
export interface RecordId {
  readonly shard: number;
  readonly index: number;
}

/** Writes one shard's band keys: per record, `shard, index, key[0..bands)` as little-endian uint32. */
export async function writeBands(file: string, shard: number, records: AsyncIterable<{ index: number; keys: Uint32Array }> | Iterable<{ index: number; keys: Uint32Array }>): Promise<number> {
  const out = createWriteStream(file);
  let n = 0;
  for await (const r of records) {
    const row = new Uint32Array(2 + r.keys.length);
    row[0] = shard;
    row[1] = r.index;
    row.set(r.keys, 2);
    if (!out.write(Buffer.from(row.buffer))) await once(out, 'drain');
    n++;
  }
  out.end();
  await once(out, 'finish');
  return n;
}

/**
 * The reduce step: reads the band files of every shard, joins records sharing any band key, and returns
 * for each shard the indexes to drop. In every cluster the record with the lowest (shard, index) is kept.
 * Memory: one entry per (band, distinct key) and per record, never the corpus.
 */
export async function reduceBands(files: readonly string[], bands: number): Promise<{ drop: Map<number, Set<number>>; records: number; clusters: number }> {
  const ids: RecordId[] = [];
  const parent: number[] = [];
  const find = (x: number): number => {
    while (parent[x] !== x) {
      parent[x] = parent[parent[x]!]!;
      x = parent[x]!;
    }
    return x;
  };
  const union = (x: number, y: number) => {
    const a = find(x);
    const b = find(y);
    if (a === b) return;
    // The root is the smaller (shard, index): the copy that is kept.
    const before = (p: number, q: number) => ids[p]!.shard < ids[q]!.shard || (ids[p]!.shard === ids[q]!.shard && ids[p]!.index < ids[q]!.index);
    if (before(a, b)) parent[b] = a;
    else parent[a] = b;
  };
  const buckets = Array.from({ length: bands }, () => new Map<number, number>());
  const rowBytes = (2 + bands) * 4;
  for (const file of files) {
    let rest = Buffer.alloc(0);
    for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
      const buf = rest.length ? Buffer.concat([rest, chunk]) : chunk;
      const whole = Math.floor(buf.length / rowBytes) * rowBytes;
      for (let off = 0; off < whole; off += rowBytes) {
        const me = ids.length;
        ids.push({ shard: buf.readUInt32LE(off), index: buf.readUInt32LE(off + 4) });
        parent.push(me);
        for (let b = 0; b < bands; b++) {
          const key = buf.readUInt32LE(off + 8 + b * 4);
          const other = buckets[b]!.get(key);
          if (other === undefined) buckets[b]!.set(key, me);
          else union(me, other);
        }
      }
      rest = Buffer.from(buf.subarray(whole));
    }
    if (rest.length) throw new Error(`${file}: truncated band file (${rest.length} stray bytes)`);
  }
  const drop = new Map<number, Set<number>>();
  const roots = new Set<number>();
  for (let i = 0; i < ids.length; i++) {
    const r = find(i);
    roots.add(r);
    if (r !== i) {
      const id = ids[i]!;
      let s = drop.get(id.shard);
      if (!s) drop.set(id.shard, (s = new Set()));
      s.add(id.index);
    }
  }
  return { drop, records: ids.length, clusters: roots.size };
}
