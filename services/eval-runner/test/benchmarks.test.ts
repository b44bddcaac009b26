import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assemble, BenchmarkError, canonicalLanguage, fimPrompt, HUMANEVAL_STOP, loadBenchmark, loadSamples, readBenchmark, truncateAtStop } from '../src/benchmarks.ts';
import type { Problem } from '../src/types.ts';

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = join(here, 'fixtures');
const HUMANEVAL = join(here, '../../../data/humaneval/HumanEval.jsonl.gz');

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'kiln-bench-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Writes a file under the test's temp dir and returns its path. */
function write(name: string, content: string | Buffer): string {
  const p = join(tmp, name);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, content);
  return p;
}

/** The BenchmarkError a promise rejects with. */
async function failure(p: Promise<unknown>): Promise<BenchmarkError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(BenchmarkError);
    return e as BenchmarkError;
  }
  throw new Error('expected a BenchmarkError');
}

const hasPython = spawnSync('python3', ['--version']).status === 0;

/** Runs a program with an interpreter; true when it exits 0. */
function runs(cmd: string, ext: string, program: string): boolean {
  const file = write(`run-${Math.random().toString(36).slice(2)}.${ext}`, program);
  return spawnSync(cmd, [file], { timeout: 20_000, stdio: 'ignore' }).status === 0;
}

describe('HumanEval', () => {
  it('loads the 164 problems of HumanEval.jsonl.gz with their entry points, tests, canonical solutions and bigcode stop words', async () => {
    const problems = await loadBenchmark(HUMANEVAL);
    expect(problems).toHaveLength(164);
    expect(problems.map((p) => p.id)).toEqual(Array.from({ length: 164 }, (_, i) => `HumanEval/${i}`));
    const p0 = problems[0]!;
    expect(p0).toMatchObject({ language: 'python', entryPoint: 'has_close_elements' });
    expect(p0.stop).toEqual(['\nclass', '\ndef', '\n#', '\n@', '\nprint', '\nif', '\n```', '<file_sep>']);
    expect(p0.tests).toContain('def check(candidate):');
    expect(problems.every((p) => p.canonical !== undefined && p.suffix === undefined)).toBe(true);
  });

  it('assembles prompt + completion + "\\n" + test + "\\n" + check(entry_point), exactly as openai/human-eval does', async () => {
    const raw = JSON.parse(gunzipSync(readFileSync(HUMANEVAL)).toString('utf8').split('\n')[0]!) as Record<string, string>;
    const [p0] = await loadBenchmark(HUMANEVAL, { format: 'humaneval' });
    expect(assemble(p0!, p0!.canonical!)).toBe(raw.prompt! + raw.canonical_solution! + '\n' + raw.test! + '\n' + 'check(has_close_elements)');
    expect(assemble(p0!, { taskId: 'HumanEval/0', completion: 'X' })).toBe(raw.prompt! + 'X\n' + raw.test! + '\ncheck(has_close_elements)');
    expect(() => assemble(p0!, { taskId: 'HumanEval/1', completion: 'X' })).toThrow(/HumanEval\/1/);
  });

  it.skipIf(!hasPython)('gives programs that pass with the canonical solution and fail with a wrong one', async () => {
    const problems = await loadBenchmark(HUMANEVAL);
    for (const p of [problems[0]!, problems[53]!]) {
      expect(runs('python3', 'py', assemble(p, p.canonical!))).toBe(true);
      expect(runs('python3', 'py', assemble(p, '    return None\n'))).toBe(false);
    }
  });

  it('filters by language (MultiPL-E codes and names alike) and says when nothing matches', async () => {
    expect(await loadBenchmark(HUMANEVAL, { language: 'py' })).toHaveLength(164);
    expect(await loadBenchmark(HUMANEVAL, { language: 'Python' })).toHaveLength(164);
    const e = await failure(loadBenchmark(HUMANEVAL, { language: 'js' }));
    expect(e.message).toContain('no problems in javascript; its languages are python');
  });
});

describe('MultiPL-E', () => {
  it('reads JSON Lines records, maps the language code and keeps the record stop tokens; no canonical solution', async () => {
    const problems = await loadBenchmark(join(fixtures, 'multipl-e-js.jsonl'));
    expect(problems.map((p) => p.id)).toEqual(['HumanEval_0_has_close_elements', 'HumanEval_2_truncate_number', 'HumanEval_23_strlen', 'HumanEval_53_add']);
    const p = problems[0]!;
    expect(p.language).toBe('javascript');
    expect(p.stop).toEqual(['\nfunction ', '\n/*', '\n//', '\nconsole.log']);
    expect(p.canonical).toBeUndefined();
    expect(p.entryPoint).toBeUndefined();
    expect(p.tests.startsWith("const assert = require('node:assert');")).toBe(true);
    expect(assemble(p, '  return false;\n}')).toBe(p.prompt + '  return false;\n}' + '\n' + p.tests);
  });

  it('gives JavaScript programs that node passes for a right completion and fails for a wrong one', async () => {
    const [hasClose, , , add] = await loadBenchmark(join(fixtures, 'multipl-e-js.jsonl'), { format: 'multipl-e' });
    const right = '  for (let i = 0; i < numbers.length; i++)\n    for (let j = i + 1; j < numbers.length; j++)\n      if (Math.abs(numbers[i] - numbers[j]) < threshold) return true;\n  return false;\n}';
    expect(runs(process.execPath, 'cjs', assemble(hasClose!, right))).toBe(true);
    expect(runs(process.execPath, 'cjs', assemble(hasClose!, '  return false;\n}'))).toBe(false);
    expect(runs(process.execPath, 'cjs', assemble(add!, '  return x + y;\n}'))).toBe(true);
    expect(runs(process.execPath, 'cjs', assemble(add!, '  return x - y;\n}'))).toBe(false);
  });

  it('reads a JSON array and a gzipped copy of JSON Lines', async () => {
    const py = await loadBenchmark(join(fixtures, 'multipl-e-py.json'));
    expect(py.map((p) => [p.id, p.language])).toEqual([['HumanEval_53_add', 'python'], ['HumanEval_23_strlen', 'python']]);
    expect(py[0]!.stop).toEqual(['\ndef', '\n#', '\nif', '\nclass']);
    const gz = write('mjs.jsonl.gz', gzipSync(readFileSync(join(fixtures, 'multipl-e-js.jsonl'))));
    expect(await loadBenchmark(gz)).toEqual(await loadBenchmark(join(fixtures, 'multipl-e-js.jsonl')));
    expect(await loadBenchmark(gz, { language: 'javascript' })).toHaveLength(4);
  });

  it('maps MultiPL-E language codes to canonical names', () => {
    expect(['py', 'js', 'ts', 'go', 'rs', 'java', 'cpp', 'sh', 'cs', 'rb', 'jl', 'hs', 'ml', 'rkt'].map(canonicalLanguage)).toEqual([
      'python', 'javascript', 'typescript', 'go', 'rust', 'java', 'cpp', 'shell', 'csharp', 'ruby', 'julia', 'haskell', 'ocaml', 'racket',
    ]);
    expect(canonicalLanguage('JavaScript')).toBe('javascript');
    expect(canonicalLanguage('zig')).toBe('zig');
  });
});

describe('custom suites', () => {
  it('reads a directory: one sub-directory per problem, language from the extension, problem.json overrides, *.jsonl beside them', async () => {
    const problems = await loadBenchmark(join(fixtures, 'custom-suite'));
    expect(problems.map((p) => [p.id, p.language])).toEqual([['clamp_fim', 'rust'], ['is_even', 'shell'], ['sum_list', 'go'], ['reverse_words', 'python']]);
    const [clamp, isEven, sumList, reverse] = problems as [Problem, Problem, Problem, Problem];
    expect(clamp.suffix).toBe('    x\n}\n');
    expect(clamp.stop).toEqual([]);
    expect(clamp.canonical).toBe('    if x > hi {\n        return hi;\n    }\n');
    expect(isEven.stop).toEqual(['\n\n', '\nis_even']);
    expect(sumList.stop).toEqual(['\nfunc ']);
    expect(reverse.entryPoint).toBe('reverse_words');
    expect(reverse.stop).toEqual(HUMANEVAL_STOP);
    expect(assemble(clamp, clamp.canonical!)).toBe(clamp.prompt + clamp.canonical + clamp.suffix + '\n' + clamp.tests);
    expect(assemble(reverse, reverse.canonical!)).toBe(reverse.prompt + reverse.canonical + '\n' + reverse.tests + '\ncheck(reverse_words)');
  });

  it.skipIf(!hasPython)('gives directory problems whose reference solutions pass', async () => {
    const problems = await loadBenchmark(join(fixtures, 'custom-suite'), { language: 'python' });
    expect(problems).toHaveLength(1);
    expect(runs('python3', 'py', assemble(problems[0]!, problems[0]!.canonical!))).toBe(true);
    expect(runs('python3', 'py', assemble(problems[0]!, '    return s\n'))).toBe(false);
    const [sh] = await loadBenchmark(join(fixtures, 'custom-suite'), { language: 'sh' });
    expect(runs('bash', 'sh', assemble(sh!, sh!.canonical!))).toBe(true);
  });

  it('takes the language of a directory problem from js/ts/mjs extensions', async () => {
    const dir = join(tmp, 'ext-suite');
    write('ext-suite/a/prompt.ts', 'function f(): number {\n');
    write('ext-suite/a/tests.ts', 'console.log(f());\n');
    write('ext-suite/b/prompt.mjs', 'export function g() {\n');
    write('ext-suite/b/tests.mjs', 'g();\n');
    write('ext-suite/c/prompt.txt', 'x');
    write('ext-suite/c/tests.txt', 'y');
    write('ext-suite/c/problem.json', '{"language": "rs"}');
    const problems = await loadBenchmark(dir);
    expect(problems.map((p) => [p.id, p.language])).toEqual([['a', 'typescript'], ['b', 'javascript'], ['c', 'rust']]);
    expect(problems[0]!.stop).toEqual(['\nfunction ', '\n/*', '\n//', '\nclass']);
    expect(problems[2]!.stop).toEqual([]);
  });

  it('reads JSON Lines records, with an infilling problem and a HumanEval-style entry point', async () => {
    const problems = await loadBenchmark(join(fixtures, 'custom.jsonl'));
    expect(problems.map((p) => [p.id, p.language])).toEqual([['fib', 'python'], ['fill_mean', 'python'], ['upper_first', 'javascript']]);
    const [fib, fill, upper] = problems as [Problem, Problem, Problem];
    expect(fill.suffix).toBe('    return total / count\n');
    expect(fill.stop).toEqual([]);
    expect(assemble(fill, fill.canonical!)).toBe('def mean(xs: list[float]) -> float:\n    total = sum(xs)\n    count = len(xs)\n    return total / count\n\nassert mean([1.0, 2.0, 3.0]) == 2.0\nassert mean([5.0]) == 5.0\n');
    expect(assemble(fib, 'X').endsWith('\ncheck(fib)')).toBe(true);
    expect(upper.stop).toEqual(['\nfunction ', '\n/*', '\n//', '\nconsole.log']);
    expect(runs(process.execPath, 'cjs', assemble(upper, upper.canonical!))).toBe(true);
    if (hasPython) {
      expect(runs('python3', 'py', assemble(fill, fill.canonical!))).toBe(true);
      expect(runs('python3', 'py', assemble(fill, '    count = 2\n'))).toBe(false);
      expect(runs('python3', 'py', assemble(fib, fib.canonical!))).toBe(true);
    }
  });
});

describe('bad benchmark input', () => {
  it('names file:line and the JSON error of a malformed line, and lists every bad line at once', async () => {
    const f = write('bad.jsonl', '{"id": "a", "language": "py", "prompt": "", "tests": "t"}\n{"id": "b", \n{"id": "c", "language": "py", "prompt": "", "tests": "t"}\n[1, 2]\n');
    const e = await failure(loadBenchmark(f));
    expect(e.issues.map((i) => i.line)).toEqual([2, 4]);
    expect(e.message).toMatch(new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2: not valid JSON`));
    expect(e.message).toContain(`${f}:4: expected a JSON object, got an array`);
    expect(e.name).toBe('BenchmarkError');
  });

  it('names the missing or mistyped field and the line', async () => {
    const he = write('he.jsonl', '{"task_id": "t/0", "prompt": "p", "entry_point": "f", "test": "x"}\n{"task_id": "t/1", "entry_point": "f", "test": 3}\n');
    const e = await failure(loadBenchmark(he));
    expect(e.message).toBe(`${he}:2: missing "prompt"\n${he}:2: "test" must be a string, got a number`);
    const me = write('me.jsonl', '{"name": "n", "language": "js", "prompt": "p", "tests": "t", "stop_tokens": "\\n}"}\n');
    expect((await failure(loadBenchmark(me))).message).toBe(`${me}:1: "stop_tokens" must be an array of strings, got a string`);
  });

  it('rejects unknown fields of custom records with a suggestion', async () => {
    const f = write('typo.jsonl', '{"id": "a", "language": "py", "prompt": "p", "test": "t"}\n');
    const e = await failure(loadBenchmark(f));
    expect(e.message).toContain(`${f}:1: unknown field "test" (did you mean "tests"?)`);
    expect(e.message).toContain(`${f}:1: missing "tests"`);
  });

  it('rejects duplicate ids, saying where the first one is', async () => {
    const f = write('dup.jsonl', ['a', 'b', 'a'].map((id) => JSON.stringify({ id, language: 'py', prompt: '', tests: 't' })).join('\n') + '\n');
    expect((await failure(loadBenchmark(f))).message).toBe(`${f}:3: duplicate id "a" (first at ${f}:1)`);
    const dir = join(tmp, 'dup-dir');
    write('dup-dir/a/prompt.py', 'p');
    write('dup-dir/a/tests.py', 't');
    write('dup-dir/more.jsonl', JSON.stringify({ id: 'a', language: 'py', prompt: '', tests: 't' }) + '\n');
    expect((await failure(loadBenchmark(dir))).message).toBe(`${join(dir, 'more.jsonl')}:1: duplicate id "a" (first at ${join(dir, 'a')})`);
  });

  it('rejects empty files, empty arrays and empty directories', async () => {
    for (const [name, text] of [['empty.jsonl', ''], ['blank.jsonl', '\n  \n'], ['empty.json', '[ ]']] as const) {
      const f = write(name, text);
      expect((await failure(loadBenchmark(f))).message).toBe(`${f}: empty: no problems in it`);
    }
    mkdirSync(join(tmp, 'empty-dir/.git'), { recursive: true });
    write('empty-dir/README.md', 'nothing');
    expect((await failure(loadBenchmark(join(tmp, 'empty-dir')))).message).toContain('empty: no problem directories');
  });

  it('points at the line of a bad element of a JSON array, and at the JSON syntax error', async () => {
    const f = write('arr.json', '[\n  {"id": "a", "language": "py", "prompt": "", "tests": "t"},\n  {"id": "b",\n   "language": "py", "prompt": ""}\n]\n');
    expect((await failure(loadBenchmark(f))).message).toBe(`${f}:3: missing "tests"`);
    const g = write('broken.json', '[\n  {"id": "a"},\n  {"id": }\n]');
    const e = await failure(loadBenchmark(g));
    expect(e.message).toMatch(/not valid JSON/);
    expect(e.issues[0]!.line).toBe(3);
    expect(e.message).not.toContain('\n');
    const h = write('truncated.json', '[\n  {"id": "a", "language": "py", "prompt": "", "tests": "t"},\n  {"id": "b"}');
    expect((await failure(loadBenchmark(h))).issues[0]!.line).toBe(3);
  });

  it('detects the format when not told: from the first record\'s fields, and a directory is a custom suite', async () => {
    expect((await readBenchmark(HUMANEVAL)).format).toBe('humaneval');
    const m = await readBenchmark(join(fixtures, 'multipl-e-js.jsonl'));
    expect(m.format).toBe('multipl-e');
    expect(m.problems.map((p) => p.language)).toEqual(['javascript', 'javascript', 'javascript', 'javascript']);
    expect((await readBenchmark(join(fixtures, 'multipl-e-py.json'))).format).toBe('multipl-e');
    expect((await readBenchmark(join(fixtures, 'custom.jsonl'))).format).toBe('custom');
    const d = await readBenchmark(join(fixtures, 'custom-suite'));
    expect(d.format).toBe('custom');
    expect(d.problems.map((p) => p.id)).toContain('reverse_words');
  });

  it('says which formats exist when a record matches none, and rejects a file of another format', async () => {
    const f = write('what.jsonl', '{"question": "q", "answer": "a"}\n');
    expect((await failure(loadBenchmark(f))).message).toMatch(/^.*what\.jsonl:1: cannot tell the benchmark format from the fields "question", "answer": HumanEval records have task_id/);
    const e = await failure(loadBenchmark(join(fixtures, 'multipl-e-js.jsonl'), { format: 'humaneval' }));
    expect(e.issues).toHaveLength(4 * 3);
    expect(e.message).toContain('multipl-e-js.jsonl:1: missing "task_id"');
  });

  it('reports unreadable input: no such path, corrupt gzip, invalid UTF-8, a directory for a file format', async () => {
    expect((await failure(loadBenchmark(join(tmp, 'nope.jsonl')))).message).toBe(`${join(tmp, 'nope.jsonl')}: cannot read it (ENOENT)`);
    const gz = write('corrupt.jsonl.gz', Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3]));
    expect((await failure(loadBenchmark(gz))).message).toMatch(/corrupt\.jsonl\.gz: not a valid gzip file/);
    const bin = write('latin1.jsonl', Buffer.from([0x7b, 0xff, 0x7d, 0x0a]));
    expect((await failure(loadBenchmark(bin))).message).toMatch(/latin1\.jsonl: not valid UTF-8 text/);
    expect((await failure(loadBenchmark(join(fixtures, 'custom-suite'), { format: 'humaneval' }))).message).toMatch(/is a directory, which only the custom format can be/);
  });

  it('reports incomplete or ambiguous problem directories', async () => {
    const dir = join(tmp, 'bad-dir');
    write('bad-dir/no_tests/prompt.py', 'p');
    write('bad-dir/two_prompts/prompt.py', 'p');
    write('bad-dir/two_prompts/prompt.js', 'p');
    write('bad-dir/two_prompts/tests.py', 't');
    write('bad-dir/unknown_ext/prompt.xyz', 'p');
    write('bad-dir/unknown_ext/tests.xyz', 't');
    write('bad-dir/bad_json/prompt.py', 'p');
    write('bad-dir/bad_json/tests.py', 't');
    write('bad-dir/bad_json/problem.json', '{"lang": "py"}');
    write('bad-dir/empty_tests/prompt.py', 'p');
    write('bad-dir/empty_tests/tests.py', '\n');
    const e = await failure(loadBenchmark(dir));
    expect(e.message.split('\n')).toEqual([
      `${join(dir, 'bad_json/problem.json')}:1: unknown field "lang" (did you mean "language"?); fields are language, stop, entry_point`,
      `${join(dir, 'empty_tests/tests.py')}: the tests file is empty`,
      `${join(dir, 'no_tests')}: no tests.<ext> file (each problem directory needs prompt.<ext> and tests.<ext>)`,
      `${join(dir, 'two_prompts')}: more than one prompt file (prompt.js, prompt.py); keep one`,
      `${join(dir, 'unknown_ext/prompt.xyz')}: cannot tell the language from ".xyz"; name it in problem.json ("language")`,
    ]);
  });
});

describe('truncateAtStop', () => {
  it('cuts the generation at the earliest stop sequence', () => {
    expect(truncateAtStop('    return 1\n\ndef other():\n    pass\n', HUMANEVAL_STOP)).toBe('    return 1\n');
    expect(truncateAtStop('  x\n# note\nif y:\n', HUMANEVAL_STOP)).toBe('  x');
    expect(truncateAtStop('a<file_sep>b\nclass', HUMANEVAL_STOP)).toBe('a');
  });

  it('leaves a generation without stop sequences whole, and ignores empty stop strings', () => {
    expect(truncateAtStop('  return x + y;\n}', ['\nfunction ', ''])).toBe('  return x + y;\n}');
    expect(truncateAtStop('', ['\n'])).toBe('');
  });
});

describe('fimPrompt', () => {
  const sentinels = { prefix: '<fim_prefix>', middle: '<fim_middle>', suffix: '<fim_suffix>' };
  const problem: Problem = { id: 'f', language: 'python', prompt: 'def f():\n', suffix: '    return x\n', tests: 't', stop: [] };

  it('builds PSM by default: <prefix>{prefix}<suffix>{suffix}<middle>', () => {
    expect(fimPrompt(problem, sentinels)).toBe('<fim_prefix>def f():\n<fim_suffix>    return x\n<fim_middle>');
  });

  it('builds SPM as <prefix><suffix>{suffix}<middle>{prefix}, with any sentinels', () => {
    expect(fimPrompt(problem, sentinels, 'spm')).toBe('<fim_prefix><fim_suffix>    return x\n<fim_middle>def f():\n');
    expect(fimPrompt({ ...problem, suffix: undefined }, { prefix: '<PRE>', middle: '<MID>', suffix: '<SUF>' })).toBe('<PRE>def f():\n<SUF><MID>');
  });
});

describe('loadSamples', () => {
  it('reads {task_id, completion} lines, plain or gzipped, ignoring other fields', async () => {
    const text = '{"task_id": "HumanEval/0", "completion": "    return True\\n"}\n{"task_id": "HumanEval/0", "completion": "", "passed": false}\n';
    const expected = [{ taskId: 'HumanEval/0', completion: '    return True\n' }, { taskId: 'HumanEval/0', completion: '' }];
    expect(await loadSamples(write('s.jsonl', text))).toEqual(expected);
    expect(await loadSamples(write('s.jsonl.gz', gzipSync(text)))).toEqual(expected);
  });

  it('names file:line of bad sample lines and rejects an empty file', async () => {
    const f = write('bad-samples.jsonl', '{"task_id": "HumanEval/0", "completion": "x"}\n{"task_id": "HumanEval/1"}\nnot json\n{"task_id": 3, "completion": "y"}\n');
    const e = await failure(loadSamples(f));
    expect(e.message).toContain(`${f}:3: not valid JSON`);
    const g = write('bad-samples2.jsonl', '{"task_id": "HumanEval/0", "completion": "x"}\n{"task_id": "HumanEval/1"}\n{"task_id": 3, "completion": "y"}\n');
    expect((await failure(loadSamples(g))).message).toBe(`${g}:2: missing "completion"\n${g}:3: "task_id" must be a string, got a number`);
    const h = write('none.jsonl', '');
    expect((await failure(loadSamples(h))).message).toBe(`${h}: empty: no samples in it`);
  });
});
