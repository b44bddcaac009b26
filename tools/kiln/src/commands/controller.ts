/** `kiln controller`: the ModelRun controller, here, against a cluster (the local one by default). */
import { CONTROLLER_FLAGS } from '@kiln/controller';
import { common, type Command } from '../command.ts';
import { UsageError, type Io } from '../io.ts';
import { int, kubeconfig } from '../kube.ts';

export const command: Command = {
  usage: 'kiln controller [--namespace NS | --all-namespaces] [--leader-elect] [--simulate]',
  help: `Runs ModelRuns stage by stage: creates each stage's Job (in dependency order, named per attempt,
owned by the run, by server-side apply), passes each stage's summary and manifest to the next, retries
retryable failures with backoff (training resumes from its checkpoint), stops on a stage's terminal exit
code (2), and writes progress, artifacts, metrics and gate verdicts to the run's status. In a real cluster
it runs as the kiln-controller Deployment; on the local cluster, run it here. Stops on Ctrl-C.

Options:
  --namespace NS        watch one namespace (default: all namespaces)
  --leader-elect        act only while holding the Lease kiln-controller (several replicas)
  --lease-namespace NS  where the Lease lives (default: --namespace, else default)
  --lease-ms N          lease duration (default 15000)
  --workers N           runs reconciled at once (default 8)
  --simulate            end stage pods as kwok simulations (default: on for the local cluster)
  --sim-duration-ms N   how long simulated stages run (default 2000)
  --retry-base-ms N     backoff before attempt 2; doubles per attempt, at most 5 min (default 10000)
  --dir DIR             directory holding .kiln/ (default: current directory)

Logs go to standard error, one line per action, each with its reconcile id.`,
  options: {
    ...common,
    // The controller's own flags (the same as kiln-controller's), plus what only this front door has.
    ...CONTROLLER_FLAGS,
    simulate: { type: 'boolean' },
    'sim-duration-ms': { type: 'string' },
    dir: { type: 'string' },
  },
  allowPositionals: false,
  run: runController,
};

export async function runController(values: Record<string, unknown>, _pos: string[], io: Io): Promise<number> {
  const { kc, local, path } = kubeconfig(values);
  const simulate = values.simulate === true || (values.simulate === undefined && local);
  const simDurationMs = int(values['sim-duration-ms'], 'sim-duration-ms');
  const { controllerOptions, runController: serve, OptionError } = await import('@kiln/controller');
  let o;
  try {
    o = controllerOptions(values, kc);
  } catch (e) {
    if (e instanceof OptionError) throw new UsageError(e.message);
    throw e;
  }
  // The local cluster's kwok pods only end as a stage would when told how: its simulation, as hooks.
  const hooks = simulate ? (await import('@kiln/local-cluster')).simulationHooks(simDurationMs !== undefined ? { durationMs: simDurationMs } : {}) : undefined;
  io.err(`kiln controller: ${path}${simulate ? ' (simulating stage pods: local cluster)' : ''}`);
  return serve({ ...o, ...(hooks ? { hooks } : {}), log: (l) => io.err(l) }, (l) => io.err(l));
}
