import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadText } from '@kiln/spec';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { ParseFilter, parseBackendChoice, type ParseBackend } from '../src/parse.ts';
import { nativeAddon } from '../src/native.ts';
import { walk } from '../src/read.ts';

// The native backend is built by `npm ci`; only an explicit KILN_PARSE_BACKEND=wasm leaves it out of the tests.
const BACKENDS: ParseBackend[] = process.env.KILN_PARSE_BACKEND === 'wasm' ? ['wasm'] : ['native', 'wasm'];
const stdlibDir = () => execFileSync('python3', ['-c', "import sysconfig;print(sysconfig.get_paths()['stdlib'])"], { encoding: 'utf8' }).trim();

describe.each(BACKENDS)('the parse filter on %s tree-sitter', (backend) => {
  let f: ParseFilter;
  beforeAll(async () => {
    f = await ParseFilter.create(ParseFilter.DEFAULT_LANGUAGES, { backend });
  });

  it('runs every default language on the backend asked for', () => {
    expect(f.backends).toEqual({ python: backend, javascript: backend, typescript: backend, json: backend, tsx: backend });
  });

  it.each([
    ['python', 'def f(x):\n    return x\n', 'def f(x)\n    return x\n'],
    ['javascript', 'export function f(x) { return <div>{x}</div>; }', 'function f(x) { return x'],
    ['typescript', 'const x: number = 1;\nexport type T = { a: string };', 'const x: = 1;'],
    ['json', '{"a": [1, 2, {"b": null}]}', '{"a": [1, 2}'],
  ])('%s: keeps what parses, catches what does not', (lang, good, bad) => {
    expect(f.parses(good, lang)).toBe(true);
    expect(f.parses(bad, lang)).toBe(false);
  });

  it('parses .tsx with the TSX grammar', () => {
    const tsx = 'export const A = (p: { n: number }) => <b>{p.n}</b>;';
    expect(f.parses(tsx, 'typescript', 'src/a.tsx')).toBe(true);
    expect(f.parses(tsx, 'typescript', 'src/a.ts')).toBe(false);
  });

  it('leaves languages it was not asked to check alone, and names the grammars there are for unknown ones', async () => {
    expect(f.parses('fn main() {', 'rust')).toBeUndefined();
    expect(f.parses('x', undefined)).toBeUndefined();
    await expect(ParseFilter.create(['klingon'])).rejects.toThrow(/no grammar for klingon.*python, javascript/);
  });

  it('checks what the spec checks by default', () => {
    const r = loadText('apiVersion: kiln.dev/v1alpha1\nkind: CodeModel\nmetadata: {name: x}\ndata: {sources: [{type: local, name: a, path: .}]}\nmodel: {preset: 125m}\ntraining: {resources: {gpu_type: h100-80gb}}\neval: {suites: []}\nserving: {targets: []}\n');
    expect(r.spec?.data.preprocessing.parse_filter.languages, JSON.stringify(r.diagnostics)).toEqual([...ParseFilter.DEFAULT_LANGUAGES]);
  });

  it('accepts nearly all of the Python standard library (real code no one here wrote)', async () => {
    const stdlib = stdlibDir();
    let n = 0;
    const failed: string[] = [];
    for await (const file of walk(stdlib)) {
      if (!file.endsWith('.py') || file.includes('site-packages')) continue;
      if (++n > 250) break;
      if (f.parses(readFileSync(file, 'utf8'), 'python') === false) failed.push(file.slice(stdlib.length + 1));
    }
    console.log(`parse filter (${backend}): ${failed.length} of ${n - 1} stdlib files do not parse${failed.length ? `: ${failed.slice(0, 10).join(', ')}` : ''}`);
    expect(failed.length / (n - 1)).toBeLessThan(0.03);
  }, 60_000);
});

describe('the parse backends', () => {
  it('reads KILN_PARSE_BACKEND, defaulting to auto, and refuses anything else', () => {
    expect(parseBackendChoice({})).toBe('auto');
    expect(parseBackendChoice({ KILN_PARSE_BACKEND: 'wasm' })).toBe('wasm');
    expect(() => parseBackendChoice({ KILN_PARSE_BACKEND: 'fast' })).toThrow(/auto, native or wasm/);
  });

  it('auto: native where a native grammar exists, WebAssembly for the rest', async () => {
    const f = await ParseFilter.create(['python', 'rust'], { backend: 'auto' });
    expect(f.backends).toEqual({ python: 'ok' in nativeAddon() ? 'native' : 'wasm', rust: 'wasm' });
    expect(f.parses('fn main() {}', 'rust')).toBe(true);
    expect(f.parses('fn main() {', 'rust')).toBe(false);
  });

  it.runIf(BACKENDS.includes('native'))('native: a language with no native grammar is an error, not a silent fallback', async () => {
    await expect(ParseFilter.create(['rust'], { backend: 'native' })).rejects.toThrow(/KILN_PARSE_BACKEND=native: no native grammar for rust/);
  });

  // The two backends run the same grammar versions, so they must agree on every file; this checks it on
  // real code: the whole Python standard library, and JavaScript, TypeScript and JSON from installed packages.
  it.runIf(BACKENDS.includes('native'))('give identical verdicts on real corpora', async () => {
    const native = await ParseFilter.create(ParseFilter.DEFAULT_LANGUAGES, { backend: 'native' });
    const wasm = await ParseFilter.create(ParseFilter.DEFAULT_LANGUAGES, { backend: 'wasm' });
    const corpora: { lang: string; dir: string; ext: RegExp; most: number }[] = [
      { lang: 'python', dir: stdlibDir(), ext: /\.py$/, most: Infinity },
    ];
    // The workspace's node_modules: installed from the lock file, so the same files on every checkout.
    const modules = join(dirname(createRequire(import.meta.url).resolve('typescript')), '..', '..');
    corpora.push({ lang: 'typescript', dir: join(modules, 'typescript', 'lib'), ext: /\.d\.ts$/, most: 120 });
    corpora.push({ lang: 'javascript', dir: join(modules, 'vitest'), ext: /\.(js|mjs)$/, most: 400 });
    corpora.push({ lang: 'javascript', dir: join(modules, 'hyparquet'), ext: /\.js$/, most: 100 });
    corpora.push({ lang: 'json', dir: modules, ext: /\.json$/, most: 400 });
    const counts: Record<string, { files: number; errors: number }> = {};
    const differ: string[] = [];
    for (const c of corpora) {
      let n = 0;
      for await (const file of walk(c.dir)) {
        if (!c.ext.test(file) || file.includes('site-packages')) continue;
        if (n++ >= c.most) break;
        const text = readFileSync(file, 'utf8');
        const a = native.parses(text, c.lang, file);
        const b = wasm.parses(text, c.lang, file);
        const k = (counts[c.lang] ??= { files: 0, errors: 0 });
        k.files++;
        if (a === false) k.errors++;
        if (a !== b) differ.push(`${file}: native ${a}, wasm ${b}`);
      }
    }
    console.log(`parse backends agree on ${JSON.stringify(counts)}`);
    expect(differ).toEqual([]);
    expect(counts.python!.files).toBeGreaterThan(1000);
    expect(Object.values(counts).reduce((a, k) => a + k.errors, 0)).toBeGreaterThan(0);
  }, 300_000);
});
