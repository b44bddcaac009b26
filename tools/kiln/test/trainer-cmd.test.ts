import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { trainerArgs } from '../src/trainer.ts';

const bin = fileURLToPath(new URL('../bin/kiln.js', import.meta.url));
const { FORCE_COLOR: _ignored, ...quiet } = process.env;
const kiln = (...args: string[]) => {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...quiet, NO_COLOR: '1' }, timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

describe('kiln tokenizer and kiln pack: what the CLI checks before the trainer runs', () => {
  it.each([
    [['tokenizer'], /missing subcommand: kiln tokenizer train/],
    [['tokenizer', 'trian'], /did you mean "train"/],
    [['tokenizer', 'train', '--output', 'o'], /give --input/],
    [['tokenizer', 'train', '--input', 'i'], /--output DIR is required/],
    [['tokenizer', 'train', '--input', 'i', '--output', 'o', '--algorithm', 'wordpiece'], /--algorithm is one of bpe, unigram, not "wordpiece"/],
    [['tokenizer', 'train', '--input', 'i', '--output', 'o', '--vocab-size', '100'], /--vocab-size takes a whole number of at least 256/],
    [['tokenizer', 'train', '--input', 'i', '--output', 'o', '--sample-size', 'lots'], /--sample-size takes a size such as 16MiB/],
    [['tokenizer', 'train', '--config', 'c.json'], /give no subcommand/],
    [['pack', '--input', 'i'], /kiln pack needs --tokenizer DIR, --output DIR, --seq-len N/],
    [['pack', '--tokenizer', 't', '--input', 'i', '--output', 'o', '--seq-len', '0'], /--seq-len takes a whole number of at least 1/],
    [['pack', '--tokenizer', 't', '--input', 'i', '--output', 'o', '--seq-len', '64', '--fim-rate', '0.5'], /--fim-rate goes with --objective fim/],
    [['pack', '--tokenizer', 't', '--input', 'i', '--output', 'o', '--seq-len', '64', '--objective', 'fim', '--spm-rate', '2'], /--spm-rate takes a share from 0 to 1/],
    [['pack', '--tokenizer', 't', '--input', 'i', '--output', 'o', '--seq-len', '64', '--objective', 'mlm'], /--objective is one of next-token, fim, ul2/],
    [['pack', 'inspect'], /needs the packed folder/],
    [['pack', 'inspect', 'a', '--seq-len', '5'], /does not take --seq-len/],
    [['pack', 'unpack'], /unknown pack command "unpack"/],
    [['pack', '--tokenizer', 't', '--seq-lne', '5'], /Unknown option '--seq-lne'; did you mean "--seq-len"/],
  ])('kiln %j is a usage error (exit 2) that says how to fix it', (args, message) => {
    const r = kiln(...args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.err).toMatch(/^Usage: kiln (tokenizer|pack)/m);
  });

  it('--help describes each command without starting Python', () => {
    for (const cmd of ['tokenizer', 'pack']) {
      const r = kiln(cmd, '--help');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(new RegExp(`^Usage: kiln ${cmd}`));
      expect(r.out).toMatch(/Exit codes: 0 ok, 1 .*, 2 usage or stage config error/);
    }
  });

  it('passes every option on to the module as a flag, repeated ones once per value, unset ones not at all', () => {
    expect(trainerArgs(['train'], [['input', ['a', 'b']], ['vocab-size', 512], ['json', true], ['fim-sentinels', false], ['seed', undefined]])).toEqual(['train', '--input', 'a', '--input', 'b', '--vocab-size', '512', '--json']);
  });
});

/** Files under `dir`, as the trainer walks a code tree: hidden names, node_modules and __pycache__ left out. */
const filesUnder = (dir: string): number =>
  readdirSync(dir, { withFileTypes: true })
    .filter((e) => !e.name.startsWith('.') && e.name !== '__pycache__' && e.name !== 'node_modules')
    .reduce((n, e) => n + (e.isDirectory() ? filesUnder(join(dir, e.name)) : e.isFile() ? 1 : 0), 0);

describe('kiln tokenizer train, kiln pack and kiln pack inspect, through the trainer', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'kiln-trainer-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  // A real corpus on every machine: a slice of this interpreter's standard library, as raw code.
  const stdlib = spawnSync('python3', ['-c', 'import sysconfig; print(sysconfig.get_paths()["stdlib"])'], { encoding: 'utf8' }).stdout.trim();
  const inputs = ['json', 'email', 'logging'].flatMap((p) => ['--input', join(stdlib, p)]);

  it('trains a tokenizer, packs FIM sequences with it and shows them, each exiting 0 with JSON on stdout', () => {
    const tok = kiln('tokenizer', 'train', ...inputs, '--output', join(tmp, 'tok'), '--vocab-size', '1024', '--sample-size', '1MiB', '--fim-sentinels', '--json');
    expect(tok.code, tok.err).toBe(0);
    const manifest = JSON.parse(tok.out) as { counts: Record<string, number>; metrics: Record<string, number> };
    expect(manifest.metrics.vocab_size).toBe(1024);
    expect(manifest.metrics.bytes_per_token).toBeGreaterThan(2);
    // Every file of the three folders was read (the trainer skips hidden files and __pycache__), from all three --input flags.
    expect(manifest.counts.records_in).toBe(['json', 'email', 'logging'].reduce((n, p) => n + filesUnder(join(stdlib, p)), 0));
    expect(JSON.parse(readFileSync(join(tmp, 'tok', 'kiln-tokenizer.json'), 'utf8'))).toMatchObject({ eot: '<|endoftext|>', fim: { prefix: '<fim_prefix>' } });

    const pack = kiln('pack', '--tokenizer', join(tmp, 'tok'), ...inputs, '--output', join(tmp, 'packed'), '--seq-len', '256', '--objective', 'fim', '--fim-rate', '0.9', '--workers', '1', '--json');
    expect(pack.code, pack.err).toBe(0);
    const packed = JSON.stringify(JSON.parse(pack.out));
    expect(packed).toMatch(/"psm":[1-9]/);
    expect(readdirSync(join(tmp, 'packed'))).toEqual(expect.arrayContaining(['shard-00000.tokens', 'shard-00000.docs', 'shard-00000.json']));

    const shown = kiln('pack', 'inspect', join(tmp, 'packed'), '--decode', '1', '--verify');
    expect(shown.code, shown.err).toBe(0);
    expect(shown.out).toMatch(/<fim_(prefix|suffix|middle)>/);
  });

  it('says what is wrong with a folder that is not a tokenizer, exit 2, no traceback', () => {
    mkdirSync(join(tmp, 'not-a-tokenizer'), { recursive: true });
    const r = kiln('pack', '--tokenizer', join(tmp, 'not-a-tokenizer'), ...inputs, '--output', join(tmp, 'x'), '--seq-len', '64');
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/tokenizer\.json/);
    expect(r.err).not.toMatch(/Traceback/);
  });
});
