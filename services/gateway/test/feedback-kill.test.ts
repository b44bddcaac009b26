/**
 * Durability of the feedback log under a crash: the real gateway (`kiln-gateway`, a child process) takes
 * concurrent feedback, is killed with SIGKILL in the middle of it, and the files must hold every feedback it
 * acknowledged, exactly once; a gateway started again on the same folder still knows them (duplicates).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { FILE_PATTERN } from '../src/feedback.ts';
import { FixtureTriton } from './support/fixture-triton.ts';

const bin = fileURLToPath(new URL('../bin/kiln-gateway.js', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'kiln-feedback-kill-'));
const KEY = 'kiln-test-key-0123456789abcdef';
const children: ChildProcess[] = [];
let fixture: FixtureTriton | undefined;
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await fixture?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

/** Starts `kiln-gateway` on a free port; resolves with its URL once it says it is listening. */
async function startGateway(dir: string, upstream: string): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  writeFileSync(join(tmp, 'keys'), `${KEY}\n`);
  const child = spawn(process.execPath, [bin, '--host', '127.0.0.1', '--port', '0', '--upstream', `stable=${upstream}`, '--api-key-file', join(tmp, 'keys'), '--feedback-dir', dir, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kiln-gateway did not start in 60 s:\n${err}`)), 60_000);
    child.stderr!.on('data', (b: Buffer) => {
      err += b.toString('utf8');
      const m = /gateway: (http:\/\/[^\s]+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`kiln-gateway exited (${code ?? signal}) before listening:\n${err}`));
    });
  });
  return { child, url, stderr: () => err };
}

const feedback = (url: string, id: string) =>
  fetch(`${url}/v1/feedback`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }, body: JSON.stringify({ completion_id: id, outcome: 'accepted' }) });

/** Every whole line of the folder's feedback files, and how many files end in a torn line. */
function readLog(dir: string): { ids: string[]; torn: number } {
  const ids: string[] = [];
  let torn = 0;
  for (const f of readdirSync(dir).filter((x) => FILE_PATTERN.test(x))) {
    const text = readFileSync(join(dir, f), 'utf8');
    const lines = text.split('\n');
    const last = lines.pop()!;
    if (last !== '') torn++;
    for (const l of lines) ids.push((JSON.parse(l) as { completion_id: string }).completion_id);
  }
  return { ids, torn };
}

describe('feedback log: kill -9 of the real gateway under load', () => {
  it('keeps every acknowledged feedback exactly once, and a restarted gateway still knows them', async () => {
    fixture = await FixtureTriton.start({ name: 'stable' });
    const dir = join(tmp, 'feedback', 'completions');
    const gw = await startGateway(dir, fixture.url);
    const acked: string[] = [];
    let failed = 0;
    let killed = false;
    // 24 clients send feedback as fast as they can until the gateway dies under them.
    const client = async (c: number) => {
      for (let i = 0; !killed; i++) {
        const id = `cmpl-kill-${c}-${i}`;
        try {
          const r = await feedback(gw.url, id);
          if (r.status !== 200) throw new Error(`feedback answered ${r.status}: ${await r.text()}`);
          const body = (await r.json()) as { status: string };
          expect(body.status).toBe('recorded');
          acked.push(id);
        } catch (e) {
          if (!killed) throw e;
          failed++;
          return;
        }
      }
    };
    const clients = Array.from({ length: 24 }, (_, c) => client(c));
    const t0 = Date.now();
    while (acked.length < 400 && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 5));
    expect(acked.length, gw.stderr()).toBeGreaterThanOrEqual(400);
    killed = true;
    gw.child.kill('SIGKILL');
    await Promise.all(clients);
    await new Promise<void>((r) => (gw.child.exitCode !== null || gw.child.signalCode !== null ? r() : gw.child.once('exit', () => r())));
    expect(gw.child.signalCode).toBe('SIGKILL');
    // Killed mid-load: requests were in flight when it died.
    expect(failed).toBeGreaterThan(0);

    const { ids } = readLog(dir);
    const count = new Map<string, number>();
    for (const id of ids) count.set(id, (count.get(id) ?? 0) + 1);
    const missing = acked.filter((id) => !count.has(id));
    expect(missing, `acknowledged but not in the log: ${missing.slice(0, 5).join(', ')}`).toEqual([]);
    expect([...count].filter(([, n]) => n > 1)).toEqual([]);

    // Started again on the same folder: the old ids are duplicates, a new one is recorded, in a new file.
    const filesBefore = readdirSync(dir).filter((x) => FILE_PATTERN.test(x)).length;
    const again = await startGateway(dir, fixture.url);
    for (const id of [acked[0]!, acked[acked.length - 1]!]) {
      const r = await feedback(again.url, id);
      expect(r.status).toBe(200);
      expect(await r.json()).toEqual({ status: 'duplicate' });
    }
    const fresh = await feedback(again.url, 'cmpl-after-restart');
    expect(await fresh.json()).toEqual({ status: 'recorded' });
    again.child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => again.child.once('exit', (c) => r(c)));
    expect(code, again.stderr()).toBe(0);
    expect(readdirSync(dir).filter((x) => FILE_PATTERN.test(x)).length).toBe(filesBefore + 1);
    expect(readLog(dir).ids.filter((id) => id === 'cmpl-after-restart')).toHaveLength(1);
  }, 180_000);
});
