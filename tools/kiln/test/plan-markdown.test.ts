import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { checkCapacity, compile, diffRuns, type Plan } from '@kiln/plan';
import { load, type Spec } from '@kiln/spec';
import { formatPlanMarkdown, PLAN_MARKER } from '../src/render/plan.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = fileURLToPath(new URL('../bin/kiln.js', import.meta.url));
const planOf = (file: string, stack = 'dev'): Plan => compile(load(`${root}${file}`, { stack }).spec as Spec);

describe('kiln plan --format markdown (the pull request comment)', () => {
  const plan = planOf('configs/tiny-loop.yaml');

  it('opens with the marker and a title naming the pipeline and the stack', () => {
    const md = formatPlanMarkdown(plan);
    expect(md.split('\n').slice(0, 2)).toEqual([PLAN_MARKER, '### kiln plan: `tiny-loop` on stack `dev`']);
    expect(md).toContain(`Run \`${plan.runId}\` in namespace \`kiln-tiny-loop\``);
  });

  it('tables every stage in order with what it runs after, its fan-out and its resources', () => {
    const rows = formatPlanMarkdown(plan).split('\n').filter((l) => /^\| `/.test(l));
    const stageRows = rows.slice(0, plan.stages.length);
    expect(stageRows.map((r) => r.split(' | ')[0])).toEqual(plan.stages.map((s) => `| \`${s.name}\``));
    expect(stageRows).toContain('| `train` | train | `pack` | 1 nodes × 2 GPUs | 2 CPU, 8Gi, 2 × h100-80gb | `kiln/trainer:0.1.0` |');
    expect(stageRows[0]).toBe('| `data-prep` | data-prep | — | 2 shards | 2 CPU, 8Gi | `kiln/data-prep:0.1.0` |');
  });

  it('states the estimate: FLOPs, GPU-hours and cost, and each serving target', () => {
    const md = formatPlanMarkdown(planOf('configs/replit-code-v1-3b.yaml'));
    expect(md).toMatch(/^\| training \| [\d.]+B parameters × [\d.]+[KMB] tokens = [\d.]+e\+\d+ training FLOPs \|$/m);
    expect(md).toMatch(/^\| GPU time \| [\d.,K]+ GPU-hours of a100-40gb at 40% MFU; .* on 8 GPUs \|$/m);
    expect(md).toMatch(/^\| cost \| [\d,]+ USD for training \|$/m);
    expect(formatPlanMarkdown(plan)).toContain('| `completions` | python fp16 | 1–2 | 1 × h100-80gb | up to 4 within 2 ms, 2 instances | 10% |');
  });

  it('names no secret: neither the API keys Secret nor its key', () => {
    const key = plan.secrets[plan.serving[0]!.gateway!.apiKeys]!;
    const md = formatPlanMarkdown(plan);
    expect(key.secret).toBe('tiny-loop-gateway-keys');
    expect(md).not.toContain(key.secret);
    expect(md).not.toMatch(/secret/i);
  });

  it('says what applying changes against the cluster, with each stage that differs and any capacity problem', () => {
    const other = planOf('configs/tiny-loop.yaml', 'prod');
    const existing = [{ runId: 'r-000000000001', created: '2026-01-01T00:00:00Z', stages: other.stages.map((s) => (s.name === 'train' ? { ...s, image: 'kiln/trainer:0.0.9' } : s)) }];
    const changes = diffRuns(plan, existing);
    const problems = checkCapacity(plan, [{ name: 'n1', gpuProduct: 'NVIDIA-H100-80GB-HBM3', allocatable: { 'nvidia.com/gpu': '1' } }]);
    const md = formatPlanMarkdown(plan, { context: 'kiln-local', nodes: 1, problems, changes });
    expect(md).toContain('Cluster `kiln-local`:');
    expect(md).toContain(`- applying starts ${plan.runId} beside r-000000000001; against r-000000000001: `);
    expect(md).toMatch(/^\| `train` \| changed \|$/m);
    expect(problems.length).toBeGreaterThan(0);
    expect(md).toContain(`**${problems.length} problem(s)**`);
    expect(md).toContain(`- :x: ${problems[0]!.message}`);
    expect(formatPlanMarkdown(plan, { context: 'c', nodes: 3, problems: [], changes: diffRuns(plan, [{ ...existing[0]!, runId: plan.runId }]) })).toContain(`- run ${plan.runId} already exists: applying starts no new run`);
  });

  it('keeps a cluster error out of the comment (the job log has it)', () => {
    const md = formatPlanMarkdown(plan, { error: 'connect ECONNREFUSED 10.0.0.1:6443 (token abc)' });
    expect(md).toContain('_The cluster could not be checked; the job log says why._');
    expect(md).not.toContain('10.0.0.1');
  });

  it('escapes a pipe inside a cell so one value never breaks its table', () => {
    const md = formatPlanMarkdown({ ...plan, stages: [{ ...plan.stages[0]!, image: 'reg|istry/img:1' }] });
    expect(md).toContain('`reg\\|istry/img:1`');
  });

  it('is what the CLI prints with --format markdown; a spec error becomes the comment too, exit 1; an unknown format is a usage error', () => {
    const kiln = (...args: string[]) => spawnSync(process.execPath, [bin, 'plan', ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, KUBECONFIG: '' } });
    const r = kiln('configs/tiny-loop.yaml', '--stack', 'dev', '--format', 'markdown', '--offline');
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`${formatPlanMarkdown(plan)}\n`);
    const bad = kiln('libs/spec/test/fixtures/invalid/heads-not-dividing.yaml', '--format', 'markdown', '--offline');
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(/^### kiln plan: `libs\/spec\/test\/fixtures\/invalid\/heads-not-dividing\.yaml` is invalid\n\n```\n[\s\S]*KL301[\s\S]*```\n/);
    expect(kiln('configs/tiny.yaml', '--format', 'yaml', '--offline').status).toBe(2);
  });
});
