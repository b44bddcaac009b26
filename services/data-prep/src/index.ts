/** @kiln/data-prep: the data-prep stage worker (issue #6, in progress). */
export { readInput, readJsonl, readDirectory, walk, isMalformed, type CodeRecord, type Malformed, type MalformedReason, type Item, type ReadOptions } from './read.ts';
export { Ledger, AccountingError, type LedgerTotals } from './ledger.ts';
export { signature, similarity, tokenHashes, optimalBands, bandKeys, writeBands, reduceBands, MINHASH_DEFAULTS, type MinHashConfig, type RecordId } from './minhash.ts';
export { Decontaminator, loadHumanEval, DECONTAMINATION_DEFAULTS, type BenchmarkText, type DecontaminationConfig } from './decontaminate.ts';
