/** What `kiln cluster down` does to the local node: stop every container it ran, tear its network down, drop its cgroups. */
import { readdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { PodNetwork } from '../network/index.ts';
import { Runtime } from '../runtime/index.ts';

const CGROUP_CONTROLLERS = ['pids', 'memory', 'cpu', 'cpuacct', 'freezer'];

/** Removes a cgroup directory and its (empty) children, deepest first; a cgroup with processes left stays. */
function removeCgroupTree(dir: string): void {
  let entries: string[];
  try {
    entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  } catch {
    return;
  }
  for (const e of entries) removeCgroupTree(join(dir, e));
  try {
    rmdirSync(dir);
  } catch {
    /* busy or gone */
  }
}

/** Stops (grace `graceSeconds`) and forgets every container of the node under `stateDir`, then removes its network and cgroups. */
export async function cleanupNode(opts: { stateDir: string; networkName: string; podCidr: string; graceSeconds?: number }): Promise<number> {
  const cgroupName = `kiln/${opts.networkName}`;
  const runtime = new Runtime({ stateDir: join(opts.stateDir, 'runtime'), cgroupName });
  const records = runtime.list();
  await Promise.all(records.filter((r) => r.status.state === 'running').map((r) => runtime.stop(r.id, opts.graceSeconds ?? 5)));
  for (const r of records) runtime.remove(r.id);
  await new PodNetwork({ name: opts.networkName, podCidr: opts.podCidr, stateDir: join(opts.stateDir, 'network') }).teardown();
  for (const c of CGROUP_CONTROLLERS) removeCgroupTree(join('/sys/fs/cgroup', c, cgroupName));
  return records.length;
}
