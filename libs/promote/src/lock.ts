/** One promotion or rollback per stack at a time on this machine: a lock file in the git dir, made with O_EXCL. */
import { openSync, closeSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { gitCommonDir } from './git.ts';

export interface LockOptions {
  /** Called once when the lock is held by another process (or call) and this one waits. */
  readonly onWait?: (holder: string) => void;
  /** Poll interval; default 200 ms. */
  readonly pollMs?: number;
  /** Longest wait; default 10 minutes. */
  readonly timeoutMs?: number;
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `fn` holding the stack's lock; waits (polling) while another holds it; a dead process's lock is taken over. */
export async function withStackLock<T>(repo: string, stack: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const file = join(await gitCommonDir(repo), `kiln-promote-${stack}.lock`);
  const deadline = Date.now() + (opts.timeoutMs ?? 600_000);
  let told = false;
  for (;;) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let holder = '';
    try {
      holder = readFileSync(file, 'utf8').trim();
    } catch {
      continue; // released between our open and read
    }
    const pid = Number(holder);
    if (holder && Number.isInteger(pid) && !alive(pid)) {
      try {
        if (readFileSync(file, 'utf8').trim() === holder) unlinkSync(file);
      } catch {
        /* someone else took it over first */
      }
      continue;
    }
    if (Date.now() > deadline) throw new Error(`stack ${stack} is still locked by process ${holder} after ${Math.round((opts.timeoutMs ?? 600_000) / 1000)} s (${file}); if no kiln promote runs, remove that file`);
    if (!told) {
      told = true;
      opts.onWait?.(holder);
    }
    await sleep(opts.pollMs ?? 200);
  }
  try {
    return await fn();
  } finally {
    try {
      unlinkSync(file);
    } catch {
      /* already gone */
    }
  }
}
