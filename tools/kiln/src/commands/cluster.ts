import { GPUS, type GpuType } from '@kiln/spec';
/** `kiln cluster` and `kiln toolchain`: a thin layer of options and output over @kiln/local-cluster. */
import { ClusterError, DEFAULTS, ToolchainError, cacheRoot, diskUse, down, ensureToolchain, formatDuration, paths, pulumiEnv, resolveToolchain, status, up, type ClusterOptions } from '@kiln/local-cluster';
import { EXIT, UsageError, type Io } from './io.ts';

const int = (v: unknown, name: string, min: number): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer ≥ ${min}, not "${String(v)}"`);
  return n;
};

function rootDir(values: Record<string, unknown>): string {
  return (values.dir as string | undefined) ?? process.env.KILN_ROOT ?? process.cwd();
}

function explain(e: unknown, io: Io): number {
  if (e instanceof ClusterError) {
    io.err(`kiln cluster: ${e.message}${e.detail ? `\n${e.detail}` : ''}`);
    return EXIT.invalid;
  }
  if (e instanceof ToolchainError) {
    io.err(`kiln: ${e.message}\n  command: ${e.command}\n  log: ${e.log}`);
    return EXIT.invalid;
  }
  throw e;
}

export function envLines(env: Record<string, string>): string {
  return Object.entries(env)
    // PATH: the toolchain's bin and Node 24's directory (pulumi runs programs on the first `node`), then yours.
    .map(([k, v]) => `export ${k}=${k === 'PATH' ? `"${v.split(':').slice(0, 2).join(':')}:$PATH"` : JSON.stringify(v)}`)
    .join('\n');
}

export async function runCluster(values: Record<string, unknown>, positionals: string[], io: Io): Promise<number> {
  const [sub, ...rest] = positionals;
  if (rest.length) throw new UsageError(`unexpected argument "${rest[0]}"`);
  const root = rootDir(values);
  const json = values.format === 'json';
  const log = (m: string) => io.err(`kiln: ${m}`);
  try {
    switch (sub) {
      case 'up': {
        const gpuType = (values['gpu-type'] as string | undefined) ?? DEFAULTS.gpuType;
        if (!(gpuType in GPUS)) throw new UsageError(`--gpu-type must be one of ${Object.keys(GPUS).join(', ')}`);
        const opts: ClusterOptions = {
          root,
          gpuNodes: int(values['gpu-nodes'], 'gpu-nodes', 0) ?? DEFAULTS.gpuNodes,
          gpusPerNode: int(values['gpus-per-node'], 'gpus-per-node', 1) ?? DEFAULTS.gpusPerNode,
          gpuType: gpuType as GpuType,
          cpuNodes: int(values['cpu-nodes'], 'cpu-nodes', 0) ?? DEFAULTS.cpuNodes,
          jobDurationMs: int(values['job-duration-ms'], 'job-duration-ms', 0) ?? DEFAULTS.jobDurationMs,
        };
        const r = await up(opts, log);
        if (json) io.out(JSON.stringify(r, null, 2));
        else {
          io.err(`kiln: cluster ready in ${r.seconds.toFixed(1)}s (${r.started.length ? `started ${r.started.join(', ')}` : 'already running'})`);
          io.out(`export KUBECONFIG=${r.kubeconfig}`);
          io.err(`kiln: for pulumi, also: eval "$(npx kiln cluster env)"`);
        }
        return EXIT.ok;
      }
      case 'down': {
        const stopped = await down(root, log);
        if (json) io.out(JSON.stringify({ stopped }));
        else io.err(stopped.length ? `kiln: stopped ${stopped.join(', ')} and removed ${paths(root).cluster}` : 'kiln: no cluster was running; data removed');
        return EXIT.ok;
      }
      case 'status': {
        const s = await status(root);
        if (json) io.out(JSON.stringify(s, null, 2));
        else if (!s.exists) io.out('no local cluster here; start one with `kiln cluster up`');
        else {
          io.out(`cluster ${s.healthy ? 'healthy' : 'DEGRADED'}: ${s.server ?? ''}\nKUBECONFIG=${s.kubeconfig}\n`);
          for (const c of s.components) {
            io.out(`  ${c.component.padEnd(24)} ${c.running ? `pid ${c.pid}`.padEnd(12) : 'stopped'.padEnd(12)} ${c.healthy ? 'healthy' : 'unhealthy'}`);
            if (c.logTail) io.out(c.logTail.split('\n').map((l) => `      | ${l}`).join('\n'));
          }
          if (s.nodes.length) io.out(`\n  nodes: ${s.nodes.map((n) => `${n.name}${n.ready ? '' : ' (NotReady)'}${n.gpus !== '0' ? ` ${n.gpus} GPUs` : ''}`).join(', ')}`);
        }
        return s.exists && !s.healthy ? EXIT.invalid : EXIT.ok;
      }
      case 'env': {
        const s = await status(root);
        if (!s.exists) {
          io.err('kiln: no local cluster here; start one with `kiln cluster up`');
          return EXIT.invalid;
        }
        const tc = resolveToolchain();
        io.out(envLines({ KUBECONFIG: s.kubeconfig, ...pulumiEnv(paths(root), tc) }));
        return EXIT.ok;
      }
      default:
        throw new UsageError(sub === undefined ? 'name a subcommand: up, down, status or env' : `unknown subcommand "${sub}"; use up, down, status or env`);
    }
  } catch (e) {
    return explain(e, io);
  }
}

export async function runToolchain(values: Record<string, unknown>, positionals: string[], io: Io): Promise<number> {
  const [sub = 'status'] = positionals;
  try {
    if (sub === 'build') {
      const t0 = Date.now();
      const tc = await ensureToolchain((m) => io.err(`kiln: ${m}`));
      const report = { dir: tc.dir, seconds: Math.round((Date.now() - t0) / 1000), bytes: diskUse(tc.dir), bins: tc.bins };
      if (values.format === 'json') io.out(JSON.stringify(report, null, 2));
      else io.err(`kiln: toolchain in ${tc.dir} (${(report.bytes / 2 ** 20).toFixed(0)} MiB), ready after ${formatDuration(Date.now() - t0)}`);
      return EXIT.ok;
    }
    if (sub === 'status' || sub === 'path') {
      const tc = resolveToolchain();
      if (sub === 'path') {
        io.out(tc.dir);
        return EXIT.ok;
      }
      const report = { cache: cacheRoot(), key: tc.key, dir: tc.dir, missing: tc.missing, bins: tc.bins };
      if (values.format === 'json') io.out(JSON.stringify(report, null, 2));
      else {
        io.out(`toolchain ${tc.key} in ${tc.dir}`);
        for (const [name, p] of Object.entries(tc.bins)) io.out(`  ${name.padEnd(28)} ${p}`);
        for (const name of tc.missing) io.out(`  ${name.padEnd(28)} missing (kiln toolchain build)`);
      }
      return tc.missing.length ? EXIT.invalid : EXIT.ok;
    }
    throw new UsageError(`unknown subcommand "${sub}"; use build, status or path`);
  } catch (e) {
    return explain(e, io);
  }
}
