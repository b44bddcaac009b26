/** Argument handling shared by commands: suggestions for unknown names, and option values. */
import { didYouMean } from '@kiln/spec';
import { UsageError } from './io.ts';

/** "; did you mean "x"?" when a known name is close to `word` by edit distance, else "". */
export function suggestion(word: string, known: Iterable<string>): string {
  const hint = didYouMean(word, known);
  return hint ? `; ${hint}` : '';
}

/** `--format`, text or json. */
export function formatOption(values: Record<string, unknown>): 'text' | 'json' {
  const format = values.format ?? 'text';
  if (format !== 'text' && format !== 'json') throw new UsageError(`--format must be text or json, not "${String(format)}"`);
  return format;
}
