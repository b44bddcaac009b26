/**
 * What every stage worker (data prep, eval) does at its edges, per ARCHITECTURE.md's stage contract: read and
 * write the run's storage as files, and leave its summary in the termination message. Here, not in each
 * service, because the services share no other library.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** HumanEval as this repository ships it (`data/humaneval`, MIT): what a `humaneval` suite without a path means. */
export const BUNDLED_HUMANEVAL = fileURLToPath(new URL('../../../data/humaneval/HumanEval.jsonl.gz', import.meta.url));

/** Exit code of a stage that cannot use its config (libs/k8s TERMINAL_EXIT_CODE): the Job fails at once, no retry. */
export const TERMINAL_EXIT = 2;

/** A config the stage cannot use: no retry fixes it (exit `TERMINAL_EXIT`). */
export class StageConfigError extends Error {}

/** The mounted stage config, with the keys the stage needs; anything else is a `StageConfigError`. */
export function readStageConfig<T extends object>(file: string, required: readonly (keyof T & string)[]): T {
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new StageConfigError(`cannot read the stage config ${file}: ${(e as Error).message}`);
  }
  for (const k of required) if (c[k] === undefined) throw new StageConfigError(`the stage config ${file} has no "${k}"`);
  return c as T;
}

/**
 * A storage URI as a local path: `file://` as it is, `pvc://claim/p` under the claim's mount
 * (`KILN_STORAGE_ROOT`, default `/artifacts`). Another scheme (`s3://`) is a `StageConfigError` naming `who`.
 */
export function storagePath(uri: string, who: string, env: NodeJS.ProcessEnv = process.env): string {
  if (uri.startsWith('file://')) return uri.slice('file://'.length);
  const pvc = /^pvc:\/\/[^/]+\/?(.*)$/.exec(uri);
  if (!pvc) throw new StageConfigError(`storage ${uri.split('/')[0]}// is not written by ${who} yet; use pvc:// or file://`);
  return join(env.KILN_STORAGE_ROOT ?? '/artifacts', pvc[1]!);
}

/** Writes the stage's termination message (`KILN_TERMINATION_LOG`, default the pod's); outside a pod there is none, and that is fine. */
export function writeTerminationMessage(text: string, env: NodeJS.ProcessEnv = process.env): void {
  try {
    writeFileSync(env.KILN_TERMINATION_LOG ?? '/dev/termination-log', text);
  } catch {
    // Not in a pod: the stage's own outputs hold everything.
  }
}
