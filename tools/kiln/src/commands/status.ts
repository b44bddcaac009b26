/** `kiln status`: the ModelRuns, or one run in detail; redrawn on every change with --watch. */
import type { KubeConfig } from '@kubernetes/client-node';
import { findRun, listRuns, watchRuns, type ModelRun } from '@kiln/cluster';
import { common, type Command } from '../command.ts';
import { EXIT, UsageError, type Io } from '../io.ts';
import { kubeconfig, withCluster } from '../kube.ts';
import { renderRun, renderRuns } from '../render/status.ts';

export const command: Command = {
  usage: 'kiln status [run] [--watch] [--namespace NS] [--format json]',
  help: `Without a run: one line per ModelRun (newest first) with its phase, current stage, progress and
gate verdicts. With a run (its object name, run id, or a unique prefix of either): every stage with its
phase, attempts and time, a progress bar for the running stage where it reports progress (training: tokens
of the budget, then loss, tokens/s, MFU and time left from rank 0's last progress line), each environment's gates with the metric they read, and the artifacts with digests.

Options:
  --watch           redraw on every change; with a run, end when the run does
  --namespace NS    only this namespace (default: all)
  --format json     the ModelRun objects as JSON
  --dir DIR         directory holding .kiln/ (default: current directory)

The cluster is $KUBECONFIG's, else ./.kiln's local cluster, else ~/.kube/config's.
Exit codes: 0 ok, 1 no such run or the run failed, 2 usage error.`,
  options: { ...common, watch: { type: 'boolean', short: 'w' }, namespace: { type: 'string', short: 'n' }, format: { type: 'string', default: 'text' }, json: { type: 'boolean' }, dir: { type: 'string' } },
  allowPositionals: true,
  run: runStatus,
};

export async function runStatus(values: Record<string, unknown>, pos: string[], io: Io): Promise<number> {
  const { kc } = kubeconfig(values);
  return withCluster('status', kc, io, () => status(kc, values, pos, io));
}

async function status(kc: KubeConfig, values: Record<string, unknown>, pos: string[], io: Io): Promise<number> {
  if (pos.length > 1) throw new UsageError(`expected at most one run, got ${pos.length}`);
  const ns = values.namespace as string | undefined;
  const ref = pos[0];
  const json = values.format === 'json' || values.json === true;
  const pick = (runs: ModelRun[]): ModelRun | { error: string } | ModelRun[] => (ref ? findRun(runs, ref) : runs);
  const show = (runs: ModelRun[]): number => {
    const sel = pick(runs);
    if (!Array.isArray(sel) && 'error' in sel) {
      io.err(`kiln status: ${sel.error}`);
      return EXIT.invalid;
    }
    if (json) io.out(JSON.stringify(sel, (k, v) => (k === 'managedFields' ? undefined : v), 2));
    else io.out(Array.isArray(sel) ? renderRuns(sel) : renderRun(sel));
    return !Array.isArray(sel) && sel.status?.phase === 'Failed' ? EXIT.invalid : EXIT.ok;
  };
  const first = await listRuns(kc, ns);
  const code = show(first);
  if (!values.watch || code === EXIT.invalid && ref && 'error' in (pick(first) as object)) return code;
  // Watch: redraw on every change; a single run's watch ends when the run does (exit 1 if it failed).
  const runs = new Map(first.map((r) => [`${r.metadata.namespace}/${r.metadata.name}`, r]));
  return await new Promise<number>((res, rej) => {
    let stop: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    const redraw = () => {
      timer = undefined;
      const list = [...runs.values()].sort((a, b) => (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? ''));
      if (io.isTTY) io.out('\x1b[2J\x1b[H');
      else io.out('');
      const c = show(list);
      const sel = ref ? findRun(list, ref) : undefined;
      if (sel && !('error' in sel) && (sel.status?.phase === 'Succeeded' || sel.status?.phase === 'Failed')) {
        stop?.();
        res(c);
      }
    };
    redraw();
    watchRuns(
      kc,
      ns,
      (type, run) => {
        const k = `${run.metadata.namespace}/${run.metadata.name}`;
        if (type === 'DELETED') runs.delete(k);
        else runs.set(k, run);
        timer ??= setTimeout(redraw, 100);
      },
      (err) => (err ? rej(err) : res(EXIT.ok)),
    ).then((s) => (stop = s), rej);
  });
}
