/**
 * The documents data prep leaves for each shard: the map step's partial ledger (`shard-N.partial.json`) and
 * the cleaned shard's manifest (`shard-N.manifest.json`). Their own module, so the pipeline that writes them
 * and the report that renders them both import them and neither imports the other.
 */
import type { LedgerTotals } from './ledger.ts';
import type { PiiKind } from './pii.ts';

/** One power-of-two bucket of a distribution: values in [2^k, 2^(k+1)), as `Log2Histogram` counts them. */
export interface HistogramBucket {
  readonly bucket: string;
  readonly count: number;
}

/** What the map step leaves for the reduce and apply steps (`shard-N.partial.json`). */
export interface PartialShard {
  readonly kiln: 'data-prep/partial/v1';
  readonly shard: number;
  readonly inputs: readonly string[];
  /** The ledger so far; `candidates` records are read but not yet kept or dropped. */
  readonly records: LedgerTotals;
  readonly candidates: number;
  readonly pii: Readonly<Record<PiiKind, number>>;
  /** The near-dedup settings the band keys were made with; null: near dedup is off. */
  readonly near: { readonly bands: number; readonly rows: number; readonly numPerm: number; readonly ngram: number; readonly threshold: number; readonly seed: number } | null;
  readonly seconds: number;
}

export interface ShardManifest {
  readonly kiln: 'data-prep/v1';
  readonly shard: number;
  readonly inputs: readonly string[];
  readonly records: LedgerTotals;
  readonly pii: Readonly<Record<PiiKind, number>>;
  readonly languages: Readonly<Record<string, { readonly files: number; readonly bytes: number }>>;
  readonly outputs: readonly { readonly path: string; readonly format: 'jsonl.zst'; readonly records: number; readonly bytes: number; readonly sha256: string }[];
  /** Near dedup: the banding, how many shards were deduplicated together, and the clusters found among them. */
  readonly nearDedup: { readonly bands: number; readonly rows: number; readonly shards: number; readonly clusters: number; readonly duplicates: number } | null;
  /** Distributions of the kept files: sizes in bytes and mean line lengths, in power-of-two buckets. */
  readonly distributions: { readonly fileBytes: readonly HistogramBucket[]; readonly meanLineLength: readonly HistogramBucket[] };
  readonly seconds: number;
}
