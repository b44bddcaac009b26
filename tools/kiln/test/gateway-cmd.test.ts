import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FixtureTriton } from '@kiln/gateway/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../bin/kiln.js', import.meta.url));
const KEY = 'sk-cli-test-0123456789abcdef';

/** Runs kiln to its end (asynchronously: the fixture upstream lives in this process). */
// Nx sets FORCE_COLOR; with NO_COLOR beside it, Node warns on stderr.
const { FORCE_COLOR: _ignored, ...quiet } = process.env;

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { env: { ...quiet, NO_COLOR: '1', KILN_API_KEY: '', ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('kiln gateway and kiln complete', () => {
  let upstream: FixtureTriton;
  let gw: ChildProcess;
  let url: string;
  let stderr = '';
  let keys: string;
  beforeAll(async () => {
    upstream = await FixtureTriton.start({ name: 'stable', reply: (i) => ` return fib(n - 1) + fib(n - 2)  # ${i.suffix ?? ''}` });
    const dir = mkdtempSync(join(tmpdir(), 'kiln-gateway-cmd-'));
    keys = join(dir, 'keys');
    writeFileSync(keys, `# test\n${KEY}\n`);
    const config = join(dir, 'gateway.json');
    writeFileSync(config, JSON.stringify({ model: 'code', upstreams: [{ name: 'unused', url: 'http://127.0.0.1:9' }], limits: { requests_per_minute: 8 } }));
    gw = spawn(process.execPath, [bin, 'gateway', '--config', config, '--upstream', `stable=${upstream.url}`, '--port', '0', '--api-key-file', keys], { env: { ...quiet, NO_COLOR: '1' } });
    gw.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    url = await new Promise<string>((resolve, reject) => {
      let out = '';
      gw.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /^(http:\/\/127\.0\.0\.1:\d+)\n/.exec(out);
        if (m) resolve(m[1]!);
      });
      gw.on('exit', (code) => reject(new Error(`kiln gateway exited ${code}: ${stderr}`)));
    });
  });
  afterAll(async () => {
    if (gw.exitCode === null) gw.kill('SIGKILL');
    await upstream.stop();
  });

  it('prints its URL, and says which upstreams it routes to', () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(stderr).toContain(`stable ${upstream.url} 100%`);
    expect(stderr).not.toContain('no API key file');
  });

  it('streams a completion to standard output, with the key from $KILN_API_KEY', async () => {
    const r = await run(['complete', 'def fib(n):', '--endpoint', url, '--max-tokens', '20'], { KILN_API_KEY: KEY });
    expect([r.code, r.stdout, r.stderr]).toEqual([0, ' return fib(n - 1) +', '']);
    expect(upstream.requests.at(-1)!.path).toBe('/v2/models/ensemble/generate_stream');
  });

  it('fills in the middle with --suffix, stops at --stop, and prints one JSON object with --json', async () => {
    const r = await run(['complete', 'def fib(n):', '--endpoint', url, '--suffix', 'END', '--stop', '+', '--api-key-file', keys, '--json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j).toMatchObject({ kind: 'kiln.complete/v1', model: 'code', upstream: 'stable', text: ' return fib(n - 1) ', finish_reason: 'stop', usage: { prompt_tokens: 14 } });
    expect(upstream.requests.at(-1)!.body).toMatchObject({ suffix: 'END', stop_words: ['+'] });
  });

  it('says clearly when the key is refused, the gateway cannot be reached, or the rate limit is hit', async () => {
    const bad = await run(['complete', 'x', '--endpoint', url], { KILN_API_KEY: 'sk-wrong' });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/refused the API key \(401 invalid_api_key\).*Set \$KILN_API_KEY or pass --api-key-file FILE/);
    const closed = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const { port } = s.address() as AddressInfo;
        s.close(() => resolve(port));
      });
    });
    const none = await run(['complete', 'x', '--endpoint', `http://127.0.0.1:${closed}`]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`cannot connect to http://127.0.0.1:${closed} (ECONNREFUSED): is \`kiln gateway\` running there?`);
    let limited: Awaited<ReturnType<typeof run>> | undefined;
    for (let i = 0; i < 10 && !limited; i++) {
      const r = await run(['complete', 'x', '--endpoint', url, '--model', 'code', '--no-stream'], { KILN_API_KEY: KEY });
      if (r.code !== 0) limited = r;
    }
    expect(limited?.code).toBe(1);
    expect(limited?.stderr).toMatch(/rate limited by .* \(429\): retry in \d+ s/);
  });

  it('answers usage errors with exit 2', async () => {
    const r = await run(['gateway', '--port', '1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no upstream: pass --upstream URL');
    const c = await run(['complete']);
    expect([c.code, c.stderr.includes('needs a PROMPT')]).toEqual([2, true]);
  });

  it('logs each request on standard error without the key, and stops cleanly on SIGTERM (exit 0)', async () => {
    expect(stderr).toMatch(/"msg":"request"/);
    expect(stderr).not.toContain(KEY);
    const exited = new Promise<number | null>((r) => gw.on('exit', (code) => r(code)));
    gw.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).toContain('kiln gateway: gateway: stopping');
  });
});
