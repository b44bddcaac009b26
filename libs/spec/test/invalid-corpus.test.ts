import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { validateFile } from '../src/index.ts';

// Each fixture declares, in `# expect: CODE line:col [stack=NAME]` lines at its top, every diagnostic
// kiln must report for it: the exact set, so a missing, extra or misplaced diagnostic fails the test.
const dir = fileURLToPath(new URL('./fixtures/invalid/', import.meta.url));
const fixtures = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();

function expectations(text: string): string[] {
  return [...text.matchAll(/^# expect: (KL\d{3}) (\d+:\d+)(?: stack=(\S+))?$/gm)].map((m) => `${m[1]} ${m[2]}${m[3] ? ` stack=${m[3]}` : ''}`);
}

describe('invalid spec corpus', () => {
  it('has at least 40 invalid specs, each declaring what it expects', () => {
    expect(fixtures.length).toBeGreaterThanOrEqual(40);
    for (const f of fixtures) expect(expectations(readFileSync(dir + f, 'utf8')), f).not.toHaveLength(0);
  });

  it.each(fixtures)('%s reports exactly its expected diagnostics', (f) => {
    const want = expectations(readFileSync(dir + f, 'utf8')).sort();
    const result = validateFile(dir + f);
    const got = result.diagnostics.map((d) => `${d.code} ${d.line}:${d.col}${d.stack ? ` stack=${d.stack}` : ''}`).sort();
    expect(got).toEqual(want);
    expect(result.spec).toBeUndefined();
    for (const d of result.diagnostics) {
      expect(d.message.length, `${f}: ${d.code} has a message`).toBeGreaterThan(10);
      expect(d.file).toBe(dir + f);
    }
  });
});
