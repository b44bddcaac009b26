/**
 * pass@k with the unbiased estimator of Chen et al. 2021 (openai/human-eval `estimate_pass_at_k`), and its
 * aggregation over problems, languages and the suite.
 *
 * Outcomes whose status is `no-toolchain` are not the model's doing: they are dropped before counting, and a
 * problem left with none is excluded from pass@k and listed apart. pass@k for a k is reported for a group
 * (the suite, one language) only when every scored problem of that group has n ≥ k, as human-eval does;
 * otherwise it is omitted with the reason.
 */
import type { Language, Outcome, OutcomeStatus } from './types.ts';

/**
 * 1 − C(n−c, k) / C(n, k), computed as 1 − ∏_{i=n−c+1}^{n} (1 − k/i) so it neither overflows nor loses
 * precision; 1 when n − c < k (every draw of k contains a correct sample). Needs integers 0 ≤ c ≤ n, 1 ≤ k ≤ n.
 */
export function passAtK(n: number, c: number, k: number): number {
  if (!Number.isInteger(n) || !Number.isInteger(c) || !Number.isInteger(k)) throw new RangeError(`pass@k needs integers; got n=${n}, c=${c}, k=${k}`);
  if (c < 0 || c > n) throw new RangeError(`pass@k needs 0 ≤ c ≤ n; got n=${n}, c=${c}`);
  if (k < 1 || k > n) throw new RangeError(`pass@${k} needs 1 ≤ k ≤ n; got n=${n}`);
  if (n - c < k) return 1;
  let prod = 1;
  for (let i = n - c + 1; i <= n; i++) prod *= 1 - k / i;
  return 1 - prod;
}

/** The metric name of pass@k: `pass@1`. */
export function metricName(k: number): string {
  return `pass@${k}`;
}

/** Every outcome of one problem (one per completion), as the sandbox returned them. */
export interface ProblemOutcomes {
  readonly id: string;
  readonly language: Language;
  readonly outcomes: readonly Outcome[];
  /** The completions, in the order of `outcomes`; optional (the report shows the first failing one). */
  readonly completions?: readonly string[];
}

export interface OmittedK {
  readonly k: number;
  readonly reason: string;
}

export type StatusCounts = Readonly<Record<OutcomeStatus, number>>;

export interface ProblemScore {
  readonly id: string;
  readonly language: Language;
  /** Samples counted: outcomes other than `no-toolchain`. */
  readonly n: number;
  /** Samples that passed. */
  readonly c: number;
  /** `pass@k` for each requested k ≤ n. */
  readonly passAtK: Readonly<Record<string, number>>;
  readonly counts: StatusCounts;
  /** False when every outcome was `no-toolchain`: the problem is left out of pass@k. */
  readonly scored: boolean;
}

export interface GroupScore {
  /** Problems scored (toolchain present). */
  readonly problems: number;
  /** Problems left out because their language has no toolchain here. */
  readonly noToolchain: number;
  /** Mean over the scored problems, for each k every one of them has enough samples for. */
  readonly passAtK: Readonly<Record<string, number>>;
  readonly omitted: readonly OmittedK[];
  readonly counts: StatusCounts;
}

export interface Scores {
  /** The requested k, sorted and deduplicated. */
  readonly ks: readonly number[];
  readonly overall: GroupScore;
  readonly byLanguage: Readonly<Record<string, GroupScore>>;
  readonly problems: readonly ProblemScore[];
  /** Problems excluded for lack of a toolchain, with the sandbox's reason. */
  readonly noToolchain: readonly { readonly id: string; readonly language: Language; readonly reason: string }[];
}

export const STATUSES: readonly OutcomeStatus[] = ['passed', 'failed', 'timeout', 'no-toolchain'];

export function emptyCounts(): Record<OutcomeStatus, number> {
  return { passed: 0, failed: 0, timeout: 0, 'no-toolchain': 0 };
}

function checkKs(ks: readonly number[]): number[] {
  for (const k of ks) if (!Number.isInteger(k) || k < 1) throw new RangeError(`k must be a positive integer; got ${k}`);
  return [...new Set(ks)].sort((a, b) => a - b);
}

function group(problems: readonly ProblemScore[], ks: readonly number[]): GroupScore {
  const scored = problems.filter((p) => p.scored);
  const counts = emptyCounts();
  for (const p of problems) for (const s of STATUSES) counts[s] += p.counts[s];
  const passAtK: Record<string, number> = {};
  const omitted: OmittedK[] = [];
  for (const k of ks) {
    if (scored.length === 0) {
      omitted.push({ k, reason: problems.length ? 'no problem was scored (no toolchain for any of them)' : 'no problems' });
      continue;
    }
    const short = scored.filter((p) => p.n < k);
    if (short.length) {
      const e = short[0]!;
      omitted.push({ k, reason: `${short.length} of ${scored.length} problems have fewer than ${k} samples (${e.id} has n=${e.n})` });
      continue;
    }
    passAtK[metricName(k)] = scored.reduce((a, p) => a + p.passAtK[metricName(k)]!, 0) / scored.length;
  }
  return { problems: scored.length, noToolchain: problems.length - scored.length, passAtK, omitted, counts };
}

/** Scores each problem, then each language and the whole suite. */
export function scoreResults(results: readonly ProblemOutcomes[], ks: readonly number[]): Scores {
  const kList = checkKs(ks);
  const seen = new Set<string>();
  const problems: ProblemScore[] = [];
  const noToolchain: { id: string; language: Language; reason: string }[] = [];
  for (const r of results) {
    if (seen.has(r.id)) throw new Error(`results for problem ${r.id} given twice`);
    seen.add(r.id);
    const counts = emptyCounts();
    for (const o of r.outcomes) counts[o.status]++;
    const n = r.outcomes.length - counts['no-toolchain'];
    const c = counts.passed;
    const scored = !(n === 0 && counts['no-toolchain'] > 0);
    if (!scored) noToolchain.push({ id: r.id, language: r.language, reason: r.outcomes[0]!.reason });
    const passAt: Record<string, number> = {};
    if (scored) for (const k of kList) if (k <= n) passAt[metricName(k)] = passAtK(n, c, k);
    problems.push({ id: r.id, language: r.language, n, c, passAtK: passAt, counts, scored });
  }
  const languages = [...new Set(problems.map((p) => p.language))].sort();
  const byLanguage = Object.fromEntries(languages.map((l) => [l, group(problems.filter((p) => p.language === l), kList)]));
  return { ks: kList, overall: group(problems, kList), byLanguage, problems, noToolchain };
}
