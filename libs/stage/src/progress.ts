/**
 * The training progress channel, read side: rank 0 prints one `kiln.progress/v1` JSON line per log interval
 * on stdout (progress-line.schema.json); whoever reads the pod's log keeps the last line that validates and
 * shows it as the stage's progress. Pure: the log text in, the progress out.
 */
import { validatorOf } from './schemas.ts';
import type { Progress, ProgressLine } from './types.ts';

export const PROGRESS_KIND = 'kiln.progress/v1' as const;

/** One log line as a progress line; undefined for anything else (other output, a torn line, another kind). */
export function parseProgressLine(line: string): ProgressLine | undefined {
  const t = line.trim();
  // Cheap filter first: most of a log is not progress, and ajv is not needed to say so.
  if (!t.startsWith('{') || !t.includes(PROGRESS_KIND)) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch {
    return undefined;
  }
  return validatorOf('progress-line')(v) ? (v as ProgressLine) : undefined;
}

/** The last valid progress line of a log's text (a tail may begin or end mid-line: those pieces are skipped). */
export function lastProgressLine(text: string): ProgressLine | undefined {
  const lines = text.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const p = parseProgressLine(lines[i]!);
    if (p) return p;
  }
  return undefined;
}

/** A progress line as the stage's status progress: tokens done of the budget with the training metrics. */
export function progressOfLine(l: ProgressLine): Progress {
  const { done, total, unit, updatedAt } = l.progress;
  return {
    done,
    total,
    unit,
    ...(updatedAt !== undefined ? { updatedAt } : {}),
    step: l.step,
    steps: l.steps,
    loss: l.loss,
    lr: l.lr,
    grad_norm: l.grad_norm,
    tokens_per_s: l.tokens_per_s,
    eta_s: l.eta_s,
    ...(l.mfu !== undefined ? { mfu: l.mfu } : {}),
  };
}
