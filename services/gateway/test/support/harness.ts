/** Test harness: fixture upstreams and a gateway in front of them, on free loopback ports, with its log captured. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseConfig, type GatewayConfigFile } from '../../src/config.ts';
import { Gateway } from '../../src/gateway.ts';
import { FixtureTriton, type FixtureOptions } from './fixture-triton.ts';

export interface Harness {
  readonly url: string;
  readonly gateway: Gateway;
  readonly fixtures: FixtureTriton[];
  /** The gateway's log lines, parsed. */
  readonly logs: Record<string, unknown>[];
  /** The raw log text. */
  logText(): string;
  close(): Promise<void>;
}

export function tempDir(prefix = 'kiln-gateway-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A key file with these lines; returns its path. */
export function keyFile(lines: string[], dir = tempDir()): string {
  const f = join(dir, 'keys');
  writeFileSync(f, `${lines.join('\n')}\n`);
  return f;
}

export async function start(o: { fixtures?: (FixtureOptions & { weight?: number })[]; config?: Partial<GatewayConfigFile>; keyPollMs?: number; playgroundDir?: string } = {}): Promise<Harness> {
  const specs = o.fixtures ?? [{ name: 'stable' }];
  const fixtures = await Promise.all(specs.map((s) => FixtureTriton.start(s)));
  const logs: Record<string, unknown>[] = [];
  let raw = '';
  const logStream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      raw += chunk.toString('utf8');
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) logs.push(JSON.parse(line) as Record<string, unknown>);
      cb();
    },
  });
  const config = parseConfig({
    model: 'completions',
    upstreams: fixtures.map((f, i) => ({ name: f.name, url: f.url, ...(specs[i]!.weight !== undefined ? { weight: specs[i]!.weight } : {}) })),
    health: { interval_ms: 200, timeout_ms: 2000 },
    ...o.config,
  });
  const gateway = await Gateway.create(config, { logStream, ...(o.keyPollMs !== undefined ? { keyPollMs: o.keyPollMs } : {}), ...(o.playgroundDir ? { playgroundDir: o.playgroundDir } : {}) });
  const url = await gateway.listen('127.0.0.1', 0);
  return {
    url,
    gateway,
    fixtures,
    logs,
    logText: () => raw,
    close: async () => {
      await gateway.close();
      await Promise.all(fixtures.map((f) => f.stop()));
    },
  };
}

/** POST JSON; the status, headers and parsed body. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a response body of any shape, read field by field
export async function post(url: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; json: any; text: string }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: r.status, headers: r.headers, json, text };
}

/** Waits until `f` is true (polling every 20 ms), or throws after `ms`. */
export async function until(f: () => boolean | Promise<boolean>, ms = 5000, what = 'the condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
