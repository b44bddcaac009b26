/**
 * Runtime: containers outlive the agent that started them (kill -9), and a new Runtime over the same state dir
 * adopts them; a shim that is gone without an exit, or a recycled pid, reads as exited 255 (shim lost).
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Runtime } from '../src/runtime/index.ts';
import { cgroupProcs, exited, fixture, type Fixture } from './runtime-fixture.ts';

let f: Fixture;
beforeAll(() => { f = fixture('adopt'); });
afterAll(async () => { await f?.cleanup(); });

const runtimeModule = new URL('../src/runtime/index.ts', import.meta.url).pathname;
const ppid = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ')[1]);

/** An "agent": a node process that starts one container with a Runtime, prints its record, then idles. */
async function agentStarts(spec: object): Promise<{ agent: ReturnType<typeof spawn>; rec: { id: string; status: { pid: number } } }> {
  const script = join(f.base, 'agent.ts');
  writeFileSync(script, `import { Runtime } from ${JSON.stringify(runtimeModule)};
const rt = new Runtime({ stateDir: ${JSON.stringify(f.stateDir)}, cgroupName: ${JSON.stringify(f.cgroupName)} });
const rec = await rt.start(${JSON.stringify(spec)});
process.stdout.write(JSON.stringify(rec) + '\\n');
setInterval(() => {}, 1000);
`);
  const agent = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  for await (const chunk of agent.stdout) {
    out += String(chunk);
    if (out.includes('\n')) break;
  }
  return { agent, rec: JSON.parse(out) };
}

describe('Runtime: adoption', { timeout: 30_000 }, () => {
  it('a container survives kill -9 of its agent; a new Runtime sees it running, then its exit code', async () => {
    const { agent, rec } = await agentStarts(f.spec('survivor', ['sh', '-c', 'sleep 2; exit 7']));
    expect(rec.status).toMatchObject({ state: 'running' });
    const gone = new Promise((r) => agent.on('exit', r));
    agent.kill('SIGKILL');
    await gone;
    const rt = new Runtime({ stateDir: f.stateDir, cgroupName: f.cgroupName });
    const now = rt.get(rec.id);
    expect(now?.status).toMatchObject({ state: 'running', pid: rec.status.pid });
    expect(rt.list().map((r) => r.id)).toContain(rec.id);
    expect((await exited(rt, rec.id)).status).toMatchObject({ exitCode: 7, reason: 'Error' });
  });

  it('a shim killed without recording an exit reads as exited 255 (shim lost); stop() still kills the orphan', async () => {
    const spec = f.spec('orphan', ['sleep', '300']);
    const rec = await f.rt.start(spec);
    const pid = rec.status.state === 'running' ? rec.status.pid : -1;
    process.kill(ppid(pid), 'SIGKILL'); // the shim is the container's parent
    const lost = await exited(f.rt, rec.id);
    expect(lost.status).toMatchObject({ exitCode: 255, reason: 'Error' });
    expect(lost.status.message).toMatch(/shim \(pid \d+\) .* is gone without recording an exit/);
    expect(cgroupProcs(f, 'pids', spec)).toContain(pid);
    await f.rt.stop(rec.id, 0);
    expect(cgroupProcs(f, 'pids', spec)).toEqual([]);
  });

  it('does not take a recycled pid for the shim: the start time must match the record', async () => {
    const spec = f.spec('recycled', ['sleep', '300']);
    const rec = await f.rt.start(spec);
    // As if the shim had died and its pid now belonged to another process (this test runner).
    writeFileSync(join(f.stateDir, 'containers', rec.id, 'shim'), `${process.pid} 1\n`);
    expect(f.rt.get(rec.id)?.status).toMatchObject({ state: 'exited', exitCode: 255 });
    await f.rt.stop(rec.id, 0);
  });
});
