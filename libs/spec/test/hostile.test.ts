import { mkdtempSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { load, loadText, MAX_FILE_BYTES } from '../src/index.ts';

// Hostile or broken input never throws and never hangs: each case gets one clear diagnostic.
const tmp = mkdtempSync(join(tmpdir(), 'kiln-hostile-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const file = (name: string, content: string | Uint8Array) => {
  const p = join(tmp, name);
  writeFileSync(p, content);
  return p;
};
const codes = (r: { diagnostics: { code: string }[] }) => r.diagnostics.map((d) => d.code);

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
    expect(r.diagnostics[0]!.message).toMatch(/1\.0 MiB/);
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

  it('survives pathological nesting without a stack overflow', () => {
    const deep = 'a: ' + '['.repeat(50_000) + ']'.repeat(50_000) + '\n';
    const r = loadText(deep);
    expect(r.diagnostics.length).toBeGreaterThan(0);
    expect(['KL107', 'KL115']).toContain(r.diagnostics[0]!.code);
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

  it('handles a very long single line without hanging', () => {
    const r = loadText(`apiVersion: kiln.dev/v1alpha1\nmetadata:\n  name: ${'a'.repeat(500_000)}\n`);
    expect(codes(r)).toContain('KL211');
  });

  it('handles control characters in values', () => {
    const r = loadText('apiVersion: "kiln.dev/v1alpha1\\u001b[31m"\n');
    expect(codes(r)).toContain('KL210');
  });
});
