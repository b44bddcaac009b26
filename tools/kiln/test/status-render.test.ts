import { simulatedStages, type ModelRun, type ModelRunStatus, type StageStatus } from '@kiln/cluster';
import { describe, expect, it } from 'vitest';
import { renderRun, renderRuns } from '../src/render/status.ts';
import { progressBar, timeLeft } from '../src/render/table.ts';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const iso = (ms: number) => new Date(ms).toISOString();

const specStages = [
  { name: 'data-prep', kind: 'data-prep', maxAttempts: 3, manifest: 'pvc://a/manifests/data-prep.json' },
  { name: 'train', kind: 'train', maxAttempts: 5, manifest: 'pvc://a/manifests/train.json' },
  { name: 'eval-humaneval', kind: 'eval', maxAttempts: 3, manifest: 'pvc://a/manifests/eval-humaneval.json' },
];

function makeRun(status?: ModelRunStatus, o: { name?: string; runId?: string } = {}): ModelRun {
  const runId = o.runId ?? 'r-0123456789ab';
  return {
    apiVersion: 'kiln.dev/v1alpha1',
    kind: 'ModelRun',
    metadata: { name: o.name ?? `tiny-${runId}`, namespace: 'kiln-tiny', creationTimestamp: iso(T0) },
    spec: { runId, name: 'tiny', stack: 'dev', stages: specStages } as unknown as ModelRun['spec'],
    ...(status ? { status } : {}),
  };
}

const stageStatus = (s: Partial<StageStatus> & Pick<StageStatus, 'name' | 'phase'>): StageStatus => ({ kind: s.name, reason: 'Running', message: '', attempts: 0, maxAttempts: 3, manifest: '', ...s });

const running: ModelRunStatus = {
  phase: 'Running',
  message: 'train: attempt 2 of 5 running',
  currentStage: 'train',
  startTime: iso(T0),
  stages: [
    stageStatus({ name: 'data-prep', phase: 'Succeeded', reason: 'Succeeded', message: 'succeeded', attempts: 1, startTime: iso(T0), completionTime: iso(T0 + 90_000) }),
    stageStatus({ name: 'train', phase: 'Running', message: 'attempt 2 of 5 running', attempts: 2, maxAttempts: 5, startTime: iso(T0 + 90_000), progress: { done: 250_000, total: 500_000, unit: 'tokens' } }),
    stageStatus({ name: 'eval-humaneval', phase: 'Pending', reason: 'Waiting', message: 'waiting for train' }),
  ],
  conditions: [],
  artifacts: [],
  metrics: {},
  gates: {},
};

const finished: ModelRunStatus = {
  ...running,
  phase: 'Succeeded',
  message: 'all 3 stages succeeded',
  currentStage: null,
  completionTime: iso(T0 + 600_000),
  stages: running.stages.map((s) => ({ ...s, phase: 'Succeeded', message: 'succeeded' })),
  artifacts: [{ stage: 'train', name: 'checkpoint', uri: 'pvc://a/checkpoints/final/', digest: 'sha256:0123456789abcdef0123456789abcdef' }],
  gates: {
    dev: { passed: true, results: [{ expr: 'humaneval.pass@1 >= 0.1', suite: 'humaneval', metric: 'pass@1', op: '>=', threshold: 0.1, value: 0.12, passed: true }] },
    prod: { passed: false, results: [{ expr: 'humaneval.pass@1 >= 0.5', suite: 'humaneval', metric: 'pass@1', op: '>=', threshold: 0.5, value: 0.12, passed: false }] },
    staging: { passed: null, results: [{ expr: 'mbpp.pass@1 >= 0.1', suite: 'mbpp', metric: 'pass@1', op: '>=', threshold: 0.1, value: null, passed: null }] },
  },
};

const lineOf = (text: string, start: string) => text.split('\n').find((l) => l.startsWith(start)) ?? '';

describe('progressBar', () => {
  it('shows the share done and the counts with their unit', () => {
    const bar = progressBar({ done: 250_000, total: 500_000, unit: 'tokens' }, 10);
    expect(bar).toBe('[█████░░░░░] 50% 250K/500K tokens');
  });

  it('never goes past 100% when a stage overshoots its budget', () => {
    expect(progressBar({ done: 600, total: 500, unit: 'steps' }, 4)).toBe('[████] 100% 600/500 steps');
  });

  it('shows 0% rather than NaN when the total is unknown', () => {
    expect(progressBar({ done: 5, total: 0, unit: 'tokens' }, 4)).toBe('[░░░░] 0% 5/0 tokens');
  });
});

describe('timeLeft', () => {
  it('reads as seconds, minutes, hours and minutes, or days and hours', () => {
    expect([45, 720, 7830, 3 * 86400 + 4 * 3600 + 59].map(timeLeft)).toEqual(['45s', '12m', '2h10m', '3d4h']);
  });
});

describe('renderRun', () => {
  it('heads the run with its name, run id, phase and message', () => {
    const out = renderRun(makeRun(running), T0 + 120_000);
    expect(out.split('\n')[0]).toBe('tiny-r-0123456789ab (r-0123456789ab)  Running: train: attempt 2 of 5 running');
  });

  it('shows a row per stage with its phase, attempts, time and detail', () => {
    const out = renderRun(makeRun(running), T0 + 120_000);
    expect(lineOf(out, 'data-prep')).toMatch(/^data-prep\s+Succeeded\s+1\/3\s+90s\s+succeeded$/);
    expect(lineOf(out, 'train')).toMatch(/^train\s+Running\s+2\/5\s+30s\s+\[█+░+\] 50% 250K\/500K tokens$/);
    expect(lineOf(out, 'eval-humaneval')).toMatch(/^eval-humaneval\s+Pending\s+0\/3\s+-\s+waiting for train$/);
  });

  it("shows a training stage's loss, throughput, MFU and time left after its bar, from rank 0's progress line", () => {
    const progress = { done: 1.2e9, total: 2.9e9, unit: 'tokens', step: 4578, steps: 11_062, loss: 2.3071, lr: 2e-4, grad_norm: 0.8, tokens_per_s: 181_234, eta_s: 7830, mfu: 0.521 };
    const st = { ...running, stages: running.stages.map((s) => (s.name === 'train' ? { ...s, progress } : s)) };
    const line = lineOf(renderRun(makeRun(st), T0 + 120_000), 'train');
    expect(line).toMatch(/^train\s+Running\s+2\/5\s+30s\s+\[█+░+\] 41% 1\.2B\/2\.9B tokens · loss 2\.31 · 181K tok\/s · MFU 52% · 2h10m left$/);
    // Where the GPU's peak is unknown (CPU) there is no MFU; a note says why numbers may be stale.
    const { mfu: _m, ...cpu } = progress;
    const stale = { ...running, stages: running.stages.map((s) => (s.name === 'train' ? { ...s, progress: { ...cpu, note: "stale: cannot read rank 0's log" } } : s)) };
    expect(lineOf(renderRun(makeRun(stale), T0 + 120_000), 'train')).toMatch(/tokens · loss 2\.31 · 181K tok\/s · 2h10m left · stale: cannot read rank 0's log$/);
  });

  it('lists the stages of the spec as pending before the controller wrote a status', () => {
    const out = renderRun(makeRun(), T0);
    expect(out.split('\n')[0]).toContain('Pending');
    expect(lineOf(out, 'train')).toMatch(/^train\s+Pending\s+0\/5/);
    expect(out).not.toContain('Gates:');
  });

  it('shows each gate with ✓, ✗ or · and the value it read', () => {
    const out = renderRun(makeRun(finished), T0 + 600_000);
    expect(out).toContain('  dev: PASSED\n    ✓ humaneval.pass@1 >= 0.1  (humaneval.pass@1 = 0.12)');
    expect(out).toContain('  prod: FAILED\n    ✗ humaneval.pass@1 >= 0.5  (humaneval.pass@1 = 0.12)');
    expect(out).toContain('  staging: pending\n    · mbpp.pass@1 >= 0.1\n');
  });

  it('lists the artifacts with their stage and a shortened digest', () => {
    const out = renderRun(makeRun(finished), T0 + 600_000);
    expect(out.split('\n').slice(-2)).toEqual(['Artifacts:', '  train/checkpoint  pvc://a/checkpoints/final/  sha256:0123456789ab…']);
  });

  it('says how long a finished run took', () => {
    expect(renderRun(makeRun(finished), T0 + 86_400_000).split('\n')[1]).toContain('ended after 10m');
  });
});

describe('renderRuns', () => {
  it('says there are no ModelRuns when there are none', () => {
    expect(renderRuns([])).toContain('No ModelRuns');
  });

  it('shows one row per run under the header, with its phase, stage, progress, gates and age', () => {
    const out = renderRuns([makeRun(running), makeRun(finished, { runId: 'r-ffffffffffff' })], T0 + 3 * 60_000);
    const [header, first, second, ...rest] = out.split('\n');
    expect(rest).toEqual([]);
    expect(header).toMatch(/^RUN\s+NAMESPACE\s+PIPELINE\s+STACK\s+PHASE\s+STAGE\s+PROGRESS\s+GATES\s+AGE$/);
    expect(first).toMatch(/^r-0123456789ab\s+kiln-tiny\s+tiny\s+dev\s+Running\s+train\s+\[█████░░░░░\] 50% 250K\/500K tokens\s+-\s+3m$/);
    expect(second).toMatch(/^r-ffffffffffff\s+.*Succeeded\s+-\s+3\/3 stages\s+dev:pass prod:FAIL staging:pending\s+3m$/);
  });

  it('lines the columns up', () => {
    const out = renderRuns([makeRun(running), makeRun(finished, { runId: 'r-ffffffffffff' })], T0);
    const [header, ...rows] = out.split('\n');
    for (const r of rows) expect(r.indexOf('kiln-tiny')).toBe(header!.indexOf('NAMESPACE'));
  });
});

describe('a simulated run (the local cluster played its pods)', () => {
  const simulated: ModelRunStatus = {
    ...finished,
    stages: finished.stages.map((s) => ({ ...s, simulated: true, summary: { simulated: true, metrics: { 'pass@1': 0.12 } } })),
    simulated: ['data-prep', 'train', 'eval-humaneval'],
  };

  it('is marked in the table of runs, with a note saying its numbers are not measurements', () => {
    const out = renderRuns([makeRun(simulated), makeRun(finished, { runId: 'r-ffffffffffff' })], T0);
    expect(lineOf(out, 'r-0123456789ab')).toMatch(/Succeeded \(sim\)/);
    expect(lineOf(out, 'r-ffffffffffff')).not.toContain('(sim)');
    expect(out).toMatch(/\(sim\) simulated: .*not measurements/);
  });

  it('is marked in the single-run view: the header, each simulated stage and the gates that read simulated metrics', () => {
    const out = renderRun(makeRun(simulated), T0 + 86_400_000);
    expect(out.split('\n')[1]).toMatch(/^SIMULATED: .*not measurements \(data-prep, train, eval-humaneval\)$/);
    expect(lineOf(out, 'train')).toMatch(/succeeded · pass@1 0\.120 \(simulated\)$/);
    expect(out).toContain('Gates (read against simulated eval metrics):');
  });

  it('is marked from the summaries alone when the status predates the mark', () => {
    const old: ModelRunStatus = { ...simulated, simulated: undefined as never, stages: simulated.stages.map(({ simulated: _s, ...st }) => st) };
    expect(simulatedStages(makeRun(old))).toEqual(['data-prep', 'train', 'eval-humaneval']);
    expect(renderRun(makeRun(old))).toContain('SIMULATED:');
  });

  it('leaves a measured run unmarked', () => {
    expect(renderRun(makeRun(finished))).not.toMatch(/simulated/i);
    expect(renderRuns([makeRun(finished)])).not.toContain('(sim)');
  });
});

describe('kiln status and logs against a cluster that is not there', () => {
  it('say which server they could not reach and what to do, exit 1, no stack trace', async () => {
    const { spawnSync } = await import('node:child_process');
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { createServer } = await import('node:net');
    // A port that was free a moment ago: nothing listens there.
    const port = await new Promise<number>((res) => {
      const srv = createServer().listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => res(p));
      });
    });
    const dir = mkdtempSync(join(tmpdir(), 'kiln-dead-'));
    const kc = join(dir, 'kubeconfig');
    writeFileSync(kc, `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:${port}", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n`);
    const bin = new URL('../bin/kiln.js', import.meta.url).pathname;
    for (const args of [['status'], ['logs', 'r-1', 'train']]) {
      const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...process.env, KUBECONFIG: kc, NO_COLOR: '1' } });
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toContain(`cannot reach https://127.0.0.1:${port} (ECONNREFUSED): is it running?`);
      expect(r.stderr).not.toMatch(/internal error|^\s+at /m);
    }
    rmSync(dir, { recursive: true, force: true });
  });
});

describe("a finished stage's measured metrics", () => {
  it('GIVEN a train and an eval summary WHEN summarised THEN loss, tokens/s, tokens and pass@1 in that order; none without metrics', async () => {
    const { summaryMetrics } = await import('../src/render/status.ts');
    expect(summaryMetrics({ summary: { metrics: { tokens: 606208, loss: 7.6004, tokens_per_s: 5801.2, world_size: 1 } } as never })).toBe('loss 7.600, tokens/s 5.8K, tokens 606K');
    expect(summaryMetrics({ summary: { metrics: { 'pass@1': 0.125, problems_scored: 164 } } as never })).toBe('pass@1 0.125, problems 164');
    expect(summaryMetrics({})).toBeUndefined();
  });
});
