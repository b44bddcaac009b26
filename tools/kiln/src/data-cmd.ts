/** `kiln data prep`: the data-prep stage on local inputs or a spec's local sources. */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { formatDiagnostics, load } from '@kiln/spec';
import { EXIT, UsageError, type Io } from './io.ts';

export async function runData(values: Record<string, unknown>, pos: string[], io: Io): Promise<number> {
  if (pos[0] !== 'prep' || pos.length !== 1) throw new UsageError(pos.length ? `unknown data command "${pos.join(' ')}"; the command is: kiln data prep` : 'missing subcommand: kiln data prep');
  if (values.config !== undefined) return runAsStage(String(values.config), values, io);
  const output = values.output as string | undefined;
  if (!output) throw new UsageError('--output DIR is required (the cleaned shard and its manifest go there)');
  const inputs = (values.input as string[] | undefined) ?? [];
  const spec = values.spec as string | undefined;
  if (!inputs.length && !spec) throw new UsageError('give --input <files or dirs...> or --spec kiln.yaml');
  if (inputs.length && spec) throw new UsageError('--input and --spec do not go together: the spec names its own sources');
  let shard = 0;
  let partition: { index: number; count: number } | undefined;
  if (values.shard !== undefined) {
    const m = /^(\d+)\/(\d+)$/.exec(String(values.shard));
    if (!m || Number(m[1]) >= Number(m[2]) || Number(m[2]) < 1) throw new UsageError(`--shard takes i/N with 0 ≤ i < N, not "${String(values.shard)}"`);
    shard = Number(m[1]);
    partition = { index: shard, count: Number(m[2]) };
  }
  const { prepare, optionsFromSpec } = await import('@kiln/data-prep');
  let options;
  if (spec) {
    const r = load(spec, values.stack !== undefined ? { stack: String(values.stack) } : {});
    if (!r.spec) {
      io.err(formatDiagnostics(r.diagnostics, { sources: r.sources, color: io.color }));
      return EXIT.invalid;
    }
    const s = optionsFromSpec(r.spec, spec);
    for (const w of s.warnings) io.err(`kiln data prep: warning: ${w}`);
    options = s.options;
  } else {
    options = { inputs: inputs.map((i) => resolve(i)) };
  }
  const t0 = Date.now();
  let manifest;
  try {
    manifest = await prepare({
      ...options,
      output: resolve(output),
      shard,
      ...(partition ? { partition } : {}),
      ...(values['no-pii'] ? { pii: false as const } : {}),
      ...(values['no-near'] ? { near: false as const } : {}),
      onProgress: (t) => io.err(`kiln data prep: ${t.recordsIn} records read, ${t.kept} kept so far, ${((Date.now() - t0) / 1000).toFixed(0)}s`),
    });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES') {
      io.err(`kiln data prep: cannot read ${(e as NodeJS.ErrnoException).path}: ${code === 'ENOENT' ? 'no such file or directory' : 'permission denied'}`);
      return EXIT.invalid;
    }
    throw e;
  }
  if (values.json) {
    io.out(JSON.stringify(manifest, null, 2));
    return EXIT.ok;
  }
  const r = manifest.records;
  const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
  io.out(`shard ${manifest.shard}: ${r.recordsIn} records in (${mb(r.bytesIn)}), ${r.kept} kept (${mb(r.bytesOut)}) in ${manifest.seconds}s`);
  for (const [reason, n] of Object.entries(r.dropped).sort(([, a], [, b]) => b - a)) io.out(`  dropped ${String(n).padStart(7)}  ${reason}`);
  const pii = Object.entries(manifest.pii).filter(([, n]) => n > 0);
  if (pii.length) io.out(`  redacted ${pii.map(([k, n]) => `${n} ${k}`).join(', ')}`);
  io.out(`  languages: ${Object.entries(manifest.languages).slice(0, 8).map(([l, v]) => `${l} ${v.files}`).join(', ') || '-'}`);
  io.out(`  wrote ${manifest.outputs.map((o) => `${resolve(output, o.path)} (${o.records} records, sha256 ${o.sha256.slice(0, 12)}…)`).join(', ')} and its manifest`);
  return EXIT.ok;
}

/** As a pipeline stage: config from the mounted file, shard from JOB_COMPLETION_INDEX, summary to the termination log. */
async function runAsStage(config: string, values: Record<string, unknown>, io: Io): Promise<number> {
  const { runStage, StageConfigError, TERMINAL } = await import('@kiln/data-prep');
  const shard = values.shard !== undefined ? Number(String(values.shard).split('/')[0]) : undefined;
  try {
    const { summary } = await runStage(config, { ...(shard !== undefined ? { shard } : {}), log: (m) => io.err(`kiln data prep: ${m}`) });
    io.out(JSON.stringify(summary));
    return EXIT.ok;
  } catch (e) {
    if (!(e instanceof StageConfigError)) throw e;
    io.err(`kiln data prep: ${e.message}`);
    try {
      writeFileSync(process.env.KILN_TERMINATION_LOG ?? '/dev/termination-log', JSON.stringify({ error: e.message }));
    } catch {
      // Not in a pod.
    }
    return TERMINAL;
  }
}
