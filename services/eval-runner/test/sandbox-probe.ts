/**
 * Run by sandbox.test.ts in a process of its own: as an unprivileged user (setpriv to nobody) to exercise the
 * sandbox's non-root modes for real (`node sandbox-probe.ts <auto|none> <port> <escape-path>`, prints one JSON line
 * with what happened), or to die by SIGKILL in the middle of a run (`crash <needle>`).
 */
import { Sandbox } from '../src/sandbox.ts';

const [isolation = 'auto', port = '0', escape = '/tmp/kiln-escape'] = process.argv.slice(2);
if (isolation === 'crash') {
  // `sandbox-probe.ts crash <needle>`: start a long sample, then die by SIGKILL (no cleanup of any kind can run).
  const sb = await Sandbox.create({ concurrency: 1 });
  void sb.run({ argv: ['/bin/sh', '-c', `sleep ${port} & sleep ${port}`], files: {}, limits: { timeoutMs: 120_000 } });
  console.log(JSON.stringify({ baseDir: sb.describe().baseDir, mode: sb.mode }));
  setTimeout(() => process.kill(process.pid, 'SIGKILL'), 300);
  await new Promise(() => undefined);
}
const sb = await Sandbox.create({ concurrency: 2, isolation: isolation as 'auto' | 'none' });
const sh = (script: string, timeoutMs = 1500) => sb.run({ argv: ['/bin/sh', '-c', script], files: { 'a.txt': 'hi' }, limits: { timeoutMs } });
const loop = await sh('while :; do :; done', 500);
const output = await sh('yes kiln');
const bomb = await sb.run({ argv: ['/bin/bash', '-c', ':(){ :|:& };:; wait'], files: {}, limits: { timeoutMs: 1500, processes: 32 } });
const afterBomb = sb.leftovers();
const net = await sb.run({ argv: ['/bin/bash', '-c', `exec 3<>/dev/tcp/127.0.0.1/${port} && echo connected`], files: {}, limits: { timeoutMs: 2000 } });
const write = await sh(`echo x > ${escape}-tmp; echo x > /var/tmp/kiln-escape-${process.pid}; echo done`);
const setsid = await sh('setsid sleep 30.4242 >/dev/null 2>&1 & echo started');
await new Promise((r) => setTimeout(r, 100));
const leftovers = sb.leftovers();
const ok = await sh('cat a.txt; exit 3');
const d = sb.describe();
await sb.close();
const brief = (r: { exitCode: number | null; signal: string | null; timedOut: boolean; killedFor?: string; stdout: string; stderr: string }) => ({
  exitCode: r.exitCode, signal: r.signal, timedOut: r.timedOut, killedFor: r.killedFor ?? null, stdout: r.stdout.slice(-300), stderr: r.stderr.slice(-300),
});
console.log(JSON.stringify({ describe: d, loop: brief(loop), output: { ...brief(output), stdoutLength: output.stdout.length }, bomb: brief(bomb), afterBomb, net: brief(net), write: brief(write), setsid: brief(setsid), leftovers, ok: brief(ok), pid: process.pid }));
