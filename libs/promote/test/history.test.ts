import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { ServedModel } from '@kiln/plan';
import { commitFile, fileHistory, gitUser, promotionHistory, rollbackTarget, trailers, writeStackConfig } from '../src/index.ts';
import { record, tempRepo } from './fixtures.ts';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function setup() {
  const t = tempRepo();
  dirs.push(t.repo);
  const file = `${t.stacks}/Pulumi.staging.yaml`;
  const commit = async (model: ServedModel, action = model.action) => {
    writeStackConfig(t.stacks, 'staging', { model });
    return commitFile(t.repo, file, `kiln: ${action} ${model.run}\n\nbody\n\nKiln-Run: ${model.run}\nKiln-Action: ${action}`);
  };
  return { ...t, file, commit };
}

describe('git', () => {
  it('commits only the stack config; other staged changes stay staged', async () => {
    const { repo, file, git, stacks } = setup();
    const { writeFileSync } = await import('node:fs');
    writeFileSync(`${repo}/other.txt`, 'x');
    git('add', 'other.txt');
    writeStackConfig(stacks, 'staging', { model: record('r-aaaaaaaaaaaa') });
    const sha = await commitFile(repo, file, 'kiln: promote r-aaaaaaaaaaaa to staging\n\nKiln-Run: r-aaaaaaaaaaaa');
    expect(git('show', '--name-only', '--format=', sha).trim()).toBe('stacks/Pulumi.staging.yaml');
    expect(git('status', '--porcelain').trim()).toBe('A  other.txt');
    expect(git('log', '-1', '--format=%an <%ae>').trim()).toBe('Ada Lovelace <ada@example.com>');
  });

  it('a missing user.email is an error that says how to set it', async () => {
    const { repo, git } = setup();
    git('config', '--unset', 'user.email');
    await expect(gitUser(repo)).rejects.toThrow(/git has no user.email.*git config user.email you@example.com/);
  });

  it('file history: oldest first, with the content at each commit and the trailers', async () => {
    const { repo, file, commit } = setup();
    await commit(record('r-aaaaaaaaaaaa'));
    await commit(record('r-bbbbbbbbbbbb', { seq: 2 }));
    const h = await fileHistory(repo, file);
    expect(h.map((c) => c.message.split('\n')[0])).toEqual(['init', 'kiln: promote r-aaaaaaaaaaaa', 'kiln: promote r-bbbbbbbbbbbb']);
    expect(h[1]!.content).toContain('run: r-aaaaaaaaaaaa');
    expect(h[2]!.author).toBe('Ada Lovelace <ada@example.com>');
    expect(trailers(h[2]!.message)).toEqual({ 'Kiln-Run': 'r-bbbbbbbbbbbb', 'Kiln-Action': 'promote' });
  });
});

describe('history and rollback', () => {
  it('promote A, promote B: B is served, a rollback returns to A; after that there is nothing to roll back to', async () => {
    const { stacks, commit } = setup();
    const a = record('r-aaaaaaaaaaaa', { seq: 1 });
    const b = record('r-bbbbbbbbbbbb', { seq: 2 });
    await commit(a);
    await commit(b);
    let h = await promotionHistory(stacks, 'staging');
    expect(h.map((e) => [e.action, e.record?.run])).toEqual([
      ['promote', 'r-aaaaaaaaaaaa'],
      ['promote', 'r-bbbbbbbbbbbb'],
    ]);
    const target = rollbackTarget(h);
    expect(target?.run).toBe('r-aaaaaaaaaaaa');
    await commit({ ...target!, action: 'rollback', seq: 3 });
    h = await promotionHistory(stacks, 'staging');
    expect(h.map((e) => [e.action, e.record?.run, e.record?.seq])).toEqual([
      ['promote', 'r-aaaaaaaaaaaa', 1],
      ['promote', 'r-bbbbbbbbbbbb', 2],
      ['rollback', 'r-aaaaaaaaaaaa', 3],
    ]);
    expect(rollbackTarget(h)).toBeUndefined();
  });

  it('a rollback of a rollback goes further back (A, B, C → B → A)', async () => {
    const { stacks, commit } = setup();
    await commit(record('r-aaaaaaaaaaaa', { seq: 1 }));
    await commit(record('r-bbbbbbbbbbbb', { seq: 2 }));
    await commit(record('r-cccccccccccc', { seq: 3 }));
    let t = rollbackTarget(await promotionHistory(stacks, 'staging'));
    expect(t?.run).toBe('r-bbbbbbbbbbbb');
    await commit({ ...t!, action: 'rollback', seq: 4 });
    t = rollbackTarget(await promotionHistory(stacks, 'staging'));
    expect(t?.run).toBe('r-aaaaaaaaaaaa');
  });

  it('commits that change other keys are not promotions', async () => {
    const { stacks, file, repo, commit } = setup();
    await commit(record('r-aaaaaaaaaaaa'));
    const { readFileSync, writeFileSync } = await import('node:fs');
    writeFileSync(file, readFileSync(file, 'utf8').replace('eu-west-1', 'us-east-1'));
    await commitFile(repo, file, 'region');
    expect((await promotionHistory(stacks, 'staging')).length).toBe(1);
  });
});
