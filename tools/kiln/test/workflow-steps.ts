/**
 * Runs the steps of .github/workflows/kiln.yml on this machine, as a GitHub runner would: each `run:` step's
 * script through `bash -eo pipefail` with the workflow's, job's and step's env, `${{ … }}` replaced by local
 * values, and $GITHUB_ENV / $GITHUB_OUTPUT files read back between steps. A `uses:` step is mapped to the
 * command it amounts to (pulumi/actions preview → `pulumi preview --stack <stack>` in its work-dir).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const WORKFLOW_FILE = join(ROOT, '.github/workflows/kiln.yml');

export interface Step {
  readonly name?: string;
  readonly id?: string;
  readonly uses?: string;
  readonly run?: string;
  readonly with?: Readonly<Record<string, string | number | boolean>>;
  readonly env?: Readonly<Record<string, string>>;
  readonly 'working-directory'?: string;
}

export interface Job {
  readonly name?: string;
  readonly if?: string;
  readonly needs?: string | readonly string[];
  readonly permissions?: Readonly<Record<string, string>>;
  readonly concurrency?: { readonly group: string; readonly 'cancel-in-progress'?: boolean };
  readonly environment?: string;
  readonly strategy?: { readonly matrix?: Readonly<Record<string, unknown>> };
  readonly outputs?: Readonly<Record<string, string>>;
  readonly env?: Readonly<Record<string, string>>;
  readonly steps: readonly Step[];
}

export interface Workflow {
  readonly on: Readonly<Record<string, { readonly paths?: readonly string[]; readonly branches?: readonly string[] }>>;
  readonly permissions?: Readonly<Record<string, string>>;
  readonly env?: Readonly<Record<string, string>>;
  readonly jobs: Readonly<Record<string, Job>>;
}

export function loadWorkflow(file = WORKFLOW_FILE): Workflow {
  return parse(readFileSync(file, 'utf8')) as Workflow;
}

/** Every `${{ … }}` expression of a text, trimmed. */
export const expressions = (text: string): string[] => [...text.matchAll(/\$\{\{\s*(.*?)\s*\}\}/g)].map((m) => m[1]!);

/** Replaces each `${{ expr }}` by `values[expr]`; an expression the caller did not give a value throws, so a new one cannot slip by. */
export function substitute(text: string, values: Readonly<Record<string, string>>): string {
  return text.replace(/\$\{\{\s*(.*?)\s*\}\}/g, (_, expr: string) => {
    if (!(expr in values)) throw new Error(`no local value for the expression \${{ ${expr} }}`);
    return values[expr]!;
  });
}

/** `K=V` lines and `K<<DELIM … DELIM` blocks, as GitHub reads $GITHUB_ENV and $GITHUB_OUTPUT. */
export function readCommandFile(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = readFileSync(file, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    const heredoc = /^([^=<]+)<<(.+)$/.exec(l);
    if (heredoc) {
      const body: string[] = [];
      while (++i < lines.length && lines[i] !== heredoc[2]) body.push(lines[i]!);
      out[heredoc[1]!] = body.join('\n');
    } else if (l.includes('=')) out[l.slice(0, l.indexOf('='))] = l.slice(l.indexOf('=') + 1);
  }
  return out;
}

export interface StepResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** What the step wrote to $GITHUB_OUTPUT. */
  readonly outputs: Record<string, string>;
  /** The command that ran, for failure messages. */
  readonly command: string;
}

/** The command a `uses:` step amounts to here; `cwd` relative to the workspace. */
export interface UsesCommand {
  readonly argv: readonly string[];
  readonly cwd?: string;
}

export interface RunnerOptions {
  /** The workspace (the checkout): the steps' working directory. */
  readonly workspace?: string;
  /** Values of the `${{ … }}` expressions; `runner.temp` is added. */
  readonly values?: Readonly<Record<string, string>>;
  /** Environment of every step before the workflow's (PATH, cluster settings). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** How `uses:` steps run: the argv and its working directory, or undefined for a step with nothing to run here. */
  readonly uses?: (step: Step, inputs: Record<string, string>) => UsesCommand | undefined;
}

/** One job's run on this machine: its temp folder, $GITHUB_ENV carried from step to step. */
export class LocalRunner {
  readonly temp = mkdtempSync(join(tmpdir(), 'kiln-workflow-'));
  readonly workspace: string;
  readonly values: Record<string, string>;
  private readonly githubEnv = join(this.temp, 'github-env');
  private readonly baseEnv: Record<string, string | undefined>;
  readonly workflow: Workflow;
  readonly job: Job;
  private readonly opts: RunnerOptions;

  constructor(workflow: Workflow, job: Job, opts: RunnerOptions = {}) {
    this.workflow = workflow;
    this.job = job;
    this.opts = opts;
    this.workspace = opts.workspace ?? ROOT;
    this.values = { 'runner.temp': this.temp, ...opts.values };
    writeFileSync(this.githubEnv, '');
    // Node 24 (this process's) and the repository's bins first, as setup-node and `npm ci` leave a runner.
    const path = [dirname(process.execPath), join(ROOT, 'node_modules', '.bin'), process.env.PATH ?? ''].join(delimiter);
    const { FORCE_COLOR: _f, NO_COLOR: _n, ...inherited } = process.env;
    this.baseEnv = { ...inherited, PATH: path, CI: 'true', RUNNER_TEMP: this.temp, GITHUB_WORKSPACE: this.workspace, GITHUB_ENV: this.githubEnv, ...opts.env };
  }

  /** The env a step sees: the base, the workflow's, the job's, what earlier steps wrote to $GITHUB_ENV, the step's. */
  env(step: Step): Record<string, string> {
    const sub = (e: Readonly<Record<string, string>> | undefined) => Object.fromEntries(Object.entries(e ?? {}).map(([k, v]) => [k, substitute(String(v), this.values)]));
    const merged = { ...this.baseEnv, ...sub(this.workflow.env), ...sub(this.job.env), ...readCommandFile(this.githubEnv), ...sub(step.env) };
    return Object.fromEntries(Object.entries(merged).filter((e): e is [string, string] => e[1] !== undefined));
  }

  /** Runs one step; a `uses:` step through `opts.uses` (undefined: nothing to run, reported as success). */
  step(step: Step): StepResult {
    const output = join(this.temp, `github-output-${Math.random().toString(36).slice(2)}`);
    writeFileSync(output, '');
    const env = { ...this.env(step), GITHUB_OUTPUT: output };
    let argv: readonly string[];
    let cwd = join(this.workspace, step['working-directory'] ?? '.');
    if (step.run !== undefined) {
      argv = ['bash', '--noprofile', '--norc', '-eo', 'pipefail', '-c', substitute(step.run, this.values)];
    } else {
      const inputs = Object.fromEntries(Object.entries(step.with ?? {}).map(([k, v]) => [k, substitute(String(v), this.values)]));
      const u = this.opts.uses?.(step, inputs);
      if (!u) return { code: 0, stdout: '', stderr: '', outputs: {}, command: `(${step.uses}: nothing to run here)` };
      argv = u.argv;
      if (u.cwd) cwd = join(this.workspace, u.cwd);
    }
    const r = spawnSync(argv[0]!, argv.slice(1), { cwd, env, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20 });
    const outputs = readCommandFile(output);
    return { code: r.status ?? 1, stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${r.error ? String(r.error) : ''}`, outputs, command: argv.join(' ') };
  }

  /** The job's step named `name` (its `name:`, else its `uses:` or `run:`). */
  find(name: string): Step {
    const s = this.job.steps.find((x) => (x.name ?? x.uses ?? x.run) === name);
    if (!s) throw new Error(`the job has no step "${name}"`);
    return s;
  }

  dispose(): void {
    rmSync(this.temp, { recursive: true, force: true });
  }
}

/** `npm ci` would reinstall the workspace the test runs in: here it runs as a dry run against the lock file, offline. */
export const localRun = (step: Step): Step => (step.run && /^npm ci\b/.test(step.run) ? { ...step, run: `${step.run} --dry-run --offline` } : step);
