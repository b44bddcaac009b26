/**
 * What a stack serves: a promotion record, as it is written into the stack's config (`kiln:model` for the stable
 * model, `kiln:canary` for a candidate in rollout) by `kiln promote` and read by the Pulumi program. Pure data:
 * the record is the evidence a promotion rests on, and the git commit that writes it is its audit trail.
 */
import { createHash } from 'node:crypto';

/** A gate of the target stack read against the run's metrics when it was promoted. */
export interface PromotionGate {
  readonly expr: string;
  /** The metric's value in the run's status; null when the run did not report it. */
  readonly value: number | null;
  readonly passed: boolean | null;
}

/** The smoke check of a canary against the live endpoint (kiln promote's rollout). */
export interface SmokeEvidence {
  readonly passed: boolean;
  /** HumanEval problems sent to the candidate through the gateway, and how many of their completions passed their tests. */
  readonly problems: number;
  readonly passedProblems: number;
  /** Requests that failed (HTTP error or transport); any one fails the check. */
  readonly failedRequests: number;
  /** Measured end-to-end latency of the candidate's completions through the gateway, and the target's objectives. */
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly objectives: { readonly p50Ms: number; readonly p99Ms: number };
  /** Why it failed, one line per reason; empty when it passed. */
  readonly reasons: readonly string[];
}

/** What a promotion rests on: the run's eval metrics and the target's gates read against them. */
export interface PromotionEvidence {
  /** `<suite>.<metric>` → value, from the run's eval stages (`humaneval.pass@1`). */
  readonly metrics: Readonly<Record<string, number>>;
  readonly gates: readonly PromotionGate[];
  /** The canary's smoke check, once it ran. */
  readonly smoke?: SmokeEvidence;
}

/** One promotion (or rollback) of one stack: the model it serves, where it came from, and on what evidence. */
export interface ServedModel {
  readonly action: 'promote' | 'rollback';
  /** 1 for a stack's first promotion; one more with every promotion or rollback commit. */
  readonly seq: number;
  /** The run whose model this is (`r-0123456789ab`) and the namespace it ran in (its storage). */
  readonly run: string;
  readonly namespace: string;
  /** The run's export prefix (`pvc://kiln-artifacts/runs/<run>/export/`), ending in `/`. */
  readonly export: string;
  /** Serving target of the target stack → the model repository it serves (a folder of the export), ending in `/`. */
  readonly repositories: Readonly<Record<string, string>>;
  /** `modelDigest` of the export's files (every file but the eval repository's). */
  readonly digest: string;
  readonly files: number;
  /** The stack the model was promoted from (null: named by run id alone). */
  readonly from: string | null;
  readonly evidence: PromotionEvidence;
  /** Promoted past a failing gate: who and why. */
  readonly override?: { readonly by: string; readonly reason: string };
  /** Who promoted (`Name <email>` of git), and when (ISO 8601). */
  readonly by: string;
  readonly at: string;
}

/** One file of an export, as its manifest lists it. */
export interface ModelFile {
  readonly name: string;
  readonly digest: string;
}

/** Artifacts of the export manifest that belong to the eval model repository (the run's own eval server): not part of what is served. */
export const isEvalRepositoryFile = (name: string): boolean => name.startsWith('eval/');

/**
 * The digest of a model: sha256 over `<name> <digest>\n` of every file of the export (sorted by name), leaving
 * out the eval repository's. Files without a digest make the model undigestable: an Error names them.
 */
export function modelDigest(files: readonly { readonly name: string; readonly digest?: string }[]): string {
  const served = files.filter((f) => !isEvalRepositoryFile(f.name));
  const missing = served.filter((f) => !f.digest).map((f) => f.name);
  if (missing.length) throw new Error(`no digest for ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ` and ${missing.length - 3} more` : ''}: the export manifest must digest every file`);
  const lines = served.map((f) => `${f.name} ${f.digest}\n`).sort();
  return `sha256:${createHash('sha256').update(lines.join('')).digest('hex')}`;
}

/**
 * The repository a serving target of the target stack serves out of a run's export: the export's repository of
 * the same name, or, when the export has exactly one and the stack one target, that one. Undefined otherwise.
 */
export function repositoryFor(target: string, exportPrefix: string, exported: readonly string[], targets: readonly string[]): string | undefined {
  const base = exportPrefix.endsWith('/') ? exportPrefix : `${exportPrefix}/`;
  if (exported.includes(target)) return `${base}${target}/`;
  if (exported.length === 1 && targets.length === 1) return `${base}${exported[0]}/`;
  return undefined;
}

/** The names of the model repositories in an export manifest's artifacts (`<repo>/<path>`, not the eval one, not the Hugging Face files). */
export function exportedRepositories(files: readonly { readonly name: string }[]): string[] {
  const repos = new Set<string>();
  for (const f of files) {
    const slash = f.name.indexOf('/');
    if (slash > 0 && !isEvalRepositoryFile(f.name)) repos.add(f.name.slice(0, slash));
  }
  return [...repos].sort();
}
