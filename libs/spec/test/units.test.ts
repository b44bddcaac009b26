import { describe, expect, it } from 'vitest';
import { formatDiagnostic, formatCount, loadText, optimalLsh, parameterCount, parseBytes, parseTokens, PRESETS } from '../src/index.ts';
import { closest } from '../src/suggest.ts';

describe('quantities', () => {
  it('parse token counts with SI suffixes', () => {
    expect([parseTokens('525B'), parseTokens('1.5T'), parseTokens('4M'), parseTokens(123)]).toEqual([525e9, 1.5e12, 4e6, 123]);
    expect(() => parseTokens('5 GB')).toThrow();
  });
  it('parse byte sizes in decimal and binary units', () => {
    expect([parseBytes('1GiB'), parseBytes('2 GB'), parseBytes('16MiB')]).toEqual([2 ** 30, 2e9, 16 * 2 ** 20]);
  });
  it('format counts with three significant digits', () => {
    expect([formatCount(2.6e9), formatCount(525e9), formatCount(1048576), formatCount(12)]).toEqual(['2.6B', '525B', '1.05M', '12']);
  });
});

describe('model and dedup arithmetic', () => {
  it('counts about 2.6B parameters for the replit-code-v1-3b shape', () => {
    const n = parameterCount({ ...PRESETS['3b'], mlp_ratio: 4, vocab_size: 32768 });
    expect(n).toBe(12 * 2560 * 2560 * 32 + 32768 * 2560);
  });
  it("chooses BigCode's LSH banding (25 bands × 10 rows) for threshold 0.7 and 256 permutations", () => {
    expect(optimalLsh(0.7, 256)).toEqual({ bands: 25, rows: 10 });
  });
});

describe('suggestions', () => {
  it('find near misses, ignoring separators and case', () => {
    expect(closest('d_modle', ['d_model', 'n_heads'])).toBe('d_model');
    expect(closest('maxSeqLen', ['max_seq_len', 'mlp_ratio'])).toBe('max_seq_len');
    expect(closest('zzz', ['d_model'])).toBeUndefined();
  });
});

describe('diagnostic format', () => {
  it('prints file:line:col, the code, a two-line code frame with a caret, and the hint', () => {
    const text = 'apiVersion: kiln.dev/v1alpha1\nmetadata:\n  name: t\n  ownr: me\n';
    const r = loadText(text, 'kiln.yaml');
    const d = r.diagnostics.find((x) => x.code === 'KL201')!;
    expect(formatDiagnostic(d, { sources: r.sources })).toBe(
      [
        'kiln.yaml:4:3 error KL201 unknown key "ownr" in metadata',
        '  3 |   name: t',
        '> 4 |   ownr: me',
        '    |   ^^^^',
        '  hint: did you mean "owner"?',
      ].join('\n'),
    );
  });

  it('reports every problem of a file in one run', () => {
    const text = 'apiVersion: v2\nmetadata: { name: BAD }\ndata: { sources: [] }\nmodel: { preset: 9b }\ntraining: { micro_batch: -1 }\n';
    expect(loadText(text).diagnostics.map((d) => d.code)).toEqual(['KL210', 'KL205', 'KL207', 'KL204', 'KL206']);
  });
});

describe('inline secret detection', () => {
  const base = 'apiVersion: kiln.dev/v1alpha1\nmetadata:\n  name: m\n  labels: LABELS\ndata:\n  sources: [{ type: local, name: src, path: ./code }]\nmodel: { preset: 125m }\ntraining: {}\n';
  it('flags a literal under a secret-looking key in a free-form map', () => {
    expect(loadText(base.replace('LABELS', '{ api_token: abcdefgh1234 }')).diagnostics.map((d) => d.code)).toEqual(['KL308']);
  });
  it('does not flag schema fields whose names end in _token', () => {
    const ul2 = base.replace('LABELS', '{}') + 'objective:\n  type: ul2\n  denoisers: [{ mean_span: 3, corruption_rate: 0.15, paradigm_token: "<|endoftext|>" }]\n';
    expect(loadText(ul2).diagnostics).toEqual([]);
  });
});
