/**
 * The local-cluster toolchain: the Pulumi CLI and kiln's Node.js language host, the Kubernetes provider,
 * etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok. A binary already on PATH is used
 * as it is; the others are built from Go modules through the module proxy, pinned by
 * tools/toolchain/versions.json and the wrapper modules beside it, into a cache outside the repository keyed
 * by all of those inputs.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const TOOLCHAIN_SRC = fileURLToPath(new URL('../../toolchain/', import.meta.url));

export interface Versions {
  readonly pulumi: string;
  readonly kubernetesProvider: { readonly version: string; readonly module: string; readonly moduleVersion: string };
  readonly kubernetes: string;
  readonly etcd: string;
  readonly kwok: string;
}

export function readVersions(): Versions {
  return JSON.parse(readFileSync(join(TOOLCHAIN_SRC, 'versions.json'), 'utf8')) as Versions;
}

/** One binary: where its wrapper module is, which package to build, and how to stamp its version. */
export interface BinarySpec {
  readonly name: string;
  readonly module: string;
  readonly pkg: string;
  readonly ldflags: string[];
  readonly tags?: string;
  /** Prepares a private copy of the module before building (generated embeds). */
  readonly prepare?: (dir: string) => void;
  /** `--version` style command whose output must mention `expect` for a binary on PATH to be used. */
  readonly versionArgs: string[];
  readonly expect: string;
}

export function binarySpecs(v: Versions = readVersions()): BinarySpec[] {
  const kubeVersion = `v${v.kubernetes}`;
  const [major, minor] = v.kubernetes.split('.');
  const kubeStamp = ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version'].flatMap((p) => [
    `-X ${p}.gitVersion=${kubeVersion}`,
    `-X ${p}.gitMajor=${major}`,
    `-X ${p}.gitMinor=${minor}`,
    `-X ${p}.gitTreeState=clean`,
    `-X ${p}.buildDate=1970-01-01T00:00:00Z`,
  ]);
  const pulumiStamp = [`-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v${v.pulumi}`];
  const kube = (name: string): BinarySpec => ({ name, module: 'kube', pkg: `k8s.io/kubernetes/cmd/${name}`, ldflags: kubeStamp, versionArgs: ['--version'], expect: kubeVersion });
  return [
    { name: 'etcd', module: 'etcd', pkg: 'go.etcd.io/etcd/server/v3', ldflags: [], versionArgs: ['--version'], expect: `etcd Version: ${v.etcd}` },
    kube('kube-apiserver'),
    kube('kube-controller-manager'),
    kube('kube-scheduler'),
    { name: 'kwok', module: 'kwok', pkg: 'sigs.k8s.io/kwok/cmd/kwok', ldflags: [`-X sigs.k8s.io/kwok/pkg/consts.Version=v${v.kwok}`], versionArgs: ['--version'], expect: v.kwok },
    { name: 'pulumi', module: 'pulumi', pkg: 'github.com/pulumi/pulumi/pkg/v3/cmd/pulumi', ldflags: pulumiStamp, tags: 'osusergo,grpcnotrace', versionArgs: ['version'], expect: `v${v.pulumi}` },
    { name: 'pulumi-language-nodejs', module: 'pulumi', pkg: './cmd/pulumi-language-nodejs', ldflags: pulumiStamp, tags: 'osusergo,grpcnotrace', versionArgs: [], expect: '' },
    {
      name: 'pulumi-resource-kubernetes',
      module: 'provider',
      pkg: '.',
      ldflags: [`-X ${v.kubernetesProvider.module}/pkg/version.Version=${v.kubernetesProvider.version}`],
      versionArgs: [],
      expect: '',
      prepare: (dir) => writeProviderEmbeds(dir, v),
    },
  ];
}

/** The provider's main package embeds files its `go generate` writes; write them from the module's sources. */
function writeProviderEmbeds(dir: string, v: Versions): void {
  const src = join(goModDir(v.kubernetesProvider.module, v.kubernetesProvider.moduleVersion, dir), 'cmd', 'pulumi-resource-kubernetes');
  const schema = JSON.parse(readFileSync(join(src, 'schema.json'), 'utf8')) as Record<string, unknown>;
  schema.version = v.kubernetesProvider.version;
  writeFileSync(join(dir, 'schema-embed.json'), JSON.stringify(schema));
  writeFileSync(join(dir, 'terraform-mapping-embed.json'), JSON.stringify(JSON.parse(readFileSync(join(src, 'terraform-mapping.json'), 'utf8'))));
}

function goModDir(module: string, version: string, cwd: string): string {
  const r = spawnSync('go', ['mod', 'download', '-json', `${module}@${version}`], { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new ToolchainError(`cannot download ${module}@${version}`, `go mod download -json ${module}@${version}`, r.stderr || r.stdout);
  return (JSON.parse(r.stdout) as { Dir: string }).Dir;
}

export class ToolchainError extends Error {
  readonly command: string;
  readonly log: string;
  constructor(message: string, command: string, log: string) {
    super(message);
    this.command = command;
    this.log = log;
  }
}

/** Cache root: $KILN_TOOLCHAIN_DIR, else $XDG_CACHE_HOME/kiln/toolchain, else ~/.cache/kiln/toolchain. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  if (env.KILN_TOOLCHAIN_DIR) return env.KILN_TOOLCHAIN_DIR;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kiln', 'toolchain');
}

/** Hash of everything that changes the binaries: versions, wrapper modules, our own Go sources, Go itself. */
export function cacheKey(): string {
  const h = createHash('sha256');
  const walk = (dir: string) => {
    for (const f of readdirSync(dir).sort()) {
      const p = join(dir, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (/(\.go|go\.mod|go\.sum|\.json)$/.test(f) && !f.endsWith('-embed.json')) h.update(p.slice(TOOLCHAIN_SRC.length)).update(readFileSync(p));
    }
  };
  walk(TOOLCHAIN_SRC);
  h.update(spawnSync('go', ['version'], { encoding: 'utf8' }).stdout ?? 'no go');
  return h.digest('hex').slice(0, 16);
}

export interface Toolchain {
  /** Directory of the built binaries (also holding kwok's stage files under share/). */
  readonly dir: string;
  /** Absolute path per binary name, from PATH or the cache. */
  readonly bins: Record<string, string>;
  /** PATH to use: the toolchain's bin first. */
  readonly path: string;
}

function onPath(spec: BinarySpec, env: NodeJS.ProcessEnv): string | undefined {
  if (env.KILN_TOOLCHAIN_IGNORE_PATH) return undefined;
  for (const d of (env.PATH ?? '').split(delimiter)) {
    const p = join(d, spec.name);
    if (d && existsSync(p)) {
      if (spec.versionArgs.length === 0) return undefined; // no version to check: build our own
      const r = spawnSync(p, spec.versionArgs, { encoding: 'utf8', timeout: 10_000 });
      return `${r.stdout}${r.stderr}`.includes(spec.expect) ? p : undefined;
    }
  }
  return undefined;
}

/** Resolves the toolchain without building; `missing` lists what a build would make. */
export function resolveToolchain(env: NodeJS.ProcessEnv = process.env): Toolchain & { missing: string[]; key: string } {
  const key = cacheKey();
  const dir = join(cacheRoot(env), key);
  const bins: Record<string, string> = {};
  const missing: string[] = [];
  for (const spec of binarySpecs()) {
    const cached = join(dir, 'bin', spec.name);
    const found = existsSync(cached) ? cached : onPath(spec, env);
    if (found) bins[spec.name] = found;
    else missing.push(spec.name);
  }
  if (!existsSync(join(dir, 'share', 'kwok', 'stage'))) missing.push('kwok-stages');
  return { dir, bins, missing, key, path: `${join(dir, 'bin')}${delimiter}${env.PATH ?? ''}` };
}

export interface BuildProgress {
  (message: string): void;
}

/**
 * Builds whatever is missing, under a lock so that concurrent invocations wait instead of building twice.
 * Each binary is built into a temporary name and renamed into place when complete.
 */
export async function ensureToolchain(log: BuildProgress, env: NodeJS.ProcessEnv = process.env): Promise<Toolchain> {
  let tc = resolveToolchain(env);
  if (tc.missing.length === 0) return tc;
  mkdirSync(tc.dir, { recursive: true });
  const release = await acquireLock(join(tc.dir, '.lock'), log);
  try {
    tc = resolveToolchain(env); // another process may have finished while we waited
    if (tc.missing.length === 0) return tc;
    mkdirSync(join(tc.dir, 'bin'), { recursive: true });
    mkdirSync(join(tc.dir, 'logs'), { recursive: true });
    const specs = binarySpecs().filter((s) => tc.missing.includes(s.name));
    const started = Date.now();
    log(`building ${specs.length} toolchain binaries into ${tc.dir} (a cold build takes a while on ${navigatorCores()} cores; later runs reuse it)`);
    for (const [i, spec] of specs.entries()) {
      await buildOne(spec, tc.dir, `[${i + 1}/${specs.length}]`, log, env);
    }
    if (tc.missing.includes('kwok-stages')) copyKwokStages(tc.dir, readVersions());
    log(`toolchain ready in ${formatDuration(Date.now() - started)}: ${tc.dir}`);
    return resolveToolchain(env);
  } finally {
    release();
  }
}

function navigatorCores(): number {
  return Number(spawnSync('nproc', { encoding: 'utf8' }).stdout?.trim()) || 1;
}

export async function buildOne(spec: BinarySpec, dir: string, step: string, log: BuildProgress, env: NodeJS.ProcessEnv): Promise<void> {
  const logFile = join(dir, 'logs', `${spec.name}.log`);
  let cwd = join(TOOLCHAIN_SRC, spec.module);
  if (spec.prepare) {
    // Build from a private copy so generated files never land in the repository.
    const work = join(dir, 'src', spec.module);
    rmSync(work, { recursive: true, force: true });
    cpSync(cwd, work, { recursive: true });
    spec.prepare(work);
    cwd = work;
  }
  const out = join(dir, 'bin', `.${spec.name}.partial`);
  const args = ['build', '-trimpath', '-ldflags', ['-s', '-w', ...spec.ldflags].join(' '), ...(spec.tags ? ['-tags', spec.tags] : []), '-o', out, spec.pkg];
  const command = `(cd ${cwd} && CGO_ENABLED=0 go ${args.map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' ')})`;
  log(`${step} building ${spec.name} (log: ${logFile})`);
  const t0 = Date.now();
  const fd = openSync(logFile, 'w');
  const code = await new Promise<number>((resolve) => {
    const child = spawn('go', args, { cwd, env: { ...env, CGO_ENABLED: '0', GOFLAGS: '-mod=mod' }, stdio: ['ignore', fd, fd] });
    const beat = setInterval(() => log(`${step} still building ${spec.name} (${formatDuration(Date.now() - t0)})`), 60_000);
    child.on('close', (c) => {
      clearInterval(beat);
      resolve(c ?? 1);
    });
    child.on('error', () => {
      clearInterval(beat);
      resolve(127);
    });
  });
  closeSync(fd);
  if (code !== 0) {
    const tail = readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n');
    throw new ToolchainError(`building ${spec.name} failed (exit ${code})`, command, `${logFile}\n${tail}`);
  }
  renameSync(out, join(dir, 'bin', spec.name));
  log(`${step} built ${spec.name} in ${formatDuration(Date.now() - t0)}`);
}

/** kwok's stage definitions ship in its module zip; keep a copy beside the binary for offline cluster starts. */
function copyKwokStages(dir: string, v: Versions): void {
  const src = join(goModDir('sigs.k8s.io/kwok', `v${v.kwok}`, join(TOOLCHAIN_SRC, 'kwok')), 'kustomize', 'stage');
  const dest = join(dir, 'share', 'kwok', 'stage');
  mkdirSync(join(dir, 'share', 'kwok'), { recursive: true });
  cpSync(src, dest, { recursive: true });
  spawnSync('chmod', ['-R', 'u+w', dest]);
}

/** A lock directory holding the owner's pid; a lock whose owner is gone is taken over. */
export async function acquireLock(path: string, log: BuildProgress): Promise<() => void> {
  let announced = false;
  for (;;) {
    try {
      mkdirSync(path);
      writeFileSync(join(path, 'pid'), String(process.pid));
      return () => rmSync(path, { recursive: true, force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      let owner = NaN;
      try {
        owner = Number(readFileSync(join(path, 'pid'), 'utf8'));
      } catch {
        /* the owner is between mkdir and writing its pid */
      }
      if (Number.isFinite(owner) && !alive(owner)) {
        rmSync(path, { recursive: true, force: true });
        continue;
      }
      if (!announced) {
        log(`another kiln process${Number.isFinite(owner) ? ` (pid ${owner})` : ''} is building the toolchain; waiting for it`);
        announced = true;
      }
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

/** Whether a process exists and has not exited; an exited process nobody has reaped (a zombie) is dead. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ..."; the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

/** Disk use of a directory in bytes. */
export function diskUse(dir: string): number {
  if (!existsSync(dir)) return 0;
  const r = spawnSync('du', ['-sb', dir], { encoding: 'utf8' });
  return Number(r.stdout.split('\t')[0]) || 0;
}

