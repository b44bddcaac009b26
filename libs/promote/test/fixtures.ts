/** Test helpers: a real git repository in a temp dir with a stacks/ project, and promotion records. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServedModel } from '@kiln/plan';

export const STAGING = `# staging: serves what kiln promote puts here
config:
  kiln:spec: configs/tiny.yaml # the pipeline
  kiln:train: false
  # the cluster's region, kept by every promotion
  aws:region: eu-west-1
`;

/** git's identity comes from the repository's config only: no environment override, no global or system config. */
export function isolateGit(): void {
  for (const k of ['GIT_AUTHOR_NAME', 'GIT_AUTHOR_EMAIL', 'GIT_COMMITTER_NAME', 'GIT_COMMITTER_EMAIL', 'GIT_DIR', 'GIT_WORK_TREE']) delete process.env[k];
  process.env.GIT_CONFIG_GLOBAL = '/dev/null';
  process.env.GIT_CONFIG_NOSYSTEM = '1';
}

/** A git repository with stacks/Pulumi.staging.yaml committed, its user configured. */
export function tempRepo(files: Record<string, string> = { 'stacks/Pulumi.staging.yaml': STAGING }): { repo: string; stacks: string; git: (...args: string[]) => string } {
  isolateGit();
  const repo = mkdtempSync(join(tmpdir(), 'kiln-promote-'));
  const git = (...args: string[]) => execFileSync('git', args, { cwd: repo, encoding: 'utf8' });
  git('init', '-q', '-b', 'main');
  git('config', 'user.name', 'Ada Lovelace');
  git('config', 'user.email', 'ada@example.com');
  git('config', 'commit.gpgsign', 'false');
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(repo, p, '..'), { recursive: true });
    writeFileSync(join(repo, p), text);
  }
  git('add', '.');
  git('commit', '-q', '-m', 'init');
  return { repo, stacks: join(repo, 'stacks'), git };
}

/** A promotion record of `run`, with a digest made from its name. */
export function record(run: string, over: Partial<ServedModel> = {}): ServedModel {
  return {
    action: 'promote',
    seq: 1,
    run,
    namespace: 'kiln-tiny',
    export: `pvc://kiln-artifacts/tiny/runs/${run}/export/`,
    repositories: { completions: `pvc://kiln-artifacts/tiny/runs/${run}/export/completions/` },
    digest: `sha256:${run.replace(/[^0-9a-f]/g, '').padEnd(64, '0').slice(0, 64)}`,
    files: 7,
    from: 'dev',
    evidence: { metrics: { 'humaneval.pass@1': 0.12 }, gates: [{ expr: 'humaneval.pass@1 >= 0.05', value: 0.12, passed: true }] },
    by: 'Ada Lovelace <ada@example.com>',
    at: '2026-12-02T12:00:00.000Z',
    ...over,
  };
}
