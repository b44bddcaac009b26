import { readFileSync } from 'node:fs';
import { StageConfigError } from './errors.ts';
import { check } from './schemas.ts';
import type { MountedConfig, SpecValues, StageKind } from './types.ts';

/**
 * The mounted stage config of a kind, validated against its schema (schemas/stages/<kind>.schema.json). A file
 * that cannot be read or parsed, or that does not conform, is a `StageConfigError` naming the file, and for each
 * problem (at most 5) the field as a JSON pointer and what is wrong with it.
 *
 * `S` types the resolved spec sections the config carries (for example @kiln/spec's `DataSource` as `source`);
 * the schema checks the fields the contract relies on, libs/spec's types say the rest.
 */
export function readStageConfig<K extends StageKind, S extends SpecValues = SpecValues>(kind: K, file: string): MountedConfig<K, S> {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new StageConfigError(`cannot read the stage config ${file}: ${(e as Error).message}`);
  }
  return parseStageConfig<K, S>(kind, value, file);
}

/** `readStageConfig` for a value already in memory; `where` names it in errors. */
export function parseStageConfig<K extends StageKind, S extends SpecValues = SpecValues>(kind: K, value: unknown, where = 'the stage config'): MountedConfig<K, S> {
  const problems = check(kind, value);
  if (problems.length) {
    const shown = problems.slice(0, 5).map((p) => `${p.pointer} ${p.message}`);
    const more = problems.length > shown.length ? `; and ${problems.length - shown.length} more` : '';
    throw new StageConfigError(`${where} is not a valid ${kind} config: ${shown.join('; ')}${more}`);
  }
  return value as MountedConfig<K, S>;
}
