/**
 * What a sandbox holds on a shared machine, and how a dead holder's share is taken back: a block of slot uids
 * (root modes) and its base dir. Each names its holder as `pid\nhost\n`; a holder whose pid is gone on this
 * host is dead (SIGKILL, OOM), and its lease is free.
 */
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pidAlive, runningUids } from './procfs.ts';
import { SandboxError } from './types.ts';

/** The first slot uid handed out, and how many uids each sandbox's block holds. */
export const UID_BLOCK_START = 60000;
export const UID_BLOCK = 1000;

/** This process as a lease holder. */
export const ownerText = (): string => `${process.pid}\n${os.hostname()}\n`;

/** Whether the holder named in a lease file is alive. */
export function ownerAlive(text: string): boolean {
  const [pidText, host] = text.trim().split('\n');
  const pid = Number(pidText);
  // Another host (or container) sharing the directory: its pids mean nothing here, so count it as alive.
  return host !== os.hostname() || !Number.isInteger(pid) || pid <= 0 || pidAlive(pid);
}

/**
 * Claims a block of slot uids for this sandbox (root modes): each sandbox on the machine needs its own, since
 * RLIMIT_NPROC counts per uid and leftovers are found and killed by uid. A lock file per block (pid + host)
 * says who holds it; a block whose holder is dead is taken over; a block some process already runs as is skipped.
 * `fixed`: only the block at `start` will do.
 */
export async function claimUids(start: number, count: number, fixed: boolean): Promise<{ base: number; lock: string }> {
  const dir = path.join(os.tmpdir(), 'kiln-uid-locks');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const owner = ownerText();
  for (let base = start; base + count <= 2 ** 31 - 2 && base < start + 200 * UID_BLOCK; base += UID_BLOCK) {
    // Never hand out nobody/nogroup (65534) or the 16-bit -1.
    if (!fixed && base <= 65535 && base + count > 65534) continue;
    const lock = path.join(dir, String(base));
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await writeFile(lock, owner, { flag: 'wx', mode: 0o600 });
      } catch {
        const holder = await readFile(lock, 'utf8').catch(() => '');
        if (holder && ownerAlive(holder)) break;
        await rm(lock, { force: true });
        continue;
      }
      const running = runningUids();
      if (Array.from({ length: count }, (_, i) => base + i).some((u) => running.has(u))) {
        await rm(lock, { force: true });
        break;
      }
      return { base, lock };
    }
    if (fixed) break;
  }
  throw new SandboxError(fixed ? `slot uids ${start}..${start + count - 1} are in use` : 'no free block of slot uids');
}

/** Removes the base dirs (`kiln-sandbox-*` under `root`) of runners that died without close(). */
export async function removeStale(root: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch {
    return;
  }
  for (const e of entries.filter((n) => n.startsWith('kiln-sandbox-'))) {
    const dir = path.join(root, e);
    try {
      if (ownerAlive(await readFile(path.join(dir, '.owner'), 'utf8'))) continue;
      await rm(dir, { recursive: true, force: true });
    } catch {
      /* not ours to judge (no .owner, or not readable) */
    }
  }
}
