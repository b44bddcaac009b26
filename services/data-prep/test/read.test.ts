import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { AccountingError, Ledger } from '../src/ledger.ts';
import { readInput } from '../src/input.ts';
import { isMalformed, readDirectory, readJsonl, type Item } from '../src/read.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-read-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const collect = async (it: AsyncIterable<Item>) => {
  const out: Item[] = [];
  for await (const x of it) out.push(x);
  return out;
};

// One of each: good, bad JSON, invalid UTF-8, not an object, no content, oversized, blank (not a record), good.
const lines = [
  Buffer.from(JSON.stringify({ content: 'print(1)\n', path: 'a.py', language: 'python', repository: 'x/y' })),
  Buffer.from('{"content": "unterminated'),
  Buffer.concat([Buffer.from('{"content": "'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]),
  Buffer.from('[1, 2]'),
  Buffer.from('{"path": "b.py"}'),
  Buffer.from(JSON.stringify({ content: 'x'.repeat(300) })),
  Buffer.from(''),
  Buffer.from(JSON.stringify({ text: 'fn main() {}', path: 'c.rs' })),
];
const body = Buffer.concat(lines.flatMap((l) => [l, Buffer.from('\n')]));

describe('reading JSON Lines', () => {
  it.each([
    ['plain', 'shard.jsonl', body],
    ['gzip', 'shard.jsonl.gz', gzipSync(body)],
    ['zstd', 'shard.jsonl.zst', zstdCompressSync(body)],
  ])('%s: yields every record, and each unreadable one with its reason', async (_kind, name, bytes) => {
    const file = join(dir, name);
    writeFileSync(file, bytes);
    const items = await collect(readJsonl(file, { maxBytes: 200 }));
    expect(items.map((i) => (isMalformed(i) ? i.malformed : i.path))).toEqual(['a.py', 'bad-json', 'invalid-utf8', 'not-an-object', 'no-content', 'oversized', 'c.rs']);
    expect(items[0]).toMatchObject({ content: 'print(1)\n', language: 'python', repository: 'x/y', origin: `${file}:1` });
    expect(items[5]).toMatchObject({ origin: `${file}:6`, bytes: lines[5]!.length });
  });

  it('handles a last line without a newline and CRLF line ends', async () => {
    const file = join(dir, 'crlf.jsonl');
    writeFileSync(file, `${JSON.stringify({ content: 'a' })}\r\n${JSON.stringify({ content: 'b' })}`);
    const items = await collect(readJsonl(file));
    expect(items.map((i) => (isMalformed(i) ? i.malformed : i.content))).toEqual(['a', 'b']);
  });

  it('keeps memory bounded: a line far over the limit is counted, not held', async () => {
    const file = join(dir, 'huge.jsonl');
    writeFileSync(file, `${JSON.stringify({ content: 'y'.repeat(5_000_000) })}\n${JSON.stringify({ content: 'ok' })}\n`);
    const items = await collect(readJsonl(file, { maxBytes: 1024 }));
    expect(items[0]).toMatchObject({ malformed: 'oversized', bytes: 5_000_000 + 14 });
    expect(items[1]).toMatchObject({ content: 'ok' });
  });
});

describe('reading a directory of raw files', () => {
  it('yields text files by relative path in a stable order, and binary, non-UTF-8 and oversized files as malformed; skips .git', async () => {
    const root = join(dir, 'repo');
    mkdirSync(join(root, 'src'), { recursive: true });
    mkdirSync(join(root, '.git'), { recursive: true });
    writeFileSync(join(root, 'src', 'b.py'), 'def f():\n    return 1\n');
    writeFileSync(join(root, 'a.js'), 'console.log(1);\n');
    writeFileSync(join(root, 'logo.png'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x01]));
    writeFileSync(join(root, 'latin1.txt'), Buffer.from([0x63, 0x61, 0x66, 0xe9]));
    writeFileSync(join(root, 'big.txt'), 'z'.repeat(2048));
    writeFileSync(join(root, '.git', 'HEAD'), 'ref: refs/heads/main\n');
    const items = await collect(readDirectory(root, { maxBytes: 1024 }));
    expect(items.map((i) => (isMalformed(i) ? `${i.malformed}` : i.path))).toEqual(['a.js', 'oversized', 'invalid-utf8', 'binary', 'src/b.py']);
    expect((await collect(readInput(root, { maxBytes: 1024 }))).length).toBe(5);
  });
});

describe('the ledger', () => {
  it('adds up: every record read is kept or dropped under one reason', () => {
    const l = new Ledger();
    for (let i = 0; i < 5; i++) l.read(10);
    l.keep(8);
    l.keep(9);
    l.drop('bad-json');
    l.drop('max-line-length');
    l.drop('bad-json');
    expect(l.close()).toEqual({ recordsIn: 5, kept: 2, dropped: { 'bad-json': 2, 'max-line-length': 1 }, bytesIn: 50, bytesOut: 17 });
  });

  it('refuses to close while a record is undecided, and a decision without a read', () => {
    const l = new Ledger();
    l.read(1);
    expect(() => l.close()).toThrow(AccountingError);
    l.keep(1);
    expect(() => l.drop('x')).toThrow(/without being read/);
  });
});
