/** Runs the Pulumi CLI on the repository's stacks/ project against the local cluster and backend. */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { paths, pulumiEnv, resolveToolchain } from '@kiln/local-cluster';
import type { EngineEvent } from './pulumi-events.ts';

export const STACKS_DIR = fileURLToPath(new URL('../../../stacks/', import.meta.url));

export interface PulumiResult {
  readonly code: number;
  readonly out: string;
}

export interface PulumiRunOptions {
  readonly cwd?: string;
  /** Each line of the CLI's output as it comes. */
  readonly onLine?: (line: string) => void;
  /** Each engine event as it comes (`--event-log`, read while the command runs). */
  readonly onEvent?: (event: EngineEvent) => void;
}

/** Follows a JSON-lines file that another process appends to; `stop` reads what is left. */
function follow(file: string, onEvent: (e: EngineEvent) => void): { stop(): void } {
  let fd: number | undefined;
  let pos = 0;
  let partial = '';
  const buf = Buffer.alloc(1 << 16);
  const read = () => {
    if (fd === undefined) {
      if (!existsSync(file)) return;
      fd = openSync(file, 'r');
    }
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, pos);
      if (n <= 0) break;
      pos += n;
      partial += buf.subarray(0, n).toString('utf8');
    }
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      if (!l.trim()) continue;
      try {
        onEvent(JSON.parse(l) as EngineEvent);
      } catch {
        /* not an event: ignore */
      }
    }
  };
  const timer = setInterval(read, 200);
  return {
    stop() {
      clearInterval(timer);
      read();
      if (fd !== undefined) closeSync(fd);
    },
  };
}

export function pulumiOnLocalCluster(root: string, args: string[], opts: PulumiRunOptions = {}): Promise<PulumiResult> {
  const p = paths(root);
  const tc = resolveToolchain();
  const events = opts.onEvent ? mkdtempSync(join(tmpdir(), 'kiln-pulumi-events-')) : undefined;
  // The CLI offers --event-log only with PULUMI_DEBUG_COMMANDS set, as the Automation API sets it.
  const env = { ...process.env, ...pulumiEnv(p, tc), KUBECONFIG: p.kubeconfig, ...(events ? { PULUMI_DEBUG_COMMANDS: 'true' } : {}) };
  const eventArgs = events ? ['--event-log', join(events, 'events.jsonl')] : [];
  const tail = events && opts.onEvent ? follow(join(events, 'events.jsonl'), opts.onEvent) : undefined;
  return new Promise((resolve) => {
    const child = spawn(tc.bins.pulumi ?? 'pulumi', [...args, ...eventArgs, '--non-interactive'], { cwd: opts.cwd ?? STACKS_DIR, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let partial = '';
    const onData = (b: Buffer) => {
      const s = b.toString('utf8');
      out += s;
      if (!opts.onLine) return;
      partial += s;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) opts.onLine(l);
    };
    const done = (code: number, text: string) => {
      tail?.stop();
      if (events) rmSync(events, { recursive: true, force: true });
      resolve({ code, out: text });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('close', (code) => done(code ?? 1, out));
    child.on('error', (e) => done(127, String(e)));
  });
}
