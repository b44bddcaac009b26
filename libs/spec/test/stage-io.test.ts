import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BUNDLED_HUMANEVAL, readStageConfig, StageConfigError, storagePath, writeTerminationMessage } from '../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-stage-io-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the stage contract helpers', () => {
  it('maps file:// and pvc:// to local paths and refuses other storage with the stage named', () => {
    expect(storagePath('file:///var/lib/kiln/x/', 'data prep')).toBe('/var/lib/kiln/x/');
    expect(storagePath('pvc://kiln-artifacts/tiny/runs/r-1/data/', 'data prep', { KILN_STORAGE_ROOT: '/mnt/a' })).toBe('/mnt/a/tiny/runs/r-1/data/');
    expect(storagePath('pvc://kiln-artifacts/x', 'data prep', {})).toBe('/artifacts/x');
    expect(() => storagePath('s3://bucket/x', 'the eval runner')).toThrow(new StageConfigError('storage s3:// is not written by the eval runner yet; use pvc:// or file://'));
  });

  it('reads a stage config and says which key is missing or why it cannot be read', () => {
    const f = join(dir, 'stage.json');
    writeFileSync(f, JSON.stringify({ input: 'file:///x', shards: 2 }));
    expect(readStageConfig<{ input: string; shards: number }>(f, ['input', 'shards'])).toEqual({ input: 'file:///x', shards: 2 });
    expect(() => readStageConfig<{ input: string; manifests: string }>(f, ['input', 'manifests'])).toThrow(/has no "manifests"/);
    writeFileSync(f, '{"input": ');
    expect(() => readStageConfig(f, [])).toThrow(StageConfigError);
    expect(() => readStageConfig(join(dir, 'none.json'), [])).toThrow(/cannot read the stage config .*none\.json/);
  });

  it('writes the termination message where KILN_TERMINATION_LOG says, and is quiet outside a pod', () => {
    const f = join(dir, 'term');
    writeTerminationMessage('{"ok":1}', { KILN_TERMINATION_LOG: f });
    expect(readFileSync(f, 'utf8')).toBe('{"ok":1}');
    expect(() => writeTerminationMessage('x', { KILN_TERMINATION_LOG: join(dir, 'no', 'such', 'dir') })).not.toThrow();
  });

  it('knows where the repository keeps HumanEval', () => {
    expect(existsSync(BUNDLED_HUMANEVAL)).toBe(true);
  });
});
