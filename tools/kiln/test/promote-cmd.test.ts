/** kiln promote, rollback and history as commands: usage errors, help, and history/rollback over a real git repository. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ServedModel } from '@kiln/plan';
import { commitFile, writeStackConfig } from '@kiln/promote';
import { main } from '../src/cli.ts';

async function kiln(...argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, { out: (t) => out.push(t), err: (t) => err.push(t), isTTY: false, color: false });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function repo() {
  for (const k of ['GIT_AUTHOR_NAME', 'GIT_AUTHOR_EMAIL', 'GIT_COMMITTER_NAME', 'GIT_COMMITTER_EMAIL']) delete process.env[k];
  process.env.GIT_CONFIG_GLOBAL = '/dev/null';
  process.env.GIT_CONFIG_NOSYSTEM = '1';
  const dir = mkdtempSync(join(tmpdir(), 'kiln-promote-cmd-'));
  dirs.push(dir);
  const git = (...a: string[]) => execFileSync('git', a, { cwd: dir, encoding: 'utf8' });
  git('init', '-q', '-b', 'main');
  git('config', 'user.name', 'Ada Lovelace');
  git('config', 'user.email', 'ada@example.com');
  git('config', 'commit.gpgsign', 'false');
  mkdirSync(join(dir, 'stacks'));
  writeFileSync(join(dir, 'stacks/Pulumi.staging.yaml'), 'config:\n  kiln:spec: configs/tiny.yaml\n  kiln:train: false\n');
  git('add', '.');
  git('commit', '-q', '-m', 'init');
  const stacks = join(dir, 'stacks');
  const promoteRecord = async (run: string, seq: number) => {
    const r: ServedModel = {
      action: 'promote',
      seq,
      run,
      namespace: 'kiln-tiny',
      export: `pvc://a/runs/${run}/export/`,
      repositories: { completions: `pvc://a/runs/${run}/export/completions/` },
      digest: `sha256:${String(seq).repeat(64)}`,
      files: 3,
      from: 'dev',
      evidence: { metrics: { 'humaneval.pass@1': 0.1 }, gates: [{ expr: 'humaneval.pass@1 >= 0.05', value: 0.1, passed: true }] },
      by: 'Ada Lovelace <ada@example.com>',
      at: '2026-12-02T12:00:00.000Z',
    };
    writeStackConfig(stacks, 'staging', { model: r });
    await commitFile(dir, join(stacks, 'Pulumi.staging.yaml'), `kiln: promote ${run} to staging (dev → staging)\n\nKiln-Run: ${run}\nKiln-Action: promote`);
  };
  return { dir, stacks, git, promoteRecord };
}

describe('kiln promote', () => {
  it('--help names the options and exit codes', async () => {
    const r = await kiln('promote', '--help');
    expect(r.code).toBe(0);
    expect(r.out).toContain('Usage: kiln promote <run> --to STACK');
    expect(r.out).toMatch(/--override\s+promote past failing gates/);
    expect(r.out).toContain('Exit codes: 0 promoted, 1 refused');
    expect((await kiln('rollback', '--help')).out).toContain('Usage: kiln rollback <stack>');
    expect((await kiln('history', '--help')).out).toContain('seq, action, run, digest (short), from, gates, by, when, commit');
    expect((await kiln('--help')).out).toMatch(/promote\s+promote a run's model into a stack/);
  });

  it('--override without --reason is a usage error (exit 2)', async () => {
    const r = await kiln('promote', 'r-0123456789ab', '--to', 'staging', '--override');
    expect(r.code).toBe(2);
    expect(r.err).toContain('--override needs --reason');
  });

  it('a run and --from together, or neither, or no --to, are usage errors', async () => {
    expect((await kiln('promote', 'r-0123456789ab', '--from', 'dev', '--to', 'staging')).code).toBe(2);
    expect((await kiln('promote', '--to', 'staging')).code).toBe(2);
    const r = await kiln('promote', 'r-0123456789ab');
    expect(r.code).toBe(2);
    expect(r.err).toContain('--to STACK is required');
  });
});

describe('kiln history and kiln rollback', () => {
  it('history lists the promotions from git; rollback commits the previous one; a second rollback has nothing to go to', async () => {
    const { stacks, git, promoteRecord } = repo();
    await promoteRecord('r-aaaaaaaaaaaa', 1);
    await promoteRecord('r-bbbbbbbbbbbb', 2);
    let h = await kiln('history', 'staging', '--stacks', stacks);
    expect(h.code).toBe(0);
    const rows = h.out.split('\n');
    expect(rows[0]).toMatch(/^SEQ\s+ACTION\s+RUN\s+DIGEST\s+FROM\s+GATES\s+BY\s+WHEN\s+COMMIT$/);
    expect(rows[1]).toMatch(/^1\s+promote\s+r-aaaaaaaaaaaa\s+111111111111\s+dev\s+1\/1\s+Ada Lovelace <ada@example.com>/);
    expect(rows[2]).toMatch(/^2\s+promote\s+r-bbbbbbbbbbbb/);

    const r = await kiln('rollback', 'staging', '--stacks', stacks);
    expect(r.code).toBe(0);
    expect(r.out).toContain('rolled back staging to r-aaaaaaaaaaaa (from r-bbbbbbbbbbbb)');
    expect(git('log', '-1', '--format=%s').trim()).toBe('kiln: rollback staging to r-aaaaaaaaaaaa');
    h = await kiln('history', 'staging', '--stacks', stacks, '--json');
    const entries = JSON.parse(h.out) as { action: string; record: ServedModel }[];
    expect(entries.map((e) => [e.action, e.record.run, e.record.seq])).toEqual([
      ['promote', 'r-aaaaaaaaaaaa', 1],
      ['promote', 'r-bbbbbbbbbbbb', 2],
      ['rollback', 'r-aaaaaaaaaaaa', 3],
    ]);

    const again = await kiln('rollback', 'staging', '--stacks', stacks);
    expect(again.code).toBe(1);
    expect(again.err).toContain('nothing to roll back to');
  });

  it('history of a stack that does not exist is exit 1 naming it', async () => {
    const { stacks } = repo();
    const r = await kiln('history', 'qa', '--stacks', stacks);
    expect(r.code).toBe(1);
    expect(r.err).toContain('no stack "qa"');
  });
});
