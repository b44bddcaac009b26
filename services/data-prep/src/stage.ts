/**
 * data-prep as a pipeline stage (the stage contract of ARCHITECTURE.md): its config comes from the mounted
 * JSON file, its shard from the Indexed Job's completion index, its output goes under the run's storage
 * prefix, and a small summary goes to the termination message for the controller. A config it cannot use
 * is a terminal error (exit 2): no retry fixes it.
 */
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { DataSource, Preprocessing } from '@kiln/spec';
import { readStageConfig as readConfig, StageConfigError, storagePath, writeSummary, type MountedConfig, type SpecValues, type StageSummary } from '@kiln/stage';
import { optionsFrom, storageRootOf } from './from-spec.ts';
import { dedupShards, mapShard, prepare, type PartialShard, type ShardManifest } from './pipeline.ts';

/** The spec sections data-prep's config carries, as libs/spec types them. */
type DataSpec = SpecValues & { readonly source: DataSource; readonly preprocessing: Preprocessing };

const metricsOf = (r: ShardManifest['records'] | PartialShard['records']) => ({
  records_in: r.recordsIn,
  ...Object.fromEntries(Object.entries(r.dropped).map(([k, v]) => [`dropped_${k.replace(/-/g, '_')}`, v])),
});

/** A storage URI as a local path; a scheme data prep cannot reach as files is a config error. */
export const localPath = (uri: string, env: NodeJS.ProcessEnv = process.env): string => storagePath(uri, 'data prep', env);

/** The mounted data-prep config, validated against schemas/stages/data-prep.schema.json. */
export const readStageConfig = (file: string): MountedConfig<'data-prep', DataSpec> => readConfig<'data-prep', DataSpec>('data-prep', file);

/** Runs the stage; returns the manifest and the summary it wrote to the termination log. */
export async function runStage(configFile: string, opts: { shard?: number; env?: NodeJS.ProcessEnv; log?: (m: string) => void } = {}): Promise<{ manifest?: ShardManifest; partial?: PartialShard; summary: StageSummary }> {
  const env = opts.env ?? process.env;
  const c = readStageConfig(configFile);
  const count = c.preprocessing.shards;
  const shard = opts.shard ?? Number(env.JOB_COMPLETION_INDEX ?? 0);
  if (!Number.isInteger(shard) || shard < 0 || shard >= count) throw new StageConfigError(`shard ${shard} is not one of the ${count} shards`);
  const out = localPath(c.output, env);
  const manifests = localPath(c.manifests, env);
  // Feedback sources live under the run's storage root, the prefix the plan puts the run's outputs under.
  const root = storageRootOf(c.output);
  let prep;
  try {
    prep = optionsFrom(c.sources, c.preprocessing, c.decontaminate ?? [], process.cwd(), root !== undefined ? { storageRoot: localPath(root, env) } : {});
  } catch (e) {
    throw new StageConfigError(`the stage config's preprocessing is incomplete (${(e as Error).message}); it comes from the compiled plan, so recompile it with this kiln`);
  }
  for (const w of prep.warnings) opts.log?.(`warning: ${w}`);
  // A local source that is not there is the spec's (or the machine's) to fix: no retry makes it appear.
  for (const s of c.sources) {
    if (s.type === 'local' && !existsSync(resolve(process.cwd(), s.path))) {
      throw new StageConfigError(`data source "${s.name}": ${s.path} does not exist (resolved against ${process.cwd()}); fix the source's path in the spec, or make it readable where the stage pods run`);
    }
  }
  if (c.phase === 'map') {
    const partial = await mapShard({ ...prep.options, output: out, shard, partition: { index: shard, count }, ...(opts.log ? { onProgress: (t) => opts.log!(`${t.recordsIn} records read`) } : {}) });
    const summary: StageSummary = { shard, phase: 'map', metrics: { ...metricsOf(partial.records), candidates: partial.candidates, redacted: Object.values(partial.pii).reduce((a, b) => a + b, 0) }, ...(prep.warnings.length ? { warnings: prep.warnings.slice(0, 5) } : {}) };
    writeSummary(summary, env);
    return { partial, summary };
  }
  const manifest = await prepare({ ...prep.options, output: out, shard, partition: { index: shard, count }, ...(opts.log ? { onProgress: (t) => opts.log!(`${t.recordsIn} records read, ${t.kept} kept`) } : {}) });
  mkdirSync(manifests, { recursive: true });
  const name = `shard-${String(shard).padStart(5, '0')}.manifest.json`;
  copyFileSync(join(out, name), join(manifests, name));
  const report = name.replace('.manifest.json', '.report.html');
  copyFileSync(join(out, report), join(manifests, report));
  const r = manifest.records;
  const summary: StageSummary = {
    shard,
    metrics: { ...metricsOf(r), records_out: r.kept, bytes_in: r.bytesIn, bytes_out: r.bytesOut, redacted: Object.values(manifest.pii).reduce((a, b) => a + b, 0) },
    artifacts: manifest.outputs.map((o) => ({ name: `shard-${shard}`, uri: `${c.output.replace(/\/+$/, '')}/${o.path}`, digest: `sha256:${o.sha256}`, bytes: o.bytes })),
    ...(prep.warnings.length ? { warnings: prep.warnings.slice(0, 5) } : {}),
  };
  writeSummary(summary, env);
  return { manifest, summary };
}


/**
 * The dedup stage: the reduce step over every shard the data-prep stage mapped, then the apply step per
 * shard; the manifests and reports go to the run's manifests location.
 */
export async function runDedupStage(configFile: string, opts: { env?: NodeJS.ProcessEnv; log?: (m: string) => void } = {}): Promise<{ manifests: ShardManifest[]; summary: StageSummary }> {
  const env = opts.env ?? process.env;
  const c = readConfig('dedup', configFile);
  const dir = localPath(c.input, env);
  const manifestsDir = localPath(c.manifests, env);
  let result;
  try {
    result = await dedupShards(dir, { expect: c.shards, onShard: (m) => opts.log?.(`shard ${m.shard}: ${m.records.kept} of ${m.records.recordsIn} kept`) });
  } catch (e) {
    // Missing or mismatched map output will not appear by retrying: the data-prep stage must run again.
    throw new StageConfigError((e as Error).message);
  }
  mkdirSync(manifestsDir, { recursive: true });
  for (const m of result.manifests) {
    for (const suffix of ['manifest.json', 'report.html']) {
      const name = `shard-${String(m.shard).padStart(5, '0')}.${suffix}`;
      copyFileSync(join(dir, name), join(manifestsDir, name));
    }
  }
  copyFileSync(join(dir, 'near-dedup.json'), join(manifestsDir, 'near-dedup.json'));
  const sum = (f: (m: ShardManifest) => number) => result.manifests.reduce((a, m) => a + f(m), 0);
  const summary: StageSummary = {
    metrics: { shards: result.dedup.shards, records_in: sum((m) => m.records.recordsIn), records_out: sum((m) => m.records.kept), bytes_out: sum((m) => m.records.bytesOut), near_duplicates: result.dedup.duplicates, clusters: result.dedup.clusters },
    artifacts: result.manifests.length <= 16 ? result.manifests.flatMap((m) => m.outputs.map((o) => ({ name: `shard-${m.shard}`, uri: `${c.input.replace(/\/+$/, '')}/${o.path}`, digest: `sha256:${o.sha256}`, bytes: o.bytes }))) : [{ name: 'shards', uri: c.input }],
  };
  writeSummary(summary, env);
  return { manifests: result.manifests, summary };
}
