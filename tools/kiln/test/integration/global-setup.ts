import { CLUSTER_ROOT, down, up } from '@kiln/local-cluster';

// The directory holding .kiln/: the repository root, unless KILN_ROOT names another.
export const ROOT = CLUSTER_ROOT;

let startedHere = false;

export default async function setup(): Promise<() => Promise<void>> {
  // `up` is idempotent: on a healthy cluster it starts nothing (and recycles released local volumes).
  const r = await up({ root: ROOT, gpuNodes: 4, gpusPerNode: 8, gpuType: 'h100-80gb', cpuNodes: 2, jobDurationMs: 2000 }, (m) => console.log(`[cluster] ${m}`));
  startedHere = r.started.length > 0;
  console.log(startedHere ? `[cluster] up in ${r.seconds.toFixed(1)}s` : '[cluster] reusing the running local cluster');
  return async () => {
    // Leave a cluster someone else started; stop the one this run started.
    if (startedHere && !process.env.KILN_KEEP_CLUSTER) await down(ROOT, (m) => console.log(`[cluster] ${m}`));
  };
}
