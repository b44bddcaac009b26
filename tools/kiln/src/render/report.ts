/** The validation report of spec files: as data for JSON, and one line per file for people. */
import type { Diagnostic, LoadResult } from '@kiln/spec';
import { mark, plural } from './table.ts';

/** One spec file's result, as `kiln validate --format json` and `kiln demo` report it. */
export interface FileReport {
  readonly file: string;
  readonly valid: boolean;
  readonly errors: number;
  readonly warnings: number;
  readonly stacks: string[];
  readonly diagnostics: Diagnostic[];
  readonly spec?: unknown;
}

/** The report of one file's load result; with `withSpec`, the resolved spec too. */
export function report(file: string, r: LoadResult, withSpec: boolean): FileReport {
  const errors = r.diagnostics.filter((d) => d.severity === 'error').length;
  const out: { -readonly [K in keyof FileReport]: FileReport[K] } = {
    file,
    valid: errors === 0,
    errors,
    warnings: r.diagnostics.length - errors,
    stacks: r.stacks,
    diagnostics: r.diagnostics,
  };
  if (withSpec && r.spec) out.spec = r.spec;
  return out;
}

/** `✓ file is valid, stacks dev, prod` or `✗ file: 2 errors`. */
export function fileLine(f: FileReport, color: boolean): string {
  const counts = f.valid ? (f.warnings ? ` (${plural(f.warnings, 'warning')})` : '') : `: ${plural(f.errors, 'error')}${f.warnings ? `, ${plural(f.warnings, 'warning')}` : ''}`;
  const stacks = f.stacks.length ? `, stacks ${f.stacks.join(', ')}` : '';
  return `${mark(f.valid, color)} ${f.file}${f.valid ? ' is valid' : ''}${counts}${f.valid ? stacks : ''}`;
}
