/**
 * Benchmarks read into Problems, and the program each completion is run as.
 *
 * Three formats (`loadBenchmark` detects which from the path and the first record when not told):
 *
 * - **HumanEval** (openai/human-eval `HumanEval.jsonl[.gz]`): `{task_id, prompt, entry_point,
 *   canonical_solution, test}` per line. Python; stop words are bigcode-evaluation-harness's.
 * - **MultiPL-E** (nuprl/MultiPL-E records): `{name, language, prompt, doctests, original,
 *   prompt_terminology, tests, stop_tokens}` as JSON Lines (plain or gzip) or one JSON array. The short
 *   language codes (`py`, `js`, `rs`…) become canonical names (`python`, `javascript`, `rust`…). No
 *   canonical solution.
 * - **custom** (kiln's own suites), either or both of:
 *   - JSON Lines (or a JSON array) of `{id, language, prompt, tests, suffix?, solution?, stop?,
 *     entry_point?}`. Unknown fields are errors, so a misspelt `test` is not silently ignored.
 *   - A directory with one sub-directory per problem; the sub-directory's name is the id:
 *     `prompt.<ext>` (required; its extension gives the language), `tests.<ext>` (required),
 *     `suffix.<ext>` (optional: makes it an infilling problem), `solution.<ext>` (optional reference
 *     completion) and `problem.json` (optional: `{language?, stop?, entry_point?}`). Files are used byte
 *     for byte, final newline included. `*.jsonl`, `*.json` (and `.gz`) files directly in the directory
 *     are read as custom records too; ids must be unique across all of them. Names starting with `.`
 *     and other files are ignored.
 *   `stop` defaults to the language's usual top-level stop words for completion problems (python,
 *   javascript, typescript; none for other languages) and to none for infilling problems. With
 *   `entry_point`, the tests are HumanEval-style: they define `check(candidate)` and the program ends
 *   with `check(<entry_point>)`.
 *
 * Bad input is reported once, with every problem found: `BenchmarkError` lists `file:line: what is wrong`.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { FimSentinels } from '@kiln/spec';
import type { Completion, Language, Problem } from './types.ts';

export type BenchmarkFormat = 'humaneval' | 'multipl-e' | 'custom';

export interface LoadBenchmarkOptions {
  /** The file's format; detected from the path and the first record when left out. */
  readonly format?: BenchmarkFormat;
  /** Keep only problems of this language (a MultiPL-E code such as `js` or a canonical name); default all. */
  readonly language?: string;
}

/** One thing wrong with a benchmark or samples file. `line` is 1-based; absent when it concerns the whole file. */
export interface BenchmarkIssue {
  readonly file: string;
  readonly line?: number;
  readonly message: string;
}

/** A benchmark or samples file that cannot be used; `message` lists each issue as `file:line: message`. */
export class BenchmarkError extends Error {
  readonly issues: readonly BenchmarkIssue[];
  constructor(issues: readonly BenchmarkIssue[]) {
    super(formatIssues(issues));
    this.name = 'BenchmarkError';
    this.issues = issues;
  }
}

const MAX_LISTED = 20;

function formatIssues(issues: readonly BenchmarkIssue[]): string {
  const lines = issues.slice(0, MAX_LISTED).map((i) => `${i.file}${i.line !== undefined ? `:${i.line}` : ''}: ${i.message}`);
  if (issues.length > MAX_LISTED) lines.push(`… and ${issues.length - MAX_LISTED} more`);
  return lines.join('\n');
}

/** bigcode-evaluation-harness's stop words for HumanEval (task `humaneval`). */
export const HUMANEVAL_STOP: readonly string[] = ['\nclass', '\ndef', '\n#', '\n@', '\nprint', '\nif', '\n```', '<file_sep>'];

/** MultiPL-E's language codes → canonical language names (the names data prep uses). */
export const MULTIPLE_LANGUAGES: Readonly<Record<string, Language>> = {
  py: 'python', js: 'javascript', ts: 'typescript', go: 'go', rs: 'rust', java: 'java', cpp: 'cpp',
  cs: 'csharp', sh: 'shell', rb: 'ruby', php: 'php', pl: 'perl', lua: 'lua', r: 'r', jl: 'julia',
  scala: 'scala', swift: 'swift', d: 'd', dart: 'dart', elixir: 'elixir', hs: 'haskell', ml: 'ocaml',
  clj: 'clojure', rkt: 'racket', adb: 'ada', lean: 'lean',
};

/** A MultiPL-E code or a language name as the canonical, lower-case name (`js` → `javascript`). */
export function canonicalLanguage(name: string): Language {
  const n = name.trim().toLowerCase();
  return MULTIPLE_LANGUAGES[n] ?? n;
}

/** Stop words a custom completion problem gets when it names none: top-level starts in that language. */
export const DEFAULT_STOP: Readonly<Record<string, readonly string[]>> = {
  python: HUMANEVAL_STOP,
  // MultiPL-E's stop tokens for these languages.
  javascript: ['\nfunction ', '\n/*', '\n//', '\nconsole.log'],
  typescript: ['\nfunction ', '\n/*', '\n//', '\nclass'],
};

/** File extension (lower case, no dot) of a custom problem's files → language. */
export const EXTENSION_LANGUAGES: Readonly<Record<string, Language>> = {
  py: 'python', js: 'javascript', mjs: 'javascript', cjs: 'javascript', ts: 'typescript', mts: 'typescript',
  go: 'go', rs: 'rust', java: 'java', cpp: 'cpp', cc: 'cpp', cxx: 'cpp', c: 'c', cs: 'csharp', sh: 'shell',
  bash: 'shell', rb: 'ruby', php: 'php', pl: 'perl', lua: 'lua', r: 'r', jl: 'julia', scala: 'scala',
  swift: 'swift', kt: 'kotlin', d: 'd', dart: 'dart', ex: 'elixir', exs: 'elixir', hs: 'haskell', ml: 'ocaml',
  clj: 'clojure', rkt: 'racket', adb: 'ada', lean: 'lean',
};

// ---------------------------------------------------------------------------------------------------------
// Reading records

interface RawRecord {
  readonly value: Readonly<Record<string, unknown>>;
  readonly file: string;
  readonly line: number;
}

async function readText(file: string): Promise<string> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new BenchmarkError([{ file, message: `cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` }]);
  }
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = gunzipSync(bytes);
    } catch (e) {
      throw new BenchmarkError([{ file, message: `not a valid gzip file (${(e as Error).message})` }]);
    }
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new BenchmarkError([{ file, message: 'not valid UTF-8 text' }]);
  }
}

function kindOf(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

interface Span {
  readonly start: number;
  readonly end: number;
  /** 1-based line of `start`. */
  readonly line: number;
}

/** Where each top-level element of a JSON array text lies. Tolerates invalid JSON enough to locate the bad element. */
function arrayElements(text: string): Span[] {
  const spans: Span[] = [];
  let line = 1;
  let depth = 0;
  let inString = false;
  let open: { start: number; line: number } | undefined;
  let expectValue = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '\n') line++;
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n') continue;
    if (depth === 1 && (ch === ',' || ch === ']')) {
      if (open) spans.push({ ...open, end: i });
      open = undefined;
      expectValue = ch === ',';
      if (ch === ']') depth--;
      continue;
    }
    if (depth === 1 && expectValue) {
      open = { start: i, line };
      expectValue = false;
    }
    if (ch === '"') inString = true;
    else if (ch === '[' || ch === '{') {
      depth++;
      if (depth === 1) expectValue = true;
    } else if (ch === ']' || ch === '}') depth--;
  }
  if (open) spans.push({ ...open, end: text.length });
  return spans;
}

/** The line a JSON.parse failure of a whole array text is on: from V8's message, else the first element that fails alone. */
function syntaxErrorLine(text: string, message: string): number | undefined {
  const at = /line (\d+) column \d+/.exec(message);
  if (at) return Number(at[1]);
  const pos = /at position (\d+)/.exec(message);
  if (pos) return text.slice(0, Number(pos[1])).split('\n').length;
  for (const span of arrayElements(text)) {
    try {
      JSON.parse(text.slice(span.start, span.end));
    } catch {
      return span.line;
    }
  }
  return undefined;
}

const oneLine = (message: string) => message.replace(/\s+/g, ' ').trim();

/** The records of a JSON Lines file (plain or gzip) or of a file holding one JSON array. Rejects an empty file. */
async function readRecords(file: string, what = 'problems'): Promise<RawRecord[]> {
  const text = await readText(file);
  const issues: BenchmarkIssue[] = [];
  const records: RawRecord[] = [];
  const push = (value: unknown, line: number) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) issues.push({ file, line, message: `expected a JSON object, got ${kindOf(value)}` });
    else records.push({ value: value as Record<string, unknown>, file, line });
  };
  if (text.trimStart().startsWith('[')) {
    let all: unknown;
    try {
      all = JSON.parse(text);
    } catch (e) {
      const msg = (e as Error).message;
      const line = syntaxErrorLine(text, msg);
      throw new BenchmarkError([{ file, ...(line !== undefined ? { line } : {}), message: `not valid JSON (${oneLine(msg)})` }]);
    }
    if (!Array.isArray(all)) throw new BenchmarkError([{ file, message: `expected an array of records, got ${kindOf(all)}` }]);
    const spans = arrayElements(text);
    all.forEach((v: unknown, i) => push(v, spans[i]?.line ?? 1));
  } else {
    const rows = text.split('\n');
    rows.forEach((row, i) => {
      if (row.trim() === '') return;
      let v: unknown;
      try {
        v = JSON.parse(row);
      } catch (e) {
        issues.push({ file, line: i + 1, message: `not valid JSON (${oneLine((e as Error).message)})` });
        return;
      }
      push(v, i + 1);
    });
  }
  if (issues.length) throw new BenchmarkError(issues);
  if (records.length === 0) throw new BenchmarkError([{ file, message: `empty: no ${what} in it` }]);
  return records;
}

// ---------------------------------------------------------------------------------------------------------
// Field checks

class Fields {
  readonly rec: RawRecord;
  readonly issues: BenchmarkIssue[];
  constructor(rec: RawRecord, issues: BenchmarkIssue[]) {
    this.rec = rec;
    this.issues = issues;
  }

  issue(message: string): void {
    this.issues.push({ file: this.rec.file, line: this.rec.line, message });
  }

  string(key: string, required: boolean): string | undefined {
    const v = this.rec.value[key];
    if (v === undefined || v === null) {
      if (required) this.issue(`missing "${key}"`);
      return undefined;
    }
    if (typeof v !== 'string') {
      this.issue(`"${key}" must be a string, got ${kindOf(v)}`);
      return undefined;
    }
    return v;
  }

  nonEmpty(key: string): string | undefined {
    const v = this.string(key, true);
    if (v !== undefined && v.trim() === '') {
      this.issue(`"${key}" is empty`);
      return undefined;
    }
    return v;
  }

  strings(key: string, required: boolean): string[] | undefined {
    const v = this.rec.value[key];
    if (v === undefined || v === null) {
      if (required) this.issue(`missing "${key}"`);
      return undefined;
    }
    if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) {
      this.issue(`"${key}" must be an array of strings, got ${kindOf(v)}`);
      return undefined;
    }
    return v as string[];
  }

  onlyKnown(known: readonly string[]): void {
    for (const k of Object.keys(this.rec.value)) {
      if (known.includes(k)) continue;
      const near = closest(k, known);
      this.issue(`unknown field "${k}"${near ? ` (did you mean "${near}"?)` : ''}; fields are ${known.join(', ')}`);
    }
  }
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

function closest(word: string, candidates: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  if (w.length >= 3) {
    const prefixed = candidates.find((c) => c.startsWith(w) || w.startsWith(c));
    if (prefixed) return prefixed;
  }
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  return bestD <= Math.max(1, Math.floor((best?.length ?? 0) / 3)) ? best : undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Formats

interface Located {
  readonly problem: Problem;
  readonly file: string;
  readonly line?: number;
}

function fromHumanEval(rec: RawRecord, issues: BenchmarkIssue[]): Problem | undefined {
  const f = new Fields(rec, issues);
  const before = issues.length;
  const id = f.nonEmpty('task_id');
  const prompt = f.string('prompt', true);
  const entryPoint = f.nonEmpty('entry_point');
  const tests = f.string('test', true);
  const canonical = f.string('canonical_solution', false);
  if (issues.length > before) return undefined;
  return { id: id!, language: 'python', prompt: prompt!, tests: tests!, entryPoint: entryPoint!, stop: HUMANEVAL_STOP, ...(canonical !== undefined ? { canonical } : {}) };
}

function fromMultiPLE(rec: RawRecord, issues: BenchmarkIssue[]): Problem | undefined {
  const f = new Fields(rec, issues);
  const before = issues.length;
  const id = f.nonEmpty('name');
  const language = f.nonEmpty('language');
  const prompt = f.string('prompt', true);
  const tests = f.string('tests', true);
  const stop = f.strings('stop_tokens', true);
  if (issues.length > before) return undefined;
  return { id: id!, language: canonicalLanguage(language!), prompt: prompt!, tests: tests!, stop: stop! };
}

const CUSTOM_FIELDS = ['id', 'language', 'prompt', 'tests', 'suffix', 'solution', 'stop', 'entry_point'] as const;

function customProblem(p: { id: string; language: Language; prompt: string; tests: string; suffix?: string | undefined; solution?: string | undefined; stop?: readonly string[] | undefined; entryPoint?: string | undefined }): Problem {
  const stop = p.stop ?? (p.suffix !== undefined ? [] : (DEFAULT_STOP[p.language] ?? []));
  return {
    id: p.id,
    language: p.language,
    prompt: p.prompt,
    tests: p.tests,
    stop,
    ...(p.suffix !== undefined ? { suffix: p.suffix } : {}),
    ...(p.solution !== undefined ? { canonical: p.solution } : {}),
    ...(p.entryPoint !== undefined ? { entryPoint: p.entryPoint } : {}),
  };
}

function fromCustom(rec: RawRecord, issues: BenchmarkIssue[]): Problem | undefined {
  const f = new Fields(rec, issues);
  const before = issues.length;
  f.onlyKnown(CUSTOM_FIELDS);
  const id = f.nonEmpty('id');
  const language = f.nonEmpty('language');
  const prompt = f.string('prompt', true);
  const tests = f.nonEmpty('tests');
  const suffix = f.string('suffix', false);
  const solution = f.string('solution', false);
  const stop = f.strings('stop', false);
  const entryPoint = 'entry_point' in rec.value ? f.nonEmpty('entry_point') : undefined;
  if (issues.length > before) return undefined;
  return customProblem({ id: id!, language: canonicalLanguage(language!), prompt: prompt!, tests: tests!, suffix, solution, stop, entryPoint });
}

const CONVERTERS: Readonly<Record<BenchmarkFormat, (rec: RawRecord, issues: BenchmarkIssue[]) => Problem | undefined>> = {
  humaneval: fromHumanEval,
  'multipl-e': fromMultiPLE,
  custom: fromCustom,
};

/** The format a record looks like, from its keys. */
function detectFormat(rec: RawRecord): BenchmarkFormat {
  const has = (k: string) => k in rec.value;
  if (has('task_id') && has('entry_point')) return 'humaneval';
  if (has('name') && has('stop_tokens')) return 'multipl-e';
  if (has('id')) return 'custom';
  throw new BenchmarkError([{
    file: rec.file,
    line: rec.line,
    message: `cannot tell the benchmark format from the fields ${Object.keys(rec.value).map((k) => `"${k}"`).join(', ') || '(none)'}: HumanEval records have task_id, prompt, entry_point, test; MultiPL-E records have name, language, prompt, tests, stop_tokens; custom records have id, language, prompt, tests`,
  }]);
}

function convertAll(records: readonly RawRecord[], format: BenchmarkFormat, issues: BenchmarkIssue[]): Located[] {
  const out: Located[] = [];
  for (const rec of records) {
    const problem = CONVERTERS[format](rec, issues);
    if (problem) out.push({ problem, file: rec.file, line: rec.line });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Custom directories

const PROBLEM_JSON_FIELDS = ['language', 'stop', 'entry_point'] as const;
const RECORD_FILE = /\.(jsonl|json)(\.gz)?$/i;

async function loadProblemDir(dir: string, id: string, issues: BenchmarkIssue[]): Promise<Located | undefined> {
  const files = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile() && !e.name.startsWith('.')).map((e) => e.name).sort();
  const before = issues.length;
  const part = (stem: string, required: boolean): string | undefined => {
    const found = files.filter((n) => n.startsWith(`${stem}.`) && n !== 'problem.json');
    if (found.length > 1) issues.push({ file: dir, message: `more than one ${stem} file (${found.join(', ')}); keep one` });
    else if (found.length === 0 && required) issues.push({ file: dir, message: `no ${stem}.<ext> file (each problem directory needs prompt.<ext> and tests.<ext>)` });
    return found.length === 1 ? found[0] : undefined;
  };
  const promptFile = part('prompt', true);
  const testsFile = part('tests', true);
  const suffixFile = part('suffix', false);
  const solutionFile = part('solution', false);
  let language: Language | undefined;
  let stop: string[] | undefined;
  let entryPoint: string | undefined;
  if (files.includes('problem.json')) {
    const file = join(dir, 'problem.json');
    const text = await readText(file);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      issues.push({ file, message: `not valid JSON (${oneLine((e as Error).message)})` });
    }
    if (value !== undefined) {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) issues.push({ file, message: `expected a JSON object, got ${kindOf(value)}` });
      else {
        const f = new Fields({ value: value as Record<string, unknown>, file, line: 1 }, issues);
        f.onlyKnown(PROBLEM_JSON_FIELDS);
        // Without "language", the prompt's extension decides.
        if ('language' in value) {
          const l = f.nonEmpty('language');
          if (l !== undefined) language = canonicalLanguage(l);
        }
        stop = f.strings('stop', false);
        if ('entry_point' in value) entryPoint = f.nonEmpty('entry_point');
      }
    }
  }
  if (promptFile && language === undefined) {
    const ext = promptFile.slice(promptFile.lastIndexOf('.') + 1).toLowerCase();
    language = EXTENSION_LANGUAGES[ext];
    if (language === undefined) issues.push({ file: join(dir, promptFile), message: `cannot tell the language from ".${ext}"; name it in problem.json ("language")` });
  }
  if (issues.length > before) return undefined;
  const read = (name: string | undefined) => (name === undefined ? undefined : readText(join(dir, name)));
  const [prompt, tests, suffix, solution] = await Promise.all([read(promptFile), read(testsFile), read(suffixFile), read(solutionFile)]);
  if (tests!.trim() === '') {
    issues.push({ file: join(dir, testsFile!), message: 'the tests file is empty' });
    return undefined;
  }
  return { problem: customProblem({ id, language: language!, prompt: prompt!, tests: tests!, suffix, solution, stop, entryPoint }), file: dir };
}

async function loadDirectory(dir: string, issues: BenchmarkIssue[]): Promise<Located[]> {
  const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => !e.name.startsWith('.')).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: Located[] = [];
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      const p = await loadProblemDir(path, e.name, issues);
      if (p) out.push(p);
    } else if (e.isFile() && RECORD_FILE.test(e.name)) {
      try {
        out.push(...convertAll(await readRecords(path), 'custom', issues));
      } catch (err) {
        if (err instanceof BenchmarkError) issues.push(...err.issues);
        else throw err;
      }
    }
  }
  if (out.length === 0 && issues.length === 0) issues.push({ file: dir, message: 'empty: no problem directories and no .jsonl/.json files of problems in it' });
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Public API

/** A benchmark's problems and the format they were read as (the one asked for, or the one detected). */
export interface Benchmark {
  readonly format: BenchmarkFormat;
  readonly problems: Problem[];
}

/**
 * Reads a benchmark (a file, or a custom suite's directory) into problems, detecting the format when
 * `opts.format` is left out: a directory is a custom suite; a file's format is told from its first record's
 * fields. Throws `BenchmarkError` listing every issue, or naming the fields seen when no format fits.
 */
export async function readBenchmark(path: string, opts: LoadBenchmarkOptions = {}): Promise<Benchmark> {
  let isDir: boolean;
  try {
    isDir = (await stat(path)).isDirectory();
  } catch (e) {
    throw new BenchmarkError([{ file: path, message: `cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` }]);
  }
  const issues: BenchmarkIssue[] = [];
  let located: Located[];
  let format: BenchmarkFormat;
  if (isDir) {
    if (opts.format !== undefined && opts.format !== 'custom') throw new BenchmarkError([{ file: path, message: `is a directory, which only the custom format can be (asked for ${opts.format})` }]);
    format = 'custom';
    located = await loadDirectory(path, issues);
  } else {
    const records = await readRecords(path);
    format = opts.format ?? detectFormat(records[0]!);
    located = convertAll(records, format, issues);
  }
  const seen = new Map<string, string>();
  for (const { problem, file, line } of located) {
    const first = seen.get(problem.id);
    if (first !== undefined) issues.push({ file, ...(line !== undefined ? { line } : {}), message: `duplicate id "${problem.id}" (first at ${first})` });
    else seen.set(problem.id, line !== undefined ? `${file}:${line}` : file);
  }
  if (issues.length) throw new BenchmarkError(issues);
  let problems = located.map((l) => l.problem);
  if (opts.language !== undefined) {
    const want = canonicalLanguage(opts.language);
    const all = [...new Set(problems.map((p) => p.language))].sort();
    problems = problems.filter((p) => p.language === want);
    if (problems.length === 0) throw new BenchmarkError([{ file: path, message: `no problems in ${want}; its languages are ${all.join(', ')}` }]);
  }
  return { format, problems };
}

/** Reads a benchmark into problems, as `readBenchmark` (the format detected when not given). */
export async function loadBenchmark(path: string, opts: LoadBenchmarkOptions = {}): Promise<Problem[]> {
  return (await readBenchmark(path, opts)).problems;
}

/**
 * The program run for one completion: prompt + completion + suffix (infilling only) + "\n" + tests, then
 * `"\n" + check(<entry point>)` when the problem names one. For HumanEval this is exactly openai/human-eval's
 * `prompt + completion + "\n" + test + "\n" + f"check({entry_point})"`; for MultiPL-E `prompt + completion + "\n" + tests`.
 */
export function assemble(problem: Problem, completion: string | Completion): string {
  if (typeof completion !== 'string' && completion.taskId !== problem.id) throw new Error(`completion for ${completion.taskId} assembled with problem ${problem.id}`);
  const text = typeof completion === 'string' ? completion : completion.completion;
  let program = problem.prompt + text + (problem.suffix ?? '') + '\n' + problem.tests;
  if (problem.entryPoint !== undefined) program += `\ncheck(${problem.entryPoint})`;
  return program;
}

/** Cuts a generated completion (never the prompt) at the earliest stop sequence, as bigcode-harness's `_stop_at_stop_token`. */
export function truncateAtStop(text: string, stop: readonly string[]): string {
  let end = text.length;
  for (const s of stop) {
    if (s === '') continue;
    const i = text.indexOf(s);
    if (i !== -1 && i < end) end = i;
  }
  return text.slice(0, end);
}

/**
 * The prompt for an infilling problem (prefix = `prompt`, suffix = `suffix`, empty when absent).
 * PSM: `<prefix>{prefix}<suffix>{suffix}<middle>`. SPM in the variant StarCoder and the bigcode Megatron
 * FIM transform train on: `<prefix><suffix>{suffix}<middle>{prefix}`.
 */
export function fimPrompt(problem: Problem, sentinels: Pick<FimSentinels, 'prefix' | 'middle' | 'suffix'>, mode: 'psm' | 'spm' = 'psm'): string {
  const suffix = problem.suffix ?? '';
  return mode === 'psm'
    ? `${sentinels.prefix}${problem.prompt}${sentinels.suffix}${suffix}${sentinels.middle}`
    : `${sentinels.prefix}${sentinels.suffix}${suffix}${sentinels.middle}${problem.prompt}`;
}

/** Reads a HumanEval-style samples file: JSON Lines (plain or gzip) of `{"task_id", "completion"}`; other fields are ignored. */
export async function loadSamples(path: string): Promise<Completion[]> {
  const records = await readRecords(path, 'samples');
  const issues: BenchmarkIssue[] = [];
  const out: Completion[] = [];
  for (const rec of records) {
    const f = new Fields(rec, issues);
    const before = issues.length;
    const taskId = f.nonEmpty('task_id');
    const completion = f.string('completion', true);
    if (issues.length === before) out.push({ taskId: taskId!, completion: completion! });
  }
  if (issues.length) throw new BenchmarkError(issues);
  return out;
}
