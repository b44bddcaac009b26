/**
 * The controller's own entry point (`kiln-controller`, the image's command): options from flags, the
 * kubeconfig from --kubeconfig, $KUBECONFIG, ~/.kube/config or the pod's service account, then run until
 * SIGINT or SIGTERM. `kiln controller` is the human front door over the same two functions.
 */
import { parseArgs } from 'node:util';
import type { KubeConfig } from '@kubernetes/client-node';
import { kubeConfigFrom } from '@kiln/cluster';
import { Controller, type ControllerOptions } from './controller.ts';

/** A flag with a bad value; the CLI shows it as a usage error. */
export class OptionError extends Error {}

const int = (v: unknown, name: string, min = 0): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new OptionError(`--${name} takes a whole number ≥ ${min}, not "${String(v)}"`);
  return n;
};

/** The flags both front doors share, as parseArgs options. */
export const CONTROLLER_FLAGS = {
  namespace: { type: 'string', short: 'n' },
  'all-namespaces': { type: 'boolean', short: 'A' },
  'leader-elect': { type: 'boolean' },
  'lease-namespace': { type: 'string' },
  'lease-ms': { type: 'string' },
  workers: { type: 'string' },
  'retry-base-ms': { type: 'string' },
} as const;

/** Controller options from parsed flags (see CONTROLLER_FLAGS); throws OptionError on a bad value. */
export function controllerOptions(values: Record<string, unknown>, kubeConfig: KubeConfig): ControllerOptions {
  const ns = values['all-namespaces'] ? undefined : ((values.namespace as string | undefined) ?? undefined);
  const leaseMs = int(values['lease-ms'], 'lease-ms', 1000);
  return {
    kubeConfig,
    ...(ns ? { namespace: ns } : {}),
    workers: int(values.workers, 'workers', 1) ?? 8,
    ...(values['retry-base-ms'] !== undefined ? { retryBaseMs: int(values['retry-base-ms'], 'retry-base-ms') } : {}),
    ...(values['leader-elect'] ? { leaderElection: { namespace: String(values['lease-namespace'] ?? ns ?? 'default'), name: 'kiln-controller', ...(leaseMs ? { leaseMs, retryMs: Math.max(200, Math.floor(leaseMs / 5)) } : {}) } } : {}),
  };
}

/** Runs a controller until SIGINT or SIGTERM; exits the process with 1 if it loses its Lease. Resolves to the exit code. */
export async function runController(o: ControllerOptions, log: (line: string) => void): Promise<number> {
  const c = new Controller({ onLostLeadership: () => process.exit(1), ...o });
  // A replica waiting for the Lease has only unref'd timers: keep the process alive until told to stop.
  const alive = setInterval(() => undefined, 1 << 30);
  await c.start();
  await new Promise<void>((res) => {
    const end = () => {
      log('kiln controller: stopping');
      clearInterval(alive);
      void c.stop().then(res);
    };
    process.once('SIGINT', end);
    process.once('SIGTERM', end);
  });
  return 0;
}

const USAGE = `Usage: kiln-controller [--namespace NS | --all-namespaces] [--leader-elect] [--lease-namespace NS] [--lease-ms N] [--workers N] [--retry-base-ms N] [--kubeconfig FILE]`;

/** `kiln-controller [flags]`: 0 when stopped by a signal, 2 on a usage error. */
export async function main(argv: string[]): Promise<number> {
  const log = (l: string) => process.stderr.write(`${l}\n`);
  let values: Record<string, unknown>;
  try {
    values = parseArgs({ args: argv, options: { ...CONTROLLER_FLAGS, kubeconfig: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: false, strict: true }).values;
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const kc = kubeConfigFrom((values.kubeconfig as string | undefined) ?? process.env.KUBECONFIG?.split(':').find(Boolean));
    const o = controllerOptions(values, kc);
    log(`kiln-controller: ${kc.getCurrentCluster()?.server ?? 'in-cluster'}`);
    return await runController({ ...o, log }, log);
  } catch (e) {
    if (e instanceof OptionError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      log(`kiln-controller: ${(e as Error).message}\n${USAGE}`);
      return 2;
    }
    throw e;
  }
}
