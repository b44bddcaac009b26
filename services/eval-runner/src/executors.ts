/**
 * Language executors: turn one program (completion + benchmark tests, already assembled) into an Outcome by
 * compiling it when the language needs it and running it in the sandbox.
 *
 * A sample passes only if the benchmark's checks actually ran to the end: each run gets a random marker that the
 * executor makes the program print after the tests (Python/JS/TS: a statement appended to the program; Go, Rust,
 * C++, Java: the program's `main` is renamed and a wrapper `main` calls it, then prints the marker; Go test files
 * get a `TestMain` that prints it when `m.Run()` succeeded). Passed = exit 0 and the marker on stdout, so a
 * completion that calls `sys.exit(0)` / `process.exit(0)` / `os.Exit(0)` / `std::exit(0)` / `System.exit(0)`
 * before the checks end fails. (A program that reads its own source can find the marker; this guards against
 * early exits, not against a completion written to game the harness.)
 *
 * Compilation runs in the sandbox too (compile-time code execution exists: build scripts, template and constexpr
 * bombs), with its own, larger limits, so compile time does not eat the run's timeout.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { canonicalLanguage } from './benchmarks.ts';
import type { Language, Outcome } from './types.ts';
import { findExecutable, type Limits, type RunResult, type RunStep, type Sandbox } from './sandbox.ts';

/** The languages with an executor (canonical names). */
export const EXECUTOR_LANGUAGES = ['python', 'javascript', 'typescript', 'go', 'rust', 'java', 'cpp', 'shell'] as const;
export type ExecLanguage = (typeof EXECUTOR_LANGUAGES)[number];

/** Spellings beyond the canonical names and MultiPL-E's codes (which `canonicalLanguage` maps). */
const ALIASES: Readonly<Record<string, ExecLanguage>> = { python3: 'python', node: 'javascript', golang: 'go', 'c++': 'cpp', cc: 'cpp', cxx: 'cpp', bash: 'shell' };

/** The executor for a language name (canonical, MultiPL-E short, or another common spelling); undefined when there is none. */
export function executorLanguage(language: Language): ExecLanguage | undefined {
  const name = canonicalLanguage(language);
  if (ALIASES[name]) return ALIASES[name];
  return (EXECUTOR_LANGUAGES as readonly string[]).includes(name) ? (name as ExecLanguage) : undefined;
}

export interface Toolchain {
  readonly available: boolean;
  readonly version?: string;
  /** Why it is unavailable: `no rustc on PATH`. */
  readonly reason?: string;
  /** Absolute paths of the commands the executor runs (python, node, go, rustc, javac, java, g++). */
  readonly commands?: Readonly<Record<string, string>>;
  /** Directories the toolchain needs at run time (made reachable, read-only, inside the sandbox). */
  readonly roots?: readonly string[];
  /** A host build cache to seed the sandbox's compile cache from (Go: `go env GOCACHE`). */
  readonly cacheSeed?: string;
  /** Python: the site-packages directories (added to sys.path without running site's .pth hooks). */
  readonly sitePackages?: readonly string[];
}

export type Toolchains = Readonly<Record<ExecLanguage, Toolchain>>;

export interface ToolchainOptions {
  /** PATH to search (default: the runner's). An empty string finds nothing but node, which is the runner's own. */
  readonly path?: string;
  /** Detect again instead of using the cached answer. */
  readonly refresh?: boolean;
}

const cache = new Map<string, Promise<Toolchains>>();

/** Detects the toolchains on PATH (cached per PATH). A missing one says why, and gives no-toolchain outcomes. */
export function toolchains(opts: ToolchainOptions = {}): Promise<Toolchains> {
  const searchPath = opts.path ?? process.env.PATH ?? '';
  let hit = cache.get(searchPath);
  if (!hit || opts.refresh) {
    hit = detect(searchPath);
    cache.set(searchPath, hit);
  }
  return hit;
}

function run(cmd: string, args: string[], searchPath: string, timeoutMs = 20_000): Promise<{ ok: boolean; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, env: { PATH: searchPath, HOME: process.env.HOME ?? '/', LANG: 'C.UTF-8' }, maxBuffer: 1 << 20 }, (err, stdout, stderr) =>
      resolve({ ok: !err, stdout: String(stdout), stderr: String(stderr) }),
    );
  });
}

function real(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

const missing = (what: string): Toolchain => ({ available: false, reason: `no ${what} on PATH` });

async function detectPython(searchPath: string): Promise<Toolchain> {
  const exe = findExecutable('python3', searchPath) ?? findExecutable('python', searchPath);
  if (!exe) return missing('python3');
  const r = await run(exe, ['-c', "import sys, site, json; print(json.dumps([sys.executable, sys.prefix, sys.base_prefix, '%d.%d.%d' % sys.version_info[:3], site.getsitepackages()]))"], searchPath);
  let info: [string, string, string, string, string[]] | undefined;
  try {
    info = JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
  } catch {
    info = undefined;
  }
  if (!r.ok || !info) return { available: false, reason: `${exe} does not run: ${r.stderr.trim().split('\n').pop() ?? ''}` };
  const [executable, prefix, basePrefix, version, sitePackages] = info;
  if (!version.startsWith('3.')) return { available: false, reason: `${exe} is Python ${version}, not 3` };
  return { available: true, version, commands: { python: executable }, roots: [...new Set([prefix, basePrefix, path.dirname(real(executable))])], sitePackages };
}

async function detectNode(): Promise<{ js: Toolchain; ts: Toolchain }> {
  const node = process.execPath;
  const roots = [path.dirname(path.dirname(real(node)))];
  const js: Toolchain = { available: true, version: process.version, commands: { node }, roots };
  const probe = await run(node, ['--experimental-transform-types', '--disable-warning=ExperimentalWarning', '--input-type=commonjs-typescript', '-e', 'enum E { A = 7 } const n: number = E.A; if (n !== 7) process.exit(1);'], '');
  const ts: Toolchain = probe.ok ? { ...js } : { available: false, reason: `node ${process.version} cannot run TypeScript (--experimental-transform-types)` };
  return { js, ts };
}

async function detectGo(searchPath: string): Promise<Toolchain> {
  const go = findExecutable('go', searchPath);
  if (!go) return missing('go');
  const r = await run(go, ['env', 'GOROOT', 'GOCACHE', 'GOVERSION'], searchPath);
  const [goroot, gocache, version] = r.stdout.trim().split('\n');
  if (!r.ok || !goroot) return { available: false, reason: `${go} does not run: ${r.stderr.trim().split('\n')[0] ?? ''}` };
  const command = existsSync(path.join(goroot, 'bin', 'go')) ? path.join(goroot, 'bin', 'go') : go;
  return { available: true, version: version?.replace(/^go/, ''), commands: { go: command }, roots: [goroot], ...(gocache && existsSync(gocache) ? { cacheSeed: gocache } : {}) };
}

async function detectRust(searchPath: string): Promise<Toolchain> {
  const rustc = findExecutable('rustc', searchPath);
  if (!rustc) return missing('rustc');
  const [v, s] = await Promise.all([run(rustc, ['--version'], searchPath), run(rustc, ['--print', 'sysroot'], searchPath)]);
  if (!v.ok || !s.ok) return { available: false, reason: `${rustc} does not run: ${(v.stderr || s.stderr).trim().split('\n')[0] ?? ''}` };
  if (!findExecutable('cc', searchPath)) return { available: false, reason: 'no cc (the linker rustc uses) on PATH' };
  const sysroot = s.stdout.trim();
  // Run the toolchain's rustc itself, not a rustup proxy (which needs ~/.rustup and its settings).
  const direct = path.join(sysroot, 'bin', 'rustc');
  return { available: true, version: v.stdout.trim().split(' ')[1], commands: { rustc: existsSync(direct) ? direct : rustc }, roots: [sysroot] };
}

async function detectJava(searchPath: string): Promise<Toolchain> {
  const javac = findExecutable('javac', searchPath);
  if (!javac) return missing('javac');
  const java = findExecutable('java', searchPath);
  if (!java) return missing('java');
  const r = await run(javac, ['-version'], searchPath);
  const version = /javac\s+(\S+)/.exec(r.stdout + r.stderr)?.[1];
  if (!r.ok || !version) return { available: false, reason: `${javac} does not run: ${(r.stderr || r.stdout).trim().split('\n')[0] ?? ''}` };
  const javacReal = real(javac);
  const javaReal = real(java);
  return { available: true, version, commands: { javac: javacReal, java: javaReal }, roots: [...new Set([path.dirname(path.dirname(javacReal)), path.dirname(path.dirname(javaReal))])] };
}

async function detectCpp(searchPath: string): Promise<Toolchain> {
  const gpp = findExecutable('g++', searchPath);
  if (!gpp) return missing('g++');
  const r = await run(gpp, ['-dumpfullversion'], searchPath);
  if (!r.ok) return { available: false, reason: `${gpp} does not run: ${r.stderr.trim().split('\n')[0] ?? ''}` };
  return { available: true, version: r.stdout.trim(), commands: { 'g++': gpp }, roots: [path.dirname(path.dirname(real(gpp)))] };
}

async function detectShell(searchPath: string): Promise<Toolchain> {
  const bash = findExecutable('bash', searchPath);
  if (!bash) return missing('bash');
  const r = await run(bash, ['-c', 'echo $BASH_VERSION'], searchPath);
  if (!r.ok) return { available: false, reason: `${bash} does not run: ${r.stderr.trim().split('\n')[0] ?? ''}` };
  return { available: true, version: r.stdout.trim(), commands: { bash }, roots: [path.dirname(real(bash))] };
}

async function detect(searchPath: string): Promise<Toolchains> {
  const [python, node, go, rust, java, cpp, shell] = await Promise.all([detectPython(searchPath), detectNode(), detectGo(searchPath), detectRust(searchPath), detectJava(searchPath), detectCpp(searchPath), detectShell(searchPath)]);
  return { python, javascript: node.js, typescript: node.ts, go, rust, java, cpp, shell };
}

export interface ExecuteOptions {
  /** The run's wall-clock limit (default: the sandbox's, 3 s). */
  readonly timeoutMs?: number;
  /** The compile step's wall-clock limit (default 60 s). */
  readonly compileTimeoutMs?: number;
  /** End-of-checks marker (default: random per run). Letters, digits, `_` and `-` only. */
  readonly marker?: string;
  /** Use these toolchains instead of detecting them (tests, or a CLI that detected once). */
  readonly toolchains?: Partial<Record<ExecLanguage, Toolchain>>;
  /** More limits for the run step. */
  readonly limits?: Partial<Limits>;
  readonly stdin?: string;
  /** Python: start the interpreter with `site` (slower where site-packages has .pth hooks). Default false. */
  readonly pythonSite?: boolean;
}

interface Plan {
  readonly files: Record<string, string>;
  readonly compile?: RunStep;
  readonly run: RunStep;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Limits of compile steps: compilers are big, multi-threaded, and write binaries. */
function compileLimits(timeoutMs: number, memoryRlimit: Limits['memoryRlimit'] = 'as'): Partial<Limits> {
  return { timeoutMs, memoryBytes: 4 * GiB, memoryRlimit, processes: 256, openFiles: 1024, fileSizeBytes: 256 * MiB };
}

/** Finds the `}` that closes the `{` at `open`, skipping strings, chars and comments (C, C++, Java). -1 if none. */
export function matchBrace(src: string, open: number): number {
  let depth = 0;
  for (let i = open; i < src.length; i++) {
    const c = src[i];
    if (c === '/' && src[i + 1] === '/') {
      const nl = src.indexOf('\n', i);
      if (nl < 0) return -1;
      i = nl;
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      if (end < 0) return -1;
      i = end + 1;
    } else if (c === '"' && src.startsWith('"""', i)) {
      const end = src.indexOf('"""', i + 3);
      if (end < 0) return -1;
      i = end + 2;
    } else if (c === '"' || c === "'") {
      for (i++; i < src.length && src[i] !== c; i++) if (src[i] === '\\') i++;
    } else if (c === '{') depth++;
    else if (c === '}') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

/**
 * Python starts without `site` (-S; -s: no user site; -E: no PYTHON* variables): `site` runs every .pth hook of
 * site-packages at each start, which can cost more than the sample itself. site-packages is appended to sys.path
 * by hand (after the standard library, where `site` puts it) and the program runs as __main__ through runpy.
 * With `site: true` the interpreter starts normally (`-I main.py`).
 */
function pythonPlan(program: string, marker: string, tc: Toolchain, site: boolean): Plan {
  const src = `${program}\n\nprint(${JSON.stringify(marker)}, flush=True)\n`;
  const python = tc.commands!.python!;
  if (site) return { files: { 'main.py': src }, run: { argv: [python, '-I', 'main.py'], limits: { memoryRlimit: 'as' } } };
  const boot = `import sys, runpy; sys.path.extend(${JSON.stringify(tc.sitePackages ?? [])}); sys.argv = sys.argv[1:]; runpy.run_path('main.py', run_name='__main__')`;
  // `python`: the same program, for the sandbox to fork from a warm interpreter where it can (sandbox/zygote.ts).
  return { files: { 'main.py': src }, run: { argv: [python, '-E', '-s', '-S', '-c', boot, 'main.py'], python: { executable: python, main: 'main.py', path: tc.sitePackages ?? [] }, limits: { memoryRlimit: 'as' } } };
}

/** Bash (MultiPL-E's `sh`): the tests fail by exiting non-zero (`set -e` in MultiPL-E's); the marker follows them. */
function shellPlan(program: string, marker: string, tc: Toolchain): Plan {
  // A trailing newline ends a last line without one; `exit` anywhere before the marker ends the script without it.
  return { files: { 'main.sh': `${program}\n\nprintf '%s\\n' ${JSON.stringify(marker)}\n` }, run: { argv: [tc.commands!.bash!, 'main.sh'], limits: { memoryRlimit: 'as' } } };
}

function nodePlan(program: string, marker: string, tc: Toolchain, ts: boolean, memoryBytes: number): Plan {
  // beforeExit fires when the event loop empties by itself, never on process.exit(): so async checks are waited
  // for, and an explicit exit (any code) leaves no marker.
  const src = `${program}\n;process.once('beforeExit', () => { process.stdout.write(${JSON.stringify(`${marker}\n`)}); });\n`;
  const file = ts ? 'main.ts' : 'main.js';
  const flags = [`--max-old-space-size=${Math.max(64, Math.floor(memoryBytes / MiB))}`, '--disable-warning=ExperimentalWarning', ...(ts ? ['--experimental-transform-types'] : [])];
  // V8 reserves a lot of address space up front: RLIMIT_AS only as a backstop above the heap limit.
  return { files: { [file]: src, 'package.json': '{}\n' }, run: { argv: [tc.commands!.node!, ...flags, file], limits: { memoryRlimit: 'as', memoryBytes: memoryBytes + 4 * GiB } } };
}

function goPlan(program: string, marker: string, tc: Toolchain, compileTimeoutMs: number): Plan | string {
  const go = tc.commands!.go!;
  const pkg = /^\s*package\s+(\w+)/m.exec(program)?.[1] ?? 'main';
  const env = { GOCACHE: '{cache}/go-build', GOPATH: '{cache}/gopath', GOTOOLCHAIN: 'local', GOPROXY: 'off', GOFLAGS: '-buildvcs=false', CGO_ENABLED: '0', GO111MODULE: 'off' };
  const compileLimitsGo = compileLimits(compileTimeoutMs);
  if (/\btesting\.T\b/.test(program)) {
    // MultiPL-E style: a test file run with `go test`; a TestMain prints the marker when every test passed.
    const wrapper = `package ${pkg}\n\nimport (\n\tkilnOs "os"\n\tkilnTesting "testing"\n)\n\nfunc TestMain(m *kilnTesting.M) {\n\tcode := m.Run()\n\tif code == 0 {\n\t\tkilnOs.Stdout.WriteString(${JSON.stringify(`${marker}\n`)})\n\t}\n\tkilnOs.Exit(code)\n}\n`;
    return {
      files: { 'main_test.go': program, 'kiln_main_test.go': wrapper },
      compile: { argv: [go, 'test', '-c', '-o', 'prog', 'main_test.go', 'kiln_main_test.go'], env, limits: compileLimitsGo, writableCache: true },
      run: { argv: ['./prog', '-test.count=1'], env: { GOMAXPROCS: '2' }, limits: { memoryRlimit: 'as' } },
    };
  }
  const mainRe = /\bfunc\s+main\s*\(\s*\)/;
  if (!mainRe.test(program)) return 'compile error: no func main() and no tests';
  const renamed = program.replace(mainRe, 'func kilnMain()');
  const wrapper = `package ${pkg}\n\nimport kilnOs "os"\n\nfunc main() {\n\tkilnMain()\n\tkilnOs.Stdout.WriteString(${JSON.stringify(`${marker}\n`)})\n}\n`;
  return {
    files: { 'main.go': renamed, 'kiln_main.go': wrapper },
    compile: { argv: [go, 'build', '-o', 'prog', 'main.go', 'kiln_main.go'], env, limits: compileLimitsGo, writableCache: true },
    run: { argv: ['./prog'], env: { GOMAXPROCS: '2' }, limits: { memoryRlimit: 'as' } },
  };
}

function rustPlan(program: string, marker: string, tc: Toolchain, compileTimeoutMs: number): Plan | string {
  const m = /\bfn\s+main\s*\(\s*\)/.exec(program);
  if (!m) return 'compile error: no fn main()';
  const returnsResult = /^\s*->/.test(program.slice(m.index + m[0].length));
  const renamed = program.slice(0, m.index) + 'fn kiln_main()' + program.slice(m.index + m[0].length);
  const call = returnsResult ? 'if let Err(e) = kiln_main() { eprintln!("Error: {:?}", e); std::process::exit(1); }' : 'kiln_main();';
  const src = `${renamed}\n\nfn main() {\n    ${call}\n    {\n        use std::io::Write;\n        let mut out = std::io::stdout();\n        let _ = out.write_all(${JSON.stringify(`${marker}\n`)}.as_bytes());\n        let _ = out.flush();\n    }\n}\n`;
  return {
    files: { 'main.rs': src },
    compile: { argv: [tc.commands!.rustc!, '--edition', '2021', '-C', 'debuginfo=0', '-C', 'opt-level=1', '-A', 'warnings', '-o', 'prog', 'main.rs'], limits: compileLimits(compileTimeoutMs) },
    run: { argv: ['./prog'], limits: { memoryRlimit: 'as' } },
  };
}

function cppPlan(program: string, marker: string, tc: Toolchain, compileTimeoutMs: number): Plan | string {
  const m = /^[ \t]*(?:int|signed)\s+main\s*\(/m.exec(program);
  if (!m) return 'compile error: no int main()';
  const paramsStart = m.index + m[0].length;
  const paramsEnd = program.indexOf(')', paramsStart);
  const open = program.indexOf('{', paramsEnd);
  const close = paramsEnd < 0 || open < 0 ? -1 : matchBrace(program, open);
  if (close < 0) return 'compile error: cannot find the body of main()';
  const params = program.slice(paramsStart, paramsEnd).trim();
  const withArgs = params !== '' && params !== 'void';
  // Renamed, `main` loses its implicit `return 0`: add it (after the last statement it is unreachable and harmless).
  const renamed = program.slice(0, m.index) + m[0].replace(/\bmain\b/, 'kiln_main') + program.slice(paramsStart, close) + '\nreturn 0;\n' + program.slice(close);
  const wrapper = `\n#include <cstdio>\nint main(${withArgs ? 'int argc, char** argv' : ''}) {\n    int kiln_rc = kiln_main(${withArgs ? 'argc, argv' : ''});\n    if (kiln_rc == 0) {\n        std::fputs(${JSON.stringify(`${marker}\n`)}, stdout);\n        std::fflush(stdout);\n    }\n    return kiln_rc;\n}\n`;
  return {
    files: { 'main.cpp': renamed + wrapper },
    compile: { argv: [tc.commands!['g++']!, '-std=c++17', '-O1', '-o', 'prog', 'main.cpp'], limits: compileLimits(compileTimeoutMs) },
    run: { argv: ['./prog'], limits: { memoryRlimit: 'as' } },
  };
}

const JVM_FLAGS = ['-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-XX:-UsePerfData', '-XX:ActiveProcessorCount=2', '-XX:CICompilerCount=2', '-XX:ReservedCodeCacheSize=64m', '-XX:CompressedClassSpaceSize=64m', '-Xshare:auto'];

function javaPlan(program: string, marker: string, tc: Toolchain, compileTimeoutMs: number, memoryBytes: number): Plan | string {
  const mainRe = /\b(?:(?:public|static|final)\s+)+void\s+(main)\s*\(\s*(?:final\s+)?String\s*(?:\[\s*\]\s*\w+|\.\.\.\s*\w+|\w+\s*\[\s*\])\s*\)/;
  const m = mainRe.exec(program);
  if (!m || !m[0].includes('static')) return 'compile error: no public static void main(String[] args)';
  const mainAt = m.index + m[0].lastIndexOf('main');
  // The classes around main, outermost first (a nested class is named Outer.Inner).
  const chain: { name: string; start: number }[] = [];
  for (const c of program.matchAll(/\b(?:class|record|enum|interface)\s+([A-Za-z_$][\w$]*)[^{;]*\{/g)) {
    const open = c.index + c[0].length - 1;
    const close = matchBrace(program, open);
    if (open < mainAt && (close < 0 || close > mainAt)) chain.push({ name: c[1]!, start: c.index });
  }
  if (chain.length === 0) return 'compile error: main() is not inside a class';
  chain.sort((a, b) => a.start - b.start);
  const owner = chain.map((c) => c.name).join('.');
  const renamed = program.slice(0, mainAt) + 'kilnMain' + program.slice(mainAt + 4);
  const pkg = /^\s*package\s+([\w.]+)\s*;/m.exec(program)?.[1];
  // javac wants a public top-level class in a file of its name.
  const publicClass = /^public\s+(?:(?:final|abstract|sealed)\s+)*(?:class|record|enum|interface)\s+([A-Za-z_$][\w$]*)/m.exec(program)?.[1];
  const file = `${publicClass ?? (chain[0]!.name === 'KilnMain' ? 'Program' : chain[0]!.name)}.java`;
  const wrapper = `${pkg ? `package ${pkg};\n\n` : ''}public class KilnMain {\n    public static void main(String[] args) throws Throwable {\n        ${owner}.kilnMain(args);\n        System.out.print(${JSON.stringify(`${marker}\n`)});\n        System.out.flush();\n    }\n}\n`;
  const heapMb = Math.max(64, Math.floor(memoryBytes / 2 / MiB));
  return {
    files: { [file]: renamed, 'KilnMain.java': wrapper },
    compile: {
      argv: [tc.commands!.javac!, ...JVM_FLAGS.map((f) => `-J${f}`), '-J-Xmx512m', '-proc:none', '-nowarn', '-encoding', 'UTF-8', '-d', '.', file, 'KilnMain.java'],
      limits: { ...compileLimits(compileTimeoutMs), memoryBytes: 6 * GiB },
    },
    // -ea: Java benchmarks check with `assert`. The heap is capped by -Xmx; RLIMIT_AS is a backstop above it.
    run: { argv: [tc.commands!.java!, '-ea', `-Xmx${heapMb}m`, ...JVM_FLAGS, '-cp', '.', pkg ? `${pkg}.KilnMain` : 'KilnMain'], limits: { memoryRlimit: 'as', memoryBytes: memoryBytes + 2 * GiB } },
  };
}

/** One short line: the part of a failure worth showing in a report. */
function failureDetail(lang: ExecLanguage, stdout: string, stderr: string): string | undefined {
  const lines = stderr.split('\n').map((l) => l.trimEnd()).filter(Boolean);
  const pick = (re: RegExp) => lines.find((l) => re.test(l));
  switch (lang) {
    case 'python': {
      const tb = lines.lastIndexOf('Traceback (most recent call last):');
      if (tb < 0) return pick(/^(SyntaxError|IndentationError)/);
      const last = lines.slice(tb + 1).reverse().find((l) => !/^\s/.test(l));
      return last;
    }
    case 'javascript':
    case 'typescript':
      return pick(/^(\w+Error|Error)\b/) ?? pick(/^Uncaught /);
    case 'go': {
      const out = stdout.split('\n').map((l) => l.trimEnd());
      const fail = out.findIndex((l) => l.startsWith('--- FAIL'));
      if (fail >= 0) {
        const why = out.slice(fail + 1).find((l) => l.trim() && !l.startsWith('--- ') && l.trim() !== 'FAIL');
        return why ? `${out[fail]}: ${why.trim()}` : out[fail];
      }
      return pick(/^panic: /) ?? pick(/^fatal error: /);
    }
    case 'rust': {
      const i = lines.findIndex((l) => l.includes('panicked at'));
      if (i >= 0) return lines[i + 1] && !lines[i + 1]!.startsWith('note:') ? `panicked: ${lines[i + 1]}` : lines[i];
      return pick(/^Error: /);
    }
    case 'java': {
      const l = pick(/^Exception in thread /);
      return l?.replace(/^Exception in thread "[^"]*" /, '') ?? pick(/^Error: /);
    }
    case 'shell':
      return lines.at(-1);
    case 'cpp': {
      const a = pick(/Assertion .* failed/);
      return a ? a.replace(/^.*?(Assertion )/, '$1') : pick(/terminate called/);
    }
  }
}

/** The first compiler line that says what is wrong. */
function compileError(stderr: string, stdout: string, workPrefix: RegExp): string {
  const lines = `${stderr}\n${stdout}`.split('\n').map((l) => l.trim()).filter(Boolean);
  const line = lines.find((l) => /\berror\b/i.test(l) && !/^#/.test(l)) ?? lines.find((l) => !l.startsWith('#')) ?? 'no message';
  return `compile error: ${clip(line.replace(workPrefix, ''))}`;
}

function clip(s: string, n = 200): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

const prepared = new WeakMap<Sandbox, Map<string, Promise<string | undefined>>>();

/** Once per sandbox and language: make the toolchain reachable inside, seed its cache. Returns a problem or undefined. */
function prepare(sandbox: Sandbox, lang: ExecLanguage, tc: Toolchain): Promise<string | undefined> {
  let m = prepared.get(sandbox);
  if (!m) prepared.set(sandbox, (m = new Map()));
  const key = `${lang}\0${JSON.stringify(tc.commands)}`;
  let p = m.get(key);
  if (!p) {
    p = (async () => {
      const closed = await sandbox.expose(tc.roots ?? []);
      if (closed.length) return `${Object.values(tc.commands ?? {})[0] ?? lang} is not reachable by the sandbox user (${closed[0]})`;
      if (lang === 'go' && tc.cacheSeed) await sandbox.seedCache('go-build', tc.cacheSeed);
      return undefined;
    })();
    m.set(key, p);
  }
  return p;
}

function outcome(status: Outcome['status'], reason: string, r?: RunResult, durationMs = r?.durationMs ?? 0, stdout = r?.stdout ?? ''): Outcome {
  return { status, reason, exitCode: r?.exitCode ?? null, signal: r?.signal ?? null, durationMs, stdout, stderr: r?.stderr ?? '' };
}

/** `execute` bound to a sandbox, in the shape the runner takes (`Execute` in runner.ts). */
export function executorFor(sandbox: Sandbox, defaults: ExecuteOptions = {}): (language: Language, program: string, opts?: ExecuteOptions) => Promise<Outcome> {
  return (language, program, opts = {}) => execute(sandbox, language, program, { ...defaults, ...opts });
}

/** Compiles (when needed) and runs one program in the sandbox. */
export async function execute(sandbox: Sandbox, language: Language, program: string, opts: ExecuteOptions = {}): Promise<Outcome> {
  const lang = executorLanguage(language);
  if (!lang) return outcome('no-toolchain', `no executor for language ${language}`);
  const tc = opts.toolchains?.[lang] ?? (await toolchains())[lang];
  if (!tc.available || !tc.commands) return outcome('no-toolchain', tc.reason ?? `no ${lang} toolchain`);
  const problem = await prepare(sandbox, lang, tc);
  if (problem) return outcome('no-toolchain', problem);
  const marker = opts.marker ?? `KILN_END_${randomBytes(12).toString('hex')}`;
  if (!/^[A-Za-z0-9_-]{8,}$/.test(marker)) throw new Error('marker: at least 8 of [A-Za-z0-9_-]');
  const timeoutMs = opts.timeoutMs ?? sandbox.limits.timeoutMs;
  const compileTimeoutMs = opts.compileTimeoutMs ?? 60_000;
  const memoryBytes = opts.limits?.memoryBytes ?? sandbox.limits.memoryBytes;
  let plan: Plan | string;
  switch (lang) {
    case 'python':
      plan = pythonPlan(program, marker, tc, opts.pythonSite ?? false);
      break;
    case 'javascript':
    case 'typescript':
      plan = nodePlan(program, marker, tc, lang === 'typescript', memoryBytes);
      break;
    case 'go':
      plan = goPlan(program, marker, tc, compileTimeoutMs);
      break;
    case 'rust':
      plan = rustPlan(program, marker, tc, compileTimeoutMs);
      break;
    case 'cpp':
      plan = cppPlan(program, marker, tc, compileTimeoutMs);
      break;
    case 'java':
      plan = javaPlan(program, marker, tc, compileTimeoutMs, memoryBytes);
      break;
    case 'shell':
      plan = shellPlan(program, marker, tc);
      break;
  }
  if (typeof plan === 'string') return outcome('failed', plan);
  const runStep: RunStep = { ...plan.run, limits: { ...opts.limits, ...plan.run.limits, timeoutMs }, ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}) };
  const steps = plan.compile ? [plan.compile, runStep] : [runStep];
  const results = await sandbox.runSteps({ files: plan.files, steps });
  const total = results.reduce((s, r) => s + r.durationMs, 0);
  const workPrefix = /\S*\/run-\d+\//g;
  if (plan.compile) {
    const c = results[0]!;
    if (c.exitCode !== 0) {
      if (c.timedOut || c.killedFor === 'cpu') return outcome('timeout', `compile killed after ${c.killedFor === 'cpu' ? 'its cpu limit' : `${compileTimeoutMs} ms`}`, c, total);
      if (c.killedFor === 'output') return outcome('failed', 'compile error: compiler output limit exceeded', c, total);
      return outcome('failed', compileError(c.stderr, c.stdout, workPrefix), c, total);
    }
  }
  const r = results[results.length - 1]!;
  const finished = r.stdout.includes(marker);
  const stdout = finished ? r.stdout.replace(new RegExp(`${marker}\\n?`, 'g'), '') : r.stdout;
  if (r.timedOut) return outcome('timeout', `killed after ${timeoutMs} ms`, r, total, stdout);
  if (r.killedFor === 'cpu') return outcome('timeout', 'killed at its cpu time limit', r, total, stdout);
  if (r.killedFor === 'output') return outcome('failed', `output limit exceeded (${Math.round((opts.limits?.outputBytes ?? sandbox.limits.outputBytes) / 1024)} KiB)`, r, total, stdout);
  if (r.exitCode === 0 && finished) return outcome('passed', 'passed', r, total, stdout);
  if (r.exitCode === 0) return outcome('failed', 'checks did not finish (no end marker)', r, total, stdout);
  const detail = failureDetail(lang, r.stdout, r.stderr);
  const how = r.signal ? `killed by ${r.signal}` : `exit ${r.exitCode}`;
  if (r.killedFor === 'file-size') return outcome('failed', 'file size limit exceeded', r, total, stdout);
  return outcome('failed', detail ? clip(detail.replace(workPrefix, '')) : how, r, total, stdout);
}
