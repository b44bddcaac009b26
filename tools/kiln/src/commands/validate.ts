/** `kiln validate`: every problem of each spec and of each stack overlay, as text or JSON. */
import { formatDiagnostics, STDIN, toYaml, validateFile } from '@kiln/spec';
import pkg from '../../package.json' with { type: 'json' };
import { formatOption } from '../args.ts';
import { common, type Command } from '../command.ts';
import { EXIT, UsageError, type Io } from '../io.ts';
import { fileLine, report, type FileReport } from '../render/report.ts';
import { plural } from '../render/table.ts';

export const command: Command = {
  usage: 'kiln validate <files...> [--stack NAME] [--overlay FILE] [--resolved] [--format text|json]',
  help: `Validates each spec against the schema and the checks the schema cannot express, then validates the
result of every stack overlay the spec declares. Every problem in a file is reported in one run, as
file:line:col with a code frame and a hint. \`-\` (or /dev/stdin) reads a spec from standard input,
reported as <stdin>.

Options:
  --stack NAME       validate only the result of this stack's overlay (dev, staging, prod, ...)
  --overlay FILE     apply this YAML merge patch on top (after the stack's inline overlay)
  --resolved         print the fully defaulted spec of each valid file
  --format FORMAT    text (default) or json, for machines
  --no-color         plain output (also when NO_COLOR is set or output is not a terminal)
  --debug            print stack traces of internal errors

Exit codes: 0 valid (warnings allowed), 1 errors found, 2 usage error, 3 internal error.`,
  options: {
    ...common,
    stack: { type: 'string' },
    overlay: { type: 'string' },
    resolved: { type: 'boolean' },
    format: { type: 'string', default: 'text' },
  },
  allowPositionals: true,
  run: runValidate,
};

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
      if (r.spec) io.out(`# ${r.file}${opts.stack ? ` (stack ${opts.stack})` : ''}, resolved\n${toYaml(r.spec)}`);
    }
    for (const r of reports) io.err(fileLine(r, io.color));
    if (reports.length > 1) io.err(`${plural(reports.length, 'file')}: ${plural(errors, 'error')}, ${plural(warnings, 'warning')}`);
  }
  return errors > 0 ? EXIT.invalid : EXIT.ok;
}
