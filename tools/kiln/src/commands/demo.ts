import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatDiagnostics, load, validateFile } from '@kiln/spec';
import { EXIT, type Io } from './io.ts';
import { stackLine, summarise } from './summary.ts';
import { fileLine, formatOption, report } from './validate.ts';

/** The repository's example specs. */
export const CONFIGS_DIR = fileURLToPath(new URL('../../../configs/', import.meta.url));

export function exampleSpecs(dir = CONFIGS_DIR): string[] {
  return readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => join(dir, f));
}

export async function runDemo(values: Record<string, unknown>, positionals: string[], io: Io): Promise<number> {
  const code = summariseExamples(values, io);
  // JSON output describes the specs only; provisioning is for people watching.
  if (code !== EXIT.ok || values['validate-only'] || values.format === 'json') return code;
  return (await import('./provision.ts')).provisionDemo(values, io);
}

function summariseExamples(values: Record<string, unknown>, io: Io): number {
  const format = formatOption(values);
  const files = exampleSpecs();
  const rel = (f: string) => relative(process.cwd(), f) || f;
  const results = files.map((file) => {
    const r = validateFile(file);
    const stacks = Object.fromEntries(r.stacks.map((stack) => [stack, load(file, { stack }).spec]));
    return { file: rel(file), result: r, report: report(rel(file), r, false), stacks };
  });
  const errors = results.reduce((n, x) => n + x.report.errors, 0);
  if (format === 'json') {
    io.out(
      JSON.stringify(
        {
          specs: results.map((x) => ({
            ...x.report,
            summary: x.result.spec ? Object.fromEntries(summarise(x.result.spec)) : null,
            stacks: Object.fromEntries(Object.entries(x.stacks).map(([k, v]) => [k, v ? Object.fromEntries(summarise(v)) : null])),
          })),
        },
        null,
        2,
      ),
    );
    return errors ? EXIT.invalid : EXIT.ok;
  }
  const bold = (s: string) => (io.color ? `\x1b[1m${s}\x1b[22m` : s);
  io.out(bold(`kiln demo: ${files.length} example specs in ${rel(CONFIGS_DIR)}`) + '\n');
  for (const x of results) {
    io.out(fileLine(x.report, io.color));
    if (x.result.diagnostics.length) io.out(formatDiagnostics(x.result.diagnostics, { sources: x.result.sources, color: io.color }));
    const spec = x.result.spec;
    if (spec) {
      io.out(`  ${bold(spec.metadata.name)}${spec.metadata.owner ? `, owned by ${spec.metadata.owner}` : ''}${spec.metadata.description ? `: ${spec.metadata.description}` : ''}`);
      for (const [k, v] of summarise(spec)) io.out(`  ${k.padEnd(10)} ${v}`);
      for (const [stack, s] of Object.entries(x.stacks)) if (s) io.out(`  ${`[${stack}]`.padEnd(10)} ${stackLine(s)}`);
    }
    io.out('');
  }
  io.out(errors ? `${errors} error(s): fix them and run \`npm run demo\` again.` : 'All example specs are valid.');
  return errors ? EXIT.invalid : EXIT.ok;
}
