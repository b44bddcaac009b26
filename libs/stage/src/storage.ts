import { join } from 'node:path';
import { StageConfigError } from './errors.ts';

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
