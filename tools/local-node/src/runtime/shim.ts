/**
 * The shell scripts that run one container (pure functions: the Runtime writes them into the container's state
 * dir). Three stages, each exec'ing into the next so the container keeps one pid:
 * - shim.sh: the detached shim (its own session, started by the agent, outlives it). Records `shim`
 *   ("<pid> <starttime>"), runs enter.sh in a new session, kills what is left in the container's cgroup once the
 *   main process is gone, copies the memory cgroup's OOM counters to `oom`, writes the exit status to `exit`.
 * - enter.sh: the container's process (session and group leader). Joins the cgroups, records `pid`, joins the
 *   netns and a new private mount namespace.
 * - mounts.sh: inside that namespace: the mounts in order, the termination log, the read-only remount of /, cd,
 *   the user drop and exec of argv with exactly the spec's environment (`env -i`).
 * A failure before exec exits 128 and leaves its reason in `start-error`.
 */
import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import type { ContainerSpec } from './types.ts';

/**
 * Where a bind source that an earlier mount would hide is held meanwhile (a checkout under /tmp, and a pod that
 * mounts an emptyDir at /tmp): bound here first, before any mount, then bound from here to its target, then
 * unmounted. Host side effect: an empty folder per container under it while the container starts.
 */
export const STAGING_ROOT = '/run/kiln-runtime';

/** Whether `path` is `dir` or lies under it. */
export const under = (path: string, dir: string): boolean => path === dir || path.startsWith(`${dir.replace(/\/$/, '')}/`);

/** Quotes a value for sh: single quotes, each ' as '\''. */
export function shQuote(s: string): string {
  if (s.includes('\0')) throw new Error(`kiln runtime: a value holds a NUL byte, which no process argument can: ${JSON.stringify(s)}`);
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** Where a container's files live and what the runtime found out about its mounts before writing the scripts. */
export interface ShimLayout {
  readonly dir: string;                         // the container's state dir
  readonly cgroupDirs: readonly string[];       // cgroup dirs to join, the first one is swept for leftovers
  readonly memoryCgroup: string;                // for the OOM counters
  readonly bindIsDir: readonly boolean[];       // per mount (bind only): whether hostPath is a directory
}

/** The three scripts for a spec (see the file comment). */
export function shimScripts(spec: ContainerSpec, l: ShimLayout): { shim: string; enter: string; mounts: string } {
  const q = shQuote;
  const f = (name: string) => q(`${l.dir}/${name}`);
  const sweep = q(`${l.cgroupDirs[0]}/cgroup.procs`);
  const shim = `# kiln runtime shim (generated)
read -r s < /proc/$$/stat; set -- $s; echo "$$ \${22}" > ${f('shim')}
setsid sh ${f('enter.sh')}
code=$?
i=0
while [ $i -lt 100 ]; do
  left=
  while read -r p; do left=1; kill -9 "$p" 2>/dev/null; done < ${sweep}
  [ -z "$left" ] && break
  i=$((i+1)); sleep 0.02
done
{ while read -r k v; do echo "$k $v"; done < ${q(`${l.memoryCgroup}/memory.oom_control`)}
  read -r fc < ${q(`${l.memoryCgroup}/memory.failcnt`)}; echo "failcnt $fc"; } > ${f('oom')} 2>/dev/null
echo "$code" > ${f('exit.tmp')} && mv ${f('exit.tmp')} ${f('exit')}
`;
  const join = l.cgroupDirs
    .map((d) => `echo $$ > ${q(`${d}/cgroup.procs`)} || { printf '%s' ${q(`cannot join the cgroup ${d}`)} >&3; exit 128; }`)
    .join('\n');
  const netns = spec.netns === undefined ? '' : `nsenter --net=${q(spec.netns)} `;
  const enter = `# kiln runtime: the container's process (generated)
exec 3> ${f('start-error')}
${join}
read -r s < /proc/$$/stat; set -- $s; echo "$$ \${22}" > ${f('pid')}
exec ${netns}unshare --mount --propagation private -- sh ${f('mounts.sh')}
`;
  const lines: string[] = [
    '# kiln runtime: inside the private mount namespace (generated)',
    `fail() { printf 'kiln runtime: %s\\n' "$1" >&2; printf '%s' "$1" >&3; exit 128; }`,
    // Opened in this namespace (a bind source must be) before any mount can hide the state dir.
    `exec 4< ${f('termination-log')} || fail 'cannot open the termination log in the state dir'`,
  ];
  const mkdirFor = (path: string, isDir: boolean) =>
    isDir
      ? `mkdir -p ${q(path)} || fail ${q(`cannot create the mount point ${path}`)}`
      : `mkdir -p ${q(dirname(path))} && { [ -e ${q(path)} ] || : > ${q(path)}; } || fail ${q(`cannot create the mount point ${path}`)}`;
  // Sources an earlier mount would hide are bound to the staging folder first, while the host's view is whole.
  const staging = `${STAGING_ROOT}/${createHash('sha256').update(l.dir).digest('hex').slice(0, 16)}`;
  const staged = spec.mounts.map((m, i) => m.kind === 'bind' && m.hostPath !== undefined && spec.mounts.slice(0, i).some((e) => under(m.hostPath!, e.containerPath)));
  spec.mounts.forEach((m, i) => {
    if (!staged[i]) return;
    lines.push(mkdirFor(`${staging}/${i}`, l.bindIsDir[i] ?? true));
    lines.push(`mount --bind ${q(m.hostPath ?? '')} ${q(`${staging}/${i}`)} || fail ${q(`cannot bind ${m.hostPath} at ${staging}/${i}`)}`);
  });
  spec.mounts.forEach((m, i) => {
    const at = m.containerPath;
    if (m.kind === 'tmpfs') {
      const opts = [m.sizeBytes === undefined ? undefined : `size=${m.sizeBytes}`, m.readOnly ? 'ro' : undefined].filter(Boolean).join(',');
      lines.push(mkdirFor(at, true));
      lines.push(`mount -t tmpfs ${opts === '' ? '' : `-o ${opts} `}tmpfs ${q(at)} || fail ${q(`cannot mount a tmpfs at ${at}`)}`);
    } else {
      lines.push(mkdirFor(at, l.bindIsDir[i] ?? true));
      const src = staged[i] ? `${staging}/${i}` : (m.hostPath ?? '');
      lines.push(`mount --bind ${q(src)} ${q(at)} || fail ${q(`cannot bind ${m.hostPath} at ${at}`)}`);
      if (m.readOnly) lines.push(`mount -o remount,bind,ro ${q(at)} || fail ${q(`cannot make ${at} read-only`)}`);
    }
  });
  if (staged.some(Boolean)) {
    spec.mounts.forEach((_, i) => {
      if (staged[i]) lines.push(`umount ${q(`${staging}/${i}`)} && rm -rf ${q(`${staging}/${i}`)} || fail ${q(`cannot unmount ${staging}/${i}`)}`);
    });
    lines.push(`rmdir ${q(staging)} 2>/dev/null || :`);
  }
  const tm = spec.terminationMessagePath;
  lines.push(mkdirFor(tm, false));
  lines.push(`mount -c --bind /proc/self/fd/4 ${q(tm)} || fail ${q(`cannot bind the termination log at ${tm}`)}`);
  if (spec.readOnlyRoot === true) lines.push(`mount -o remount,bind,ro / || fail 'cannot remount / read-only'`);
  lines.push(`cd ${q(spec.workingDir)} || fail ${q(`the working directory ${spec.workingDir} does not exist in the container`)}`);
  lines.push('exec 3>&- 4<&-');
  const user = spec.user === undefined ? '' : `setpriv --reuid=${spec.user.uid} --regid=${spec.user.gid} --clear-groups `;
  const env = Object.entries(spec.env).map(([k, v]) => q(`${k}=${v}`)).join(' ');
  lines.push(`exec ${user}env -i --${env === '' ? '' : ` ${env}`} ${spec.argv.map(q).join(' ')}`);
  return { shim, enter, mounts: `${lines.join('\n')}\n` };
}
