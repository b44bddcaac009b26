import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { optimalLsh } from '@kiln/spec';
import { bandKeys, reduceBands, signature, signatureOfTokens, similarity, tokenHashes, writeBands } from '../src/minhash.ts';
import { nativeAddon } from '../src/native.ts';
import { walk } from '../src/read.ts';

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

describe('near-dedup across shards (band directories and a reduce step)', () => {
  const { bands, rows } = optimalLsh(0.7, 256);
  // Shard 0 holds the originals; shard 1 a lightly edited copy of the first 10 and 10 other files;
  // shard 2 an exact copy of original 3 and heavily edited copies (every line) of originals 4 and 5.
  const originals = pyFiles.slice(0, 30);
  const others = pyFiles.slice(30, 40);
  const shards = [originals, [...originals.slice(0, 10).map((t) => mutate(t, 12)), ...others], [originals[3]!, ...originals.slice(4, 6).map((t) => mutate(t, 1))]];
  // Record indexes need not be dense: the map step only writes keys for records with a signature.
  const index = (i: number) => i * 2 + 1;
  async function write(prefix: string, order: number[]) {
    const dirs: string[] = [];
    for (const s of order) {
      const d = join(dir, `${prefix}-${s}`);
      await writeBands(d, s, bands, rows, shards[s]!.map((t, i) => ({ index: index(i), keys: bandKeys(signature(t)!, bands, rows) })));
      dirs.push(d);
    }
    return dirs;
  }

  it('finds mutated copies planted in other shards, keeps the first copy, and nothing else', async () => {
    expect(others.length).toBe(10);
    const r = await reduceBands(await write('a', [0, 1, 2]));
    expect(r.records).toBe(30 + 20 + 3);
    expect([...r.drop.get(0)!]).toEqual([]);
    expect([...r.drop.get(1)!]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map(index));
    // The exact copy goes; copies with every line edited are different enough to stay.
    expect([...r.drop.get(2)!]).toEqual([index(0)]);
    expect(r.duplicates).toBe(11);
    expect(r.clusters).toBe(10); // original 3 has two copies
    expect(r.passesPerBand).toBe(1);
  });

  it('gives the same answer whatever order the shards come in, and in several passes per band', async () => {
    const dirs = await write('b', [2, 0, 1]);
    const one = await reduceBands(dirs);
    const many = await reduceBands(dirs, { maxKeys: 7 });
    expect(many.passesPerBand).toBe(Math.ceil(53 / 7));
    for (const s of [0, 1, 2]) expect([...many.drop.get(s)!]).toEqual([...one.drop.get(s)!]);
    expect([...one.drop.get(1)!]).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map(index));
  });

  it('keeps 64-bit band keys: no chance collisions among 200k random signatures', { timeout: 60_000 }, async () => {
    // With 32-bit keys about 200k²/2³³ ≈ 4.7 false pairs per band (≈ 116 over 25 bands) would be expected; 64-bit: none.
    const n = 200_000;
    let x = 12345;
    const rnd = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0);
    const d = join(dir, 'random');
    const sig = new Uint32Array(bands * rows);
    const recs = function* () {
      for (let i = 0; i < n; i++) {
        for (let j = 0; j < sig.length; j++) sig[j] = rnd();
        yield { index: i, keys: bandKeys(sig, bands, rows) };
      }
    };
    await writeBands(d, 0, bands, rows, recs());
    const r = await reduceBands([d]);
    expect(r.records).toBe(n);
    expect(r.duplicates).toBe(0);
  });

  it('refuses truncated band files, unfinished shards and mixed settings', async () => {
    const d = join(dir, 'bad');
    await writeBands(d, 0, 4, 2, [{ index: 0, keys: new Uint32Array(8) }]);
    writeFileSync(join(d, 'band-001.u64'), Buffer.alloc(3));
    await expect(reduceBands([d])).rejects.toThrow(/truncated/);
    rmSync(join(d, 'meta.json'));
    await expect(reduceBands([d])).rejects.toThrow(/not a finished band directory/);
    const e = join(dir, 'other');
    await writeBands(e, 1, 4, 2, []);
    const f = join(dir, 'other2');
    await writeBands(f, 2, 2, 4, []);
    await expect(reduceBands([e, f])).rejects.toThrow(/same near-dedup settings/);
    await expect(writeBands(join(dir, 'x'), 0, 4, 2, [{ index: 0, keys: new Uint32Array(3) }])).rejects.toThrow(/expected 4 band keys/);
  });
});

describe('MinHash in the native addon', () => {
  // npm ci builds the addon; only an explicit KILN_PARSE_BACKEND=wasm (no native code) leaves this out.
  it.runIf(process.env.KILN_PARSE_BACKEND !== 'wasm')('gives the JavaScript loop\'s signature, bit for bit, on real code', async () => {
    expect(nativeAddon()).toHaveProperty('ok');
    const stdlib = execFileSync('python3', ['-c', "import sysconfig;print(sysconfig.get_paths()['stdlib'])"], { encoding: 'utf8' }).trim();
    let n = 0;
    const differ: string[] = [];
    for await (const file of walk(stdlib)) {
      if (!file.endsWith('.py') || file.includes('site-packages')) continue;
      if (++n > 400) break;
      const tokens = tokenHashes(readFileSync(file, 'utf8'));
      for (const cfg of [{}, { numPerm: 128, ngram: 3, seed: 7 }]) {
        const js = signatureOfTokens(tokens, { ...cfg, native: false });
        const native = signatureOfTokens(tokens, cfg);
        if (String(js) !== String(native)) differ.push(`${file} ${JSON.stringify(cfg)}`);
      }
    }
    expect(differ).toEqual([]);
    expect(signatureOfTokens(new Uint32Array([1, 2, 3]))).toBeUndefined();
  }, 120_000);
});
