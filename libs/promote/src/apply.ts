/** `pulumi preview` then `pulumi up` of one stack through the Automation API, waiting while another update holds the stack. */
import { basename, dirname, delimiter } from 'node:path';
import { ConcurrentUpdateError, LocalWorkspace, PulumiCommand, StackNotFoundError, type Stack } from '@pulumi/pulumi/automation/index.js';

export interface ApplyOptions {
  /** The Pulumi project dir (stacks/) and the stack. */
  readonly stacksDir: string;
  readonly stack: string;
  /** Environment for every Pulumi command (the backend, PULUMI_HOME, KUBECONFIG). */
  readonly envVars?: Readonly<Record<string, string>>;
  /** Path of the pulumi binary; absent: `pulumi` on PATH. */
  readonly pulumi?: string;
  /** Each line of Pulumi's output (the preview first, then the update). */
  readonly onOutput?: (line: string) => void;
  /** Told once per wait while another update holds the stack's lock. */
  readonly onWait?: (message: string) => void;
  /** Retry interval while the stack is locked (default 2 s) and the longest wait (default 10 min). */
  readonly retryMs?: number;
  readonly timeoutMs?: number;
}

export interface ApplyResult {
  /** The stack's outputs after the update, plain values. */
  readonly outputs: Record<string, unknown>;
  /** `pulumi up`'s summary: the resource changes by kind. */
  readonly changes: Readonly<Record<string, number>>;
}

/** Applies a stack: preview, then up. What the CLI and promote() use; tests inject their own. */
export type ApplyFn = (opts: ApplyOptions) => Promise<ApplyResult>;

/** Lines out of Pulumi's output chunks. */
function lines(onLine: ((l: string) => void) | undefined): { push: (s: string) => void; flush: () => void } {
  let partial = '';
  return {
    push: (s) => {
      if (!onLine) return;
      partial += s;
      const ls = partial.split('\n');
      partial = ls.pop() ?? '';
      for (const l of ls) onLine(l);
    },
    flush: () => {
      if (onLine && partial) onLine(partial);
      partial = '';
    },
  };
}

async function pulumiCommand(bin: string | undefined, env: Record<string, string>): Promise<PulumiCommand> {
  // The toolchain pins its own CLI version (tools/toolchain): no check against this SDK's minimum.
  if (bin && basename(dirname(bin)) === 'bin') return PulumiCommand.get({ root: dirname(dirname(bin)), skipVersionCheck: true });
  if (bin) env.PATH = `${dirname(bin)}${delimiter}${env.PATH ?? process.env.PATH ?? ''}`;
  return PulumiCommand.get({ skipVersionCheck: true });
}

/** Retries `op` while Pulumi reports the stack locked by another update, every `retryMs` up to `timeoutMs`. */
export async function retryLocked<T>(opts: ApplyOptions, what: string, op: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 600_000);
  let told = false;
  for (;;) {
    try {
      return await op();
    } catch (e) {
      if (!(e instanceof ConcurrentUpdateError) || Date.now() > deadline) throw e;
      if (!told) opts.onWait?.(`stack ${opts.stack} is locked by another update; ${what} waits for it (retrying every ${Math.round((opts.retryMs ?? 2000) / 1000)} s, up to ${Math.round((opts.timeoutMs ?? 600_000) / 60_000)} min)`);
      told = true;
      await new Promise((r) => setTimeout(r, opts.retryMs ?? 2000));
    }
  }
}

/** Preview (its output first), then up, of `opts.stack` in `opts.stacksDir`; returns the stack's outputs. */
export async function applyStack(opts: ApplyOptions): Promise<ApplyResult> {
  const envVars: Record<string, string> = { ...opts.envVars };
  const cmd = await pulumiCommand(opts.pulumi, envVars);
  let stack: Stack;
  try {
    stack = await LocalWorkspace.selectStack({ stackName: opts.stack, workDir: opts.stacksDir }, { envVars, pulumiCommand: cmd });
  } catch (e) {
    if (e instanceof StackNotFoundError) throw new Error(`the Pulumi backend has no stack "${opts.stack}": create it once with \`pulumi stack init ${opts.stack}\` in ${opts.stacksDir}`);
    throw e;
  }
  const out = lines(opts.onOutput);
  await retryLocked(opts, 'the preview', () => stack.preview({ onOutput: out.push, color: 'never' }));
  out.flush();
  const up = await retryLocked(opts, 'the update', () => stack.up({ onOutput: out.push, color: 'never' }));
  out.flush();
  const outputs = Object.fromEntries(Object.entries(up.outputs).map(([k, v]) => [k, v.value as unknown]));
  return { outputs, changes: { ...(up.summary.resourceChanges ?? {}) } as Record<string, number> };
}
