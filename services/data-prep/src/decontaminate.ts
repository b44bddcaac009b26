/**
 * Decontamination: drop training files that contain an eval benchmark's prompts or solutions. Each benchmark
 * text (a HumanEval prompt, a canonical solution) becomes a set of token n-grams; a file is contaminated by
 * a text when it contains at least `minOverlap` of that text's n-grams. Ordinary code shares a few n-grams
 * with any short solution (`for i in range(len(`), so one shared n-gram is not enough; a pasted prompt or
 * solution shares nearly all of them.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { tokenHashes } from './minhash.ts';

export interface BenchmarkText {
  /** e.g. `HumanEval/0:prompt`. */
  readonly id: string;
  readonly text: string;
}

export interface DecontaminationConfig {
  /** Tokens per n-gram. Default 10. */
  readonly ngram?: number;
  /** Share of a benchmark text's n-grams a file must contain to be contaminated by it. Default 0.5. */
  readonly minOverlap?: number;
}

export const DECONTAMINATION_DEFAULTS = { ngram: 10, minOverlap: 0.5 } as const;

/** The n-gram hashes of a token-hash sequence, in order (repeats included). */
function forEachNgram(t: Uint32Array, n: number, f: (h: number) => void): void {
  for (let i = 0; i + n <= t.length; i++) {
    let h = 0x811c9dc5;
    for (let j = 0; j < n; j++) h = Math.imul(h ^ t[i + j]!, 0x01000193) ^ (h >>> 15);
    f(h >>> 0);
  }
}

function ngrams(text: string, n: number): Set<number> {
  const out = new Set<number>();
  forEachNgram(tokenHashes(text), n, (h) => out.add(h));
  return out;
}

/** An index of benchmark n-grams, built once per shard and shared by every file. */
export class Decontaminator {
  private readonly n: number;
  private readonly minOverlap: number;
  private readonly index = new Map<number, number[]>();
  private readonly sizes: number[] = [];
  private readonly ids: string[] = [];

  constructor(texts: readonly BenchmarkText[], cfg: DecontaminationConfig = {}) {
    this.n = cfg.ngram ?? DECONTAMINATION_DEFAULTS.ngram;
    this.minOverlap = cfg.minOverlap ?? DECONTAMINATION_DEFAULTS.minOverlap;
    for (const t of texts) {
      const grams = ngrams(t.text, this.n);
      // Texts shorter than one n-gram cannot be recognised; they are left out rather than matched loosely.
      if (!grams.size) continue;
      const k = this.ids.length;
      this.ids.push(t.id);
      this.sizes.push(grams.size);
      for (const g of grams) {
        const list = this.index.get(g);
        if (list) list.push(k);
        else this.index.set(g, [k]);
      }
    }
  }

  /** Benchmark texts indexed. */
  get size(): number {
    return this.ids.length;
  }

  /** The benchmark text a file contains (the one it overlaps most), if any. */
  check(content: string): { id: string; overlap: number } | undefined {
    return this.checkTokens(tokenHashes(content));
  }

  /**
   * `check` on the file's token hashes (`tokenHashes`), so a caller that also needs them for MinHash computes
   * them once. Each distinct n-gram of the file counts once, as a set would; only n-grams in the index are
   * remembered, so an ordinary file costs a hash lookup per token.
   */
  checkTokens(tokens: Uint32Array): { id: string; overlap: number } | undefined {
    const hits = new Map<number, number>();
    const counted = new Set<number>();
    const n = this.n;
    // forEachNgram's loop, inlined: this runs once per token of every file.
    for (let i = 0; i + n <= tokens.length; i++) {
      let h = 0x811c9dc5;
      for (let j = 0; j < n; j++) h = Math.imul(h ^ tokens[i + j]!, 0x01000193) ^ (h >>> 15);
      const g = h >>> 0;
      const list = this.index.get(g);
      if (!list || counted.has(g)) continue;
      counted.add(g);
      for (const k of list) hits.set(k, (hits.get(k) ?? 0) + 1);
    }
    let best: { id: string; overlap: number } | undefined;
    for (const [k, h] of hits) {
      const overlap = h / this.sizes[k]!;
      if (overlap >= this.minOverlap && (!best || overlap > best.overlap)) best = { id: this.ids[k]!, overlap };
    }
    return best;
  }
}

/** HumanEval's prompts and canonical solutions from its `.jsonl.gz` (or `.jsonl`) file. */
export function loadHumanEval(file: string): BenchmarkText[] {
  const raw = readFileSync(file);
  const text = (file.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8');
  return text
    .split('\n')
    .filter((l) => l.trim())
    .flatMap((l) => {
      const r = JSON.parse(l) as { task_id: string; prompt: string; canonical_solution: string };
      return [
        { id: `${r.task_id}:prompt`, text: r.prompt },
        { id: `${r.task_id}:solution`, text: r.canonical_solution },
      ];
    });
}
