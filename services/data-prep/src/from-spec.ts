/**
 * Data-prep options from a spec's `data` section: local sources (raw, JSON Lines, Parquet), feedback sources
 * (the gateway's log under the run's storage), filters, dedup, PII, decontamination.
 */
import { existsSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { DataSource, Preprocessing, Spec } from '@kiln/spec';
import { BUNDLED_HUMANEVAL, storagePath, type DecontaminateSuite } from '@kiln/stage';
import type { Input } from './input.ts';
import { loadHumanEval, type BenchmarkText } from './decontaminate.ts';
import { filtersFromSpec } from './filters.ts';
import { listParquetFiles } from './parquet.ts';
import type { PiiKind } from './pii.ts';
import type { PrepOptions } from './pipeline.ts';

export interface SpecPrep {
  readonly options: Omit<PrepOptions, 'output'>;
  /** What the spec asks for that this run cannot do, said plainly. */
  readonly warnings: string[];
}

const isDirectory = (p: string) => statSync(p, { throwIfNoEntry: false })?.isDirectory() === true;

/** Where a spec's feedback sources are read: its storage as a local path (`file://`, or `pvc://` under `KILN_STORAGE_ROOT`). */
export function optionsFromSpec(spec: Spec, specFile: string, env: NodeJS.ProcessEnv = process.env): SpecPrep {
  let storageRoot: string | undefined;
  try {
    storageRoot = storagePath(spec.infra.storage.uri, 'data prep', env);
  } catch {
    storageRoot = undefined;
  }
  return optionsFrom(spec.data.sources, spec.data.preprocessing, spec.eval.suites, dirname(resolve(specFile)), storageRoot !== undefined ? { storageRoot } : {});
}

/**
 * The storage root (`infra.storage.uri`) of a run, from where its data-prep output goes
 * (`<root>/<pipeline>/runs/<run id>/data/shards/`, libs/plan); undefined when the output is not of that form.
 */
export function storageRootOf(output: string): string | undefined {
  const m = /^(.+?)\/[^/]+\/runs\/r-[0-9a-f]{12}\/data\/shards\/?$/.exec(output);
  return m?.[1];
}

export interface SourceOptions {
  /** The run's storage root as a local path: feedback sources are read from `<root>/feedback/<target>/`. */
  readonly storageRoot?: string;
  /** The time feedback's `since` counts back from. Default: now. */
  readonly now?: Date;
}

/** The same from the parts a stage config carries; relative paths resolve against `base`. */
export function optionsFrom(sources: readonly DataSource[], pre: Preprocessing, suites: readonly DecontaminateSuite[], base: string, opts: SourceOptions = {}): SpecPrep {
  const warnings: string[] = [];
  const inputs: Input[] = [];
  for (const s of sources) {
    if (s.type === 'feedback') {
      if (opts.storageRoot === undefined) {
        warnings.push(`feedback source "${s.name}" is not read: the run's storage root is not known or not reachable as files here (feedback is read from <storage>/feedback/<target>/ on pvc:// or file:// storage)`);
        continue;
      }
      const dir = join(opts.storageRoot, 'feedback', s.target);
      if (!isDirectory(dir)) warnings.push(`feedback source "${s.name}": no feedback from serving target "${s.target}" yet (${dir} does not exist)`);
      inputs.push({ kind: 'feedback', source: s.name, target: s.target, dir, since: s.since, minAcceptance: s.min_acceptance, ...(opts.now ? { now: opts.now } : {}) });
      continue;
    }
    if (s.type === 'local') {
      const path = isAbsolute(s.path) ? s.path : resolve(base, s.path);
      // A directory is read as raw files unless the source says Parquet: then its `.parquet` files are the
      // inputs. A Parquet file is known by its name or its magic bytes (`readInput`), whatever the format says.
      if (s.format === 'parquet' && isDirectory(path)) {
        const files = listParquetFiles(path);
        if (files.length) inputs.push(...files);
        else warnings.push(`source "${s.name}" (format: parquet) has no .parquet files under ${path}`);
      } else inputs.push(path);
    } else warnings.push(`source "${s.name}" (${s.type}) is not read by local data prep yet; only local and feedback sources are`);
  }
  const kinds: PiiKind[] = [];
  if (pre.pii.emails) kinds.push('email');
  if (pre.pii.ip_addresses) kinds.push('ipv4', 'ipv6');
  if (pre.pii.keys) kinds.push('aws-key', 'github-token', 'slack-token', 'stripe-key', 'jwt', 'private-key', 'secret');
  const rep = pre.pii.replacements;
  const benchmarks: BenchmarkText[] = [];
  if (pre.decontamination.enabled) {
    for (const name of pre.decontamination.suites) {
      const suite = suites.find((x) => x.name === name);
      // HumanEval ships with kiln (data/humaneval); a suite without a path is decontaminated against that copy.
      const path = suite?.path ? (isAbsolute(suite.path) ? suite.path : resolve(base, suite.path)) : suite?.benchmark === 'humaneval' ? BUNDLED_HUMANEVAL : undefined;
      if (suite?.benchmark === 'humaneval' && path && existsSync(path)) benchmarks.push(...loadHumanEval(path));
      else warnings.push(`eval suite "${name}" is not decontaminated against: ${path ? `${path} is not a HumanEval-format file here` : 'it has no local path (eval.suites[].path)'}`);
    }
  }
  const near = pre.dedup.near;
  return {
    options: {
      inputs,
      filters: filtersFromSpec(pre),
      exact: pre.dedup.exact,
      parseLanguages: pre.parse_filter.languages,
      pii: pre.pii.enabled ? { kinds, replacements: { email: rep.email, ipv4: rep.ip_address, ipv6: rep.ip_address, ...Object.fromEntries(kinds.filter((k) => !['email', 'ipv4', 'ipv6'].includes(k)).map((k) => [k, rep.key])) } } : false,
      near: near.enabled ? { numPerm: near.num_perm, ngram: near.ngram, threshold: near.threshold, ...(near.bands && near.rows ? { bands: near.bands, rows: near.rows } : {}) } : false,
      ...(benchmarks.length ? { benchmarks, decontamination: { ngram: pre.decontamination.ngram } } : {}),
    },
    warnings,
  };
}
