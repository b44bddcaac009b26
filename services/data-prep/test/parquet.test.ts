import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliCompressSync, gzipSync, zstdCompressSync } from 'node:zlib';
import { load } from '@kiln/spec';
import { parquetMetadata, type FileMetaData } from 'hyparquet';
import { parquetWriteBuffer, type ColumnSource } from 'hyparquet-writer';
import { afterAll, describe, expect, it } from 'vitest';
import { optionsFrom } from '../src/from-spec.ts';
import { Ledger } from '../src/ledger.ts';
import { listParquetFiles, openParquetSource, PARQUET_CODECS, readParquet, readParquetDirectory, readParquetSource, type ParquetSource } from '../src/parquet.ts';
import { isParquetFile, readInput } from '../src/input.ts';
import { isMalformed, type Item } from '../src/read.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-parquet-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const collect = async (it: AsyncIterable<Item>) => {
  const out: Item[] = [];
  for await (const x of it) out.push(x);
  return out;
};
const label = (i: Item) => (isMalformed(i) ? i.malformed : i.path);

type Codec = 'UNCOMPRESSED' | 'SNAPPY' | 'GZIP' | 'ZSTD' | 'BROTLI';
const compressors = { GZIP: (b: Uint8Array) => gzipSync(b), ZSTD: (b: Uint8Array) => zstdCompressSync(b), BROTLI: (b: Uint8Array) => brotliCompressSync(b) };

/** Writes a Parquet file; returns its path, bytes and footer. */
function write(name: string, columnData: ColumnSource[], opts: { rowGroupSize?: number; codec?: Codec } = {}) {
  const bytes = new Uint8Array(parquetWriteBuffer({ columnData, codec: opts.codec ?? 'SNAPPY', compressors, ...(opts.rowGroupSize ? { rowGroupSize: opts.rowGroupSize } : {}) }));
  const file = join(dir, name);
  writeFileSync(file, bytes);
  return { file, bytes, metadata: parquetMetadata(bytes) };
}
const str = (name: string, data: (string | null)[]): ColumnSource => ({ name, data, type: 'STRING', nullable: true });

/** Deterministic text that does not compress to nothing: code-ish lines with pseudo-random numbers. */
function code(i: number, lines: number): string {
  let s = (i + 1) * 2654435761;
  const out: string[] = [`def f_${i}(x):`];
  for (let l = 0; l < lines; l++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out.push(`    x = x * ${s % 9973} + ${(s >>> 8) % 7919}  # ${s.toString(36)}`);
  }
  return `${out.join('\n')}\n    return x\n`;
}

/** Byte span [start, end) of a column chunk. */
function span(md: FileMetaData, group: number, column: string): [number, number] {
  const c = md.row_groups[group]!.columns.find((x) => x.meta_data?.path_in_schema[0] === column)!.meta_data!;
  const start = Number(c.dictionary_page_offset ?? c.data_page_offset);
  return [start, start + Number(c.total_compressed_size)];
}

/** A source that records every range read of it. */
async function recording(file: string) {
  const inner = await openParquetSource(file);
  const reads: [number, number][] = [];
  const source: ParquetSource = {
    byteLength: inner.byteLength,
    slice(start, end = inner.byteLength) {
      reads.push([start, end]);
      return inner.slice(start, end);
    },
    close: () => inner.close(),
  };
  return { source, reads };
}

describe('reading Parquet', () => {
  it('reads a file of several row groups row by row, in order, with their origins', async () => {
    const n = 25;
    const contents = Array.from({ length: n }, (_, i) => code(i, 3));
    const { file, metadata } = write('groups.parquet', [str('content', contents), str('path', contents.map((_, i) => `src/f${i}.py`)), str('language', contents.map(() => 'python')), str('repository', contents.map((_, i) => `org/r${i % 3}`))], { rowGroupSize: 10 });
    expect(metadata.row_groups.map((g) => Number(g.num_rows))).toEqual([10, 10, 5]);
    const items = await collect(readParquet(file));
    expect(items).toHaveLength(n);
    expect(items.map(label)).toEqual(contents.map((_, i) => `src/f${i}.py`));
    expect(items[17]).toEqual({ content: contents[17], path: 'src/f17.py', language: 'python', repository: 'org/r2', origin: `${file}:18`, bytes: Buffer.byteLength(contents[17]!) });
    // Through readInput, by its name.
    expect((await collect(readInput(file))).map(label)).toEqual(items.map(label));
  });

  it("takes The Stack's column names when the usual ones are missing, and the usual ones first", async () => {
    const stack = write('stack.parquet', [str('content', ['a = 1\n']), str('max_stars_repo_path', ['a.py']), str('max_stars_repo_name', ['big/repo']), str('lang', ['Python'])]);
    expect(await collect(readParquet(stack.file))).toEqual([{ content: 'a = 1\n', path: 'a.py', language: 'Python', repository: 'big/repo', origin: `${stack.file}:1`, bytes: 6 }]);
    const other = write('other.parquet', [str('text', ['b = 2\n', 'c']), str('file_path', ['b.py', null]), str('repo_name', ['x/y', 'x/z'])]);
    expect(await collect(readParquet(other.file))).toEqual([
      { content: 'b = 2\n', path: 'b.py', repository: 'x/y', origin: `${other.file}:1`, bytes: 6 },
      { content: 'c', path: '', repository: 'x/z', origin: `${other.file}:2`, bytes: 1 },
    ]);
    // Both present: `content` over `text` (per row: a null content falls back to text), `path` over The Stack's.
    const both = write('both.parquet', [str('content', ['one', null]), str('text', ['ignored', 'two']), str('path', ['p.py', 'q.py']), str('max_stars_repo_path', ['no.py', 'no.py']), str('repository', ['r/1', null]), str('repo_name', ['no', 'r/2'])]);
    expect((await collect(readParquet(both.file))).map((i) => (isMalformed(i) ? i.malformed : [i.content, i.path, i.repository]))).toEqual([
      ['one', 'p.py', 'r/1'],
      ['two', 'q.py', 'r/2'],
    ]);
  });

  it('counts null content as no-content, content over maxBytes as oversized, invalid UTF-8 as invalid-utf8; a NUL byte is left to the filters, as for JSON Lines', async () => {
    const bad = new Uint8Array([0x63, 0x61, 0x66, 0xe9]);
    const { file } = write('rows.parquet', [
      { name: 'content', data: [new TextEncoder().encode('ok\n'), null, new TextEncoder().encode('x'.repeat(300)), bad, new TextEncoder().encode('a\0b')], type: 'BYTE_ARRAY', nullable: true },
      str('path', ['ok.py', 'null.py', 'big.py', 'latin1.py', 'nul.py']),
    ]);
    const items = await collect(readParquet(file, { maxBytes: 200 }));
    expect(items.map(label)).toEqual(['ok.py', 'no-content', 'oversized', 'invalid-utf8', 'nul.py']);
    expect(items[1]).toMatchObject({ origin: `${file}:2`, bytes: 0 });
    expect(items[2]).toMatchObject({ origin: `${file}:3`, bytes: 300, detail: '300 bytes > 200' });
    expect(items[3]).toMatchObject({ origin: `${file}:4`, bytes: 4 });
    expect(items[4]).toMatchObject({ content: 'a\0b', bytes: 3 });
  });

  it('counts every row of a file without a content column as no-content', async () => {
    const { file } = write('nocontent.parquet', [str('path', ['a.py', 'b.py', 'c.py'])], { rowGroupSize: 2 });
    const items = await collect(readParquet(file));
    expect(items.map((i) => (isMalformed(i) ? `${i.malformed}@${i.origin}` : 'kept'))).toEqual([1, 2, 3].map((r) => `no-content@${file}:${r}`));
  });

  it.each<[Codec]>([['UNCOMPRESSED'], ['SNAPPY'], ['GZIP'], ['ZSTD'], ['BROTLI']])('reads %s pages', async (codec) => {
    const contents = Array.from({ length: 40 }, (_, i) => code(i, 20));
    const { file, metadata } = write(`codec-${codec}.parquet`, [str('content', contents), str('path', contents.map((_, i) => `c${i}.py`))], { codec, rowGroupSize: 16 });
    // The writer did use the codec.
    expect(new Set(metadata.row_groups.flatMap((g) => g.columns.map((c) => c.meta_data?.codec)))).toEqual(new Set([codec]));
    const items = await collect(readParquet(file));
    expect(items.map((i) => (isMalformed(i) ? i.malformed : i.content))).toEqual(contents);
  });

  it('decodes a zstd page made of several frames (node:zlib stops after the first)', () => {
    const a = Buffer.from('first frame, '.repeat(10));
    const b = Buffer.from('second frame');
    const out = PARQUET_CODECS.ZSTD!(Buffer.concat([zstdCompressSync(a), zstdCompressSync(b)]), a.length + b.length);
    expect(Buffer.from(out).toString()).toBe(`${a}${b}`);
  });

  describe('a file that is not Parquet, or is damaged', () => {
    const contents = Array.from({ length: 30 }, (_, i) => code(i, 5));
    const good = () => write('good.parquet', [str('content', contents), str('path', contents.map((_, i) => `g${i}.py`))], { rowGroupSize: 10 });

    it.each([
      ['empty', () => new Uint8Array(0)],
      ['JSON', () => new TextEncoder().encode('{"content": "x"}\n')],
      ['truncated (no footer)', () => good().bytes.subarray(0, 700)],
      ['a footer that claims more than the file', () => {
        const b = good().bytes.slice();
        new DataView(b.buffer).setUint32(b.length - 8, 1 << 30, true);
        return b;
      }],
    ])('%s: one unreadable item, nothing thrown', async (_what, bytes) => {
      const file = join(dir, 'broken.parquet');
      const b = bytes();
      writeFileSync(file, b);
      const items = await collect(readParquet(file));
      expect(items).toEqual([{ malformed: 'unreadable', origin: file, bytes: b.length, detail: expect.stringMatching(/^not a readable Parquet file: /) }]);
    });

    it('a missing file: one unreadable item', async () => {
      const items = await collect(readParquet(join(dir, 'nope.parquet')));
      expect(items).toMatchObject([{ malformed: 'unreadable', bytes: 0, detail: expect.stringContaining('ENOENT') }]);
    });

    it.each([
      ['overwritten with 0xff', (b: Uint8Array, [s, e]: [number, number]) => b.fill(0xff, s, e)],
      ['overwritten with zeros after its first bytes', (b: Uint8Array, [s, e]: [number, number]) => b.fill(0, s + 20, e)],
    ])('a corrupt row group (%s): its rows are unreadable, the other groups are read, every row is counted', async (_how, corrupt) => {
      const { bytes, metadata } = good();
      const b = bytes.slice();
      corrupt(b, span(metadata, 1, 'content'));
      const file = join(dir, 'corrupt.parquet');
      writeFileSync(file, b);
      const items = await collect(readParquet(file));
      expect(items.map(label)).toEqual(contents.map((_, i) => (i >= 10 && i < 20 ? 'unreadable' : `g${i}.py`)));
      expect(items[10]).toMatchObject({ origin: `${file}:11`, detail: expect.stringMatching(/^row group 1: /) });
      // The lost group's compressed bytes are all counted, spread over its rows.
      const lost = metadata.row_groups[1]!.columns.reduce((s, c) => s + Number(c.meta_data!.total_compressed_size), 0);
      expect(items.slice(10, 20).reduce((s, i) => s + i.bytes, 0)).toBe(lost);
      const ledger = new Ledger();
      for (const i of items) {
        ledger.read(i.bytes);
        if (isMalformed(i)) ledger.drop(i.malformed);
        else ledger.keep(i.bytes);
      }
      expect(ledger.close()).toMatchObject({ recordsIn: 30, kept: 20, dropped: { unreadable: 10 } });
    });
  });

  it('keeps memory bounded: reads the footer, then one row group at a time and only the columns it needs', async () => {
    const n = 400;
    const contents = Array.from({ length: n }, (_, i) => code(i, 12));
    // A large column no record needs: it must never be read.
    const blobs = Array.from({ length: n }, (_, i) => code(i + 10_000, 30));
    const { file, bytes, metadata } = write('many.parquet', [str('content', contents), str('blob', blobs), str('path', contents.map((_, i) => `m${i}.py`))], { rowGroupSize: 20 });
    const groups = metadata.row_groups.length;
    expect(groups).toBe(20);
    const { source, reads } = await recording(file);
    const it = readParquetSource(source, file)[Symbol.asyncIterator]();
    try {
      // After the first record: the footer, then row group 0 and nothing of the others.
      const first = await it.next();
      expect(first.value).toMatchObject({ path: 'm0.py' });
      const [footer, ...data] = reads;
      expect(footer![1]).toBe(bytes.length);
      expect(footer![1] - footer![0]).toBeLessThanOrEqual(1 << 16);
      const group0 = [span(metadata, 0, 'content')[0], span(metadata, 0, 'path')[1]];
      expect(data.length).toBeGreaterThan(0);
      for (const [s, e] of data) expect(s >= group0[0]! && e <= group0[1]!).toBe(true);
      let count = 1;
      for (let r = await it.next(); !r.done; r = await it.next()) count++;
      expect(count).toBe(n);
    } finally {
      await source.close();
    }
    // Every read after the footer lies within one row group's selected chunks and touches no `blob` chunk.
    const blob = Array.from({ length: groups }, (_, g) => span(metadata, g, 'blob'));
    const groupSpans = Array.from({ length: groups }, (_, g) => [span(metadata, g, 'content')[0], span(metadata, g, 'path')[1]] as const);
    const touched = new Set<number>();
    for (const [s, e] of reads.slice(1)) {
      const g = groupSpans.findIndex(([gs, ge]) => s >= gs && e <= ge);
      expect(g).toBeGreaterThanOrEqual(0);
      touched.add(g);
      for (const [bs, be] of blob) expect(e <= bs || s >= be).toBe(true);
    }
    expect(touched.size).toBe(groups);
    // The largest read is at most one row group's worth, a small part of the file.
    const largestGroup = Math.max(...metadata.row_groups.map((g) => g.columns.reduce((s, c) => s + Number(c.meta_data!.total_compressed_size), 0)));
    const largest = Math.max(...reads.slice(1).map(([s, e]) => e - s));
    expect(largest).toBeLessThanOrEqual(largestGroup);
    expect(largest * 10).toBeLessThan(bytes.length);
    // Bytes read in all: the footer and the needed columns, not the `blob` column.
    const total = reads.reduce((s, [a, b]) => s + b - a, 0);
    expect(total).toBeLessThan(bytes.length * 0.6);
  });
});

describe('Parquet among the inputs', () => {
  it('readInput knows a Parquet file by its magic bytes whatever its name; a JSON Lines file stays JSON Lines', async () => {
    const { bytes } = write('named.parquet', [str('content', ['x = 1\n']), str('path', ['x.py'])]);
    const odd = join(dir, 'data.bin');
    writeFileSync(odd, bytes);
    const jsonl = join(dir, 'plain.jsonl');
    writeFileSync(jsonl, `${JSON.stringify({ content: 'y', path: 'y.py' })}\n`);
    expect(await isParquetFile(odd)).toBe(true);
    expect(await isParquetFile(jsonl)).toBe(false);
    expect((await collect(readInput(odd))).map(label)).toEqual(['x.py']);
    expect((await collect(readInput(jsonl))).map(label)).toEqual(['y.py']);
  });

  it('a .parquet file inside a directory of raw files is a raw (binary) file; readParquetDirectory and a `format: parquet` source read the tables', async () => {
    const root = join(dir, 'dataset');
    mkdirSync(join(root, 'data', 'python'), { recursive: true });
    mkdirSync(join(root, '.git'), { recursive: true });
    const a = write('a.parquet', [str('content', ['a1', 'a2']), str('path', ['a1.py', 'a2.py'])]);
    const b = write('b.parquet', [str('content', ['b1']), str('path', ['b1.py'])]);
    writeFileSync(join(root, 'data', 'python', 'train-00001.parquet'), b.bytes);
    writeFileSync(join(root, 'data', 'python', 'train-00000.parquet'), a.bytes);
    writeFileSync(join(root, '.git', 'x.parquet'), a.bytes);
    writeFileSync(join(root, 'README.md'), '# A dataset\n');
    // As raw files: each file is one record, the Parquet ones binary.
    expect((await collect(readInput(root))).map(label)).toEqual(['README.md', 'binary', 'binary']);
    // As a Parquet dataset: the rows, in file name order; other files are not records.
    const files = [join(root, 'data', 'python', 'train-00000.parquet'), join(root, 'data', 'python', 'train-00001.parquet')];
    expect(listParquetFiles(root)).toEqual(files);
    expect((await collect(readParquetDirectory(root))).map(label)).toEqual(['a1.py', 'a2.py', 'b1.py']);

    const spec = load(new URL('../../../configs/tiny.yaml', import.meta.url).pathname).spec!;
    const pre = { ...spec.data.preprocessing, decontamination: { ...spec.data.preprocessing.decontamination, enabled: false } };
    const source = (path: string, format: 'parquet' | 'raw') => ({ type: 'local' as const, name: 'the-stack', weight: 1, format, path });
    const asParquet = optionsFrom([source('dataset', 'parquet')], pre, [], dir);
    expect(asParquet.options.inputs).toEqual(files);
    expect(asParquet.warnings).toEqual([]);
    expect(optionsFrom([source('dataset', 'raw')], pre, [], dir).options.inputs).toEqual([root]);
    expect(optionsFrom([source(a.file, 'parquet')], pre, [], dir).options.inputs).toEqual([a.file]);
    const empty = join(dir, 'empty');
    mkdirSync(empty);
    const none = optionsFrom([source(empty, 'parquet')], pre, [], dir);
    expect(none.options.inputs).toEqual([]);
    expect(none.warnings).toEqual([`source "the-stack" (format: parquet) has no .parquet files under ${empty}`]);
    expect(readFileSync(files[0]!)).toEqual(Buffer.from(a.bytes));
  });
});
