import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFixtureServer, type FixtureServer } from '@kiln/eval-runner/test-support';

const bin = fileURLToPath(new URL('../bin/kiln.js', import.meta.url));
const HUMANEVAL = fileURLToPath(new URL('../../../data/humaneval/HumanEval.jsonl.gz', import.meta.url));
const TINY = fileURLToPath(new URL('../../../configs/tiny.yaml', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../../../services/eval-runner/test/fixtures/', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'kiln-eval-'));
const problems = gunzipSync(readFileSync(HUMANEVAL)).toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as { task_id: string; prompt: string; canonical_solution: string; entry_point: string });

/** Runs the CLI without blocking the event loop (the fixture server lives in this process). */
function kiln(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { cwd: tmp, env: { ...process.env, NO_COLOR: '1', ...env } });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => (out += d));
    p.stderr.on('data', (d: Buffer) => (err += d));
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

const samples = (name: string, rows: { task_id: string; completion: string }[]) => {
  const f = join(tmp, name);
  writeFileSync(f, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return f;
};

// A "model" that knows HumanEval: the canonical solution, then more code a stop sequence must cut off.
let server: FixtureServer;
beforeAll(async () => {
  const byPrompt = new Map(problems.map((p) => [p.prompt, p.canonical_solution]));
  server = await startFixtureServer({ complete: (prompt) => `${byPrompt.get(prompt) ?? '    pass\n'}\n\ndef extra():\n    raise SystemExit(3)\n` });
});
afterAll(async () => {
  await server?.close();
  rmSync(tmp, { recursive: true, force: true });
});

interface Report {
  passAtK: Record<string, number>;
  problems: { id: string; passAtK: Record<string, number> }[];
  counts: Record<string, number>;
  omitted: { k: number; reason: string }[];
}

describe('kiln eval score', () => {
  it('passes all 164 HumanEval canonical solutions (pass@1 = 1.0)', async () => {
    const f = samples('canonical.jsonl', problems.map((p) => ({ task_id: p.task_id, completion: p.canonical_solution })));
    const r = await kiln(['eval', 'score', '--benchmark', HUMANEVAL, '--samples', f, '--k', '1', '--json', '--output', 'canonical-out']);
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as Report;
    expect(report.passAtK['pass@1']).toBe(1);
    expect(report.problems).toHaveLength(164);
    expect(report.counts.passed).toBe(164);
    // The outputs: the JSON report, a page, and every sample's outcome.
    expect(JSON.parse(readFileSync(join(tmp, 'canonical-out', 'report.json'), 'utf8'))).toEqual(report);
    expect(readFileSync(join(tmp, 'canonical-out', 'results.jsonl'), 'utf8').trim().split('\n')).toHaveLength(164);
    expect(readFileSync(join(tmp, 'canonical-out', 'report.html'), 'utf8')).toContain('HumanEval/163');
  }, 120_000);

  it('gives 0 for empty, wrong and early-exiting completions, and pass@k only where every problem has k samples', async () => {
    const some = problems.slice(0, 12);
    const f = samples('bad.jsonl', some.flatMap((p) => [
      { task_id: p.task_id, completion: '' },
      { task_id: p.task_id, completion: '    return None\n' },
      // Exits 0 before the checks run: must not pass.
      { task_id: p.task_id, completion: '    import sys; sys.exit(0)\n' },
    ]));
    const r = await kiln(['eval', 'score', '--benchmark', HUMANEVAL, '--samples', f, '--json']);
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as Report;
    expect(report.passAtK).toEqual({ 'pass@1': 0 });
    expect(report.counts.passed).toBe(0);
    expect(report.counts.failed).toBe(36);
    expect(report.omitted.map((o) => o.k)).toEqual([10, 100]);
    // The problems without samples are left out, and it says so.
    expect(r.err).toMatch(/152 of 164 problems have no samples and are left out/);
    const table = await kiln(['eval', 'score', '--benchmark', HUMANEVAL, '--samples', f, '--k', '1,3']);
    expect(table.code).toBe(0);
    expect(table.out).toMatch(/pass@1/);
    expect(table.out).toMatch(/pass@3/);
  }, 120_000);

  it('detects the benchmark format without --format: a MultiPL-E file and a custom suite directory', async () => {
    const js = samples('multipl-e-samples.jsonl', ['HumanEval_23_strlen', 'HumanEval_53_add'].map((task_id) => ({ task_id, completion: '  return 0;\n}\n' })));
    const m = await kiln(['eval', 'score', '--benchmark', join(FIXTURES, 'multipl-e-js.jsonl'), '--samples', js, '--k', '1', '--json']);
    expect(m.code, m.err).toBe(0);
    const mr = JSON.parse(m.out) as Report & { suite: string; benchmark: string; languages: string[] };
    expect(mr.benchmark).toBe('multipl-e');
    // Without --suite the suite is named after its file, not "humaneval" whatever was read.
    expect(mr.suite).toBe('multipl-e-js');
    expect(mr.languages).toEqual(['javascript']);
    expect(mr.problems.map((p) => p.id)).toEqual(['HumanEval_23_strlen', 'HumanEval_53_add']);
    const custom = samples('custom-samples.jsonl', [{ task_id: 'reverse_words', completion: '    return " ".join(reversed(s.split()))\n' }]);
    const c = await kiln(['eval', 'score', '--benchmark', join(FIXTURES, 'custom-suite'), '--samples', custom, '--k', '1', '--json']);
    expect(c.code, c.err).toBe(0);
    const cr = JSON.parse(c.out) as Report & { suite: string; benchmark: string };
    expect(cr.benchmark).toBe('custom');
    expect(cr.suite).toBe('custom-suite');
    expect(cr.problems.map((p) => p.id)).toEqual(['reverse_words']);
    // A file no format describes: exit 1, naming the fields it saw.
    writeFileSync(join(tmp, 'mbpp.jsonl'), '{"text": "q", "code": "a", "test_list": []}\n');
    const u = await kiln(['eval', 'score', '--benchmark', 'mbpp.jsonl', '--samples', custom]);
    expect(u.code).toBe(1);
    expect(u.err).toMatch(/mbpp\.jsonl:1: cannot tell the benchmark format from the fields "text", "code", "test_list"/);
    expect((await kiln(['eval', 'score', '--benchmark', 'mbpp.jsonl', '--samples', custom, '--format', 'mbpp'])).code).toBe(2);
  }, 60_000);

  it('says what is wrong with its inputs (exit 1) or arguments (exit 2), without a stack trace', async () => {
    const unknown = samples('unknown.jsonl', [{ task_id: 'MBPP/1', completion: 'x' }]);
    const r1 = await kiln(['eval', 'score', '--benchmark', HUMANEVAL, '--samples', unknown]);
    expect(r1.code).toBe(1);
    expect(r1.err).toMatch(/task id\(s\) the benchmark does not have: MBPP\/1/);
    writeFileSync(join(tmp, 'broken.jsonl'), '{"task_id": "HumanEval/0", "completion": "x"}\n{"task_id": \n');
    const r2 = await kiln(['eval', 'score', '--benchmark', HUMANEVAL, '--samples', 'broken.jsonl']);
    expect(r2.code).toBe(1);
    expect(r2.err).toMatch(/broken\.jsonl:2/);
    expect(r2.err).not.toMatch(/^\s+at /m);
    expect((await kiln(['eval', 'score', '--benchmark', HUMANEVAL])).code).toBe(2);
    expect((await kiln(['eval', 'score', '--benchmark', HUMANEVAL, '--samples', unknown, '--k', 'x'])).code).toBe(2);
    expect((await kiln(['eval', 'frob'])).code).toBe(2);
  }, 60_000);
});

describe('kiln eval run', () => {
  it('generates from an OpenAI-style endpoint, cuts at stop sequences, executes and scores', async () => {
    const before = server.requests.length;
    const r = await kiln(['eval', 'run', '--endpoint', server.url, '--benchmark', HUMANEVAL, '--limit', '10', '--samples-per-problem', '3', '--temperature', '0.8', '--k', '1,3', '--json']);
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as Report;
    // Without the stop sequence "\ndef", every program would end in SystemExit(3) and fail.
    expect(report.passAtK).toEqual({ 'pass@1': 1, 'pass@3': 1 });
    expect(report.problems).toHaveLength(10);
    const sent = server.requests.slice(before).map((q) => q.body as { n: number; temperature: number; stop: string[] });
    expect(sent).toHaveLength(10);
    expect(sent.every((b) => b.n === 3 && b.temperature === 0.8 && b.stop.includes('\ndef'))).toBe(true);
  }, 60_000);

  it('detects a MultiPL-E benchmark without --format', async () => {
    const r = await kiln(['eval', 'run', '--endpoint', server.url, '--benchmark', join(FIXTURES, 'multipl-e-js.jsonl'), '--limit', '2', '--k', '1', '--json']);
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out) as Report & { benchmark: string; languages: string[] };
    expect(report.benchmark).toBe('multipl-e');
    expect(report.languages).toEqual(['javascript']);
    expect(report.problems).toHaveLength(2);
  }, 60_000);

  it("runs a spec's suite against Triton's generate endpoint and checks the stack's gates", async () => {
    const r = await kiln(['eval', 'run', '--spec', TINY, '--stack', 'dev', '--endpoint', server.url, '--api', 'triton', '--limit', '4']);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/gates \(dev\):\n  ✓ humaneval\.pass@1 >= 0/);
    expect(server.requests.at(-1)!.path).toBe('/v2/models/ensemble/generate');
    // A gate the results miss makes the command fail (exit 1).
    writeFileSync(join(tmp, 'strict.yaml'), readFileSync(TINY, 'utf8').replace('dev: ["humaneval.pass@1 >= 0"]', 'dev: ["humaneval.pass@1 >= 0.5"]').replace('samples: 5', 'samples: 1'));
    const lenient = startFixtureServer({ complete: () => '    return None\n' });
    const s = await lenient;
    try {
      const bad = await kiln(['eval', 'run', '--spec', 'strict.yaml', '--stack', 'dev', '--endpoint', s.url, '--api', 'triton', '--limit', '3']);
      expect(bad.code).toBe(1);
      expect(bad.out).toMatch(/✗ humaneval\.pass@1 >= 0\.5\s+\(0\.000\)/);
    } finally {
      await s.close();
    }
  }, 90_000);

  it('runs as the pipeline eval stage: config from the plan, report under the run storage, summary in the termination log', async () => {
    const { compileFile } = await import('@kiln/plan');
    const { stageObjects } = await import('@kiln/k8s');
    const plan = compileFile(TINY, { stack: 'dev' }).plan!;
    const stage = plan.stages.find((x) => x.kind === 'eval')!;
    const config = JSON.parse(stageObjects(plan, stage).configMap.data!['stage.json']!) as Record<string, unknown>;
    config.endpoint = server.url;
    (config.suite as { samples: number }).samples = 2;
    const work = join(tmp, 'stage');
    mkdirSync(work, { recursive: true });
    writeFileSync(join(work, 'stage.json'), JSON.stringify(config));
    const env = { KILN_STORAGE_ROOT: join(work, 'artifacts'), KILN_TERMINATION_LOG: join(work, 'termination-log') };
    const r = await kiln(['eval', 'run', '--config', join(work, 'stage.json')], env);
    expect(r.code, r.err).toBe(0);
    const summary = JSON.parse(readFileSync(join(work, 'termination-log'), 'utf8')) as { metrics: Record<string, number>; artifacts: { name: string; uri: string; digest: string }[] };
    const { check } = await import('@kiln/stage');
    // The real summary conforms to schemas/stages/summary.schema.json.
    expect(check('summary', summary)).toEqual([]);
    expect(summary.metrics['pass@1']).toBe(1);
    expect(summary.metrics.problems).toBe(164);
    expect(Buffer.byteLength(JSON.stringify(summary))).toBeLessThan(4096);
    expect(summary.artifacts.map((a) => a.name)).toEqual(['report.json', 'report.html', 'results.jsonl']);
    expect(summary.artifacts[0]!.uri).toBe(`${plan.storagePrefix}/eval/humaneval/report.json`);
    const rel = `${plan.name}/runs/${plan.runId}/eval/humaneval`;
    expect(JSON.parse(readFileSync(join(work, 'artifacts', rel, 'report.json'), 'utf8')).passAtK['pass@1']).toBe(1);
    // A suite the runner cannot load is a terminal error (exit 2), said in the termination log.
    (config.suite as { path: string }).path = '/no/such/benchmark.jsonl';
    writeFileSync(join(work, 'bad.json'), JSON.stringify(config));
    const bad = await kiln(['eval', 'run', '--config', join(work, 'bad.json')], env);
    expect(bad.code).toBe(2);
    const failed = JSON.parse(readFileSync(join(work, 'termination-log'), 'utf8')) as { error: string };
    expect(failed.error).toMatch(/does not exist/);
    expect(check('summary', failed)).toEqual([]);
    // A config that does not match schemas/stages/eval.schema.json is terminal too, the field named.
    writeFileSync(join(work, 'bad.json'), JSON.stringify({ ...config, suite: { ...(config.suite as object), k: ['1'] }, endpoint: undefined }));
    const invalid = await kiln(['eval', 'run', '--config', join(work, 'bad.json')], env);
    expect(invalid.code).toBe(2);
    expect(JSON.parse(readFileSync(join(work, 'termination-log'), 'utf8')).error).toMatch(/not a valid eval config: .*\/endpoint is missing.*\/suite\/k\/0 must be integer|not a valid eval config: .*\/suite\/k\/0 must be integer.*\/endpoint is missing/);
  }, 180_000);
});
