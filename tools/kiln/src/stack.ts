/** Runs the Pulumi CLI on the repository's stacks/ project against the local cluster and backend. */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { paths, pulumiEnv } from './cluster.ts';
import { resolveToolchain } from './toolchain.ts';

export const STACKS_DIR = fileURLToPath(new URL('../../../stacks/', import.meta.url));

export interface PulumiResult {
  readonly code: number;
  readonly out: string;
}

export function pulumiOnLocalCluster(root: string, args: string[], opts: { cwd?: string; onLine?: (line: string) => void } = {}): Promise<PulumiResult> {
  const p = paths(root);
  const tc = resolveToolchain();
  const env = { ...process.env, ...pulumiEnv(p, tc), KUBECONFIG: p.kubeconfig };
  return new Promise((resolve) => {
    const child = spawn(tc.bins.pulumi ?? 'pulumi', [...args, '--non-interactive'], { cwd: opts.cwd ?? STACKS_DIR, env, stdio: ['ignore', 'pipe', 'pipe'] });
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
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('close', (code) => resolve({ code: code ?? 1, out }));
    child.on('error', (e) => resolve({ code: 127, out: String(e) }));
  });
}
