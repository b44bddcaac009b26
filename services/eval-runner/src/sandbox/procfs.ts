/**
 * What /proc says about the processes on this machine: which carry a slot's identity (its uid in the root
 * modes, its environment tag otherwise), how many tasks the runner's uid runs, and the mount table.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';

/** A slot's identity: a uid of its own (root modes) or a tag in its processes' environment (the others). */
export type Identity = { readonly uid: number } | { readonly tag: string };

/** The environment variable that carries a slot's tag. */
export const TAG_VARIABLE = 'KILN_SANDBOX_TAG';

/** Pids in /proc, this process left out. */
export function procPids(): string[] {
  try {
    return readdirSync('/proc').filter((e) => /^\d+$/.test(e) && Number(e) !== process.pid);
  } catch {
    return [];
  }
}

/** Real uid of a live process (undefined when it is gone or a zombie: dead, only not reaped yet). */
export function procUid(pid: string): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    if (/^State:\s+[ZX]/m.test(status)) return undefined;
    const m = /^Uid:\s+(\d+)/m.exec(status);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

function procHasTag(pid: string, tag: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`).includes(`${TAG_VARIABLE}=${tag}`);
  } catch {
    return false;
  }
}

/** Pids of the live processes that carry `identity`. */
export function pidsOf(identity: Identity): number[] {
  const pids: number[] = [];
  for (const pid of procPids()) {
    if ('uid' in identity ? procUid(pid) === identity.uid : procHasTag(pid, identity.tag)) pids.push(Number(pid));
  }
  return pids;
}

/** The uids some live process runs as. */
export function runningUids(): Set<number | undefined> {
  return new Set(procPids().map(procUid));
}

/** Processes (and threads) the current uid runs, plus one: RLIMIT_NPROC counts them all in `none` mode. */
export function tasksOfMyUid(): number {
  const uid = process.getuid?.() ?? -1;
  let n = 0;
  for (const pid of procPids()) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      if (Number(/^Uid:\s+(\d+)/m.exec(status)?.[1]) !== uid) continue;
      n += Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? 1);
    } catch {
      /* gone */
    }
  }
  return n + 1;
}

/** This process's mount table (`/proc/self/mountinfo`), or undefined when /proc cannot be read. */
export function readMountinfo(): string | undefined {
  try {
    return readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return undefined;
  }
}

/** Whether a process of this pid lives here. */
export function pidAlive(pid: number): boolean {
  return existsSync(`/proc/${pid}`);
}
