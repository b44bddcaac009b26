import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '../src/client.ts';
import { executorFor, execute } from '../src/executors.ts';
import { startFixtureServer, type FixtureServer } from './support/fixture-server.ts';
import { evaluate, EvalInputError } from '../src/runner.ts';
import { Sandbox } from '../src/sandbox.ts';

const fixture = (f: string) => fileURLToPath(new URL(`./fixtures/${f}`, import.meta.url));
const suite = { name: 'custom', benchmark: 'custom' as const, samples: 2, temperature: 0.8, top_p: 0.95, max_new_tokens: 64, k: [1, 2], timeout_seconds: 5 };
const SENTINELS = { prefix: '<fim_prefix>', middle: '<fim_middle>', suffix: '<fim_suffix>' };
// The "model": the reference middle for infilling prompts, the reference solution for the others.
const ANSWERS: Record<string, string> = {
  'def fib': '    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n',
  'def mean': '    count = len(xs)\n',
  'function upperFirst': "  return s.charAt(0).toUpperCase() + s.slice(1);\n}\n",
};

let sandbox: Sandbox;
let server: FixtureServer;
beforeAll(async () => {
  sandbox = await Sandbox.create({ concurrency: 2 });
  server = await startFixtureServer({ complete: (prompt) => Object.entries(ANSWERS).find(([k]) => prompt.replace(SENTINELS.prefix, '').startsWith(k))?.[1] ?? '    pass\n' });
});
afterAll(async () => {
  await sandbox?.close();
  await server?.close();
});

describe('evaluate', () => {
  it('builds infilling prompts from prefix and suffix with the FIM sentinels, and runs every language of the suite', async () => {
    const client = createClient({ kind: 'openai', url: server.url, model: 'm' });
    const before = server.requests.length;
    const progress: number[] = [];
    const r = await evaluate({ suite, benchmark: fixture('custom.jsonl'), client, execute: executorFor(sandbox), fimSentinels: SENTINELS, onProgress: (p) => progress.push(p.executed) });
    expect(r.report.passAtK).toEqual({ 'pass@1': 1, 'pass@2': 1 });
    expect(r.report.languages).toEqual(['javascript', 'python']);
    const prompts = server.requests.slice(before).map((q) => (q.body as { prompt: string }).prompt);
    expect(prompts).toContain('<fim_prefix>def mean(xs: list[float]) -> float:\n    total = sum(xs)\n<fim_suffix>    return total / count\n<fim_middle>');
    expect(prompts.filter((p) => p.startsWith('<fim_prefix>'))).toHaveLength(1);
    expect(progress.at(-1)).toBe(6);
    expect(r.results).toHaveLength(6);
  }, 60_000);

  it('refuses an infilling problem when the tokenizer has no FIM sentinels', async () => {
    const client = createClient({ kind: 'openai', url: server.url, model: 'm' });
    await expect(evaluate({ suite, benchmark: fixture('custom.jsonl'), client, execute: executorFor(sandbox) })).rejects.toThrow(EvalInputError);
  });

  it('counts a language without a toolchain apart, never as a failing model', async () => {
    const samples = [
      { taskId: 'fib', completion: ANSWERS['def fib']! },
      { taskId: 'upper_first', completion: ANSWERS['function upperFirst']! },
    ];
    const noNode = (language: string, program: string, o: { timeoutMs: number }) => execute(sandbox, language, program, { ...o, toolchains: { javascript: { available: false, reason: 'no node on PATH', commands: {}, roots: [] } } });
    const r = await evaluate({ suite: { ...suite, k: [1] }, benchmark: fixture('custom.jsonl'), samples, execute: noNode });
    expect(r.report.passAtK).toEqual({ 'pass@1': 1 });
    expect(r.report.noToolchain).toEqual([{ id: 'upper_first', language: 'javascript', reason: expect.stringContaining('no node on PATH') }]);
    expect(r.report.counts['no-toolchain']).toBe(1);
    expect(r.report.counts.failed).toBe(0);
    // One of three problems had no samples.
    expect(r.warnings).toEqual([expect.stringMatching(/^1 of 3 problems have no samples/)]);
  }, 60_000);

  it('scores MultiPL-E JavaScript records', async () => {
    const samples = [
      { taskId: 'HumanEval_0_has_close_elements', completion: '  for (let i = 0; i < numbers.length; i++) for (let j = i + 1; j < numbers.length; j++) if (Math.abs(numbers[i] - numbers[j]) < threshold) return true;\n  return false;\n}\n' },
      { taskId: 'HumanEval_0_has_close_elements', completion: '  return false;\n}\n' },
    ];
    const r = await evaluate({ suite: { ...suite, benchmark: 'multipl-e', k: [1] }, benchmark: fixture('multipl-e-js.jsonl'), samples, execute: executorFor(sandbox) });
    expect(r.report.problems).toHaveLength(1);
    expect(r.report.passAtK['pass@1']).toBe(0.5);
    expect(r.results.map((x) => x.status)).toEqual(['passed', 'failed']);
  }, 60_000);

  it('says which task ids the samples name that the benchmark lacks, and asks for exactly one source of completions', async () => {
    await expect(evaluate({ suite, benchmark: fixture('custom.jsonl'), samples: [{ taskId: 'nope', completion: '' }], execute: executorFor(sandbox) })).rejects.toThrow(/does not have: nope/);
    await expect(evaluate({ suite, benchmark: fixture('custom.jsonl'), execute: executorFor(sandbox) })).rejects.toThrow(/either a model endpoint/);
  });
});
