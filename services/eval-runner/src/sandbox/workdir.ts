/**
 * A run's work directory: made fresh with the request's files (owned by the slot's uid in the root modes),
 * and removed afterwards whatever the program did to it.
 */
import { chmod, chown, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** How the work dir is made. */
export interface WorkDirOptions {
  /** Root modes: the slot's uid and gid own the dir and the files in it. */
  readonly owner?: { readonly uid: number; readonly gid: number };
  /** Modes without a private /tmp: the program's TMPDIR, `.tmp` inside the work dir. */
  readonly tmpDir: boolean;
}

/** Makes `work` afresh with `files` (relative paths, already checked) in it. */
export async function makeWorkDir(work: string, files: Readonly<Record<string, string>>, o: WorkDirOptions): Promise<void> {
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { mode: 0o700 });
  const dirs = new Set<string>();
  for (const [name, content] of Object.entries(files)) {
    const p = path.join(work, name);
    let d = path.dirname(p);
    while (d !== work && !dirs.has(d)) {
      dirs.add(d);
      d = path.dirname(d);
    }
    await mkdir(path.dirname(p), { recursive: true });
    await writeFile(p, content);
  }
  if (o.tmpDir) await mkdir(path.join(work, '.tmp'));
  if (o.owner) {
    const { uid, gid } = o.owner;
    await chown(work, uid, gid);
    for (const d of dirs) await chown(d, uid, gid);
    for (const name of Object.keys(files)) await chown(path.join(work, name), uid, gid);
    if (o.tmpDir) await chown(path.join(work, '.tmp'), uid, gid);
  }
}

/** Removes a directory tree, also one a program made hard to remove. */
export async function removeTree(dir: string): Promise<void> {
  try {
    await rm(dir, { recursive: true, force: true, maxRetries: 2 });
  } catch {
    // Same-uid modes: the program may have made directories we cannot enter; open them up and retry.
    const open = async (d: string): Promise<void> => {
      await chmod(d, 0o700).catch(() => undefined);
      for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) if (e.isDirectory()) await open(path.join(d, e.name));
    };
    await open(dir);
    await rm(dir, { recursive: true, force: true, maxRetries: 2 }).catch(() => undefined);
  }
}
