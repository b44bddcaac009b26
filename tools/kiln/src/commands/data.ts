/**
 * `kiln data prep`: the data-prep stage on local inputs or a spec's local sources; `kiln data dedup`: near
 * dedup across the shards that `kiln data prep --shard i/N` mapped.
 */
import { resolve } from 'node:path';
import { formatDiagnostics, load } from '@kiln/spec';
import { suggestion } from '../args.ts';
import { common, type Command } from '../command.ts';
import { EXIT, UsageError, type Io } from '../io.ts';
import { formatManifest } from '../render/data.ts';

export const command: Command = {
  usage: 'kiln data prep (--input <files or dirs...> | --spec kiln.yaml [--stack S] [--shard i/N]) --output DIR [--json] | --config stage.json\n       kiln data dedup --output DIR [--shards N] [--json] | --config stage.json',
  help: `Reads JSON Lines (plain, .gz, .zst; fields content or text, path, language, repository) and
directories of raw files, and writes one cleaned shard (shard-NNNNN.jsonl.zst) and its manifest
(shard-NNNNN.manifest.json) to --output. Every record read is kept or dropped under one reason (bad JSON,
invalid UTF-8, binary, oversized, line filters, auto-generated, vendored, lock files, exact and near
duplicates, decontamination); the manifest counts them, with bytes in and out, redacted PII and secrets
per kind, languages, and the shard's sha256.

Options:
  --input PATH       a JSON Lines file or a directory (repeat for more)
  --spec FILE        read the spec's local sources and its preprocessing settings instead
  --stack NAME       with --spec: apply this stack's overlay
  --shard i/N        take shard i of N (by a hash of each record's path). With near dedup on, this maps
                   the shard only (candidates and MinHash band keys); near duplicates span shards, so
                   once all N are mapped, \`kiln data dedup --output DIR\` clusters them and writes
                   the cleaned shards and manifests
  --output DIR       where the shard and its manifest go (required)
  --no-pii           do not redact PII and secrets
  --no-near          skip near-duplicate detection
  --json             print the manifest as JSON
  --config FILE      run as the pipeline's data-prep stage: config from FILE (/etc/kiln/stage.json), shard
                   from JOB_COMPLETION_INDEX, output under the run's storage, summary to the termination log

kiln data dedup --output DIR [--shards N] [--json]: the reduce step over every shard mapped in DIR (with
--shards N, refuses to start unless shards 0..N-1 are all there), then each shard's cleaned file, manifest
and report. With --config FILE it is the pipeline's dedup stage.

Exit codes: 0 ok, 1 an input cannot be read, the spec is invalid or shards are missing, 2 usage or stage config error.`,
  options: { ...common, config: { type: 'string' }, shards: { type: 'string' }, input: { type: 'string', multiple: true }, spec: { type: 'string' }, stack: { type: 'string' }, shard: { type: 'string' }, output: { type: 'string' }, 'no-pii': { type: 'boolean' }, 'no-near': { type: 'boolean' }, json: { type: 'boolean' } },
  allowPositionals: true,
  run: runData,
};
const SUBCOMMANDS = ['prep', 'dedup'];

export async function runData(values: Record<string, unknown>, pos: string[], io: Io): Promise<number> {
  if (!SUBCOMMANDS.includes(pos[0] ?? '') || pos.length !== 1) throw new UsageError(pos.length ? `unknown data command "${pos.join(' ')}"; the commands are: kiln data prep, kiln data dedup${suggestion(pos[0]!, SUBCOMMANDS)}` : 'missing subcommand: kiln data prep or kiln data dedup');
  if (pos[0] === 'dedup') return runDedup(values, io);
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
  const { prepare, mapShard, optionsFromSpec } = await import('@kiln/data-prep');
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
  // Sharded with near dedup: this shard is mapped now; the reduce across shards comes after the last one.
  const mapOnly = partition !== undefined && partition.count > 1 && !values['no-near'];
  let manifest;
  try {
    if (mapOnly) {
      const partial = await mapShard({
        ...options,
        output: resolve(output),
        shard,
        partition: partition!,
        ...(values['no-pii'] ? { pii: false as const } : {}),
        onProgress: (t) => io.err(`kiln data prep: ${t.recordsIn} records read, ${((Date.now() - t0) / 1000).toFixed(0)}s`),
      });
      if (values.json) io.out(JSON.stringify(partial, null, 2));
      else {
        const r = partial.records;
        io.out(`shard ${shard} of ${partition!.count} mapped: ${r.recordsIn} records in, ${partial.candidates} candidates, ${r.recordsIn - partial.candidates} dropped, in ${partial.seconds}s`);
        io.out(`  near dedup spans shards: once all ${partition!.count} are mapped, run: kiln data dedup --output ${output}`);
      }
      return EXIT.ok;
    }
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
  io.out(formatManifest(manifest, output));
  return EXIT.ok;
}

/** `kiln data dedup`: the reduce step over every mapped shard in --output, then the apply step per shard. */
async function runDedup(values: Record<string, unknown>, io: Io): Promise<number> {
  const { dedupShards, dedupStage } = await import('@kiln/data-prep');
  if (values.config !== undefined) return dedupStage(String(values.config), { io, command: 'kiln data dedup' });
  const output = values.output as string | undefined;
  if (!output) throw new UsageError('--output DIR is required: the directory kiln data prep --shard i/N wrote to');
  let expect: number | undefined;
  if (values.shards !== undefined) {
    expect = Number(values.shards);
    if (!Number.isInteger(expect) || expect < 1) throw new UsageError(`--shards takes the number of shards N, not "${String(values.shards)}"`);
  }
  let r: Awaited<ReturnType<typeof dedupShards>>;
  try {
    r = await dedupShards(resolve(output), { ...(expect !== undefined ? { expect } : {}), onShard: (m) => io.err(`kiln data dedup: shard ${m.shard}: ${m.records.kept} of ${m.records.recordsIn} kept`) });
  } catch (e) {
    io.err(`kiln data dedup: ${(e as Error).message}`);
    return EXIT.invalid;
  }
  if (values.json) {
    io.out(JSON.stringify({ dedup: r.dedup, manifests: r.manifests }, null, 2));
    return EXIT.ok;
  }
  const sum = (f: (m: (typeof r.manifests)[number]) => number) => r.manifests.reduce((a, m) => a + f(m), 0);
  io.out(`${r.dedup.shards} shards: ${r.dedup.records} signed records, ${r.dedup.clusters} clusters of near duplicates, ${r.dedup.duplicates} dropped (${r.dedup.seconds}s)`);
  io.out(`  kept ${sum((m) => m.records.kept)} of ${sum((m) => m.records.recordsIn)} records; manifests and reports in ${output}`);
  const dropped = new Map<string, number>();
  for (const m of r.manifests) for (const [k, v] of Object.entries(m.records.dropped)) dropped.set(k, (dropped.get(k) ?? 0) + v);
  for (const [reason, n] of [...dropped].sort(([, a], [, b]) => b - a)) io.out(`  dropped ${String(n).padStart(7)}  ${reason}`);
  return EXIT.ok;
}

/** As a pipeline stage, through the service's own stage entry (the one `kiln-data-prep` runs). */
async function runAsStage(config: string, values: Record<string, unknown>, io: Io): Promise<number> {
  const { prepStage, stageShard } = await import('@kiln/data-prep');
  return prepStage(config, { shard: stageShard(values.shard), io, command: 'kiln data prep' });
}
