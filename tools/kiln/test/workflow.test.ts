import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { expressions, loadWorkflow, localRun, LocalRunner, ROOT, type Step } from './workflow-steps.ts';

// The unit tier of .github/workflows/kiln.yml: its shape (triggers, permissions, concurrency, secrets), and
// the steps that need no cluster run here as a fresh runner would (test/integration/workflow.test.ts runs the rest).
const wf = loadWorkflow();
const tmp = mkdtempSync(join(tmpdir(), 'kiln-workflow-unit-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A checkout as a runner has it: the repository's files, but no local cluster (.kiln) and a HOME without ~/.kube. */
function freshCheckout(): { workspace: string; home: string } {
  const workspace = join(tmp, 'workspace');
  const home = join(tmp, 'home');
  mkdirSync(workspace, { recursive: true });
  mkdirSync(home, { recursive: true });
  for (const f of readdirSync(ROOT)) if (!['.kiln', '.nx', 'test-results'].includes(f) && !existsSync(join(workspace, f))) symlinkSync(join(ROOT, f), join(workspace, f));
  return { workspace, home };
}

const noSecrets = { 'secrets.KUBECONFIG': '', 'secrets.PULUMI_ACCESS_TOKEN': '', 'secrets.PULUMI_CONFIG_PASSPHRASE': '', 'vars.PULUMI_BACKEND_URL': '' };

describe('the GitOps workflow', () => {
  it('runs on pull requests and pushes to main that touch a spec or the stacks', () => {
    const paths = ['configs/**', 'kiln.yaml', 'stacks/**'];
    expect(wf.on.pull_request?.paths).toEqual(paths);
    expect(wf.on.push).toEqual({ branches: ['main'], paths });
  });

  it('grants nothing by default and each job only what it uses: pull-requests: write where it comments', () => {
    expect(wf.permissions).toEqual({});
    for (const [name, job] of Object.entries(wf.jobs)) {
      const comments = job.steps.some((s) => s.uses?.startsWith('marocchino/sticky-pull-request-comment@') || s.with?.['comment-on-pr'] === true);
      expect(job.permissions, name).toEqual(comments ? { contents: 'read', 'pull-requests': 'write' } : { contents: 'read' });
    }
  });

  it('never runs two updates of one stack at once, and each up is its stack\'s', () => {
    const up = wf.jobs.up!;
    expect(up.concurrency).toEqual({ group: 'kiln-up-${{ matrix.stack }}', 'cancel-in-progress': false });
    expect(up.strategy?.matrix?.stack).toBe('${{ fromJSON(needs.stacks.outputs.stacks) }}');
    const pulumi = up.steps.find((s) => s.uses?.startsWith('pulumi/actions@'))!;
    expect(pulumi.uses).toBe('pulumi/actions@v6');
    expect(pulumi.with).toMatchObject({ command: 'up', 'stack-name': '${{ matrix.stack }}', 'work-dir': 'stacks' });
    const preview = wf.jobs.plan!.steps.find((s) => s.uses?.startsWith('pulumi/actions@'))!;
    expect(preview.with).toMatchObject({ command: 'preview', 'stack-name': 'dev', 'work-dir': 'stacks', 'comment-on-pr': true });
    // Only inputs pulumi/actions documents (its README's "Configuration"): a misspelt one would be ignored silently.
    for (const s of [pulumi, preview]) expect(Object.keys(s.with ?? {}).filter((key) => !['command', 'stack-name', 'work-dir', 'cloud-url', 'comment-on-pr'].includes(key))).toEqual([]);
  });

  it('reads secrets only into step env, and no script prints one', () => {
    for (const [name, job] of Object.entries(wf.jobs)) {
      for (const s of job.steps) {
        // A secret in a script would be pasted into it (and into `set -x` traces); in env it is masked and quoted.
        expect(expressions(s.run ?? '').filter((e) => e.includes('secrets.')), `${name}: ${s.name}`).toEqual([]);
        expect(expressions(JSON.stringify(s.with ?? {})).filter((e) => e.includes('secrets.')), `${name}: ${s.name}`).toEqual([]);
        const secretVars = Object.entries(s.env ?? {}).filter(([, v]) => v.includes('secrets.')).map(([k]) => k);
        for (const v of secretVars) {
          for (const line of (s.run ?? '').split('\n').filter((l) => l.includes(`$${v}`))) {
            expect(line, `${name}: ${s.name}`).not.toMatch(/\becho\b|set -x/);
            // Either a test of whether it is set, or written to a file under the runner's temp folder.
            expect(line, `${name}: ${s.name}: a secret is only tested or written to a file`).toMatch(new RegExp(`\\[ -[nz] "\\$${v}" \\]|>\\s*"\\$RUNNER_TEMP/`));
          }
        }
      }
    }
  });
});

describe('the pull request job on a runner without a cluster', () => {
  const { workspace, home } = freshCheckout();
  const job = wf.jobs.plan!;
  const runner = new LocalRunner(wf, job, {
    workspace,
    env: { HOME: home, KUBECONFIG: undefined },
    values: { ...noSecrets, 'github.event.pull_request.number': '17' },
    // The checkout is the workspace; setup-node is this Node; the comment is the file it would post.
    uses: (step, inputs) =>
      step.uses?.startsWith('actions/setup-node@') ? { argv: [process.execPath, '--version'] } : step.uses?.startsWith('marocchino/sticky-pull-request-comment@') ? { argv: ['cat', inputs.path!] } : undefined,
  });
  afterAll(() => runner.dispose());
  const run = (s: Step) => {
    const r = runner.step(localRun(s));
    expect(r.code, `${r.command}\n${r.stdout}\n${r.stderr}`).toBe(0);
    return r;
  };

  it('installs (a dry run of npm ci against the lock file), on Node 24', () => {
    expect(job.steps.find((s) => s.uses?.startsWith('actions/setup-node@'))!.with?.['node-version']).toBe(24);
    expect(run(job.steps.find((s) => s.uses?.startsWith('actions/setup-node@'))!).stdout).toMatch(/^v24\./);
    run(runner.find('npm ci --no-audit --no-fund'));
  });

  it('writes no kubeconfig when the secret is not set', () => {
    run(runner.find('kubeconfig'));
    expect(existsSync(join(runner.temp, 'kubeconfig'))).toBe(false);
    expect(runner.env({}).KUBECONFIG).toBeUndefined();
  });

  it('validates every spec', () => {
    const r = run(runner.find('kiln validate'));
    expect(`${r.stdout}${r.stderr}`).toMatch(/tiny\.yaml/);
  });

  it('writes the plan as markdown, without the cluster section, and comments exactly that file', () => {
    run(runner.find('kiln plan'));
    const md = readFileSync(join(runner.temp, 'plan.md'), 'utf8');
    expect(md.split('\n')[0]).toBe('<!-- kiln-plan -->');
    expect(md).toContain('### kiln plan: `tiny` on stack `dev`');
    expect(md).toMatch(/^\| `train` \| train \| `pack` \|/m);
    expect(md).toMatch(/^\| GPU time \| .* GPU-hours of /m);
    expect(md).toContain('_Not checked against a cluster');
    expect(run(runner.find('comment the plan')).stdout).toBe(md);
  });

  it('still comments when the plan fails: the body says why', () => {
    const broken = new LocalRunner({ ...wf, env: { ...wf.env, KILN_SPEC: 'libs/spec/test/fixtures/invalid/heads-not-dividing.yaml' } }, job, { workspace, env: { HOME: home, KUBECONFIG: undefined } });
    try {
      expect(broken.step(broken.find('kiln plan')).code).toBe(1);
      expect(readFileSync(join(broken.temp, 'plan.md'), 'utf8')).toMatch(/is invalid[\s\S]*KL301/);
      expect((broken.find('comment the plan') as Step & { if?: string }).if).toBe("${{ !cancelled() && steps.plan.outcome != 'skipped' }}");
    } finally {
      broken.dispose();
    }
  });
});

describe('the stacks a push updates', () => {
  const repo = join(tmp, 'repo');
  const git = (...args: string[]) => execFileSync('git', args, { cwd: repo, encoding: 'utf8' }).trim();
  const commit = (files: Record<string, string | null>, message: string) => {
    for (const [f, content] of Object.entries(files)) {
      if (content === null) unlinkSync(join(repo, f));
      else {
        mkdirSync(join(repo, f, '..'), { recursive: true });
        writeFileSync(join(repo, f), content);
      }
    }
    git('add', '-A');
    git('commit', '-q', '-m', message);
    return git('rev-parse', 'HEAD');
  };
  mkdirSync(repo, { recursive: true });
  git('init', '-q', '-b', 'main');
  git('config', 'user.email', 'ci@example.com');
  git('config', 'user.name', 'CI');
  const first = commit({ 'configs/tiny.yaml': 'a\n', 'stacks/Pulumi.dev.yaml': 'config: {}\n', 'stacks/Pulumi.staging.yaml': 'config: {}\n', 'stacks/Pulumi.prod.yaml': 'config: {}\n' }, 'init');

  const changed = (before: string): string[] => {
    const runner = new LocalRunner(wf, wf.jobs.stacks!, { workspace: repo, values: { 'github.event.before': before } });
    try {
      const r = runner.step(runner.find('changed stacks'));
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.outputs.stacks!) as string[];
    } finally {
      runner.dispose();
    }
  };

  it('is dev after a spec change (a merge)', () => {
    const before = git('rev-parse', 'HEAD');
    commit({ 'configs/tiny.yaml': 'b\n' }, 'spec change');
    expect(changed(before)).toEqual(['dev']);
  });

  it('is the promoted stack alone after a promotion commit', () => {
    const before = git('rev-parse', 'HEAD');
    commit({ 'stacks/Pulumi.staging.yaml': 'config:\n  kiln:model: {}\n' }, 'kiln: promote r-1 to staging (dev → staging)');
    expect(changed(before)).toEqual(['staging']);
  });

  it('is every stack a push of several commits touched, each once, and no deleted one', () => {
    const before = git('rev-parse', 'HEAD');
    commit({ 'stacks/Pulumi.prod.yaml': 'config:\n  kiln:model: {}\n' }, 'promote to prod');
    commit({ 'configs/tiny.yaml': 'c\n', 'stacks/Pulumi.staging.yaml': null }, 'spec change, staging retired');
    commit({ 'stacks/Pulumi.prod.yaml': 'config:\n  kiln:model: { run: r-2 }\n' }, 'promote to prod again');
    expect(changed(before)).toEqual(['dev', 'prod']);
  });

  it('falls back to the last commit when the push has no usable `before` (a new branch, a force push)', () => {
    commit({ 'stacks/Pulumi.dev.yaml': 'config:\n  kiln:model: {}\n' }, 'promote to dev');
    expect(changed('0000000000000000000000000000000000000000')).toEqual(['dev']);
    expect(changed('')).toEqual(['dev']);
    expect(first).toMatch(/^[0-9a-f]{40}$/);
  });
});

describe('the up job', () => {
  it('refuses to update a stack when its KUBECONFIG secret is missing, and writes nothing', () => {
    const runner = new LocalRunner(wf, wf.jobs.up!, { values: { 'secrets.KUBECONFIG': '', 'matrix.stack': 'staging' } });
    try {
      const r = runner.step(runner.find('kubeconfig'));
      expect(r.code).toBe(1);
      expect(r.stdout).toContain('::error::the KUBECONFIG secret is not set for stack staging');
      expect(existsSync(join(runner.temp, 'kubeconfig'))).toBe(false);
    } finally {
      runner.dispose();
    }
  });

  it('writes a set secret to a file only its user reads, and hands its path to the later steps', () => {
    const runner = new LocalRunner(wf, wf.jobs.up!, { values: { 'secrets.KUBECONFIG': 'apiVersion: v1\nkind: Config\n', 'matrix.stack': 'staging' } });
    try {
      const r = runner.step(runner.find('kubeconfig'));
      expect(r.code, r.stderr).toBe(0);
      expect(`${r.stdout}${r.stderr}`).toBe('');
      const file = join(runner.temp, 'kubeconfig');
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(readFileSync(file, 'utf8')).toBe('apiVersion: v1\nkind: Config\n\n');
      expect(runner.env({}).KUBECONFIG).toBe(file);
    } finally {
      runner.dispose();
    }
  });
});
