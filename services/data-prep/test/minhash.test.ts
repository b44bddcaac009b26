import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { optimalLsh } from '@kiln/spec';
import { bandKeys, reduceBands, signature, similarity, tokenHashes, writeBands } from '../src/minhash.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-minhash-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Real code nobody here wrote: the machine's Python standard library.
const stdlib = execFileSync('python3', ['-c', "import sysconfig;print(sysconfig.get_paths()['stdlib'])"], { encoding: 'utf8' }).trim();
const pyFiles = readdirSync(stdlib).filter((f) => f.endsWith('.py')).sort().slice(0, 120).map((f) => readFileSync(join(stdlib, f), 'utf8')).filter((t) => t.length > 2000);

/** Deterministic edits: change every `every`-th line a little. */
function mutate(text: string, every: number): string {
  return text.split('\n').map((l, i) => (i % every === 0 ? `${l} # edited ${i}` : l)).join('\n');
}

describe('MinHash signatures', () => {
  it('tokenises on [A-Za-z_0-9]+ without building strings', () => {
    const t = tokenHashes('def f(x_1):\n  return x_1+2');
    expect(t.length).toBe(6); // def f x_1 return x_1 2
    expect(t[2]).toBe(t[4]);
    expect(t[0]).not.toBe(t[1]);
    expect(tokenHashes('!!!').length).toBe(0);
  });

  it('are identical for identical text and skip texts shorter than one shingle', () => {
    const t = pyFiles[0]!;
    expect(signature(t)).toEqual(signature(t));
    expect(signature('a b c d')).toBeUndefined();
    expect(signature('a b c d e')).toBeDefined();
  });

  it('estimate Jaccard: light edits stay above 0.7, unrelated files far below', () => {
    const [a, b] = [pyFiles[0]!, pyFiles[1]!];
    expect(similarity(signature(a)!, signature(mutate(a, 10))!)).toBeGreaterThan(0.7);
    expect(similarity(signature(a)!, signature(b)!)).toBeLessThan(0.2);
  });
});

describe('near-dedup across shards (band files and a reduce step)', () => {
  it('finds mutated copies planted in other shards, keeps the first copy, and nothing else', async () => {
    const { bands, rows } = optimalLsh(0.7, 256);
    // Shard 0 holds the originals; shard 1 a lightly edited copy of the first 10 and 10 other files;
    // shard 2 an exact copy of original 3 and heavily edited copies (every line) of originals 4 and 5.
    const originals = pyFiles.slice(0, 30);
    const others = pyFiles.slice(30, 40);
    expect(others.length).toBe(10);
    const shards = [originals, [...originals.slice(0, 10).map((t) => mutate(t, 12)), ...others], [originals[3]!, ...originals.slice(4, 6).map((t) => mutate(t, 1))]];
    const files: string[] = [];
    for (const [s, texts] of shards.entries()) {
      const file = join(dir, `bands-${s}.bin`);
      await writeBands(file, s, texts.map((t, index) => ({ index, keys: bandKeys(signature(t)!, bands, rows) })));
      files.push(file);
    }
    const r = await reduceBands(files, bands);
    expect(r.records).toBe(30 + 20 + 3);
    expect([...(r.drop.get(0) ?? [])]).toEqual([]);
    expect([...r.drop.get(1)!].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    // The exact copy goes; copies with every line edited are different enough to stay.
    expect([...r.drop.get(2)!]).toEqual([0]);
    expect(r.clusters).toBe(r.records - 11);
  });

  it('refuses a truncated band file', async () => {
    const file = join(dir, 'bad.bin');
    await writeBands(file, 0, [{ index: 0, keys: new Uint32Array(3) }]);
    await expect(reduceBands([file], 4)).rejects.toThrow(/truncated/);
  });
});
