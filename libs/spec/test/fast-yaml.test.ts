import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { fastParse } from '../src/fast-yaml.ts';
import { loadText } from '../src/load.ts';
import { MAX_DEPTH, MAX_EXPANDED_NODES, parseSource, type Json } from '../src/source.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const LIMITS = { forbidden: new Set(['__proto__', 'constructor', 'prototype']), maxDepth: MAX_DEPTH, maxNodes: MAX_EXPANDED_NODES };

/** The full path's reading of a text: yaml's document and source.ts's converter. */
const full = (text: string) => parseSource('spec.yaml', text, { fast: false });

/**
 * The fast path's one rule: where it returns a value, the full path returns the same value with no diagnostic.
 * Returns whether the fast path took the text.
 */
function agrees(text: string): boolean {
  const fast = fastParse(text, LIMITS);
  if (fast === undefined) return false;
  const r = full(text);
  expect.soft(r.diagnostics.map((d) => d.message), text).toEqual([]);
  expect(r.source?.value, text).toStrictEqual(fast);
  return true;
}

/** A small seeded generator (mulberry32), so that a failure names a case that can be run again. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const yamlFiles = (dir: string): string[] =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? yamlFiles(join(dir, e.name)) : /\.ya?ml$/.test(e.name) ? [join(dir, e.name)] : []));
const corpus = [...yamlFiles(join(root, 'configs')), ...yamlFiles(join(root, 'libs/spec/test/fixtures')), ...yamlFiles(join(root, 'stacks')).filter((f) => !f.includes('node_modules'))];

describe('fast path: same value as the full parser, or none', () => {
  it('reads the shipped configs and agrees on every file of the corpus', () => {
    let taken = 0;
    for (const f of corpus) if (agrees(readFileSync(f, 'utf8'))) taken++;
    expect(corpus.length).toBeGreaterThan(20);
    // The point of the fast path: the configs people start from are in its subset.
    for (const name of ['replit-code-v1-3b.yaml', 'tiny.yaml', 'fim.yaml', 'ul2.yaml']) {
      expect(fastParse(readFileSync(join(root, 'configs', name), 'utf8'), LIMITS), name).toBeDefined();
    }
    expect(taken).toBeGreaterThan(10);
  }, 60_000);

  it('reads these forms as yaml does', () => {
    const cases: [string, Json][] = [
      ['a: 1\nb: -2.5\nc: 1e-4\nd: .5\ne: 1.\nf: +3\n', { a: 1, b: -2.5, c: 1e-4, d: 0.5, e: 1, f: 3 }],
      ['a: ~\nb: null\nc:\nd: NULL\ne: True\nf: FALSE\n', { a: null, b: null, c: null, d: null, e: true, f: false }],
      ['a: yes\nb: on\nc: 1_000\nd: 50M\ne: 10GiB\nf: c++\ng: a#b\n', { a: 'yes', b: 'on', c: '1_000', d: '50M', e: '10GiB', f: 'c++', g: 'a#b' }],
      ['a: "x # y"   # comment\nb: \'it\'\'s\'\nc: "\\u00e9\\n\\t\\\\"\nd: it\'s\n', { a: 'x # y', b: "it's", c: 'é\n\t\\', d: "it's" }],
      ['a: [1, two, "3", [], {}]\nb: { x: 1, y: [a, b], }\nc: [a b, -1]\n', { a: [1, 'two', '3', [], {}], b: { x: 1, y: ['a', 'b'] }, c: ['a b', -1] }],
      ['a:\n- 1\n- x\nb:\n  - c: 1\n    d: 2\n  -\n    e: 3\n  -\n', { a: [1, 'x'], b: [{ c: 1, d: 2 }, { e: 3 }, null] }],
      ['# head\n\na:   # the a\n  b:\n    c: 1   \n\n  # between\n  d: [x]\n', { a: { b: { c: 1 }, d: ['x'] } }],
      ['- a: 1\n', undefined as unknown as Json],
    ];
    for (const [text, want] of cases) {
      const got = fastParse(text, LIMITS);
      expect(got, text).toStrictEqual(want);
      if (want !== undefined) expect(full(text).source?.value, text).toStrictEqual(want);
    }
  });

  it('leaves to the full parser what is outside its subset or is a problem', () => {
    const outside = [
      'a: &x 1\nb: *x\n', // anchors and aliases
      'a: !!str 1\n', // tags
      'a: |\n  text\n', // block scalars
      'a: >\n  text\n',
      'a: one\n  two\n', // a multi-line plain scalar
      'a: "one\n  two"\n', // a multi-line quoted scalar
      'a: [1,\n  2]\n', // a multi-line flow collection
      '---\na: 1\n', // document markers and directives
      '%YAML 1.2\n---\na: 1\n',
      'a: 1\n---\nb: 2\n',
      'a: 0x1F\n', 'a: 0o17\n', 'a: .inf\n', 'a: -.Inf\n', 'a: .nan\n', 'a: 1e999\n', 'a: 007\n', 'a: -0\n', 'a: 12345678901234567\n',
      'a: "\\x41"\n', // escapes it does not read
      'a: 1\na: 2\n', // a duplicate key (KL108)
      '__proto__: 1\n', 'a: { constructor: 1 }\n', // refused keys (KL111)
      'true: 1\n', '1: x\n', 'null: x\n', '"quoted": 1\n', '? complex\n: 1\n', // keys that are not plain words
      'a:\tb\n', 'a:\n\tb: 1\n', 'a: 1\r\nb: 2\r\n', // tabs and CR
      'a: b: c\n', 'a:b\n', 'a: - x\n', 'a: x # \n  y\n',
      'a:\n  b: 1\n c: 2\n', 'a:\n  - x\n  b: 1\n', '- x\n', ' a: 1\n', 'x\n', '', '# only a comment\n',
      'a:\n- - x\n', 'a: [x: 1]\n', 'a: {x}\n', 'a: {x:1}\n', 'a: [http://x]\n', 'a: "x"y\n', 'a: [x]]\n',
    ];
    for (const text of outside) expect(fastParse(text, LIMITS), JSON.stringify(text)).toBeUndefined();
    // Depth and size limits are the converter's: over them, the full path reports KL115 and KL109.
    const deep = `${Array.from({ length: MAX_DEPTH + 2 }, (_, i) => `${' '.repeat(2 * i)}k:`).join('\n')} 1\n`;
    expect(fastParse(deep, LIMITS)).toBeUndefined();
    expect(full(deep).diagnostics.map((d) => d.code)).toContain('KL115');
    const wide = `a: [${Array.from({ length: MAX_EXPANDED_NODES + 1 }, () => '1').join(', ')}]\n`;
    expect(fastParse(wide, LIMITS)).toBeUndefined();
    expect(full(wide).diagnostics.map((d) => d.code)).toContain('KL109');
  }, 60_000);

  it('agrees on generated documents in every style yaml writes', () => {
    const r = rng(20261203);
    const keys = ['name', 'a.b', 'c++', 'x-y', 'model_family', 'v1', '350m', 'true', '1', 'null', 'on', 'key with space', '__proto__', 'k:v', '-k'];
    const strings = ['plain', '1.0', '007', '0x1F', '.inf', '-0', '+1', '1e5', '1_000', 'yes', '~', 'a: b', 'a #b', "it's", '"q"', '- x', '[x]', '{y}', 'é', '😀', '', ' lead', 'trail ', '#x', '@x', '%x', 'a,b', 'x:y', 'line\nbreak', 'tab\there', 'back\\slash', '*star', '&amp', '!bang', '|pipe', '>gt', '?q', ': c', 'null', 'True', '12345678901234567', '-', '.', '...', '---'];
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
    const value = (depth: number): Json => {
      const x = r();
      if (depth < 4 && x < 0.25) return Object.fromEntries(Array.from({ length: Math.floor(r() * 4) }, () => [pick(keys), value(depth + 1)]));
      if (depth < 4 && x < 0.4) return Array.from({ length: Math.floor(r() * 4) }, () => value(depth + 1));
      if (x < 0.55) return pick(strings);
      if (x < 0.7) return Math.floor((r() - 0.5) * 1e6) / (r() < 0.5 ? 1 : 1000);
      if (x < 0.8) return r() < 0.5;
      if (x < 0.85) return null;
      return `${pick(strings)} ${pick(strings)}`;
    };
    let taken = 0;
    let n = 0;
    for (let i = 0; i < 1500; i++) {
      const doc = Object.fromEntries(Array.from({ length: 1 + Math.floor(r() * 5) }, () => [pick(keys.slice(0, 7)), value(1)]));
      const text = stringify(doc, {
        indent: pick([2, 4]),
        indentSeq: r() < 0.5,
        collectionStyle: pick(['any', 'block', 'flow'] as const),
        defaultStringType: pick(['PLAIN', 'QUOTE_DOUBLE', 'QUOTE_SINGLE'] as const),
        defaultKeyType: pick([null, 'PLAIN'] as const),
        lineWidth: pick([0, 80]),
      });
      n++;
      if (agrees(text)) taken++;
    }
    // The test means something only if the fast path both took and left many of them.
    expect(taken).toBeGreaterThan(n / 8);
    expect(taken).toBeLessThan(n);
  }, 60_000);

  it('agrees on mutated configs: where it takes a broken file, yaml found nothing wrong either', () => {
    const r = rng(7);
    const bases = ['replit-code-v1-3b.yaml', 'tiny.yaml', 'fim.yaml'].map((f) => readFileSync(join(root, 'configs', f), 'utf8'));
    const inserts = [':', ': ', '-', '- ', '#', ' #', '[', ']', '{', '}', "'", '"', '&a ', '*a', '!', '|', '>', ',', ' ', '  ', '\n', '\\', '?', '%', '@', '~', '0', '.', 'e'];
    let taken = 0;
    let n = 0;
    for (let i = 0; i < 1500; i++) {
      let text = bases[i % bases.length]!;
      for (let m = 0; m < 1 + Math.floor(r() * 3); m++) {
        const at = Math.floor(r() * text.length);
        const kind = r();
        if (kind < 0.3) text = text.slice(0, at) + text.slice(at + 1);
        else if (kind < 0.7) text = text.slice(0, at) + inserts[Math.floor(r() * inserts.length)]! + text.slice(at);
        else {
          const lines = text.split('\n');
          const l = Math.floor(r() * lines.length);
          const op = r();
          if (op < 0.3) lines.splice(l, 0, lines[l]!); // a duplicated line
          else if (op < 0.6) lines[l] = ` ${lines[l]}`; // one more space of indentation
          else if (op < 0.8) lines[l] = lines[l]!.replace(/^ {1,2}/, '');
          else lines.splice(l, 2, lines[l + 1] ?? '', lines[l]!);
          text = lines.join('\n');
        }
      }
      n++;
      if (agrees(text)) taken++;
    }
    expect(taken).toBeGreaterThan(n / 10);
    expect(taken).toBeLessThan(n);
  }, 120_000);

  it('locates values lazily: diagnostics of a fast-read spec point where the value is written', () => {
    const text = readFileSync(join(root, 'configs/tiny.yaml'), 'utf8');
    expect(fastParse(text, LIMITS)).toBeDefined();
    const broken = text.replace(/^( *)d_model: .*$/m, '$1d_model: lots');
    expect(fastParse(broken, LIMITS)).toBeDefined();
    const line = broken.split('\n').findIndex((l) => /^ *d_model: lots$/.test(l)) + 1;
    const r = loadText(broken, 'tiny.yaml');
    const d = r.diagnostics.find((x) => x.pointer === '/model/d_model');
    expect(d, JSON.stringify(r.diagnostics)).toBeDefined();
    expect(d!.line).toBe(line);
    expect(d!.col).toBe(broken.split('\n')[line - 1]!.indexOf('lots') + 1);
  });
});
