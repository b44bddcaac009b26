/** `kiln logs`: one pod's log of a stage, or its termination message when the node serves no logs. */
import { Writable } from 'node:stream';
import type { KubeConfig } from '@kubernetes/client-node';
import { findRun, listRuns, podAttempts, podLog, stagePod, stagePods } from '@kiln/cluster';
import { SIM_ANNOTATIONS } from '@kiln/local-cluster';
import { common, type Command } from '../command.ts';
import { EXIT, UsageError, type Io } from '../io.ts';
import { int, kubeconfig, withCluster } from '../kube.ts';

export const command: Command = {
  usage: 'kiln logs <run> <stage> [--follow] [--attempt N] [--index N] [--tail N]',
  help: `Prints the log of one pod of a stage: the latest attempt and index 0 (rank 0 of training) unless
told otherwise. When the pod's node cannot serve logs (the local cluster's pods are simulated), says so
and prints the stage's termination message, its summary.

Options:
  -f, --follow      keep streaming until the pod ends
  --attempt N       which attempt (default: the latest)
  --index N         which shard or node (default 0)
  --tail N          only the last N lines
  --namespace NS    where the run is (default: search all)
  --dir DIR         directory holding .kiln/ (default: current directory)

Exit codes: 0 ok, 1 no such run, stage or pod, or no log, 2 usage error.`,
  options: { ...common, follow: { type: 'boolean', short: 'f' }, attempt: { type: 'string' }, index: { type: 'string' }, tail: { type: 'string' }, namespace: { type: 'string', short: 'n' }, dir: { type: 'string' } },
  allowPositionals: true,
  run: runLogs,
};

export async function runLogs(values: Record<string, unknown>, pos: string[], io: Io): Promise<number> {
  if (pos.length !== 2) throw new UsageError('give a run and a stage: kiln logs <run> <stage>');
  const { kc } = kubeconfig(values);
  return withCluster('logs', kc, io, () => logs(kc, values, pos as [string, string], io));
}

async function logs(kc: KubeConfig, values: Record<string, unknown>, [ref, stageName]: [string, string], io: Io): Promise<number> {
  const found = findRun(await listRuns(kc, values.namespace as string | undefined), ref);
  if ('error' in found) {
    io.err(`kiln logs: ${found.error}`);
    return EXIT.invalid;
  }
  const stage = found.spec.stages.find((s) => s.name === stageName);
  if (!stage) {
    io.err(`kiln logs: run ${found.spec.runId} has no stage "${stageName}"; stages: ${found.spec.stages.map((s) => s.name).join(', ')}`);
    return EXIT.invalid;
  }
  const pods = await stagePods(kc, found.metadata.namespace, found.spec.runId, stage.name);
  const attempt = int(values.attempt, 'attempt', 1) ?? podAttempts(pods).at(-1);
  const index = int(values.index, 'index') ?? 0;
  const pod = stagePod(pods, attempt, index);
  if (!pod) {
    io.err(`kiln logs: stage ${stage.name} of ${found.spec.runId} has no pod${attempt ? ` for attempt ${attempt}, index ${index}` : ' yet'} (phase: ${found.status?.stages.find((s) => s.name === stage.name)?.phase ?? 'Pending'})`);
    return EXIT.invalid;
  }
  const name = pod.metadata!.name!;
  io.err(`==> ${found.metadata.namespace}/${name} (attempt ${attempt}, index ${index}, ${pod.status?.phase ?? 'Pending'})`);
  const out = new Writable({
    write(chunk, _enc, cb) {
      process.stdout.write(chunk, cb);
    },
  });
  try {
    await podLog(kc, found.metadata.namespace, name, pod.spec!.containers[0]!.name, out, { follow: values.follow === true, ...(values.tail !== undefined ? { tailLines: int(values.tail, 'tail') } : {}) });
    return EXIT.ok;
  } catch (e) {
    const code = (e as { code?: number }).code;
    const why = code ? `HTTP ${code}` : ((e as Error).message ?? String(e)).split('\n')[0];
    const msg = pod.status?.containerStatuses?.[0]?.state?.terminated?.message;
    io.err(`kiln logs: the node of ${name} did not serve its log (${String(why).slice(0, 200)}).${pod.metadata?.annotations?.[SIM_ANNOTATIONS.exitCode] !== undefined ? ' Its pod is simulated (local cluster), so it has no log.' : ''}`);
    if (msg) io.err(`Its termination message:\n${msg}`);
    return EXIT.invalid;
  }
}
