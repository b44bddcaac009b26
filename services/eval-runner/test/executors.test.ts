import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execute, EXECUTOR_LANGUAGES as LANGUAGES, executorFor, executorLanguage, matchBrace, toolchains, type ExecLanguage } from '../src/executors.ts';
import { Sandbox } from '../src/sandbox.ts';
import type { Outcome } from '../src/types.ts';

const tc = await toolchains();
let sb: Sandbox;

/**
 * On a cold machine the host's Go build cache is empty, so each sandbox would build `testing` and its
 * dependencies from source, three at once (over 2 minutes on 2 busy cores). Build them once on the host, with the
 * sandbox's settings, so that the sandboxes' overlaid cache (toolchains' cacheSeed) already holds them.
 */
async function warmGoCache(go: string): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'kiln-go-warm-'));
  try {
    writeFileSync(path.join(dir, 'warm_test.go'), 'package main\n\nimport (\n\t"os"\n\t"testing"\n)\n\nfunc TestWarm(t *testing.T) { _ = os.Args }\n');
    const env = { ...process.env, GOTOOLCHAIN: 'local', GOPROXY: 'off', GOFLAGS: '-buildvcs=false', CGO_ENABLED: '0', GO111MODULE: 'off' };
    await promisify(execFile)(go, ['test', '-count=1', '.'], { cwd: dir, env, timeout: 540_000 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

beforeAll(async () => {
  sb = await Sandbox.create({ concurrency: 2 });
  const go = tc.go.available ? tc.go.commands?.go : undefined;
  if (go) {
    await warmGoCache(go);
    await toolchains({ refresh: true }); // the cache folder may only exist now: its seed comes with it
  }
}, 600_000);

afterAll(async () => {
  await sb?.close();
});

interface Case {
  readonly pass: string;
  readonly fail: string;
  /** Exits 0 before the checks end. */
  readonly early: readonly string[];
  /** What the failure's reason says. */
  readonly failReason: RegExp;
  readonly compileError?: string;
}

const CASES: Record<ExecLanguage, Case> = {
  shell: {
    // MultiPL-E's bash style: set -e in the tests, a failing [[ ]] ends the script.
    pass: '#!/bin/bash\nadd() {\n    echo $(( $1 + $2 ))\n}\n\nset -e\ncandidate() {\n    add "$@"\n}\n[[ $(candidate "2" "3") = "5" ]]\n',
    fail: '#!/bin/bash\nadd() {\n    echo $(( $1 - $2 ))\n}\n\nset -e\ncandidate() {\n    add "$@"\n}\n[[ $(candidate "2" "3") = "5" ]] || { echo "add(2, 3) != 5" >&2; exit 1; }\n',
    early: ['#!/bin/bash\nadd() {\n    exit 0\n}\n\nset -e\ncandidate() {\n    add "$@"\n}\ncandidate 2 3\n[[ $(candidate "2" "3") = "5" ]]\n'],
    failReason: /^add\(2, 3\) != 5$/,
  },
  python: {
    pass: 'def add(x: int, y: int) -> int:\n    return x + y\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n\ncheck(add)\n',
    fail: 'def add(x: int, y: int) -> int:\n    return x - y\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n\ncheck(add)\n',
    early: [
      'import sys\ndef add(x, y):\n    return x - y\nsys.exit(0)\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n\ncheck(add)\n',
      'import os\ndef add(x, y):\n    os._exit(0)\n\ndef check(candidate):\n    assert candidate(2, 3) == 5\n\ncheck(add)\n',
    ],
    failReason: /^AssertionError$/,
  },
  javascript: {
    pass: 'function add(x, y) {\n  return x + y;\n}\nconst assert = require("node:assert");\nfunction test() {\n  assert.deepEqual(add(2, 3), 5);\n}\ntest();\n',
    fail: 'function add(x, y) {\n  return x - y;\n}\nconst assert = require("node:assert");\nfunction test() {\n  assert.deepEqual(add(2, 3), 5);\n}\ntest();\n',
    early: ['function add(x, y) {\n  process.exit(0);\n}\nconst assert = require("node:assert");\nassert.deepEqual(add(2, 3), 5);\n'],
    failReason: /^AssertionError/,
  },
  typescript: {
    pass: 'declare var require: any;\nconst assert = require("node:assert");\nenum Op { Plus = 1 }\nfunction add(x: number, y: number): number {\n  return Op.Plus * x + y;\n}\nassert.deepEqual(add(2, 3), 5);\n',
    fail: 'declare var require: any;\nconst assert = require("node:assert");\nfunction add(x: number, y: number): number {\n  return x * y;\n}\nassert.deepEqual(add(2, 3), 5);\n',
    early: ['declare var require: any;\nconst assert = require("node:assert");\nfunction add(x: number, y: number): number {\n  process.exit(0);\n}\nassert.deepEqual(add(2, 3), 5);\n'],
    failReason: /^AssertionError/,
  },
  go: {
    pass: 'package main\n\nimport (\n\t"testing"\n)\n\nfunc add(x int, y int) int {\n\treturn x + y\n}\n\nfunc TestAdd(t *testing.T) {\n\tif add(2, 3) != 5 {\n\t\tt.Errorf("add(2, 3) = %d", add(2, 3))\n\t}\n}\n',
    fail: 'package main\n\nimport (\n\t"testing"\n)\n\nfunc add(x int, y int) int {\n\treturn x - y\n}\n\nfunc TestAdd(t *testing.T) {\n\tif add(2, 3) != 5 {\n\t\tt.Errorf("add(2, 3) = %d", add(2, 3))\n\t}\n}\n',
    early: [
      'package main\n\nimport (\n\t"os"\n\t"testing"\n)\n\nfunc add(x int, y int) int {\n\tos.Exit(0)\n\treturn 0\n}\n\nfunc TestAdd(t *testing.T) {\n\tif add(2, 3) != 5 {\n\t\tt.Errorf("wrong")\n\t}\n}\n',
      // A main program (not a test file): the same guard through a renamed main.
      'package main\n\nimport "os"\n\nfunc add(x int, y int) int {\n\tos.Exit(0)\n\treturn 0\n}\n\nfunc main() {\n\tif add(2, 3) != 5 {\n\t\tpanic("wrong")\n\t}\n}\n',
    ],
    failReason: /^--- FAIL: TestAdd.*add\(2, 3\) = -1/,
    compileError: 'package main\n\nimport "testing"\n\nfunc TestAdd(t *testing.T) {\n\tundefinedThing()\n}\n',
  },
  rust: {
    pass: 'fn add(x: isize, y: isize) -> isize {\n    x + y\n}\n\nfn main() {\n    let candidate = add;\n    assert_eq!(candidate(2, 3), 5);\n}\n',
    fail: 'fn add(x: isize, y: isize) -> isize {\n    x - y\n}\n\nfn main() {\n    let candidate = add;\n    assert_eq!(candidate(2, 3), 5);\n}\n',
    early: ['fn add(_x: isize, _y: isize) -> isize {\n    std::process::exit(0)\n}\n\nfn main() {\n    assert_eq!(add(2, 3), 5);\n}\n'],
    failReason: /^panicked: assertion `left == right` failed/,
    compileError: 'fn main() {\n    let x: i32 = "nope";\n}\n',
  },
  java: {
    pass: 'import java.util.*;\n\nclass Problem {\n    public static long add(long x, long y) {\n        return x + y;\n    }\n    public static void main(String[] args) {\n        assert(add((2l), (3l)) == (5l));\n    }\n}\n',
    fail: 'import java.util.*;\n\nclass Problem {\n    public static long add(long x, long y) {\n        return x - y;\n    }\n    public static void main(String[] args) {\n        assert(add((2l), (3l)) == (5l));\n    }\n}\n',
    early: ['import java.util.*;\n\nclass Problem {\n    public static long add(long x, long y) {\n        System.exit(0);\n        return 0;\n    }\n    public static void main(String[] args) {\n        assert(add((2l), (3l)) == (5l));\n    }\n}\n'],
    failReason: /^java\.lang\.AssertionError/,
    compileError: 'class Problem {\n    public static void main(String[] args) {\n        int x = "nope";\n    }\n}\n',
  },
  cpp: {
    // MultiPL-E style: main without a return; braces inside strings and comments.
    pass: '#include<assert.h>\n#include<bits/stdc++.h>\nlong add(long x, long y) {\n    return x + y;\n}\nint main() {\n    auto candidate = add;\n    std::string s = "}{"; // }\n    assert(candidate((2), (3)) == (5));\n    assert(s.size() == 2);\n}\n',
    fail: '#include<assert.h>\n#include<bits/stdc++.h>\nlong add(long x, long y) {\n    return x - y;\n}\nint main() {\n    auto candidate = add;\n    assert(candidate((2), (3)) == (5));\n}\n',
    early: ['#include<assert.h>\n#include<bits/stdc++.h>\nlong add(long x, long y) {\n    std::exit(0);\n}\nint main() {\n    assert(add((2), (3)) == (5));\n}\n'],
    failReason: /^Assertion `candidate\(\(2\), \(3\)\) == \(5\)' failed/,
    compileError: 'int main() {\n    int x = ;\n}\n',
  },
};

const run = (lang: ExecLanguage, program: string, opts: Parameters<typeof execute>[3] = {}) => execute(sb, lang, program, { compileTimeoutMs: 120_000, ...opts });

describe('executors: toolchains', () => {
  it('finds the toolchains on PATH (node is always the running one)', async () => {
    expect(Object.keys(tc).sort()).toEqual([...LANGUAGES].sort());
    expect(tc.javascript).toMatchObject({ available: true, version: process.version });
    for (const lang of LANGUAGES) {
      const t = tc[lang];
      if (t.available) expect(t.version, lang).toMatch(/\d/);
      else expect(t.reason, lang).toMatch(/^no |cannot|does not/);
    }
  });

  it('with an empty PATH everything but node is missing, each saying what is not on PATH', async () => {
    const none = await toolchains({ path: '' });
    expect(none.python).toEqual({ available: false, reason: 'no python3 on PATH' });
    expect(none.rust).toEqual({ available: false, reason: 'no rustc on PATH' });
    expect(none.go).toEqual({ available: false, reason: 'no go on PATH' });
    expect(none.java).toEqual({ available: false, reason: 'no javac on PATH' });
    expect(none.cpp).toEqual({ available: false, reason: 'no g++ on PATH' });
    expect(none.javascript.available).toBe(true);
  });

  it('a missing toolchain gives no-toolchain outcomes (never failed), also for an injected map and unknown languages', async () => {
    const none = await toolchains({ path: '' });
    const o = await execute(sb, 'rust', CASES.rust.pass, { toolchains: none });
    expect(o).toMatchObject({ status: 'no-toolchain', reason: 'no rustc on PATH', exitCode: null });
    const p = await execute(sb, 'py', CASES.python.pass, { toolchains: { python: { available: false, reason: 'no python3 on PATH' } } });
    expect(p).toMatchObject({ status: 'no-toolchain', reason: 'no python3 on PATH' });
    expect(await execute(sb, 'cobol', 'DISPLAY "HI".')).toMatchObject({ status: 'no-toolchain', reason: 'no executor for language cobol' });
  });

  it('maps MultiPL-E short names', () => {
    expect(['py', 'js', 'ts', 'go', 'rs', 'java', 'cpp'].map((l) => executorLanguage(l))).toEqual(['python', 'javascript', 'typescript', 'go', 'rust', 'java', 'cpp']);
    expect(executorLanguage('lua')).toBeUndefined();
  });

  it.runIf(tc.python.available)('executorFor binds a sandbox into the runner\'s Execute shape', async () => {
    const exec = executorFor(sb, { timeoutMs: 2000 });
    expect(await exec('python', CASES.python.pass, { timeoutMs: 2000 })).toMatchObject({ status: 'passed' });
  });
});

describe('executors: every available language', () => {
  for (const lang of LANGUAGES) {
    const c = CASES[lang];
    describe.runIf(tc[lang].available)(lang, () => {
      it(`a correct program passes, a wrong one fails, an early exit(0) fails`, async () => {
        const [pass, fail, ...early] = await Promise.all([run(lang, c.pass), run(lang, c.fail), ...c.early.map((e) => run(lang, e))]);
        expect(pass, `${pass.reason}\n${pass.stderr}`).toMatchObject({ status: 'passed', exitCode: 0 });
        expect(pass.stdout).not.toContain('KILN_END_');
        expect(fail.status, fail.stderr).toBe('failed');
        expect(fail.reason).toMatch(c.failReason);
        for (const e of early) {
          expect(e, e.stderr).toMatchObject({ status: 'failed', reason: 'checks did not finish (no end marker)', exitCode: 0 });
        }
      }, 120_000);

      if (c.compileError) it('a compile error fails with the compiler\'s first error line', async () => {
        const o = await run(lang, c.compileError!);
        expect(o.status).toBe('failed');
        expect(o.reason).toMatch(/^compile error: .*error|^compile error: .*undefined/i);
        expect(o.reason).not.toContain('/run-');
      }, 120_000);
    });
  }
});

describe.runIf(tc.python.available)('executors: python details', () => {
  it('times out an infinite loop with a short reason', async () => {
    const o = await run('python', 'while True:\n    pass\n', { timeoutMs: 500 });
    expect(o).toMatchObject({ status: 'timeout', reason: 'killed after 500 ms', signal: 'SIGKILL' });
  });

  it('reports the last exception line, and plain exit codes', async () => {
    expect(await run('python', 'def f():\n    return x\n\nf()\n')).toMatchObject({ status: 'failed', reason: "NameError: name 'x' is not defined" });
    expect(await run('python', 'import sys\nsys.exit(3)\n')).toMatchObject({ status: 'failed', reason: 'exit 3', exitCode: 3 });
    expect(await run('python', 'print("x" * 100)\nwhile True:\n    print("y" * 1000)\n')).toMatchObject({ status: 'failed', reason: 'output limit exceeded (1024 KiB)' });
  });

  it('a marker given by the caller is what must be printed', async () => {
    const o = await run('python', 'print("KILN_OTHER_123456")\n', { marker: 'KILN_MINE_123456' });
    expect(o.status).toBe('passed');
    expect(o.stdout).toBe('KILN_OTHER_123456\n');
  });

  it('every HumanEval canonical solution passes, and none passes with an empty body', async () => {
    const rows = gunzipSync(readFileSync(fileURLToPath(new URL('../../../data/humaneval/HumanEval.jsonl.gz', import.meta.url))))
      .toString('utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { task_id: string; prompt: string; canonical_solution: string; test: string; entry_point: string });
    expect(rows).toHaveLength(164);
    const program = (r: (typeof rows)[number], body: string) => `${r.prompt}${body}\n\n${r.test}\n\ncheck(${r.entry_point})\n`;
    const started = performance.now();
    const outcomes: Outcome[] = await Promise.all(rows.map((r) => run('python', program(r, r.canonical_solution))));
    const seconds = (performance.now() - started) / 1000;
    const bad = outcomes.map((o, i) => [rows[i]!.task_id, o] as const).filter(([, o]) => o.status !== 'passed');
    expect(bad.map(([id, o]) => `${id}: ${o.reason}`)).toEqual([]);
    const empty = await Promise.all(rows.slice(0, 20).map((r) => run('python', program(r, '    pass\n'))));
    expect(empty.filter((o) => o.status === 'passed')).toEqual([]);
    // Informational: samples per second here, with whatever else the test run is doing on this machine.
    console.log(`HumanEval canonical: ${(rows.length / seconds).toFixed(1)} samples/s (${sb.describe().mode}, concurrency ${sb.concurrency})`);
  }, 120_000);
});

describe.runIf(tc.javascript.available)('executors: javascript details', () => {
  it('asynchronous checks are waited for: a rejected check fails, a resolved one passes', async () => {
    const asyncTest = (ok: boolean) => `const assert = require("node:assert");\nasync function f() { await new Promise((r) => setTimeout(r, 50)); return ${ok ? 5 : 4}; }\n(async () => { assert.deepEqual(await f(), 5); })();\n`;
    expect(await run('javascript', asyncTest(true))).toMatchObject({ status: 'passed' });
    expect(await run('javascript', asyncTest(false))).toMatchObject({ status: 'failed', reason: expect.stringMatching(/^AssertionError/) });
  });
});

describe('executors: brace matching for C-like sources', () => {
  it('skips strings, chars and comments', () => {
    const src = 'int main() { char c = \'}\'; const char* s = "}\\"}"; /* } */ // }\n { } }';
    expect(matchBrace(src, src.indexOf('{'))).toBe(src.length - 1);
    expect(matchBrace('{ "unterminated', 0)).toBe(-1);
  });
});
