/**
 * Latency of Runtime.start(): from the call to the container's process existing in its cgroups (the record says
 * running), and to argv running (its first output in the log: after the netns/mount namespace, a tmpfs mount and
 * exec). Run as root: `node bench/local-node-runtime.ts [count]`. Prints p50/p90/max in ms.
 */
import { mkdtempSync, readFileSync, rmSync, rmdirSync } from 'node:fs';
import { Runtime } from '@kiln/local-node';

const count = Number(process.argv[2] ?? 40);
const stateDir = mkdtempSync('/tmp/kiln-rt-bench-');
const cgroupName = `kiln-bench-${process.pid}/node`;
const rt = new Runtime({ stateDir, cgroupName });
const ms: number[] = [];
const toExec: number[] = [];
for (let i = 0; i < count; i++) {
  const t0 = performance.now();
  const rec = await rt.start({
    podUid: 'bench', podKey: 'default/bench', container: `c${i}`, restartCount: 0, argv: ['sh', '-c', 'echo up; exec sleep 5'],
    env: { PATH: '/usr/bin:/bin' }, workingDir: '/', limits: { memoryBytes: 256 << 20, cpuMillis: 500, pids: 64 },
    mounts: [{ kind: 'tmpfs', containerPath: '/tmp/kiln-bench-scratch', readOnly: false, sizeBytes: 1 << 20 }],
    terminationMessagePath: '/dev/termination-log',
  });
  ms.push(performance.now() - t0);
  while (!readFileSync(rt.logFile(rec.id), 'utf8').includes('up')) await new Promise((r) => setTimeout(r, 1));
  toExec.push(performance.now() - t0);
  if (rec.status.state !== 'running') throw new Error(`bench container ${rec.id} is not running: ${JSON.stringify(rec.status)}`);
  await rt.stop(rec.id, 0);
  rt.remove(rec.id);
}
for (const c of ['memory', 'cpu', 'pids', 'freezer']) {
  for (const d of [`/sys/fs/cgroup/${c}/${cgroupName}`, `/sys/fs/cgroup/${c}/kiln-bench-${process.pid}`]) {
    try { rmdirSync(d); } catch { /* absent */ }
  }
}
rmSync(stateDir, { recursive: true, force: true });
const summary = (xs: number[]) => {
  xs.sort((a, b) => a - b);
  const at = (q: number) => (xs[Math.min(xs.length - 1, Math.floor(q * xs.length))] ?? NaN).toFixed(1);
  return `p50 ${at(0.5)} ms, p90 ${at(0.9)} ms, max ${at(1)} ms`;
};
process.stdout.write(`over ${count} containers: start() resolved ${summary(ms)}; argv running ${summary(toExec)}\n`);
