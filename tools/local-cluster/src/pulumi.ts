/**
 * The local Pulumi set-up: a file backend and a PULUMI_HOME holding the Kubernetes provider built offline, and
 * the Pulumi CLI run on the repository's stacks/ project against the local cluster and that backend.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClusterError, paths, type Paths } from './paths.ts';
import { readVersions, resolveToolchain, type BuildProgress, type Toolchain } from './toolchain.ts';

/** Environment for the Pulumi CLI against the local backend, offline. */
export function pulumiEnv(p: Paths, tc: Toolchain): Record<string, string> {
  return {
    // Programs run on the `node` first on PATH: put this process's Node (24, with type stripping) there.
    PATH: `${tc.path.split(delimiter)[0]}${delimiter}${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`,
    PULUMI_HOME: p.pulumiHome,
    PULUMI_BACKEND_URL: `file://${p.pulumiState}`,
    // Local dev stacks encrypt their secrets with this passphrase; empty is allowed and documented.
    PULUMI_CONFIG_PASSPHRASE: process.env.PULUMI_CONFIG_PASSPHRASE ?? '',
    PULUMI_SKIP_UPDATE_CHECK: 'true',
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: 'true',
    // Use the provider installed into PULUMI_HOME (by version), not whatever is on PATH.
    PULUMI_IGNORE_AMBIENT_PLUGINS: 'true',
  };
}

export async function ensurePulumi(p: Paths, tc: Toolchain, env: Record<string, string>, log: BuildProgress): Promise<void> {
  mkdirSync(p.pulumiState, { recursive: true });
  mkdirSync(p.pulumiHome, { recursive: true });
  const v = readVersions().kubernetesProvider.version;
  if (existsSync(join(p.pulumiHome, 'plugins', `resource-kubernetes-v${v}`))) return;
  log(`installing the Kubernetes provider ${v} into ${p.pulumiHome}`);
  const r = spawnSync(tc.bins.pulumi!, ['plugin', 'install', 'resource', 'kubernetes', v, '--file', tc.bins['pulumi-resource-kubernetes']!], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new ClusterError('installing the Pulumi Kubernetes provider failed', `${r.stdout}${r.stderr}`);
}

/** The repository's Pulumi project (stacks/), where `pulumiOnLocalCluster` runs by default. */
export const STACKS_DIR = fileURLToPath(new URL('../../../stacks/', import.meta.url));

/** What a Pulumi CLI run ended with: its exit code and its whole output (stdout and stderr interleaved). */
export interface PulumiResult {
  readonly code: number;
  readonly out: string;
}

/**
 * One line of the engine's event log (`--event-log`: the stream @pulumi/pulumi/automation's `onEvent` gives),
 * parsed but not interpreted: the caller reads the kinds it needs.
 */
export type PulumiEngineEvent = Readonly<Record<string, unknown>>;

export interface PulumiRunOptions {
  /** The Pulumi project to run in; defaults to STACKS_DIR. */
  readonly cwd?: string;
  /** Each line of the CLI's output as it comes. */
  readonly onLine?: (line: string) => void;
  /** Each engine event as it comes (`--event-log`, read while the command runs). */
  readonly onEvent?: (event: PulumiEngineEvent) => void;
}

/** Follows a JSON-lines file that another process appends to; `stop` reads what is left. */
function follow(file: string, onEvent: (e: PulumiEngineEvent) => void): { stop(): void } {
  let fd: number | undefined;
  let pos = 0;
  let partial = '';
  const buf = Buffer.alloc(1 << 16);
  const read = () => {
    if (fd === undefined) {
      if (!existsSync(file)) return;
      fd = openSync(file, 'r');
    }
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      pos += n;
      partial += buf.subarray(0, n).toString('utf8');
    }
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      if (!l.trim()) continue;
      try {
        onEvent(JSON.parse(l) as PulumiEngineEvent);
      } catch {
        /* not an event: ignore */
      }
    }
  };
  const timer = setInterval(read, 200);
  return {
    stop() {
      clearInterval(timer);
      read();
      if (fd !== undefined) closeSync(fd);
    },
  };
}

/** Runs `pulumi <args> --non-interactive` against the local cluster under `root` and its file backend, offline. */
export function pulumiOnLocalCluster(root: string, args: string[], opts: PulumiRunOptions = {}): Promise<PulumiResult> {
  const p = paths(root);
  const tc = resolveToolchain();
  const events = opts.onEvent ? mkdtempSync(join(tmpdir(), 'kiln-pulumi-events-')) : undefined;
  // The CLI offers --event-log only with PULUMI_DEBUG_COMMANDS set, as the Automation API sets it.
  const env = { ...process.env, ...pulumiEnv(p, tc), KUBECONFIG: p.kubeconfig, ...(events ? { PULUMI_DEBUG_COMMANDS: 'true' } : {}) };
  const eventArgs = events ? ['--event-log', join(events, 'events.jsonl')] : [];
  const tail = events && opts.onEvent ? follow(join(events, 'events.jsonl'), opts.onEvent) : undefined;
  return new Promise((resolve) => {
    const child = spawn(tc.bins.pulumi ?? 'pulumi', [...args, ...eventArgs, '--non-interactive'], { cwd: opts.cwd ?? STACKS_DIR, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let partial = '';
    const onData = (b: Buffer) => {
      const s = b.toString('utf8');
      out += s;
      if (!opts.onLine) return;
      partial += s;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) opts.onLine(l);
    };
    const done = (code: number, text: string) => {
      tail?.stop();
      if (events) rmSync(events, { recursive: true, force: true });
      resolve({ code, out: text });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('close', (code) => done(code ?? 1, out));
    child.on('error', (e) => done(127, String(e)));
  });
}
