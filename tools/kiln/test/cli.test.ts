import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import pkg from '../package.json' with { type: 'json' };

const bin = fileURLToPath(new URL('../bin/kiln.js', import.meta.url));
const root = fileURLToPath(new URL('../../../', import.meta.url));
const fixtures = join(root, 'libs/spec/test/fixtures/invalid/');
const tmp = mkdtempSync(join(tmpdir(), 'kiln-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function kiln(...args: string[]) {
  return kilnIn(undefined, ...args);
}

/** The environment without FORCE_COLOR (Nx sets it): with NO_COLOR beside it, Node prints a warning on stderr. */
function withoutForceColor(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { FORCE_COLOR: _ignored, ...rest } = env;
  return rest;
}

/** Runs kiln with `input` on its standard input (a pipe). */
function kilnIn(input: string | undefined, ...args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8', env: { ...withoutForceColor(process.env), NO_COLOR: '1' }, timeout: 30_000, ...(input === undefined ? {} : { input }) });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const noStackTrace = (s: string) => expect(s).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);

describe('kiln (no command, help, version)', () => {
  it('prints the version', () => {
    expect(kiln('--version')).toMatchObject({ code: 0, out: `${pkg.version}\n` });
  });
  it('prints help listing every command, and exits 2 when called with nothing', () => {
    const help = kiln('--help');
    expect(help.code).toBe(0);
    for (const c of ['validate', 'schema', 'demo']) expect(help.out).toContain(`  ${c}`);
    expect(kiln().code).toBe(2);
  });
  it.each(['validate', 'schema', 'demo'])('has --help for %s', (c) => {
    const r = kiln(c, '--help');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`^Usage: kiln ${c}`));
  });
  it('rejects an unknown command or option with a usage error (exit 2)', () => {
    const r = kiln('valdate', 'x.yaml');
    expect(r.code).toBe(2);
    expect(r.err).toContain('did you mean "validate"?');
    const o = kiln('validate', '--strcit', 'configs/tiny.yaml');
    expect(o.code).toBe(2);
    expect(o.err).toContain("Unknown option '--strcit'");
    expect(kiln('validate', '--format', 'xml', 'configs/tiny.yaml').code).toBe(2);
    expect(kiln('validate').code).toBe(2);
  });
});

describe('kiln validate', () => {
  it('accepts every example spec (exit 0)', () => {
    const r = kiln('validate', 'configs/replit-code-v1-3b.yaml', 'configs/tiny.yaml');
    expect(r.code).toBe(0);
    expect(r.err).toContain('✓ configs/tiny.yaml is valid, stacks dev');
  });

  it('reports errors as file:line:col with a code frame and hint, without a stack trace (exit 1)', () => {
    const f = join(fixtures, 'unknown-model-key.yaml');
    const r = kiln('validate', f);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${f}:12:3 error KL201 unknown key "d_modle" in model`);
    expect(r.err).toContain('> 12 |   d_modle: 768');
    expect(r.err).toContain('hint: did you mean "d_model"?');
    noStackTrace(r.err);
  });

  it('gives machines JSON with every diagnostic', () => {
    const r = kiln('validate', '--format', 'json', join(fixtures, 'many-errors.yaml'), 'configs/tiny.yaml');
    expect(r.code).toBe(1);
    const j = JSON.parse(r.out);
    expect(j).toMatchObject({ kiln: pkg.version, valid: false, errors: 4, warnings: 0 });
    expect(j.files.map((f: { valid: boolean }) => f.valid)).toEqual([false, true]);
    expect(j.files[0].diagnostics[0]).toMatchObject({ code: 'KL205', severity: 'error', line: 7, col: 9, pointer: '/metadata/name' });
  });

  it('prints the resolved spec as YAML', () => {
    const r = kiln('validate', '--resolved', '--stack', 'dev', 'configs/tiny.yaml');
    expect(r.code).toBe(0);
    const spec = parse(r.out.split('\n').slice(1).join('\n'));
    expect(spec.stack).toBe('dev');
    expect(spec.training.token_budget).toBe(500_000);
    expect(spec.model.parameters).toBeGreaterThan(0);
  });

  it('handles hostile files with exit 1 and no stack trace', () => {
    const bin1 = join(tmp, 'binary.yaml');
    writeFileSync(bin1, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x00, 0x01]));
    for (const f of [bin1, tmp, join(tmp, 'missing.yaml'), join(fixtures, 'alias-bomb.yaml')]) {
      const r = kiln('validate', f);
      expect(r.code, f).toBe(1);
      expect(r.err).toMatch(/error KL1\d\d /);
      noStackTrace(r.err);
    }
  });

  it('reads a spec from standard input with `-` or /dev/stdin', () => {
    const tiny = readFileSync(join(root, 'configs/tiny.yaml'), 'utf8');
    const dash = kilnIn(tiny, 'validate', '-');
    expect([dash.code, dash.err.trim()]).toEqual([0, '✓ <stdin> is valid, stacks dev, local']);
    const dev = kilnIn(tiny, 'validate', '/dev/stdin');
    expect([dev.code, dev.err.trim()]).toEqual([0, '✓ /dev/stdin is valid, stacks dev, local']);
    const bad = kilnIn(tiny.replace('  name: tiny\n', '  name: Bad_Name\n'), 'validate', '-');
    expect(bad.code).toBe(1);
    const line = tiny.split('\n').indexOf('  name: tiny') + 1;
    expect(bad.err).toMatch(new RegExp(`^<stdin>:${line}:9 error KL205 `, 'm'));
    expect(bad.err).toMatch(new RegExp(`> ${line} \\|\\s+name: Bad_Name`));
    // An overlay from standard input, over a spec file; and standard input cannot be read twice.
    const overlay = kilnIn('training:\n  micro_batch: 0\n', 'validate', 'configs/tiny.yaml', '--overlay', '-');
    expect(overlay.code).toBe(1);
    expect(overlay.err).toMatch(/^<stdin>:2:16 error KL206 /m);
    expect(kilnIn(tiny, 'validate', '-', '--overlay', '-').code).toBe(2);
  });

  it('refuses an unknown stack with a suggestion', () => {
    const r = kiln('validate', '--stack', 'prdo', 'configs/tiny.yaml');
    expect(r.code).toBe(1);
    expect(r.err).toContain('did you mean "prod"?');
  });
});

describe('kiln init', () => {
  const schemaLine = (text: string) => /^# yaml-language-server: \$schema=(.+)$/m.exec(text)?.[1];
  const tiny = readFileSync(join(root, 'configs/tiny.yaml'), 'utf8');
  // A directory inside this checkout (test-results/ is ignored by git), for the relative-path case.
  const inside = join(root, 'tools/kiln/test-results');
  mkdirSync(inside, { recursive: true });
  const insideTmp = mkdtempSync(join(inside, 'init-'));
  afterAll(() => rmSync(insideTmp, { recursive: true, force: true }));

  it('has --help', () => {
    const r = kiln('init', '--help');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Usage: kiln init/);
  });

  it('writes the example inside this checkout with a $schema path relative to where it is written', () => {
    const out = join(insideTmp, 'deeper/kiln.yaml');
    mkdirSync(dirname(out), { recursive: true });
    const r = kiln('init', '--output', out);
    expect(r.code, r.err).toBe(0);
    const text = readFileSync(out, 'utf8');
    const ref = schemaLine(text)!;
    expect(ref.startsWith('/')).toBe(false);
    expect(resolve(dirname(out), ref)).toBe(join(root, 'schemas/kiln.schema.json'));
    // Everything but the schema line is the example as it is.
    expect(text.split('\n').slice(1)).toEqual(tiny.split('\n').slice(1));
    expect(existsSync(join(dirname(out), 'kiln.schema.json'))).toBe(false);
    expect(kiln('validate', out).code).toBe(0);
  });

  it('outside this checkout, copies the schema beside the spec and points at the copy', () => {
    const dir = mkdtempSync(join(tmp, 'init-out-'));
    const out = join(dir, 'kiln.yaml');
    const r = kiln('init', '--output', out);
    expect(r.code, r.err).toBe(0);
    expect(schemaLine(readFileSync(out, 'utf8'))).toBe('./kiln.schema.json');
    expect(JSON.parse(readFileSync(join(dir, 'kiln.schema.json'), 'utf8'))).toEqual(JSON.parse(readFileSync(join(root, 'schemas/kiln.schema.json'), 'utf8')));
    expect(r.err).toContain('kiln validate');
  });

  it('with --schema path, outside this checkout, points at the checkout\'s schema by absolute path', () => {
    const out = join(mkdtempSync(join(tmp, 'init-abs-')), 'kiln.yaml');
    expect(kiln('init', '--output', out, '--schema', 'path').code).toBe(0);
    expect(schemaLine(readFileSync(out, 'utf8'))).toBe(join(root, 'schemas/kiln.schema.json'));
    expect(kiln('init', '--output', out, '--schema', 'url', '--force').code).toBe(2);
  });

  it('refuses to overwrite a file without --force (exit 1), and overwrites with it', () => {
    const dir = mkdtempSync(join(tmp, 'init-force-'));
    const out = join(dir, 'kiln.yaml');
    writeFileSync(out, 'mine\n');
    const r = kiln('init', '--output', out);
    expect(r.code).toBe(1);
    expect(r.err).toContain('--force');
    expect(readFileSync(out, 'utf8')).toBe('mine\n');
    expect(kiln('init', '--output', out, '--force', '--from', 'fim').code).toBe(0);
    expect(readFileSync(out, 'utf8')).toContain('type: fim');
  });

  it('lists the examples, and suggests one for a typo in --from (exit 2)', () => {
    const list = kiln('init', '--list');
    expect(list.code).toBe(0);
    for (const name of ['tiny', 'fim', 'ul2', 'replit-code-v1-3b', 'multinode-7b']) expect(list.out).toMatch(new RegExp(`^  ${name} `, 'm'));
    expect(JSON.parse(kiln('init', '--list', '--json').out).examples.map((e: { name: string }) => e.name)).toContain('tiny');
    const r = kiln('init', '--from', 'tiyn', '--output', join(tmp, 'never.yaml'));
    expect(r.code).toBe(2);
    expect(r.err).toContain('did you mean "tiny"?');
    expect(r.err).toContain('replit-code-v1-3b');
    expect(existsSync(join(tmp, 'never.yaml'))).toBe(false);
  });

  it('reports what it wrote as JSON', () => {
    const dir = mkdtempSync(join(tmp, 'init-json-'));
    const r = kiln('init', '--output', join(dir, 'kiln.yaml'), '--from', 'ul2.yaml', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual({
      written: join(dir, 'kiln.yaml'),
      from: 'ul2',
      example: join(root, 'configs/ul2.yaml'),
      schema: { mode: 'copy', ref: './kiln.schema.json', copied: join(dir, 'kiln.schema.json') },
    });
  });
});

describe('kiln schema', () => {
  it('prints the schema file', () => {
    const r = kiln('schema');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toEqual(JSON.parse(readFileSync(join(root, 'schemas/kiln.schema.json'), 'utf8')));
  });
  it('writes it with --out', () => {
    const out = join(tmp, 'schema.json');
    expect(kiln('schema', '--out', out).code).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8')).$id).toContain('kiln.schema.json');
    expect(kiln('schema', '--out', join(tmp, 'no/such/dir/s.json')).code).toBe(2);
  });
});

describe('kiln demo', () => {
  it('validates and summarises every example spec', () => {
    const r = kiln('demo', '--validate-only');
    expect(r.code).toBe(0);
    for (const name of ['replit-code-v1-3b', 'tiny', 'fim-350m', 'ul2-1b', 'acme-code-7b']) expect(r.out).toContain(name);
    expect(r.out).toMatch(/525B tokens \(\d+ per parameter\) on 256 × a100-40gb/);
    // replit: 1024 sequences over micro batch 4 × 256 GPUs.
    expect(r.out).toContain('tokens per step, micro batch 4, accumulation 1, ');
  });
  it('has a JSON form', () => {
    const j = JSON.parse(kiln('demo', '--format', 'json').out);
    expect(j.specs.length).toBeGreaterThanOrEqual(5);
    expect(j.specs.every((s: { valid: boolean; summary: unknown }) => s.valid && s.summary)).toBe(true);
  });
});

describe('did you mean: suggestions for unknown names come from edit distance', () => {
  it.each([
    [['valdate', 'x.yaml'], 'unknown command "valdate"', 'did you mean "validate"?'],
    [['stauts'], 'unknown command "stauts"', 'did you mean "status"?'],
    [['data', 'prepp'], 'unknown data command "prepp"', 'did you mean "prep"?'],
    [['eval', 'scor'], 'unknown eval command "scor"', 'did you mean "score"?'],
    [['cluster', 'upp'], 'unknown subcommand "upp"', 'did you mean "up"?'],
    [['toolchain', 'buld'], 'unknown subcommand "buld"', 'did you mean "build"?'],
    [['plan', 'configs/tiny.yaml', '--josn'], "Unknown option '--josn'", 'did you mean "--json"?'],
    [['validate', '--stak', 'dev', 'configs/tiny.yaml'], "Unknown option '--stak'", 'did you mean "--stack"?'],
  ])('GIVEN kiln %j WHEN it runs THEN exit 2, the name, and the closest known one', (args, what, hint) => {
    const r = kiln(...args);
    expect(r.code).toBe(2);
    expect(r.err).toContain(what);
    expect(r.err).toContain(hint);
  });
  it.each([
    [['zzzzzz'], 'unknown command "zzzzzz"'],
    // A shared prefix is not closeness: the old prefix match suggested "validate" here.
    [['valhalla'], 'unknown command "valhalla"'],
    [['data', 'xyzzy'], 'unknown data command "xyzzy"'],
    [['eval', 'qqqq'], 'unknown eval command "qqqq"'],
    [['cluster', 'sideways'], 'unknown subcommand "sideways"'],
    [['toolchain', 'xyz'], 'unknown subcommand "xyz"'],
    [['plan', 'configs/tiny.yaml', '--qqqq'], "Unknown option '--qqqq'"],
  ])('GIVEN kiln %j, close to nothing known, WHEN it runs THEN exit 2 and no suggestion', (args, what) => {
    const r = kiln(...args);
    expect(r.code).toBe(2);
    expect(r.err).toContain(what);
    expect(r.err).not.toContain('did you mean');
  });
});

describe('kiln cluster and kiln toolchain (without starting anything)', () => {
  it.each(['cluster', 'toolchain'])('has --help for %s', (c) => {
    const r = kiln(c, '--help');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`^Usage: kiln ${c}`));
  });
  it('rejects a missing or unknown subcommand and bad flags with exit 2', () => {
    expect(kiln('cluster').code).toBe(2);
    expect(kiln('cluster', 'upp').err).toContain('unknown subcommand "upp"');
    const bad = kiln('cluster', 'up', '--gpu-type', 'h100', '--dir', tmp);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('--gpu-type must be one of');
    expect(kiln('cluster', 'up', '--gpu-nodes', '-1', '--dir', tmp).code).toBe(2);
  });
  it('says when there is no cluster in a directory', () => {
    const r = kiln('cluster', 'status', '--dir', tmp);
    expect([r.code, r.out.trim()]).toEqual([0, 'no local cluster here; start one with `kiln cluster up`']);
    expect(JSON.parse(kiln('cluster', 'status', '--dir', tmp, '--format', 'json').out)).toMatchObject({ exists: false, healthy: false });
  });
  it('reports where each toolchain binary comes from, as JSON', () => {
    const r = kiln('toolchain', 'status', '--format', 'json');
    const j = JSON.parse(r.out) as { key: string; dir: string; missing: string[]; bins: Record<string, string> };
    expect(j.dir.endsWith(j.key)).toBe(true);
    expect([...Object.keys(j.bins), ...j.missing].filter((n) => n !== 'kwok-stages').sort()).toHaveLength(8);
    expect(r.code).toBe(j.missing.length ? 1 : 0);
  });
});

describe('a reader that stops early', () => {
  it('ends kiln quietly, without a stack trace', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [bin, 'demo', '--validate-only'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    // Close the reading end before kiln writes anything: its first write meets a closed pipe.
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(err).not.toMatch(/EPIPE|at .+:\d+:\d+/);
    expect(code).toBe(0);
  });
});
