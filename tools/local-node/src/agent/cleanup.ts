/** What `kiln cluster down` does to the local node: stop every container it ran and tear its network down. */
import { join } from 'node:path';
import { PodNetwork } from '../network/index.ts';
import { Runtime } from '../runtime/index.ts';

/** Stops (grace `graceSeconds`) and forgets every container of the node under `stateDir`, then removes its network. */
export async function cleanupNode(opts: { stateDir: string; networkName: string; podCidr: string; graceSeconds?: number }): Promise<number> {
  const runtime = new Runtime({ stateDir: join(opts.stateDir, 'runtime'), cgroupName: `kiln/${opts.networkName}` });
  const records = runtime.list();
  await Promise.all(records.filter((r) => r.status.state === 'running').map((r) => runtime.stop(r.id, opts.graceSeconds ?? 5)));
  for (const r of records) runtime.remove(r.id);
  await new PodNetwork({ name: opts.networkName, podCidr: opts.podCidr, stateDir: join(opts.stateDir, 'network') }).teardown();
  return records.length;
}
