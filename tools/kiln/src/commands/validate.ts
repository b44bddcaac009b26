import { formatDiagnostics, STDIN, validateFile, type Diagnostic, type LoadResult } from '@kiln/spec';
import { stringify } from 'yaml';
import pkg from '../package.json' with { type: 'json' };
import { EXIT, UsageError, type Io } from './io.ts';

export interface FileReport {
  readonly file: string;
  readonly valid: boolean;
  readonly errors: number;
  readonly warnings: number;
  readonly stacks: string[];
  readonly diagnostics: Diagnostic[];
  readonly spec?: unknown;
}

export function formatOption(values: Record<string, unknown>): 'text' | 'json' {
  const format = values.format ?? 'text';
  if (format !== 'text' && format !== 'json') throw new UsageError(`--format must be text or json, not "${String(format)}"`);
  return format;
}

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

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

export function fileLine(f: FileReport, color: boolean): string {
  const mark = f.valid ? (color ? '\x1b[32m✓\x1b[39m' : '✓') : color ? '\x1b[31m✗\x1b[39m' : '✗';
  const counts = f.valid ? (f.warnings ? ` (${plural(f.warnings, 'warning')})` : '') : `: ${plural(f.errors, 'error')}${f.warnings ? `, ${plural(f.warnings, 'warning')}` : ''}`;
  const stacks = f.stacks.length ? `, stacks ${f.stacks.join(', ')}` : '';
  return `${mark} ${f.file}${f.valid ? ' is valid' : ''}${counts}${f.valid ? stacks : ''}`;
}

export function runValidate(values: Record<string, unknown>, files: string[], io: Io): number {
  const format = formatOption(values);
  if (files.length === 0) throw new UsageError('name at least one spec file, e.g. `kiln validate kiln.yaml` (or `-` for standard input)');
  if (files.filter((f) => f === '-').length + (values.overlay === '-' ? 1 : 0) > 1) throw new UsageError('standard input (`-`) can be read only once');
  const opts: { stack?: string; overlay?: string } = {};
  if (typeof values.stack === 'string') opts.stack = values.stack;
  if (typeof values.overlay === 'string') opts.overlay = values.overlay;
  const resolved = Boolean(values.resolved);
  const reports: FileReport[] = [];
  const texts = new Map<string, string>();
  for (const file of files) {
    const r = validateFile(file, opts);
    for (const [f, t] of r.sources) texts.set(f, t);
    reports.push(report(file === '-' ? STDIN : file, r, resolved));
  }
  const errors = reports.reduce((n, r) => n + r.errors, 0);
  const warnings = reports.reduce((n, r) => n + r.warnings, 0);
  if (format === 'json') {
    io.out(JSON.stringify({ kiln: pkg.version, valid: errors === 0, errors, warnings, files: reports }, null, 2));
  } else {
    for (const r of reports) {
      if (r.diagnostics.length) io.err(formatDiagnostics(r.diagnostics, { sources: texts, color: io.color }) + '\n');
      if (r.spec) io.out(`# ${r.file}${opts.stack ? ` (stack ${opts.stack})` : ''}, resolved\n${stringify(r.spec, { lineWidth: 0 })}`);
    }
    for (const r of reports) io.err(fileLine(r, io.color));
    if (reports.length > 1) io.err(`${plural(reports.length, 'file')}: ${plural(errors, 'error')}, ${plural(warnings, 'warning')}`);
  }
  return errors > 0 ? EXIT.invalid : EXIT.ok;
}
