/** `kiln cluster`: a thin layer of options and output over @kiln/local-cluster. */
import { GPUS, type GpuType } from '@kiln/spec';
import { DEFAULTS, down, paths, pulumiEnv, resolveToolchain, status, up, type ClusterOptions } from '@kiln/local-cluster';
import { suggestion } from '../args.ts';
import { common, type Command } from '../command.ts';
import { EXIT, UsageError, type Io } from '../io.ts';
import { explain } from '../local-cluster-errors.ts';
import { intOption } from '../options.ts';

export const command: Command = {
  usage: 'kiln cluster <up|down|status|env> [options]',
  help: `A real etcd, kube-apiserver, kube-controller-manager and kube-scheduler on 127.0.0.1 (free ports),
with kwok simulating the nodes and their pods: pods are scheduled against real GPU capacity, go Ready,
and pods of Jobs Succeed after --job-duration-ms. Data, certificates, kubeconfig, logs and pid files live
under .kiln/ of the current directory (or --dir). A local Pulumi file backend lives beside them.

  up       start what is not running (idempotent); prints the KUBECONFIG line
  down     stop exactly the processes up started, and remove the data
  status   each component's pid and health, the nodes; exit 1 when something is down
  env      export lines for kubectl and the pulumi CLI: eval "$(npx kiln cluster env)"

Options for up:
  --gpu-nodes N         simulated GPU nodes (default 4)
  --gpus-per-node N     GPUs on each (default 8)
  --gpu-type TYPE       e.g. h100-80gb (default), a100-40gb: sets the nodes' GPU product label
  --cpu-nodes N         CPU-only nodes (default 2)
  --job-duration-ms N   how long a Job's pod runs before it Succeeds (default 2000)
Common:
  --dir DIR             directory holding .kiln/ (default: current directory)
  --format json         machine-readable output

The binaries come from PATH or are built once into the toolchain cache (see kiln toolchain).`,
  options: {
    ...common,
    dir: { type: 'string' },
    format: { type: 'string', default: 'text' },
    'gpu-nodes': { type: 'string' },
    'gpus-per-node': { type: 'string' },
    'gpu-type': { type: 'string' },
    'cpu-nodes': { type: 'string' },
    'job-duration-ms': { type: 'string' },
  },
  allowPositionals: true,
  run: runCluster,
};

const SUBCOMMANDS = ['up', 'down', 'status', 'env'];

function rootDir(values: Record<string, unknown>): string {
  return (values.dir as string | undefined) ?? process.env.KILN_ROOT ?? process.cwd();
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
          gpuNodes: intOption('gpu-nodes', values['gpu-nodes'], 0) ?? DEFAULTS.gpuNodes,
          gpusPerNode: intOption('gpus-per-node', values['gpus-per-node'], 1) ?? DEFAULTS.gpusPerNode,
          gpuType: gpuType as GpuType,
          cpuNodes: intOption('cpu-nodes', values['cpu-nodes'], 0) ?? DEFAULTS.cpuNodes,
          jobDurationMs: intOption('job-duration-ms', values['job-duration-ms'], 0) ?? DEFAULTS.jobDurationMs,
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
        throw new UsageError(sub === undefined ? 'name a subcommand: up, down, status or env' : `unknown subcommand "${sub}"; use up, down, status or env${suggestion(sub, SUBCOMMANDS)}`);
    }
  } catch (e) {
    return explain(e, io);
  }
}
