/** `kiln demo`: every example spec validated and summarised, then the local stack provisioned and run for real on the local cluster. */
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatDiagnostics, load, validateFile } from '@kiln/spec';
import { common, type Command } from '../command.ts';
import { EXIT, type Io } from '../io.ts';
import { formatOption } from '../args.ts';
import { fileLine, report } from '../render/report.ts';
import { stackLine, summarise } from '../render/summary.ts';
import { bold as boldIf } from '../render/table.ts';

export const command: Command = {
  usage: 'kiln demo [--validate-only] [--format text|json] [--dir DIR]',
  help: `Validates every spec in the repository's configs/ directory, with each stack overlay, and prints
what each one would build: model size, tokens, GPUs, objective, eval gates and serving targets. Then
brings the local cluster up (building the toolchain on first use), runs \`pulumi up\` of the local stack
of configs/tiny.yaml against it, and runs that stack's pipeline for real on the cluster's local node: data
prep over this repository and the Python standard library, dedup, tokenizer, pack, training on the CPU,
export, HumanEval against the served model. Then it sends a completion through the gateway and prints
\`kiln status\` of the run (measured metrics, gate verdicts) and each stage's wall time. Exit 0 when all of
it worked, 1 when a step failed (the message says which and where its logs are), 2 on a usage error.

Options:
  --validate-only   stop after the specs
  --format FORMAT   text (default) or json (the specs only)
  --dir DIR         directory holding .kiln/ (default: current directory)`,
  options: { ...common, format: { type: 'string', default: 'text' }, 'validate-only': { type: 'boolean' }, dir: { type: 'string' } },
  allowPositionals: false,
  run: runDemo,
};

/** The repository's example specs. */
export const CONFIGS_DIR = fileURLToPath(new URL('../../../../configs/', import.meta.url));

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
  return (await import('./demo/provision.ts')).provisionDemo(values, io);
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
  const bold = (s: string) => boldIf(s, io.color);
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
