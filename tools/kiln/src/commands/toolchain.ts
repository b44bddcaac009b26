/** `kiln toolchain`: build or locate the local cluster's binaries, through @kiln/local-cluster. */
import { cacheRoot, diskUse, ensureToolchain, formatDuration, resolveToolchain } from '@kiln/local-cluster';
import { suggestion } from '../args.ts';
import { common, type Command } from '../command.ts';
import { EXIT, UsageError, type Io } from '../io.ts';
import { explain } from '../local-cluster-errors.ts';

export const command: Command = {
  usage: 'kiln toolchain <build|status|path> [--format json]',
  help: `The local cluster and the Pulumi engine need: pulumi, pulumi-language-nodejs,
pulumi-resource-kubernetes, etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok.
Each is taken from PATH when a matching version is there, and otherwise built from Go modules (pinned in
tools/toolchain/versions.json and the wrapper modules beside it) into a cache keyed by those inputs:
$KILN_TOOLCHAIN_DIR, else $XDG_CACHE_HOME/kiln/toolchain, else ~/.cache/kiln/toolchain.

  build    build what is missing (concurrent runs wait for each other; logs per binary in the cache)
  status   where each binary comes from; exit 1 when something is missing
  path     print the cache directory of this toolchain`,
  options: { ...common, format: { type: 'string', default: 'text' } },
  allowPositionals: true,
  run: runToolchain,
};

const SUBCOMMANDS = ['build', 'status', 'path'];

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
    throw new UsageError(`unknown subcommand "${sub}"; use build, status or path${suggestion(sub, SUBCOMMANDS)}`);
  } catch (e) {
    return explain(e, io);
  }
}
