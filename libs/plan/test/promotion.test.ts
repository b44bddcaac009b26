import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { exportedRepositories, modelDigest, repositoryFor } from '../src/promotion.ts';

const d = (c: string) => `sha256:${c.repeat(64)}`;

describe('modelDigest', () => {
  it('is sha256 over sorted "<name> <digest>" lines, leaving out the eval repository, whatever the order', () => {
    const files = [
      { name: 'model.safetensors', digest: d('a') },
      { name: 'completions/kiln/config.pbtxt', digest: d('b') },
      { name: 'eval/kiln/config.pbtxt', digest: d('c') },
    ];
    const want = `sha256:${createHash('sha256').update(`completions/kiln/config.pbtxt ${d('b')}\nmodel.safetensors ${d('a')}\n`).digest('hex')}`;
    expect(modelDigest(files)).toBe(want);
    expect(modelDigest([...files].reverse())).toBe(want);
    expect(modelDigest(files.slice(0, 2))).toBe(want);
    expect(modelDigest([{ ...files[0]!, digest: d('f') }, files[1]!])).not.toBe(want);
  });
  it('names the files without a digest', () => {
    expect(() => modelDigest([{ name: 'config.json' }, { name: 'eval/x' }])).toThrow(/no digest for config\.json:/);
  });
});

describe('repositoryFor', () => {
  const exp = 'pvc://c/runs/r-1/export';
  it('takes the repository of the same name, or the only one for a stack of one target', () => {
    expect(repositoryFor('completions', exp, ['completions', 'fim'], ['completions', 'fim'])).toBe('pvc://c/runs/r-1/export/completions/');
    expect(repositoryFor('prod', `${exp}/`, ['completions'], ['prod'])).toBe('pvc://c/runs/r-1/export/completions/');
    expect(repositoryFor('prod', exp, ['completions', 'fim'], ['prod'])).toBeUndefined();
    expect(repositoryFor('prod', exp, ['completions'], ['prod', 'other'])).toBeUndefined();
  });
  it('reads the repositories of an export manifest: folders of its files, not the eval one nor the Hugging Face files', () => {
    expect(exportedRepositories([{ name: 'config.json' }, { name: 'completions/kiln/1/model.py' }, { name: 'eval/kiln/config.pbtxt' }, { name: 'fim/kiln/config.pbtxt' }])).toEqual(['completions', 'fim']);
  });
});
