/** A stack's promotions and rollbacks, read from git: the commits of its config file and the config at each. */
import type { ServedModel } from '@kiln/plan';
import { fileHistory, repoRoot, trailers } from './git.ts';
import { parseStackConfig, stackConfigFile } from './stack-config.ts';

/** One commit that changed what a stack serves (its `kiln:model` or `kiln:canary`). */
export interface HistoryEntry {
  readonly sha: string;
  /** `Name <email>` of the commit's author, and its date (ISO 8601). */
  readonly author: string;
  readonly date: string;
  /** The whole commit message. */
  readonly message: string;
  /** The commit's `Kiln-Action` trailer, else the stable record's action. A canary that failed its smoke check is a `rollback` commit. */
  readonly action: 'promote' | 'rollback';
  /** `kiln:model` at this commit: what the stable Triton serves (a commit without one is not an entry: a canary is never first). */
  readonly record: ServedModel;
  /** `kiln:canary` at this commit, while a canary rollout is in progress. */
  readonly canary?: ServedModel;
}

const same = (a: ServedModel | undefined, b: ServedModel | undefined) => (a?.seq ?? null) === (b?.seq ?? null) && (a?.digest ?? null) === (b?.digest ?? null);

/**
 * Every commit of the stack's config file that changed `kiln:model` or `kiln:canary`, oldest first. Commits
 * that changed other keys only, and commits whose config does not parse, are left out.
 */
export async function promotionHistory(stacksDir: string, stack: string): Promise<HistoryEntry[]> {
  const file = stackConfigFile(stacksDir, stack);
  const repo = await repoRoot(stacksDir);
  const out: HistoryEntry[] = [];
  let prev: { model?: ServedModel; canary?: ServedModel } = {};
  for (const c of await fileHistory(repo, file)) {
    let cfg;
    try {
      cfg = parseStackConfig(c.content, file, stack);
    } catch {
      continue;
    }
    if (same(cfg.model, prev.model) && same(cfg.canary, prev.canary)) continue;
    prev = cfg;
    if (!cfg.model) continue;
    const t = trailers(c.message)['Kiln-Action'];
    const action = t === 'promote' || t === 'rollback' ? t : (cfg.canary ?? cfg.model)!.action;
    out.push({ sha: c.sha, author: c.author, date: c.date, message: c.message, action, record: cfg.model, ...(cfg.canary ? { canary: cfg.canary } : {}) });
  }
  return out;
}

/**
 * What the stable model was before each change, as a stack: a promotion pushes its record, a rollback pops
 * the one it rolled back from. The last element is what the stack serves now.
 */
export function servedStack(history: readonly HistoryEntry[]): ServedModel[] {
  const stack: ServedModel[] = [];
  let prev: ServedModel | undefined;
  for (const e of history) {
    if (same(e.record, prev)) continue;
    prev = e.record;
    if (e.record.action === 'rollback') {
      stack.pop();
      // The record rolled back to is now the top; a history edited by hand may not have it there.
      if (stack.at(-1)?.digest !== e.record.digest) stack.push(e.record);
    } else stack.push(e.record);
  }
  return stack;
}

/** The record a rollback returns to: what the stack served before its current model; undefined when there is none. */
export function rollbackTarget(history: readonly HistoryEntry[]): ServedModel | undefined {
  const stack = servedStack(history);
  return stack.length >= 2 ? stack[stack.length - 2] : undefined;
}

/** The next record's `seq`: one more than any record (stable or canary) of the history. */
export function nextSeq(history: readonly HistoryEntry[], current: { model?: ServedModel; canary?: ServedModel } = {}): number {
  const seqs = [...history.flatMap((e) => [e.record.seq, e.canary?.seq ?? 0]), current.model?.seq ?? 0, current.canary?.seq ?? 0];
  return Math.max(0, ...seqs) + 1;
}
