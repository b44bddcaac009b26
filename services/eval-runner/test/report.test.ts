import { describe, expect, it } from 'vitest';
import { parseGate, type Gate } from '@kiln/spec';
import type { ProblemOutcomes } from '../src/passk.ts';
import { buildReport, escapeHtml, gateVerdicts, renderHtml, renderTable, reportMetrics, stageSummary, type EvalReport } from '../src/report.ts';
import type { Outcome, OutcomeStatus } from '../src/types.ts';

function outcome(status: OutcomeStatus, reason = status === 'passed' ? 'ok' : 'AssertionError', durationMs = 100, stderr = ''): Outcome {
  return { status, reason, exitCode: status === 'passed' ? 0 : status === 'failed' ? 1 : null, signal: status === 'timeout' ? 'SIGKILL' : null, durationMs, stdout: '', stderr };
}

const XSS = '</script><img src=x onerror=alert(1)>';

/** A small two-language suite: python 2 problems × 4 samples, javascript 1 problem, rust without a toolchain. */
function results(): ProblemOutcomes[] {
  return [
    {
      id: 'HumanEval/0',
      language: 'python',
      outcomes: [outcome('passed'), outcome('failed', 'AssertionError', 120, 'Traceback…\nAssertionError'), outcome('passed'), outcome('timeout', 'killed after 3000 ms', 3000)],
      completions: ['    return True\n', `    return "${XSS}"\n`, '    return True\n', '    while True: pass\n'],
    },
    { id: 'HumanEval/1', language: 'python', outcomes: [outcome('failed', 'NameError'), outcome('failed'), outcome('failed'), outcome('failed')] },
    { id: 'HumanEval_0_has_close_elements', language: 'javascript', outcomes: [outcome('passed'), outcome('passed'), outcome('passed'), outcome('failed')] },
    { id: 'HumanEval_0_has_close_elements_rs', language: 'rust', outcomes: Array.from({ length: 4 }, () => outcome('no-toolchain', 'no rustc on PATH', 0)) },
  ];
}

function report(extra: Partial<Parameters<typeof buildReport>[0]> = {}): EvalReport {
  return buildReport({ suite: 'multipl-e', benchmark: 'multipl-e', ks: [1, 10], samples: 4, results: results(), model: 'tiny-125m', startedAt: '2025-01-01T00:00:00.000Z', finishedAt: new Date('2025-01-01T00:01:30.000Z'), ...extra });
}

describe('buildReport', () => {
  it('reports pass@k overall and per language, and omits k larger than the samples with the reason', () => {
    const r = report();
    expect(r.kind).toBe('kiln.eval-report');
    expect(r.languages).toEqual(['javascript', 'python', 'rust']);
    expect(r.samplesPerProblem).toBe(4);
    // python: (0.5 + 0) / 2; javascript: 0.75; overall over the three scored problems.
    expect(r.byLanguage.python!.passAtK).toEqual({ 'pass@1': 0.25 });
    expect(r.byLanguage.javascript!.passAtK).toEqual({ 'pass@1': 0.75 });
    expect(r.passAtK['pass@1']).toBeCloseTo(1.25 / 3, 12);
    expect(r.omitted).toEqual([{ k: 10, reason: '3 of 3 problems have fewer than 10 samples (HumanEval/0 has n=4)' }]);
  });

  it('counts every status, no-toolchain included, and lists problems without a toolchain apart', () => {
    const r = report();
    expect(r.counts).toEqual({ passed: 5, failed: 6, timeout: 1, 'no-toolchain': 4 });
    expect(r.noToolchain).toEqual([{ id: 'HumanEval_0_has_close_elements_rs', language: 'rust', reason: 'no rustc on PATH' }]);
    expect(r.problems[3]).toMatchObject({ n: 0, c: 0, noToolchain: true, passAtK: {} });
    expect(r.problems[3]!.firstFailure).toBeUndefined();
  });

  it('keeps per problem n, c, pass@k, status counts and the first failure with its completion and stderr', () => {
    const p = report().problems[0]!;
    expect(p).toMatchObject({ id: 'HumanEval/0', language: 'python', n: 4, c: 2, passAtK: { 'pass@1': 0.5 }, counts: { passed: 2, failed: 1, timeout: 1, 'no-toolchain': 0 } });
    expect(p.firstFailure).toEqual({ reason: 'AssertionError', status: 'failed', completion: `    return "${XSS}"\n`, stderr: 'Traceback…\nAssertionError' });
    expect(report().problems[1]!.firstFailure).toEqual({ reason: 'NameError', status: 'failed' });
  });

  it('records timing: wall time from start and finish, total and slowest execution', () => {
    expect(report({ generationMs: 42_000 }).timing).toEqual({ startedAt: '2025-01-01T00:00:00.000Z', finishedAt: '2025-01-01T00:01:30.000Z', wallMs: 90_000, generationMs: 42_000, executionMs: (100 + 120 + 100 + 3000) + 4 * 100 + 4 * 100 + 0, slowestMs: 3000 });
  });
});

describe('renderTable', () => {
  it('prints the headline, one row per language with its pass@k, the outcome counts and what was omitted', () => {
    const lines = renderTable(report()).split('\n');
    expect(lines[0]).toBe('multipl-e (multipl-e) · tiny-125m · 4 problems · 4 samples each');
    expect(lines[2]!.split(/\s+/)).toEqual(['language', 'problems', 'no-toolchain', 'pass@1', 'pass@10']);
    expect(lines[3]!.split(/\s+/)).toEqual(['javascript', '1', '0', '0.7500', '—']);
    expect(lines[4]!.split(/\s+/)).toEqual(['python', '2', '0', '0.2500', '—']);
    expect(lines[5]!.split(/\s+/)).toEqual(['rust', '0', '1', '—', '—']);
    expect(lines[6]!.split(/\s+/)).toEqual(['all', '3', '1', '0.4167', '—']);
    expect(lines).toContain('outcomes: 5 passed, 6 failed, 1 timeout, 4 no-toolchain');
    expect(lines).toContain('pass@10 not reported: 3 of 3 problems have fewer than 10 samples (HumanEval/0 has n=4)');
    expect(lines).toContain('no toolchain (excluded from pass@k, not counted as failures): rust (1 problem)');
  });
});

describe('renderHtml', () => {
  const html = renderHtml(report());

  it('is one self-contained page: inline CSS, no scripts, no external assets', () => {
    expect(html.startsWith('<!doctype html>')).toBe(true);
    expect(html).toContain('<style>');
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/<link|src=["']?http|url\(/i);
  });

  it('escapes completion text: a completion with </script><img onerror=…> is shown, not run', () => {
    expect(html).not.toContain('<img');
    expect(html).toContain('&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;');
    expect(escapeHtml(`<a href="x" title='y'>&</a>`)).toBe('&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
  });

  it('escapes benchmark ids, languages and failure reasons too', () => {
    const r = buildReport({ suite: 's', benchmark: 'custom', ks: [1], results: [{ id: '<b>id</b>', language: 'py<i>', outcomes: [outcome('failed', '<u>reason</u>')] }] });
    const page = renderHtml(r);
    expect(page).not.toMatch(/<b>id|py<i>|<u>reason/);
    expect(page).toContain('py&lt;i&gt;');
    expect(page).toContain('&lt;b&gt;id&lt;/b&gt;');
    expect(page).toContain('&lt;u&gt;reason&lt;/u&gt;');
  });

  it('shows the pass@k headline, a row per language and per problem with c/n, pass@1 and the first failure', () => {
    expect(html).toMatch(/<div class="card"><b>0\.4167<\/b><span>pass@1<\/span><\/div>/);
    expect(html).toMatch(/<div class="card"><b>—<\/b><span>pass@10<\/span><\/div>/);
    expect(html).toContain('pass@10 not reported: 3 of 3 problems have fewer than 10 samples');
    expect(html).toMatch(/<tr><td>python<\/td><td class="n">2<\/td><td class="n">0<\/td><td class="n">2<\/td><td class="n">5<\/td><td class="n">1<\/td><td class="n">0\.2500<\/td><td class="n">—<\/td><\/tr>/);
    expect(html).toMatch(/<tr><td>HumanEval\/0<\/td><td>python<\/td><td class="n pass">2\/4<\/td><td class="n">0\.5000<\/td><td><details><summary>AssertionError<\/summary>/);
    expect(html).toMatch(/<tr><td>HumanEval\/1<\/td><td>python<\/td><td class="n fail">0\/4<\/td><td class="n">0\.0000<\/td><td>NameError<\/td><\/tr>/);
    expect(html).toMatch(/<td>rust<\/td><td class="n muted"><span class="muted">no toolchain<\/span><\/td>/);
  });
});

describe('the table by language', () => {
  // It once had two no-toolchain columns in HTML ("no toolchain" for problems, "no-toolchain" for samples among
  // the outcome columns), so the text and the HTML tables disagreed on what the column counted.
  it('has one no-toolchain column, of problems left out, right after the problems scored, in text and HTML alike', () => {
    const text = renderTable(report()).split('\n')[2]!.split(/\s+/);
    const html = renderHtml(report());
    const table = html.slice(html.indexOf('<h2>By language</h2>'), html.indexOf('<h2>Problems</h2>'));
    const head = [...table.matchAll(/<th>([^<]*)<\/th>/g)].map((m) => m[1]);
    expect(head).toEqual(['language', 'problems', 'no-toolchain', 'passed', 'failed', 'timeout', 'pass@1', 'pass@10']);
    expect(head.filter((h) => /no.toolchain/.test(h!))).toHaveLength(1);
    expect(text.slice(0, 3)).toEqual(head.slice(0, 3));
    expect(table).toMatch(/<tr><td>rust<\/td><td class="n">0<\/td><td class="n">1<\/td><td class="n">0<\/td><td class="n">0<\/td><td class="n">0<\/td><td class="n">—<\/td><td class="n">—<\/td><\/tr>/);
  });
});

describe('gateVerdicts', () => {
  const gate = (expr: string, suite?: string): Gate => ({ expr, ...parseGate(expr, suite)! });

  it('reads each gate against the suite metric and says pass or fail', () => {
    const r = report();
    expect(gateVerdicts(r, [gate('multipl-e.pass@1 >= 0.4'), gate('multipl-e.pass@1 > 0.5'), gate('pass@1 < 0.42', 'multipl-e')])).toEqual([
      { expr: 'multipl-e.pass@1 >= 0.4', metric: 'pass@1', value: r.passAtK['pass@1'], passed: true },
      { expr: 'multipl-e.pass@1 > 0.5', metric: 'pass@1', value: r.passAtK['pass@1'], passed: false },
      { expr: 'pass@1 < 0.42', metric: 'pass@1', value: r.passAtK['pass@1'], passed: true },
    ]);
  });

  it('takes flat metrics and gate texts, skipping gates of other suites', () => {
    const v = gateVerdicts({ 'pass@1': 0.2, 'pass@10': 0.45 }, ['humaneval.pass@1 >= 0.2', 'humaneval.pass@10 == 0.45', 'multipl-e.pass@1 >= 0.9', 'pass@1 <= 0.1'], { suite: 'humaneval' });
    expect(v.map((g) => [g.expr, g.passed])).toEqual([['humaneval.pass@1 >= 0.2', true], ['humaneval.pass@10 == 0.45', true], ['pass@1 <= 0.1', false]]);
  });

  it('leaves a gate undecided, with the reason, when its metric was omitted or the gate does not parse', () => {
    const v = gateVerdicts(report(), ['multipl-e.pass@10 >= 0.3', 'pass@one > 1']);
    expect(v[0]).toEqual({ expr: 'multipl-e.pass@10 >= 0.3', metric: 'pass@10', value: null, passed: null, reason: 'pass@10 was not reported: 3 of 3 problems have fewer than 10 samples (HumanEval/0 has n=4)' });
    expect(v[1]).toMatchObject({ passed: null, reason: expect.stringMatching(/does not parse/) });
  });
});

describe('stageSummary', () => {
  const artifacts = [{ name: 'report', uri: 'pvc://kiln-artifacts/runs/abc123/eval/multipl-e/report.json', digest: `sha256:${'a'.repeat(64)}`, bytes: 123_456 }];

  it('holds suite pass@k (what gates read), per-language pass@k, the counts and the artifacts', () => {
    const s = stageSummary(report(), { artifacts });
    expect(s.suite).toBe('multipl-e');
    expect(s.metrics).toEqual({
      'pass@1': report().passAtK['pass@1'],
      'pass@1.javascript': 0.75,
      'pass@1.python': 0.25,
      problems: 4,
      problems_scored: 3,
      samples: 16,
      passed: 5,
      failed: 6,
      timeout: 1,
      no_toolchain: 4,
    });
    expect(s.artifacts).toEqual(artifacts);
    expect(s.warnings).toEqual(['pass@10 not reported: 3 of 3 problems have fewer than 10 samples (HumanEval/0 has n=4)', 'no toolchain for rust: its problems are excluded from pass@k']);
    expect(reportMetrics(report())).toMatchObject({ 'pass@1.python': 0.25, no_toolchain: 4 });
  });

  it('stays well under 4 KiB for a suite of 40 languages × 3 k, keeping the suite metrics exact', () => {
    const many: ProblemOutcomes[] = [];
    for (let l = 0; l < 40; l++) for (let p = 0; p < 3; p++) many.push({ id: `HumanEval_${p}_lang${l}`, language: `language-number-${l}`, outcomes: Array.from({ length: 100 }, (_, i) => outcome(i % (p + l + 2) === 0 ? 'passed' : 'failed', 'AssertionError', 1)) });
    const r = buildReport({ suite: 'multipl-e', benchmark: 'multipl-e', ks: [1, 10, 100], results: many });
    const full = JSON.stringify(reportMetrics(r));
    expect(full.length).toBeGreaterThan(4096); // the naive summary would not fit
    const s = stageSummary(r, { artifacts: [...artifacts, ...artifacts] });
    const text = JSON.stringify(s);
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(3072);
    expect(s.metrics['pass@1']).toBe(r.passAtK['pass@1']);
    expect(s.metrics['pass@100']).toBe(r.passAtK['pass@100']);
    expect(s.metrics.samples).toBe(12_000);
    expect(s.artifacts).toHaveLength(2);
    expect(JSON.parse(text)).toEqual(s);
  });
});
