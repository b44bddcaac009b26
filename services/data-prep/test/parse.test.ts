import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadText } from '@kiln/spec';
import { ParseFilter } from '../src/parse.ts';
import { walk } from '../src/read.ts';

let f: ParseFilter;
beforeAll(async () => {
  f = await ParseFilter.create(ParseFilter.DEFAULT_LANGUAGES);
});

describe('the parse filter (tree-sitter grammars as WebAssembly)', () => {
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
    const stdlib = execFileSync('python3', ['-c', "import sysconfig;print(sysconfig.get_paths()['stdlib'])"], { encoding: 'utf8' }).trim();
    let n = 0;
    const failed: string[] = [];
    for await (const file of walk(stdlib)) {
      if (!file.endsWith('.py') || file.includes('site-packages')) continue;
      if (++n > 250) break;
      if (f.parses(readFileSync(file, 'utf8'), 'python') === false) failed.push(file.slice(stdlib.length + 1));
    }
    console.log(`parse filter: ${failed.length} of ${n - 1} stdlib files do not parse${failed.length ? `: ${failed.slice(0, 10).join(', ')}` : ''}`);
    expect(failed.length / (n - 1)).toBeLessThan(0.03);
  }, 60_000);
});
