/**
 * What this machine allows the sandbox: the tools each isolation mode needs, the modes to try (strongest
 * first), what a mode leaves uncontained, and which host directories a slot's namespace covers. The last word
 * is a real run in the mode (`Sandbox.create`), since a kernel or a seccomp profile may still refuse it.
 */
import { accessSync, constants as fsc, existsSync, lstatSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Cover } from './mounts.ts';
import type { IsolationMode } from './types.ts';

/** The tools the modes run programs through; each is absent when not found. */
export interface Tools {
  readonly sh?: string;
  readonly unshare?: string;
  readonly setpriv?: string;
  readonly prlimit?: string;
  readonly mount?: string;
}

/** Searched after PATH, so a PATH without the sbin dirs (a non-root shell) still finds util-linux. */
export const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** Modes in their own namespaces: network, PID, mount, IPC and UTS. */
export const isNamespaced = (mode: IsolationMode): boolean => mode === 'full' || mode === 'userns';

/** Modes in which each slot runs as a uid of its own. */
export const hasSlotUids = (mode: IsolationMode): boolean => mode === 'full' || mode === 'uid';

function isExecutable(p: string): boolean {
  try {
    accessSync(p, fsc.X_OK);
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** An executable on `searchPath` (or the system dirs), or undefined. */
export function findExecutable(name: string, searchPath: string = process.env.PATH ?? ''): string | undefined {
  if (name.includes('/')) return isExecutable(name) ? name : undefined;
  for (const dir of searchPath.split(':')) {
    if (!dir) continue;
    const p = path.join(dir, name);
    if (isExecutable(p)) return p;
  }
  return undefined;
}

/** The tools on PATH or in the system dirs. */
export function findTools(): Tools {
  const search = [...(process.env.PATH ?? '').split(':'), ...SYSTEM_DIRS].join(':');
  return {
    sh: findExecutable('/bin/sh') ?? findExecutable('sh', search),
    unshare: findExecutable('unshare', search),
    setpriv: findExecutable('setpriv', search),
    prlimit: findExecutable('prlimit', search),
    mount: findExecutable('mount', search),
  };
}

/** The modes to try, strongest first: the forced one alone, else those the runner's uid can have. */
export function candidateModes(forced: IsolationMode | undefined, isRoot: boolean): IsolationMode[] {
  return forced ? [forced] : isRoot ? ['full', 'uid', 'none'] : ['userns', 'none'];
}

/** Why `mode` cannot work here before trying it (a tool missing, not root, no /dev/shm), or undefined. */
export function missingTools(mode: IsolationMode, t: Tools, isRoot: boolean, devShm: boolean = existsSync('/dev/shm')): string | undefined {
  const need: (keyof Tools)[] = isNamespaced(mode) ? ['sh', 'unshare', 'setpriv', 'prlimit', 'mount'] : mode === 'uid' ? ['setpriv', 'prlimit'] : [];
  const missing = need.filter((k) => !t[k]);
  if (missing.length) return `${missing.join(', ')} not found`;
  if (hasSlotUids(mode) && !isRoot) return 'needs root';
  if (isNamespaced(mode) && !devShm) return 'no /dev/shm';
  return undefined;
}

/** What a mode leaves uncontained, for `describe().warnings`. */
export function modeWarnings(mode: IsolationMode, isRoot: boolean, tools: Tools): string[] {
  const w: string[] = [];
  if (!isNamespaced(mode)) w.push('no network namespace: samples can reach the network', 'no private /tmp: samples share /tmp with the runner');
  if (!hasSlotUids(mode)) w.push('samples run as the runner\'s uid');
  if (mode === 'none') {
    w.push('no PID namespace: a sample can signal the runner (kill -9 -1)');
    if (isRoot) w.push('running as root without namespaces: RLIMIT_NPROC does not bind root');
    if (!tools.prlimit) w.push('prlimit not found: no rlimits (CPU, memory, file size, processes) are applied');
  }
  w.push('no cgroup limits: memory is capped per process (RLIMIT_AS), processes × memory at worst');
  return w;
}

/**
 * The covers of a namespace mode: a private tmpfs over each world-writable dir (/tmp, /var/tmp…; /dev/shm has
 * its own in the fstab), an empty one over secrets and the `hide` dirs. `hidden` lists the latter.
 */
export function hostCovers(tmpBytes: number, hide: readonly string[]): { covers: Cover[]; hidden: string[] } {
  const covers: Cover[] = [];
  const hidden: string[] = [];
  for (const d of ['/tmp', '/var/tmp', '/dev/shm', '/run/lock', '/var/lock', '/dev/mqueue']) {
    try {
      const st = lstatSync(d);
      if (st.isDirectory() && st.mode & 0o002 && d !== '/dev/shm') covers.push({ path: d, mode: '1777', size: tmpBytes });
    } catch {
      /* absent */
    }
  }
  for (const d of ['/run/secrets', '/var/run/secrets', ...hide]) {
    let real: string;
    try {
      real = path.resolve(d);
      if (!lstatSync(real).isDirectory()) continue;
    } catch {
      continue;
    }
    covers.push({ path: real, mode: '0755', size: 1024 * 1024 });
    hidden.push(real);
  }
  return { covers, hidden };
}

/** The highest strict ancestor of `p` that "others" cannot enter (undefined: `p` is reachable by anyone). */
export function closedAncestor(p: string): string | undefined {
  const parts = p.split('/').filter(Boolean);
  let cur = '';
  for (let i = 0; i < parts.length - 1; i++) {
    cur += `/${parts[i]}`;
    try {
      if ((statSync(cur).mode & 0o001) === 0) return cur;
    } catch {
      return undefined;
    }
  }
  return undefined;
}
