import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { trainerArgs } from '../src/trainer.ts';

const bin = fileURLToPath(new URL('../bin/kiln.js', import.meta.url));
const { FORCE_COLOR: _ignored, ...quiet } = process.env;
const kiln = (...args: string[]) => {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: { ...quiet, NO_COLOR: '1' }, timeout: 60_000 });
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
