import { mkdtempSync, readFileSync, rmSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { load, loadText, MAX_FILE_BYTES } from '../src/index.ts';
import { MAX_DIAGNOSTICS } from '../src/source.ts';

// Hostile or broken input never throws and never hangs: each case gets one clear diagnostic.
const tmp = mkdtempSync(join(tmpdir(), 'kiln-hostile-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const file = (name: string, content: string | Uint8Array) => {
  const p = join(tmp, name);
  writeFileSync(p, content);
  return p;
};
const codes = (r: { diagnostics: { code: string }[] }) => r.diagnostics.map((d) => d.code);
const tiny = readFileSync(fileURLToPath(new URL('../../../configs/tiny.yaml', import.meta.url)), 'utf8');

describe('hostile input', () => {
  it('reports a missing file', () => {
    const r = load(join(tmp, 'nope.yaml'));
    expect(codes(r)).toEqual(['KL101']);
    expect(r.diagnostics[0]!.hint).toMatch(/configs\//);
  });

  it('reports a directory given instead of a file', () => {
    const d = join(tmp, 'a-dir.yaml');
    mkdirSync(d);
    expect(codes(load(d))).toEqual(['KL102']);
  });

  it('refuses a huge file without reading it all', () => {
    const p = file('huge.yaml', Buffer.alloc(MAX_FILE_BYTES + 1, 0x61));
    const r = load(p);
    expect(codes(r)).toEqual(['KL103']);
    expect(r.diagnostics[0]!.message).toMatch(/is 262,145 bytes; a spec may be at most 256 KiB \(262,144 bytes\)/);
  });

  it('reports binary content with the offset of the NUL byte', () => {
    const r = load(file('bin.yaml', Buffer.from([0x61, 0x3a, 0x0a, 0x00, 0x01, 0x02])));
    expect(codes(r)).toEqual(['KL105']);
    expect([r.diagnostics[0]!.line, r.diagnostics[0]!.col]).toEqual([2, 1]);
  });

  it('reports invalid UTF-8 at the offending byte', () => {
    const r = load(file('latin1.yaml', Buffer.concat([Buffer.from('metadata:\n  owner: Jos'), Buffer.from([0xe9]), Buffer.from('\n')])));
    expect(codes(r)).toEqual(['KL104']);
    expect([r.diagnostics[0]!.line, r.diagnostics[0]!.col]).toEqual([2, 13]);
    expect(r.diagnostics[0]!.message).toContain('0xe9');
  });

  it('reports an empty file and a whitespace-only file', () => {
    expect(codes(load(file('empty.yaml', '')))).toEqual(['KL106']);
    expect(codes(load(file('blank.yaml', '\n\n   \n')))).toEqual(['KL106']);
  });

  it('reports nesting too deep for the parser as nesting, not as a stack overflow', () => {
    const deep = 'a: ' + '['.repeat(50_000) + ']'.repeat(50_000) + '\n';
    const r = loadText(deep);
    expect(codes(r)).toEqual(['KL115']);
    expect(r.diagnostics[0]!.message).toMatch(/nested too deeply/);
    expect(r.diagnostics[0]!.message).not.toMatch(/call stack/);
    // Unclosed, the parser also reports each level it unwinds: one KL115 says it all.
    expect(codes(loadText('a: ' + '['.repeat(30_000) + '\n'))).toEqual(['KL115']);
  });

  it('caps nesting of block mappings too', () => {
    let text = '';
    for (let i = 0; i < 100; i++) text += ' '.repeat(i) + `k${i}:\n`;
    expect(codes(loadText(text))).toContain('KL115');
  });

  it('does not pollute Object.prototype through __proto__ keys', () => {
    loadText('apiVersion: kiln.dev/v1alpha1\n__proto__:\n  polluted: yes\n');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('rejects infinite numbers', () => {
    expect(codes(loadText('apiVersion: kiln.dev/v1alpha1\nmetadata: { name: .inf }\nx: .nan\n'))).toContain('KL203');
  });

  it('accepts a UTF-8 byte order mark and CRLF line endings, with positions intact', () => {
    const text = '\ufeffapiVersion: kiln.dev/v1alpha1\r\nmetadata:\r\n  name: Bad_Name\r\n';
    const r = loadText(text);
    const d = r.diagnostics.find((x) => x.pointer === '/metadata/name');
    expect(d?.code).toBe('KL205');
    expect([d?.line, d?.col]).toEqual([3, 9]);
  });

  it('reports an alias with no anchor at the alias instead of reading it as null', () => {
    const r = loadText('apiVersion: kiln.dev/v1alpha1\ntraining:\n  token_budget: *nope\n');
    expect(r.diagnostics.map((d) => [d.code, d.line, d.col, d.endCol])).toEqual([['KL117', 3, 17, 22]]);
    expect(r.diagnostics[0]!.message).toContain('*nope');
  });

  it('reports an alias used before its anchor (YAML anchors must come first)', () => {
    const r = loadText('apiVersion: kiln.dev/v1alpha1\nmetadata: { name: *n }\nx: &n m\n');
    expect(r.diagnostics.map((d) => [d.code, d.line, d.col])).toEqual([['KL117', 2, 19]]);
    expect(r.diagnostics[0]!.hint).toMatch(/before/);
  });

  it('expands many aliases of one anchor correctly (each resolved once, not by a walk of the document)', () => {
    const labels = Array.from({ length: 8000 }, (_, i) => `    lbl-name-${String(i).padStart(5, '0')}: *team\n`).join('');
    const text = tiny.replace('  owner: kiln-dev\n', `  owner: kiln-dev\n  labels:\n    team: &team kiln-dev\n${labels}`);
    const r = loadText(text);
    expect(r.diagnostics).toEqual([]);
    const values = Object.values(r.spec!.metadata.labels);
    expect([values.length, new Set(values).size, values[0]]).toEqual([8001, 1, 'kiln-dev']);
    expect(r.spec!.metadata.labels['lbl-name-07999']).toBe('kiln-dev');
  });

  it('stops after MAX_DIAGNOSTICS problems with one KL118 that counts the rest (thousands cost seconds to locate)', () => {
    const unknown = loadText(tiny.replace('kind: CodeModel\n', `kind: CodeModel\n${Array.from({ length: 300 }, (_, i) => `x${i}: 1\n`).join('')}`));
    expect(unknown.diagnostics.filter((d) => d.code === 'KL201')).toHaveLength(MAX_DIAGNOSTICS);
    expect(unknown.diagnostics.filter((d) => d.code === 'KL118').map((d) => d.message)).toEqual([`over ${MAX_DIAGNOSTICS} problems: 100 more are not reported`]);
    const aliases = loadText(`a:\n${Array.from({ length: 300 }, (_, i) => `  k${i}: *n${i}\n`).join('')}`);
    expect(aliases.diagnostics.filter((d) => d.code === 'KL117')).toHaveLength(MAX_DIAGNOSTICS);
    expect(aliases.diagnostics.filter((d) => d.code === 'KL118')).toHaveLength(1);
  });

  it('reads a file with old Mac line ends (CR only) as the spec it is, with line numbers intact', () => {
    const cr = (s: string) => s.replace(/\n/g, '\r');
    expect(load(file('cr-tiny.yaml', cr(tiny))).diagnostics).toEqual([]);
    const r = load(file('cr-bad.yaml', cr(tiny.replace('  name: tiny\n', '  name: Bad_Name\n'))));
    const d = r.diagnostics.find((x) => x.pointer === '/metadata/name');
    expect([d?.code, d?.line, d?.col]).toEqual(['KL205', tiny.split('\n').indexOf('  name: tiny') + 1, 9]);
  });

  it('names a symbolic link loop as such, not as a permission problem', () => {
    const a = join(tmp, 'loop-a.yaml');
    const b = join(tmp, 'loop-b.yaml');
    symlinkSync(b, a);
    symlinkSync(a, b);
    const r = load(a);
    expect(codes(r)).toEqual(['KL116']);
    expect(r.diagnostics[0]!.message).toMatch(/symbolic link.*loop|loop of symbolic links/);
    expect(r.diagnostics[0]!.hint).not.toMatch(/permission/);
  });

  it('handles a very long single line without hanging', () => {
    const r = loadText(`apiVersion: kiln.dev/v1alpha1\nmetadata:\n  name: ${'a'.repeat(500_000)}\n`);
    expect(codes(r)).toContain('KL211');
  });

  it('handles control characters in values', () => {
    const r = loadText('apiVersion: "kiln.dev/v1alpha1\\u001b[31m"\n');
    expect(codes(r)).toContain('KL210');
  });
});
