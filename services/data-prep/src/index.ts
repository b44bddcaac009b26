/** @kiln/data-prep: the data-prep stage worker (issue #6, in progress). */
export { readJsonl, readDirectory, walk, isMalformed, type CodeRecord, type Malformed, type MalformedReason, type Item, type ReadOptions } from './read.ts';
export { readInput, isParquetFile } from './input.ts';
export { readParquet, readParquetSource, readParquetDirectory, openParquetSource, listParquetFiles, PARQUET_CODECS, type ParquetSource } from './parquet.ts';
export { Ledger, AccountingError, type LedgerTotals } from './ledger.ts';
export { signature, similarity, tokenHashes, bandKeys, BandWriter, writeBands, reduceBands, writeDropList, readDropList, MINHASH_DEFAULTS, type MinHashConfig, type ReduceResult } from './minhash.ts';
export { Decontaminator, loadHumanEval, DECONTAMINATION_DEFAULTS, type BenchmarkText, type DecontaminationConfig } from './decontaminate.ts';
export { prepare, mapShard, reduceShards, applyShard, dedupShards, mappedShards, shardFile, type PrepOptions, type DedupResult } from './pipeline.ts';
export type { ShardManifest, PartialShard, HistogramBucket } from './manifest.ts';
export { optionsFromSpec, type SpecPrep } from './from-spec.ts';
export { check, filtersFromSpec, textStats, DROP_REASONS, DEFAULT_FILTERS, type DropReason, type FilterConfig, type FilterResult, type SourceFile } from './filters.ts';
export { detectLanguage, shebangLanguage, normalizeLanguage } from './language.ts';
export { redact, detect, PII_KINDS, type PiiKind, type RedactOptions, type RedactResult, type Finding } from './pii.ts';
export { runStage, runDedupStage, readStageConfig, localPath } from './stage.ts';
export { optionsFrom } from './from-spec.ts';
export { renderReport, barChart, Log2Histogram, type ReportStats } from './report.ts';
export { ParseFilter, GRAMMARS } from './parse.ts';
export { RecordWork, WorkPool, defaultWorkers, usableCpus, type WorkConfig, type WorkInput, type WorkOutput } from './map-work.ts';
export { prepStage, dedupStage, stageShard, type EntryIo } from './entry.ts';
