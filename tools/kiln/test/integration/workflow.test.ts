import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { paths, pulumiOnLocalCluster } from '@kiln/local-cluster';
import { loadWorkflow, localRun, LocalRunner, substitute, type Job, type Step, type Workflow } from '../workflow-steps.ts';
import { k, ROOT, uniq } from './helpers.ts';

// Every step of .github/workflows/kiln.yml against the local cluster, as a runner would run it: `run:` steps
// through bash with `${{ … }}` replaced by local values (the KUBECONFIG secret is the local cluster's
// kubeconfig), and pulumi/actions mapped to the Pulumi CLI in its work-dir on a stack of the test's own
// (the workflow's `dev` becomes that stack, its spec a copy of configs/tiny.yaml in a namespace of its own).
const tiny = readFileSync(join(ROOT, 'configs/tiny.yaml'), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'kiln-workflow-it-'));
const specPath = join(dir, 'kiln.yaml');
const stack = uniq('wf');
const ns = uniq('kiln-it-wf');
const base = loadWorkflow();
// The workflow's own values for this repository, with the spec the test's stack deploys.
const wf: Workflow = { ...base, env: { ...base.env, KILN_SPEC: specPath } };
const secrets = () => ({ 'secrets.KUBECONFIG': readFileSync(paths(ROOT).kubeconfig, 'utf8'), 'secrets.PULUMI_ACCESS_TOKEN': '', 'secrets.PULUMI_CONFIG_PASSPHRASE': '', 'vars.PULUMI_BACKEND_URL': '' });

/** pulumi/actions as the CLI it runs: `pulumi <command> --stack <stack>` in `work-dir`, on the local backend and cluster. */
async function pulumiAction(step: Step, values: Record<string, string>) {
  const inputs = Object.fromEntries(Object.entries(step.with ?? {}).map(([key, v]) => [key, substitute(String(v), values)]));
  const name = inputs['stack-name'] === 'dev' ? stack : inputs['stack-name']!;
  const args = inputs.command === 'up' ? ['up', '--yes'] : [inputs.command!];
  return pulumiOnLocalCluster(ROOT, [...args, '--stack', name], { cwd: join(ROOT, inputs['work-dir'] ?? '.') });
}

/** Runs a job's steps in order, as the runner does; a pulumi/actions step through `pulumiAction`. */
async function runJob(job: Job, values: Record<string, string>, check: (step: Step, out: string) => void = () => {}): Promise<LocalRunner> {
  const runner = new LocalRunner(wf, job, {
    values,
    uses: (step, inputs) =>
      step.uses?.startsWith('actions/setup-node@') ? { argv: [process.execPath, '--version'] } : step.uses?.startsWith('marocchino/sticky-pull-request-comment@') ? { argv: ['cat', inputs.path!] } : undefined,
  });
  for (const step of job.steps) {
    if (step.uses?.startsWith('pulumi/actions@')) {
      const r = await pulumiAction(step, runner.values);
      expect(r.code, r.out).toBe(0);
      check(step, r.out);
    } else {
      const r = runner.step(localRun(step));
      expect(r.code, `${r.command}\n${r.stdout}\n${r.stderr}`).toBe(0);
      check(step, r.stdout);
    }
  }
  return runner;
}

describe('the GitOps workflow against the local cluster', () => {
  const runners: LocalRunner[] = [];
  beforeAll(async () => {
    writeFileSync(specPath, tiny.replace('namespace: kiln-tiny', `namespace: ${ns}`));
    expect((await pulumiOnLocalCluster(ROOT, ['stack', 'init', stack])).code).toBe(0);
    expect((await pulumiOnLocalCluster(ROOT, ['config', 'set', 'kiln:spec', specPath, '--stack', stack])).code).toBe(0);
    expect((await pulumiOnLocalCluster(ROOT, ['config', 'set', 'kiln:overlay', 'dev', '--stack', stack])).code).toBe(0);
  });
  afterAll(async () => {
    for (const r of runners) r.dispose();
    await pulumiOnLocalCluster(ROOT, ['destroy', '--yes', '--stack', stack]);
    await pulumiOnLocalCluster(ROOT, ['stack', 'rm', '--yes', '--force', stack]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('on a pull request: writes the kubeconfig secret privately, validates, plans what applying changes, and previews the stack', async () => {
    const outs = new Map<string, string>();
    const runner = await runJob(wf.jobs.plan!, { ...secrets(), 'github.event.pull_request.number': '17' }, (s, out) => outs.set(s.name ?? s.uses ?? s.run!, out));
    runners.push(runner);
    const kubeconfig = join(runner.temp, 'kubeconfig');
    expect(statSync(kubeconfig).mode & 0o777).toBe(0o600);
    expect(runner.env({}).KUBECONFIG).toBe(kubeconfig);
    const md = readFileSync(join(runner.temp, 'plan.md'), 'utf8');
    expect(outs.get('comment the plan')).toBe(md);
    expect(md).toMatch(/^Cluster `[^`]+`: fits on \d+ nodes\.$/m);
    expect(md).toMatch(new RegExp(`^- no run of tiny in namespace ${ns} yet: applying starts r-[0-9a-f]{12}$`, 'm'));
    // Nothing of the kubeconfig reaches the comment: not the server's address, not a key.
    expect(md).not.toMatch(/https:\/\/127\.0\.0\.1|client-key|BEGIN/);
    expect(outs.get('pulumi preview')).toMatch(/kubernetes:kiln\.dev\/v1alpha1:ModelRun\s+\S+\s+create/);
  });

  it('on a push with a promotion commit: picks that stack, and `pulumi up` applies it; the next plan finds the run', async () => {
    // The promotion commit, in a repository of its own: the test stack's config file changes.
    const repo = join(dir, 'repo');
    mkdirSync(join(repo, 'stacks'), { recursive: true });
    const git = (...args: string[]) => execFileSync('git', args, { cwd: repo, encoding: 'utf8' }).trim();
    git('init', '-q', '-b', 'main');
    git('config', 'user.email', 'ci@example.com');
    git('config', 'user.name', 'CI');
    const file = join(repo, 'stacks', `Pulumi.${stack}.yaml`);
    writeFileSync(file, 'config: {}\n');
    git('add', '-A');
    git('commit', '-q', '-m', 'init');
    const before = git('rev-parse', 'HEAD');
    writeFileSync(file, readFileSync(join(ROOT, 'stacks', `Pulumi.${stack}.yaml`), 'utf8'));
    git('commit', '-qam', `kiln: promote r-x to ${stack}`);
    const picker = new LocalRunner(wf, wf.jobs.stacks!, { workspace: repo, values: { 'github.event.before': before } });
    runners.push(picker);
    const picked = picker.step(picker.find('changed stacks'));
    expect(picked.code, picked.stderr).toBe(0);
    const matrix = JSON.parse(substitute(wf.jobs.up!.strategy!.matrix!.stack as string, { 'fromJSON(needs.stacks.outputs.stacks)': picked.outputs.stacks! })) as string[];
    expect(matrix).toEqual([stack]);

    for (const s of matrix) runners.push(await runJob(wf.jobs.up!, { ...secrets(), 'matrix.stack': s }));
    const runs = (await k('GET', `/apis/kiln.dev/v1alpha1/namespaces/${ns}/modelruns`)).body as { items: { spec: { runId: string } }[] };
    expect(runs.items).toHaveLength(1);

    const again = new LocalRunner(wf, wf.jobs.plan!, { values: { ...secrets(), 'github.event.pull_request.number': '18' } });
    runners.push(again);
    for (const name of ['kubeconfig', 'kiln plan']) expect(again.step(again.find(name)).code).toBe(0);
    expect(readFileSync(join(again.temp, 'plan.md'), 'utf8')).toContain(`- run ${runs.items[0]!.spec.runId} already exists: applying starts no new run`);
  });

});
