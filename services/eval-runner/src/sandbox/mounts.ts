/**
 * The mount layout of the namespace modes (`full`, `userns`) as pure functions of the sandbox's state: the
 * fstab each slot's namespace init mounts (`mount -a -T`), the init's setup script, and which host mounts are
 * remounted read-only. No I/O here; the sandbox writes what these return (docs/sandbox.md).
 */
import { join } from 'node:path';

/** A directory hidden under an empty tmpfs inside the namespace. */
export interface Cover {
  readonly path: string;
  /** The tmpfs's mode: `1777` for a private world-writable dir (/tmp), `0755` for a hidden one. */
  readonly mode: string;
  readonly size: number;
}

/** What one slot's fstab is made from. */
export interface FstabInput {
  readonly slotDir: string;
  readonly cacheDir: string;
  /** Size of the private /dev/shm. */
  readonly tmpBytes: number;
  /** Host directories bound back read-only (toolchains under a cover). */
  readonly exposed: readonly string[];
  readonly covers: readonly Cover[];
  /** Seeded caches: `{cache}/<name>` overlays a host directory (writable steps only). */
  readonly seeds: readonly (readonly [name: string, hostDir: string])[];
  /** The step may write the slot's cache (compile steps); otherwise the cache is bound read-only. */
  readonly writableCache: boolean;
}

/** Where covered paths are staged before the covers go on (a path inside the private /dev/shm). */
export const STAGE = '/dev/shm/.kiln';

/** What the setup script prints when a mount fails (exit 125), so the runner can tell its own failure from the program's. */
export const SETUP_FAILED = 'kiln-sandbox: setup failed';

const PSEUDO_FS = new Set(['proc', 'sysfs', 'devtmpfs', 'devpts', 'mqueue', 'cgroup', 'cgroup2', 'securityfs', 'debugfs', 'tracefs', 'pstore', 'bpf', 'configfs', 'fusectl', 'hugetlbfs', 'binfmt_misc', 'autofs', 'efivarfs', 'nsfs', 'rpc_pipefs', 'selinuxfs']);

/** fstab field escaping (space, tab, newline, backslash as octal). */
export function fstabEscape(p: string): string {
  return p.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

/** `s` as one single-quoted shell word. */
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Whether `p` is `dir` or inside it (by path, no symlinks resolved). */
export function isUnder(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir.endsWith('/') ? dir : `${dir}/`);
}

/** One slot's fstab: a private /dev/shm, the covers (with what they would hide staged and bound back), the cache. */
export function fstab(i: FstabInput): string {
  const esc = fstabEscape;
  const L: string[] = [];
  L.push(`kiln-shm /dev/shm tmpfs size=${i.tmpBytes},nosuid,nodev,mode=1777 0 0`);
  // Stage everything that a cover will hide, then cover, then bind back.
  L.push(`${esc(i.slotDir)} ${STAGE}/slot none bind,X-mount.mkdir=0700 0 0`);
  // nofail: an exposed directory removed since (a deleted checkout) must not break every later run.
  i.exposed.forEach((p, n) => L.push(`${esc(p)} ${STAGE}/e${n} none bind,nofail,X-mount.mkdir=0700 0 0`));
  const seeds = i.writableCache ? i.seeds : [];
  seeds.forEach(([, lower], n) => L.push(`${esc(lower)} ${STAGE}/s${n} none bind,X-mount.mkdir=0700 0 0`));
  const covers = [...i.covers].sort((a, b) => a.path.length - b.path.length);
  const placed: string[] = [];
  for (const c of covers) {
    // A cover inside another is already hidden by it.
    if (placed.some((p) => isUnder(c.path, p))) continue;
    placed.push(c.path);
    L.push(`kiln-cover ${esc(c.path)} tmpfs size=${c.size},mode=${c.mode},nosuid,nodev,X-mount.mkdir 0 0`);
  }
  L.push(`${STAGE}/slot ${esc(i.slotDir)} none bind,X-mount.mkdir=0755 0 0`);
  i.exposed.forEach((p, n) => L.push(`${STAGE}/e${n} ${esc(p)} none bind,ro,nosuid,nodev,nofail,X-mount.mkdir=0755 0 0`));
  if (i.writableCache) {
    seeds.forEach(([name], n) => {
      const ovl = join(i.slotDir, '.ovl', name);
      L.push(`kiln-cache ${esc(join(i.cacheDir, name))} overlay lowerdir=${STAGE}/s${n},upperdir=${ovl}/upper,workdir=${ovl}/work,nosuid,nodev 0 0`);
    });
  } else {
    L.push(`${STAGE}/slot/cache ${esc(i.cacheDir)} none bind,ro,nosuid,nodev 0 0`);
  }
  return `${L.join('\n')}\n`;
}

/**
 * The script the namespace's init runs (root inside the namespaces) as `sh -c <script> kiln-sandbox <fstab>
 * <work dir> <argv…>`: the mounts, the read-only remounts, then the program as its child.
 */
export function setupScript(mount: string, readOnly: readonly string[], covers: readonly string[]): string {
  const fail = `{ echo '${SETUP_FAILED}' >&2; exit 125; }`;
  const lines = [`${shQuote(mount)} -a -T "$1" || ${fail}`];
  for (const mp of readOnly) {
    // Under a cover (or the private /dev/shm) there is nothing of the host's left to protect.
    if (covers.some((c) => isUnder(mp, c)) || isUnder(mp, '/dev/shm')) continue;
    lines.push(`${shQuote(mount)} -o remount,bind,ro ${shQuote(mp)} || ${fail}`);
  }
  // Watchdog: fd 3 is a pipe from the runner that it never writes; EOF means the runner is gone (even killed
  // with SIGKILL), and then everything in the namespace is killed. The program itself does not get fd 3.
  lines.push(`cd "$2" || ${fail}`, 'shift 2', '( read -r _ <&3; kill -KILL -1 ) &', 'exec 3<&-', '"$@"', 's=$?', 'exit $s');
  return lines.join('\n');
}

/** Mount points to remount read-only, from `/proc/self/mountinfo`: every writable real filesystem outside /proc, /sys, /dev, and `/`. */
export function writableMounts(mountinfo: string): string[] {
  const out = new Set<string>(['/']);
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (dash < 0 || f.length < dash + 2) continue;
    const mp = (f[4] ?? '').replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    const opts = (f[5] ?? '').split(',');
    const fstype = f[dash + 1] ?? '';
    if (!opts.includes('rw') || PSEUDO_FS.has(fstype)) continue;
    if (['/proc', '/sys', '/dev'].some((d) => isUnder(mp, d))) continue;
    out.add(mp);
  }
  return [...out].sort();
}

/** One mount a zygote's sample makes in its own mount namespace (zygote.py runs them in order). */
export type SampleMount =
  | { readonly kind: 'tmpfs'; readonly target: string; readonly size: number; readonly mode: string }
  | { readonly kind: 'bind'; readonly source: string; readonly target: string; readonly readOnly: boolean; readonly optional?: boolean };

/**
 * What a zygote's sample mounts over the slot's layout (the fstab above, mounted once when the zygote started)
 * so that it has what a fresh namespace per run has: an empty private tmpfs over each world-writable dir and
 * /dev/shm, with what the fstab binds back under them (the slot dir, exposed toolchains, the read-only cache)
 * bound back again from the stage. /dev/shm comes last: it hides the stage. Read-only steps only (no seeds).
 */
export function sampleMounts(i: FstabInput): SampleMount[] {
  const ops: SampleMount[] = [];
  const placed: string[] = [];
  for (const c of [...i.covers].sort((a, b) => a.path.length - b.path.length)) {
    if (placed.some((p) => isUnder(c.path, p))) continue;
    placed.push(c.path);
    if (c.mode === '1777') ops.push({ kind: 'tmpfs', target: c.path, size: c.size, mode: c.mode });
  }
  const fresh = ops.map((o) => o.target);
  const under = (p: string) => fresh.some((c) => isUnder(p, c));
  if (under(i.slotDir)) ops.push({ kind: 'bind', source: `${STAGE}/slot`, target: i.slotDir, readOnly: false });
  i.exposed.forEach((p, n) => {
    if (under(p)) ops.push({ kind: 'bind', source: `${STAGE}/e${n}`, target: p, readOnly: true, optional: true });
  });
  if (under(i.cacheDir)) ops.push({ kind: 'bind', source: `${STAGE}/slot/cache`, target: i.cacheDir, readOnly: true });
  ops.push({ kind: 'tmpfs', target: '/dev/shm', size: i.tmpBytes, mode: '1777' });
  return ops;
}
