import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Preprocessing } from '@kiln/spec';
import { describe, expect, it } from 'vitest';
import { check, DEFAULT_FILTERS, DROP_REASONS, filtersFromSpec, textStats, type FilterConfig, type FilterResult } from '../src/filters.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Text of `lines` lines of `len` letters each, newline-terminated. */
const block = (len: number, lines: number) => `${'a'.repeat(len)}\n`.repeat(lines);
/** `longest` letters on one line, then 99 lines of 90 letters: mean stays under 100. */
const withLongLine = (longest: number) => `${'a'.repeat(longest)}\n${block(90, 99)}`;
/** A JSON text of exactly `n` chars, nearly all letters. */
const jsonOf = (n: number) => `{"a":"${'b'.repeat(n - 8)}"}`;
const reason = (r: FilterResult) => (r.keep ? 'kept' : r.reason);
const cfgWith = (over: Partial<FilterConfig>): FilterConfig => ({ ...DEFAULT_FILTERS, ...over });

describe('exports', () => {
  it('GIVEN the schema WHEN reading the line_filters defaults THEN DEFAULT_FILTERS has the same values', () => {
    const schema = JSON.parse(readFileSync(join(ROOT, 'schemas/kiln.schema.json'), 'utf8'));
    const lf = schema.$defs.preprocessing.properties.line_filters.properties;
    expect(DEFAULT_FILTERS.max_line_length).toBe(lf.max_line_length.default);
    expect(DEFAULT_FILTERS.max_avg_line_length).toBe(lf.max_avg_line_length.default);
    expect(DEFAULT_FILTERS.min_alphanum_fraction).toBe(lf.min_alphanum_fraction.default);
  });

  it('GIVEN DROP_REASONS WHEN listed THEN the codes are unique and stable', () => {
    expect(new Set(DROP_REASONS).size).toBe(DROP_REASONS.length);
    expect(DROP_REASONS).toEqual(
      expect.arrayContaining(['binary', 'nul-byte', 'too-large', 'too-small', 'max-line-length', 'avg-line-length', 'alphanum-fraction', 'alpha-fraction', 'auto-generated', 'minified', 'lock-file', 'vendored', 'xml-header', 'excluded-extension']),
    );
  });
});

describe('textStats', () => {
  it('GIVEN \\n, \\r\\n and \\r line ends and no final newline WHEN measured THEN lines and lengths exclude terminators', () => {
    const st = textStats('ab\r\ncde\rf\n\nghij');
    expect(st).toMatchObject({ lines: 5, longestLine: 4, chars: 15 });
    expect(st.meanLine).toBeCloseTo(10 / 5);
  });
  it('GIVEN a final newline WHEN measured THEN it does not add an empty line (like str.splitlines)', () => {
    expect(textStats('a\nbb\n')).toMatchObject({ lines: 2, longestLine: 2, meanLine: 1.5 });
  });
  it('GIVEN non-ASCII letters, digits and spaces WHEN measured THEN they count like Python isalnum/isalpha/isspace', () => {
    expect(textStats('é٣\u00a0€')).toMatchObject({ alnum: 2, alpha: 1, space: 1, control: 0 });
  });
});

describe('line thresholds (BigCode defaults)', () => {
  it('GIVEN a longest line of exactly 1000 WHEN checked THEN kept; 1001 THEN dropped max-line-length', () => {
    expect(check({ path: 'a.py', content: withLongLine(1000) })).toEqual({ keep: true });
    expect(check({ path: 'a.py', content: withLongLine(1001) })).toMatchObject({ keep: false, reason: 'max-line-length', detail: '1001 > 1000' });
  });
  it('GIVEN a mean line length of exactly 100 WHEN checked THEN kept; 100.5 THEN dropped avg-line-length', () => {
    expect(check({ path: 'a.py', content: block(100, 10) })).toEqual({ keep: true });
    expect(reason(check({ path: 'a.py', content: `${block(100, 1)}${block(101, 1)}` }))).toBe('avg-line-length');
  });
  it('GIVEN an alphanumeric share of exactly 0.25 WHEN checked THEN kept; 0.24 THEN dropped alphanum-fraction', () => {
    expect(check({ path: 'a.py', content: `${'a'.repeat(25)}${'-'.repeat(75)}` })).toEqual({ keep: true });
    expect(check({ path: 'a.py', content: `${'a'.repeat(24)}${'-'.repeat(76)}` })).toMatchObject({ reason: 'alphanum-fraction', detail: '0.240 < 0.25' });
  });
  it('GIVEN a config with a threshold set to null WHEN checked THEN that check is off', () => {
    const cfg = cfgWith({ max_line_length: null, max_avg_line_length: null });
    expect(check({ path: 'a.py', content: withLongLine(5000) }, cfg)).toEqual({ keep: true });
  });
});

describe('per-language overrides (NeMo code_meta)', () => {
  it('GIVEN a 2000-char line WHEN in a .json file THEN kept; in .py THEN dropped max-line-length', () => {
    const content = jsonOf(2000);
    expect(check({ path: 'data.json', content })).toEqual({ keep: true });
    expect(reason(check({ path: 'data.py', content }))).toBe('max-line-length');
  });
  it('GIVEN long lines WHEN in markdown, tex or sql THEN kept; in plain text THEN dropped', () => {
    const content = withLongLine(3000);
    for (const path of ['README.md', 'paper.tex', 'dump.sql']) expect(check({ path, content })).toEqual({ keep: true });
    expect(reason(check({ path: 'notes.txt', content }))).toBe('max-line-length');
  });
  it('GIVEN JSON with an alpha share of exactly 0.5 WHEN checked THEN kept; 0.49 THEN dropped alpha-fraction', () => {
    // 100 chars: `{"` + letters + `":` + digits + `}` with 50 / 49 letters; alphanumeric share stays 0.95.
    const at = (letters: number) => `{"${'a'.repeat(letters)}":${'1'.repeat(95 - letters)}}`;
    expect(at(50)).toHaveLength(100);
    expect(check({ path: 'x.json', content: at(50) })).toEqual({ keep: true });
    expect(check({ path: 'x.json', content: at(49) })).toMatchObject({ reason: 'alpha-fraction', detail: '0.490 < 0.5' });
  });
  it('GIVEN digit-heavy text WHEN in .yaml THEN dropped alpha-fraction; in .py THEN kept (no alpha rule)', () => {
    const content = `k: [${'1, '.repeat(20)}]\n`.repeat(5);
    expect(reason(check({ path: 'c.yaml', content }))).toBe('alpha-fraction');
    expect(reason(check({ path: 'c.py', content }))).toBe('kept');
  });
  it('GIVEN a spec override for python WHEN converted with filtersFromSpec THEN it applies to python only, keeps NeMo defaults, adds keywords', () => {
    const pre = {
      line_filters: { max_line_length: 1000, max_avg_line_length: 100, min_alphanum_fraction: 0.25, overrides: { python: { max_line_length: 50 } } },
      autogenerated: { enabled: true, extra_keywords: ['Generated By Kiln'] },
    } as unknown as Preprocessing;
    const cfg = filtersFromSpec(pre);
    expect(check({ path: 'a.py', content: block(50, 3) }, cfg)).toEqual({ keep: true });
    expect(reason(check({ path: 'a.py', content: block(51, 3) }, cfg))).toBe('max-line-length');
    expect(reason(check({ path: 'a.js', content: block(51, 3) }, cfg))).toBe('kept');
    expect(reason(check({ path: 'x.json', content: jsonOf(2000) }, cfg))).toBe('kept');
    expect(reason(check({ path: 'a.py', content: '# generated by kiln\nx = 1\n' }, cfg))).toBe('auto-generated');
  });
  it('GIVEN an explicit language WHEN it differs from the extension THEN it wins; a prototype key is just unknown', () => {
    expect(reason(check({ path: 'x.txt', language: 'json', content: jsonOf(2000) }))).toBe('kept');
    expect(reason(check({ path: 'x.txt', language: 'constructor', content: block(10, 3) }))).toBe('kept');
  });
});

describe('sizes', () => {
  it('GIVEN JSON/YAML of 100 and 5000 chars WHEN checked THEN kept; 99 too-small, 5001 too-large', () => {
    expect(reason(check({ path: 'a.json', content: jsonOf(100) }))).toBe('kept');
    expect(reason(check({ path: 'a.json', content: jsonOf(5000) }))).toBe('kept');
    expect(reason(check({ path: 'a.json', content: jsonOf(99) }))).toBe('too-small');
    expect(reason(check({ path: 'a.json', content: jsonOf(5001) }))).toBe('too-large');
    expect(reason(check({ path: 'a.yml', content: `k: ${'v'.repeat(95)}\n` }))).toBe('too-small');
  });
  it('GIVEN data_files sizes configured WHEN checked THEN the configured bounds apply', () => {
    const cfg = cfgWith({ data_files: { languages: ['json', 'yaml'], min_chars: 50, max_chars: 10_000 } });
    expect(reason(check({ path: 'a.json', content: jsonOf(50) }, cfg))).toBe('kept');
    expect(reason(check({ path: 'a.json', content: jsonOf(9000) }, cfg))).toBe('kept');
  });
  it('GIVEN max_bytes 100 WHEN content is 100 bytes THEN kept; 101 bytes THEN too-large', () => {
    const cfg = cfgWith({ max_bytes: 100 });
    expect(reason(check({ path: 'a.py', content: 'a'.repeat(100) }, cfg))).toBe('kept');
    expect(reason(check({ path: 'a.py', content: 'a'.repeat(101) }, cfg))).toBe('too-large');
  });
  it('GIVEN max_bytes 100 WHEN 51 two-byte chars (102 UTF-8 bytes) THEN too-large; 50 (100 bytes) THEN kept', () => {
    const cfg = cfgWith({ max_bytes: 100 });
    expect(reason(check({ path: 'a.py', content: 'é'.repeat(50) }, cfg))).toBe('kept');
    expect(reason(check({ path: 'a.py', content: 'é'.repeat(51) }, cfg))).toBe('too-large');
  });
  it('GIVEN the default 1 MiB limit WHEN a file has 1 MiB + 1 byte THEN too-large', () => {
    const mib = 1 << 20;
    const content = block(99, mib / 100);
    expect(reason(check({ path: 'a.py', content: content + 'a'.repeat(mib - content.length) }))).toBe('kept');
    expect(reason(check({ path: 'a.py', content: content + 'a'.repeat(mib - content.length + 1) }))).toBe('too-large');
  });
  it('GIVEN an empty or whitespace-only file WHEN checked THEN too-small', () => {
    expect(reason(check({ path: '__init__.py', content: '' }))).toBe('too-small');
    expect(check({ path: '__init__.py', content: ' \n\t\n' })).toMatchObject({ reason: 'too-small', detail: 'only whitespace' });
  });
});

describe('binary content', () => {
  it('GIVEN a NUL byte anywhere WHEN checked THEN nul-byte', () => {
    expect(check({ path: 'a.py', content: `${block(20, 50)}\0` })).toMatchObject({ reason: 'nul-byte', detail: 'at 1050' });
  });
  it('GIVEN a control share of exactly 0.01 WHEN checked THEN kept; 0.02 THEN binary', () => {
    expect(reason(check({ path: 'a.py', content: `\x01${'a'.repeat(99)}` }))).toBe('kept');
    expect(reason(check({ path: 'a.py', content: `\x01\x02${'a'.repeat(98)}` }))).toBe('binary');
  });
  it('GIVEN U+FFFD replacement chars (bytes that were not UTF-8) WHEN many THEN binary; tabs, form feeds, CRs THEN not', () => {
    expect(reason(check({ path: 'a.py', content: `${'\ufffd'.repeat(5)}${'a'.repeat(95)}` }))).toBe('binary');
    expect(reason(check({ path: 'a.py', content: `\tx = value1\r\n\f\n`.repeat(20) }))).toBe('kept');
  });
});

describe('xml header', () => {
  const at = (pad: number) => `${' '.repeat(pad)}<?xml version="1.0"?>\n<a>${'text '.repeat(20)}</a>\n${block(20, 10)}`;
  it('GIVEN "<?xml version=" ending at char 100 WHEN checked THEN xml-header; starting one later THEN kept', () => {
    expect(reason(check({ path: 'a.svg.txt', content: at(86) }))).toBe('xml-header');
    expect(reason(check({ path: 'a.svg.txt', content: at(87) }))).toBe('kept');
  });
  it('GIVEN an XSLT file with an XML header WHEN checked THEN kept (NeMo includes xslt)', () => {
    expect(reason(check({ path: 'a.xslt', content: at(0) }))).toBe('kept');
  });
});

describe('auto-generated', () => {
  const body = block(40, 20);
  it.each([
    ['# This file is auto-generated by tools/gen.py'],
    ['// AUTOGENERATED FILE'],
    ['/* Automatically generated by SWIG */'],
    ['// Code generated by protoc-gen-go. DO NOT EDIT.'],
    [' * @generated SignedSource<<abc>>'],
    ['# DO NOT EDIT: regenerate with make'],
  ])('GIVEN %j in the header WHEN checked THEN auto-generated', (marker) => {
    expect(reason(check({ path: 'x.go', content: `${marker}\n${body}` }))).toBe('auto-generated');
  });
  it('GIVEN a marker on line 5 WHEN checked THEN auto-generated; on line 6 THEN kept', () => {
    const on = (line: number) => `${'x = 1\n'.repeat(line - 1)}# autogenerated\n${body}`;
    expect(reason(check({ path: 'a.py', content: on(5) }))).toBe('auto-generated');
    expect(reason(check({ path: 'a.py', content: on(6) }))).toBe('kept');
  });
  it('GIVEN the rule disabled WHEN a marker is present THEN kept', () => {
    const cfg = cfgWith({ autogenerated: { ...DEFAULT_FILTERS.autogenerated, enabled: false } });
    expect(reason(check({ path: 'a.py', content: `# auto-generated\n${body}` }, cfg))).toBe('kept');
  });
});

describe('minified', () => {
  // Three 598-char lines with 2 spaces each, then 40 short lines to keep the mean under 100: whitespace share 0.02.
  const dense = `${`${'a=b;c(d);'.repeat(66)}${' x'.repeat(2)}\n`.repeat(3)}${block(20, 40)}`;
  it('GIVEN long dense lines WHEN in .js or .css THEN minified; in .py THEN kept (no minified rule, under 1000)', () => {
    expect(reason(check({ path: 'app.js', content: dense }))).toBe('minified');
    expect(reason(check({ path: 'app.css', content: dense }))).toBe('minified');
    expect(reason(check({ path: 'app.py', content: dense }))).toBe('kept');
  });
  it('GIVEN long lines with normal whitespace WHEN in .js THEN not minified', () => {
    const airy = `${`${'a = b; c(d); '.repeat(46)}\n`.repeat(3)}${block(20, 40)}`;
    expect(reason(check({ path: 'app.js', content: airy }))).toBe('kept');
  });
  it('GIVEN a .min.js / -min.css name WHEN checked THEN minified whatever the content', () => {
    expect(reason(check({ path: 'static/jquery.min.js', content: block(20, 10) }))).toBe('minified');
    expect(reason(check({ path: 'static/site-min.css', content: block(20, 10) }))).toBe('minified');
  });
});

describe('path rules', () => {
  const content = block(40, 20);
  it.each(['package-lock.json', 'yarn.lock', 'pnpm-lock.yaml', 'Cargo.lock', 'poetry.lock', 'go.sum', 'Gemfile.lock', 'composer.lock'])(
    'GIVEN %s WHEN checked THEN lock-file',
    (name) => {
      expect(check({ path: `app/${name}`, content })).toMatchObject({ keep: false, reason: 'lock-file', detail: name });
    },
  );
  it.each(['node_modules/lodash/index.js', 'vendor/github.com/x/y.go', 'third_party/zlib/inflate.c', '.git/hooks/pre-commit', 'a/B/Vendor/x.php', 'src\\node_modules\\m\\i.js'])(
    'GIVEN %s WHEN checked THEN vendored',
    (path) => {
      expect(reason(check({ path, content }))).toBe('vendored');
    },
  );
  it('GIVEN vendor-like names that are files, not directories WHEN checked THEN kept', () => {
    expect(reason(check({ path: 'src/vendor.ts', content }))).toBe('kept');
    expect(reason(check({ path: 'node_modules', content }))).toBe('kept');
  });
  it('GIVEN an image or archive extension WHEN checked THEN excluded-extension', () => {
    expect(check({ path: 'docs/logo.PNG', content })).toMatchObject({ reason: 'excluded-extension', detail: '.png' });
    expect(reason(check({ path: 'app.js.map', content }))).toBe('excluded-extension');
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Real code nobody here wrote.

function countReasons(results: FilterResult[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) out[reason(r)] = (out[reason(r)] ?? 0) + 1;
  return out;
}

describe('real code', () => {
  it('GIVEN the Python standard library WHEN every .py file is checked THEN nearly all ordinary modules are kept', () => {
    const stdlib = execFileSync('python3', ['-c', "import sysconfig;print(sysconfig.get_paths()['stdlib'])"], { encoding: 'utf8' }).trim();
    expect(existsSync(join(stdlib, 'os.py')), `no Python stdlib at ${stdlib}`).toBe(true);
    const files: { path: string; content: string }[] = [];
    for (const ent of readdirSync(stdlib, { recursive: true, withFileTypes: true })) {
      if (!ent.isFile() || !ent.name.endsWith('.py')) continue;
      const path = relative(stdlib, join(ent.parentPath, ent.name));
      if (path.split('/').includes('site-packages')) continue;
      files.push({ path, content: readFileSync(join(stdlib, path), 'utf8') });
    }
    files.sort((a, b) => (a.path < b.path ? -1 : 1));
    const results = files.map((f) => check(f));
    const counts = countReasons(results);
    console.log(`stdlib ${stdlib}: ${files.length} .py files`, counts);
    expect(files.length).toBeGreaterThan(500);
    // The stdlib is curated, hand-written Python: the expected drops are empty __init__.py files, a few generated
    // tables (token.py, keyword.py, pydoc_data/topics.py) and test fixtures in legacy encodings or with odd lines.
    // Measured on CPython 3.11: 97.9% kept overall; ≥ 95% leaves room for other versions.
    expect(counts.kept! / files.length).toBeGreaterThanOrEqual(0.95);
    // Non-empty modules outside test/ directories are ordinary code: measured 99.4% kept (791/796; the 5 are generated).
    const ordinary = files.map((f, i) => [f, results[i]!] as const).filter(([f]) => f.content.trim() && !/(^|\/)tests?\//.test(f.path));
    const keptOrdinary = ordinary.filter(([, r]) => r.keep).length;
    console.log(`stdlib ordinary (non-empty, outside test/): ${keptOrdinary}/${ordinary.length} kept`);
    expect(keptOrdinary / ordinary.length).toBeGreaterThanOrEqual(0.98);
    // The generated token table says so in its header and goes; os.py stays.
    expect(reason(results[files.findIndex((f) => f.path === 'token.py')]!)).toBe('auto-generated');
    expect(reason(results[files.findIndex((f) => f.path === 'os.py')]!)).toBe('kept');
  }, 60_000);

  it('GIVEN 500 .js files of node_modules WHEN checked by repo path THEN all vendored; by in-package path THEN content rules decide', () => {
    const all: string[] = [];
    for (const ent of readdirSync(join(ROOT, 'node_modules'), { recursive: true, withFileTypes: true })) {
      if (ent.isFile() && ent.name.endsWith('.js')) all.push(relative(ROOT, join(ent.parentPath, ent.name)));
    }
    // Code a package itself vendors (e.g. a copy of typescript under vendor/) is vendored even by its in-package
    // path, and which files the sample hits depends on what is installed: leave those out.
    // So is a package's own fixture of a node_modules tree (resolve's test/resolver/…/node_modules/foo.js).
    for (let i = all.length - 1; i >= 0; i--) if (/node_modules\/(?:@[^/]+\/)?[^/]+\/(?:.*\/)?(?:vendor|third_party|bower_components|node_modules)\//.test(all[i]!)) all.splice(i, 1);
    all.sort();
    expect(all.length).toBeGreaterThanOrEqual(500);
    const step = all.length / 500; // every step-th of the sorted list: 500 files spread over all packages
    const picked = Array.from({ length: 500 }, (_, i) => all[Math.floor(i * step)]!);
    const byRepoPath: FilterResult[] = [];
    const byPackagePath: FilterResult[] = [];
    for (const path of picked) {
      const content = readFileSync(join(ROOT, path), 'utf8');
      byRepoPath.push(check({ path, content }));
      const inner = path.replace(/^.*node_modules\/(?:@[^/]+\/)?[^/]+\//, ''); // e.g. lib/index.js
      byPackagePath.push(check({ path: inner, content }));
    }
    const repo = countReasons(byRepoPath);
    const pkg = countReasons(byPackagePath);
    console.log(`node_modules, ${all.length} .js files, 500 picked; by repo path:`, repo, 'by in-package path:', pkg);
    expect(repo).toEqual({ vendored: 500 });
    expect(pkg.vendored ?? 0).toBe(0);
    // Published packages are mostly readable JS, but ship generated data tables (caniuse-lite, unicode property
    // tables) and bundles: measured 84% kept, with drops by line length, auto-generated headers and minification.
    expect(pkg.kept! / 500).toBeGreaterThanOrEqual(0.7);
    expect(pkg.kept! / 500).toBeLessThan(1);
    expect((pkg['auto-generated'] ?? 0) + (pkg.minified ?? 0) + (pkg['max-line-length'] ?? 0) + (pkg['avg-line-length'] ?? 0)).toBeGreaterThan(0);
  }, 60_000);
});
