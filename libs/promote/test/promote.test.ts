/** promote() and rollback() over a real git repository and real stack configs; the cluster-facing parts (evidence, verify, apply, smoke) injected. */
import { readFileSync, rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import type { SmokeEvidence } from '@kiln/plan';
import { promote, promotionHistory, PromotionRefused, readStackConfig, rollback, withStackLock, type ApplyFn, type PromoteOptions, type RunEvidence } from '../src/index.ts';
import { tempRepo } from './fixtures.ts';

const TINY = readFileSync(new URL('../../../configs/tiny.yaml', import.meta.url), 'utf8');
const GATED = TINY.replace('    dev: ["humaneval.pass@1 >= 0"]', '    dev: ["humaneval.pass@1 >= 0"]\n    staging: ["humaneval.pass@1 >= 0.05"]\n    prod: ["humaneval.pass@1 >= 0.05"]');
// A stack overlay without gates of its own (`qa`).
const WITH_QA = `${GATED.trimEnd()}\n  qa:\n    training:\n      token_budget: 500K\n`;
const CANARY = GATED.replace('      max_batch_size: 4\n', '      max_batch_size: 4\n      canary: 0.1\n');

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function setup() {
  const t = tempRepo({
    'configs/tiny.yaml': WITH_QA,
    'configs/canary.yaml': CANARY,
    'stacks/Pulumi.dev.yaml': 'config:\n  kiln:spec: configs/tiny.yaml\n',
    'stacks/Pulumi.staging.yaml': '# staging\nconfig:\n  kiln:spec: configs/tiny.yaml\n  kiln:train: false\n',
    'stacks/Pulumi.qa.yaml': 'config:\n  kiln:spec: configs/tiny.yaml\n',
    'stacks/Pulumi.prod.yaml': 'config:\n  kiln:spec: configs/canary.yaml\n  kiln:train: false\n',
  });
  dirs.push(t.repo);
  return t;
}

/** A Succeeded run's evidence with `pass` as its humaneval.pass@1. */
function evidence(run: string, pass: number): RunEvidence {
  const exp = `pvc://kiln-artifacts/tiny/runs/${run}/export/`;
  return {
    run,
    name: `tiny-${run}`,
    namespace: 'kiln-tiny',
    phase: 'Succeeded',
    metrics: { 'humaneval.pass@1': pass },
    export: exp,
    manifest: `pvc://kiln-artifacts/tiny/runs/${run}/manifests/export.json`,
    artifacts: [{ stage: 'export', name: 'completions/kiln/config.pbtxt', uri: `${exp}completions/kiln/config.pbtxt`, digest: `sha256:${'1'.repeat(64)}` }],
    repositories: ['completions'],
    simulated: [],
    plan: {} as RunEvidence['plan'],
  };
}

const digestOf = (run: string) => `sha256:${run.slice(2).padEnd(64, '0')}`;

function opts(stacks: string, over: Partial<PromoteOptions> & { runs?: Record<string, number> }): PromoteOptions & { lines: string[]; applies: string[] } {
  const lines: string[] = [];
  const applies: string[] = [];
  const runs = over.runs ?? { 'r-aaaaaaaaaaaa': 0.12, 'r-bbbbbbbbbbbb': 0.2, 'r-cccccccccccc': 0.01 };
  const applyStack: ApplyFn = async (a) => {
    const m = readStackConfig(a.stacksDir, a.stack);
    applies.push(`${a.stack}:${m.model?.run ?? '-'}:${m.canary?.run ?? '-'}`);
    return { outputs: { endpoints: { completions: 'http://gw/v1' } }, changes: { update: 1 } };
  };
  return {
    stacksDir: stacks,
    to: 'staging',
    evidence: async (run) => {
      if (!(run in runs)) throw new PromotionRefused(`no run "${run}"`);
      return evidence(run, runs[run]!);
    },
    verify: async (e) => ({ ok: true, digest: digestOf(e.run), files: 7, bytes: 1000, mismatches: [], unverified: [] }),
    applyStack,
    onOutput: (l) => lines.push(l),
    now: () => new Date('2026-12-02T12:00:00Z'),
    ...over,
    lines,
    applies,
  };
}

const smoke = (passed: boolean): SmokeEvidence => ({ passed, problems: 3, passedProblems: passed ? 2 : 0, failedRequests: passed ? 0 : 1, p50Ms: 120, p99Ms: passed ? 400 : 3000, objectives: { p50Ms: 200, p99Ms: 800 }, reasons: passed ? [] : ['p99 3000 ms > 800 ms', '1 request failed (HTTP 502)'] });

describe('promote', () => {
  it('GIVEN a run that passes staging\'s gate WHEN promoted THEN one commit of the stack config names the evidence', async () => {
    const { stacks, git } = setup();
    const r = await promote(opts(stacks, { run: 'r-aaaaaaaaaaaa' }));
    expect(r.outcome).toBe('promoted');
    expect(r.applied).toBe(false);
    expect(r.applyCommand).toContain('pulumi up --stack staging');
    const msg = git('log', '-1', '--format=%B');
    expect(msg).toMatch(/^kiln: promote r-aaaaaaaaaaaa to staging\n/);
    expect(msg).toContain('humaneval.pass@1 = 0.12 (gate >= 0.05: pass)');
    expect(msg).toContain(`Kiln-Digest: ${digestOf('r-aaaaaaaaaaaa')}`);
    expect(msg).toContain('Kiln-Stack: staging\nKiln-Action: promote');
    expect(git('show', '--name-only', '--format=', 'HEAD').trim()).toBe('stacks/Pulumi.staging.yaml');
    const cfg = readStackConfig(stacks, 'staging');
    expect(cfg.model).toMatchObject({ run: 'r-aaaaaaaaaaaa', seq: 1, action: 'promote', by: 'Ada Lovelace <ada@example.com>', repositories: { completions: 'pvc://kiln-artifacts/tiny/runs/r-aaaaaaaaaaaa/export/completions/' } });
    expect(readFileSync(`${stacks}/Pulumi.staging.yaml`, 'utf8')).toMatch(/^# staging\n/);
  });

  it('refuses a failing gate with the numbers, and commits nothing', async () => {
    const { stacks, git } = setup();
    const before = git('rev-parse', 'HEAD');
    const e = await promote(opts(stacks, { run: 'r-cccccccccccc' })).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PromotionRefused);
    expect((e as PromotionRefused).message).toContain("does not pass stack staging's gates (eval.gates.staging)");
    expect((e as PromotionRefused).reasons).toEqual(['humaneval.pass@1 = 0.01 (gate >= 0.05: FAIL)']);
    expect(git('rev-parse', 'HEAD')).toBe(before);
  });

  it('refuses a pvc:// model of another namespace (a claim is namespaced), and commits nothing', async () => {
    const { stacks, git } = setup();
    const before = git('rev-parse', 'HEAD');
    const o = opts(stacks, { run: 'r-aaaaaaaaaaaa' });
    const e = await promote({ ...o, evidence: async (run) => ({ ...evidence(run, 0.12), namespace: 'kiln-tiny-dev' }) }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(PromotionRefused);
    expect((e as PromotionRefused).message).toContain('on a claim of namespace kiln-tiny-dev');
    expect((e as PromotionRefused).message).toContain('serves in namespace kiln-tiny');
    expect((e as PromotionRefused).reasons.join(' ')).toContain('s3://');
    expect(git('rev-parse', 'HEAD')).toBe(before);
  });

  it('--override promotes past the gate and records who and why', async () => {
    const { stacks, git } = setup();
    const r = await promote(opts(stacks, { run: 'r-cccccccccccc', override: { reason: 'hotfix for the tokenizer' } }));
    expect(r.record.override).toEqual({ by: 'Ada Lovelace <ada@example.com>', reason: 'hotfix for the tokenizer' });
    expect(git('log', '-1', '--format=%B')).toContain('override by Ada Lovelace <ada@example.com>: hotfix for the tokenizer');
    expect(readStackConfig(stacks, 'staging').model?.evidence.gates).toEqual([{ expr: 'humaneval.pass@1 >= 0.05', value: 0.01, passed: false }]);
  });

  it("a stack with an overlay of another name reads that overlay's gates", async () => {
    const { stacks } = setup();
    const { writeFileSync } = await import('node:fs');
    writeFileSync(`${stacks}/Pulumi.it-prod-1.yaml`, 'config:\n  kiln:spec: configs/tiny.yaml\n  kiln:overlay: prod\n  kiln:train: false\n');
    const { execFileSync } = await import('node:child_process');
    execFileSync('git', ['add', '.'], { cwd: stacks });
    execFileSync('git', ['commit', '-qm', 'it-prod-1'], { cwd: stacks });
    const e = (await promote(opts(stacks, { run: 'r-cccccccccccc', to: 'it-prod-1' })).catch((x: unknown) => x)) as PromotionRefused;
    expect(e.message).toContain("stack it-prod-1's gates (eval.gates.prod)");
    expect(e.reasons).toEqual(['humaneval.pass@1 = 0.01 (gate >= 0.05: FAIL)']);
  });

  it('a stack without gates passes and says so', async () => {
    const { stacks, git } = setup();
    const r = await promote(opts(stacks, { run: 'r-cccccccccccc', to: 'qa' }));
    expect(r.gates).toEqual([]);
    expect(git('log', '-1', '--format=%B')).toMatch(/\n\nno gates\n/);
    await promote(opts(stacks, { run: 'r-cccccccccccc', to: 'dev' }));
    expect(git('log', '-1', '--format=%B')).toContain('humaneval.pass@1 = 0.01 (gate >= 0: pass)');
  });

  it('refuses the model the target already serves, and an export whose digests mismatch', async () => {
    const { stacks } = setup();
    await promote(opts(stacks, { run: 'r-aaaaaaaaaaaa' }));
    await expect(promote(opts(stacks, { run: 'r-aaaaaaaaaaaa' }))).rejects.toThrow(/already serves this model/);
    const bad = opts(stacks, { run: 'r-bbbbbbbbbbbb', verify: async () => ({ ok: false, digest: 'sha256:x', files: 7, bytes: 1000, unverified: [], mismatches: ['completions/1/model.py: sha256:aa… in the manifest, sha256:bb… in storage'] }) });
    const e = (await promote(bad).catch((x: unknown) => x)) as PromotionRefused;
    expect(e.message).toContain('does not match what its status records');
    expect(e.reasons[0]).toContain('completions/1/model.py');
  });

  it('--from promotes what the source stack serves, and refuses a source that serves nothing', async () => {
    const { stacks, git } = setup();
    await expect(promote(opts(stacks, { from: 'dev' }))).rejects.toThrow(/stack dev serves nothing/);
    await promote(opts(stacks, { run: 'r-aaaaaaaaaaaa', to: 'dev' }));
    const r = await promote(opts(stacks, { from: 'dev' }));
    expect(r.record).toMatchObject({ run: 'r-aaaaaaaaaaaa', from: 'dev' });
    expect(git('log', '-1', '--format=%s').trim()).toBe('kiln: promote r-aaaaaaaaaaaa to staging (dev → staging)');
  });

  it('--apply applies after the commit', async () => {
    const { stacks } = setup();
    const o = opts(stacks, { run: 'r-aaaaaaaaaaaa', apply: true });
    const r = await promote(o);
    expect(r.applied).toBe(true);
    expect(o.applies).toEqual(['staging:r-aaaaaaaaaaaa:-']);
    expect(r.outputs).toEqual({ endpoints: { completions: 'http://gw/v1' } });
  });
});

describe('canary rollout', () => {
  it('a canary that passes its smoke check becomes the stable model (two commits)', async () => {
    const { stacks, git } = setup();
    await promote(opts(stacks, { run: 'r-aaaaaaaaaaaa', to: 'prod' }));
    const o = opts(stacks, { run: 'r-bbbbbbbbbbbb', to: 'prod', apply: true, smoke: async () => smoke(true) });
    const r = await promote(o);
    expect(r.outcome).toBe('promoted');
    expect(o.applies).toEqual(['prod:r-aaaaaaaaaaaa:r-bbbbbbbbbbbb', 'prod:r-bbbbbbbbbbbb:-']);
    expect(r.commits).toHaveLength(2);
    const cfg = readStackConfig(stacks, 'prod');
    expect(cfg.canary).toBeUndefined();
    expect(cfg.model?.evidence.smoke?.passed).toBe(true);
    expect(git('log', '-1', '--format=%B')).toContain('smoke: pass 2/3 problems');
  });

  it('a canary that fails its smoke check is rolled back: the stable model stays, the reasons are in the commit', async () => {
    const { stacks, git } = setup();
    await promote(opts(stacks, { run: 'r-aaaaaaaaaaaa', to: 'prod' }));
    const o = opts(stacks, { run: 'r-bbbbbbbbbbbb', to: 'prod', apply: true, smoke: async () => smoke(false) });
    const r = await promote(o);
    expect(r.outcome).toBe('canary-rolled-back');
    expect(o.applies).toEqual(['prod:r-aaaaaaaaaaaa:r-bbbbbbbbbbbb', 'prod:r-aaaaaaaaaaaa:-']);
    const cfg = readStackConfig(stacks, 'prod');
    expect(cfg.model?.run).toBe('r-aaaaaaaaaaaa');
    expect(cfg.canary).toBeUndefined();
    const msg = git('log', '-1', '--format=%B');
    expect(msg).toMatch(/^kiln: rollback prod to r-aaaaaaaaaaaa\n/);
    expect(msg).toContain('p99 3000 ms > 800 ms');
    expect(msg).toContain('Kiln-Action: rollback');
    expect(msg).toContain('Kiln-Canary: r-bbbbbbbbbbbb');
    expect(msg).toMatch(/smoke: FAIL 0\/3 problems/);
    const h = await promotionHistory(stacks, 'prod');
    expect(h.map((e) => [e.action, e.record?.run, e.canary?.run])).toEqual([
      ['promote', 'r-aaaaaaaaaaaa', undefined],
      ['promote', 'r-aaaaaaaaaaaa', 'r-bbbbbbbbbbbb'],
      ['rollback', 'r-aaaaaaaaaaaa', undefined],
    ]);
  });

  it('a smoke check that cannot run fails the canary: rolled back, its error the reason', async () => {
    const { stacks, git } = setup();
    await promote(opts(stacks, { run: 'r-aaaaaaaaaaaa', to: 'prod' }));
    const r = await promote(opts(stacks, { run: 'r-bbbbbbbbbbbb', to: 'prod', apply: true, smoke: async () => Promise.reject(new Error('the gateway did not route to a ready canary')) }));
    expect(r.outcome).toBe('canary-rolled-back');
    expect(readStackConfig(stacks, 'prod').model?.run).toBe('r-aaaaaaaaaaaa');
    expect(git('log', '-1', '--format=%B')).toContain('the smoke check did not run: the gateway did not route to a ready canary');
  });
});

describe('rollback', () => {
  it('promote A, promote B, rollback → A (a new commit); rollback again → nothing to roll back to', async () => {
    const { stacks, git } = setup();
    await promote(opts(stacks, { run: 'r-aaaaaaaaaaaa' }));
    await promote(opts(stacks, { run: 'r-bbbbbbbbbbbb' }));
    const commits = Number(git('rev-list', '--count', 'HEAD').trim());
    const r = await rollback({ stacksDir: stacks, stack: 'staging' });
    expect(r.record).toMatchObject({ run: 'r-aaaaaaaaaaaa', action: 'rollback', seq: 3 });
    expect(r.previous.run).toBe('r-bbbbbbbbbbbb');
    expect(Number(git('rev-list', '--count', 'HEAD').trim())).toBe(commits + 1);
    expect(git('log', '-1', '--format=%s').trim()).toBe('kiln: rollback staging to r-aaaaaaaaaaaa');
    expect(readStackConfig(stacks, 'staging').model?.run).toBe('r-aaaaaaaaaaaa');
    await expect(rollback({ stacksDir: stacks, stack: 'staging' })).rejects.toThrow(/nothing to roll back to/);
  });

  it('refuses a stack config with uncommitted changes', async () => {
    const { stacks } = setup();
    await promote(opts(stacks, { run: 'r-aaaaaaaaaaaa' }));
    await promote(opts(stacks, { run: 'r-bbbbbbbbbbbb' }));
    const { appendFileSync } = await import('node:fs');
    appendFileSync(`${stacks}/Pulumi.staging.yaml`, '  aws:region: x\n');
    await expect(rollback({ stacksDir: stacks, stack: 'staging' })).rejects.toThrow(/uncommitted changes/);
  });
});

describe('one promotion per stack at a time', () => {
  it('withStackLock: the second waits for the first, in order', async () => {
    const { repo } = setup();
    const events: string[] = [];
    let waited = false;
    const job = (name: string, ms: number) => async () => {
      events.push(`${name} start`);
      await new Promise((r) => setTimeout(r, ms));
      events.push(`${name} end`);
    };
    const a = withStackLock(repo, 'staging', job('a', 300), { pollMs: 20 });
    await new Promise((r) => setTimeout(r, 20));
    const b = withStackLock(repo, 'staging', job('b', 10), { pollMs: 20, onWait: () => (waited = true) });
    await Promise.all([a, b]);
    expect(events).toEqual(['a start', 'a end', 'b start', 'b end']);
    expect(waited).toBe(true);
  });

  it('two promotions to one stack at once: both records, in order, with consecutive seqs', async () => {
    const { stacks } = setup();
    const slow: ApplyFn = async () => {
      await new Promise((r) => setTimeout(r, 300));
      return { outputs: {}, changes: {} };
    };
    const first = opts(stacks, { run: 'r-aaaaaaaaaaaa', apply: true, applyStack: slow });
    const second = opts(stacks, { run: 'r-bbbbbbbbbbbb', apply: true, applyStack: slow });
    const p1 = promote(first);
    await new Promise((r) => setTimeout(r, 100));
    await Promise.all([p1, promote(second)]);
    expect(second.lines.some((l) => /another promotion of staging is running/.test(l))).toBe(true);
    const h = await promotionHistory(stacks, 'staging');
    expect(h.map((e) => [e.record?.run, e.record?.seq])).toEqual([
      ['r-aaaaaaaaaaaa', 1],
      ['r-bbbbbbbbbbbb', 2],
    ]);
  });
});
