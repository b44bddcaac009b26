/**
 * Parquet sources (The Stack's format), read one row group at a time and only the columns a record needs, so
 * memory is bounded by a row group's selected column chunks, never by the file. The footer and the column
 * chunks are read with ranged reads from a file handle.
 *
 * Every row comes out as one `Item`, as a JSON line does: a `CodeRecord`, or a `Malformed` with the same
 * reasons (`no-content`, `invalid-utf8`, `oversized`). A file that is not Parquet is one `unreadable` item; a
 * row group that cannot be read or decoded is one `unreadable` item per row it holds, and the other row
 * groups are still read.
 */
import { readdirSync, type Dirent } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { brotliDecompressSync, gunzipSync, zstdDecompressSync } from 'node:zlib';
import { parquetMetadataAsync, parquetReadObjects, parquetSchema, type AsyncBuffer, type Compressors, type FileMetaData } from 'hyparquet';
import { compressors as jsCompressors } from 'hyparquet-compressors';
import { DEFAULT_MAX, FIELDS, recordFields, SKIP_DIRS, utf8, walk, type Item, type ReadOptions } from './read.ts';

/** A file as ranged reads; `close` releases its handle. */
export interface ParquetSource extends AsyncBuffer {
  close(): Promise<void>;
}

/**
 * Opens `file` for ranged reads. A range outside the file (a corrupt footer can ask for one) is an error,
 * not an allocation of its size.
 */
export async function openParquetSource(file: string): Promise<ParquetSource> {
  const fh = await open(file, 'r');
  let size: number;
  try {
    size = (await fh.stat()).size;
  } catch (e) {
    await fh.close();
    throw e;
  }
  return {
    byteLength: size,
    async slice(start: number, end: number = size): Promise<ArrayBuffer> {
      if (!(start >= 0 && end >= start && end <= size)) throw new Error(`byte range ${start}..${end} is outside the file (${size} bytes)`);
      const out = new Uint8Array(end - start);
      for (let got = 0; got < out.length; ) {
        const { bytesRead } = await fh.read(out, got, out.length - got, start + got);
        if (bytesRead === 0) throw new Error(`file ended at byte ${start + got}, expected ${size}`);
        got += bytesRead;
      }
      return out.buffer;
    },
    close: () => fh.close(),
  };
}

/**
 * Codecs: uncompressed and the rest by `hyparquet-compressors` (snappy in WebAssembly, LZ4), but gzip, brotli
 * and zstd by node:zlib, which is native and several times faster. Output is capped at the page's declared
 * size. Node's zstd stops after the first frame, so a page of several frames falls back to `fzstd`.
 */
export const PARQUET_CODECS: Compressors = {
  ...jsCompressors,
  GZIP: (input, n) => gunzipSync(input, { maxOutputLength: Math.max(n, 1) }),
  BROTLI: (input, n) => brotliDecompressSync(input, { maxOutputLength: Math.max(n, 1) }),
  ZSTD: (input, n) => {
    const out = zstdDecompressSync(input, { maxOutputLength: Math.max(n, 1) });
    return out.length === n || !jsCompressors.ZSTD ? out : jsCompressors.ZSTD(input, n);
  },
};

/** Strings stay bytes until a record is built: content must be valid UTF-8 and its size is in bytes. */
const PARSERS = { stringFromBytes: (b: Uint8Array) => b };
const lenient = new TextDecoder('utf-8');
/** The footer is read from the file's last 64 KiB; a larger footer takes one more read. */
const FOOTER_FETCH = 1 << 16;

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** A field's value as text: strings as they are, byte arrays decoded (leniently: these are not the content). */
function text(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return lenient.decode(v);
  return undefined;
}

/** One row as an item. */
function rowItem(row: Readonly<Record<string, unknown>>, contentColumns: readonly string[], origin: string, max: number): Item {
  let raw: string | Uint8Array | undefined;
  for (const c of contentColumns) {
    const v = row[c];
    if (typeof v === 'string' || v instanceof Uint8Array) {
      raw = v;
      break;
    }
  }
  if (raw === undefined) return { malformed: 'no-content', origin, bytes: 0, detail: 'no string "content" or "text" field' };
  const bytes = typeof raw === 'string' ? Buffer.byteLength(raw) : raw.byteLength;
  if (bytes > max) return { malformed: 'oversized', origin, bytes, detail: `${bytes} bytes > ${max}` };
  let content: string;
  if (typeof raw === 'string') content = raw;
  else {
    try {
      content = utf8.decode(raw);
    } catch {
      return { malformed: 'invalid-utf8', origin, bytes };
    }
  }
  const meta: Record<string, string | undefined> = {};
  for (const names of [FIELDS.path, FIELDS.language, FIELDS.repository]) for (const n of names) if (n in row) meta[n] = text(row[n]);
  // A NUL byte is left to the filters (`nul-byte`), as for JSON Lines.
  return { content, ...recordFields(meta), origin, bytes };
}

/** Records of Parquet data read through `source` (named `name` in origins): one per row, `file:row` from 1. */
export async function* readParquetSource(source: AsyncBuffer, name: string, opts: ReadOptions = {}): AsyncGenerator<Item> {
  const max = opts.maxBytes ?? DEFAULT_MAX;
  let metadata: FileMetaData;
  let present: Set<string>;
  try {
    metadata = await parquetMetadataAsync(source, { initialFetchSize: FOOTER_FETCH });
    present = new Set(parquetSchema(metadata).children.map((c) => c.element.name));
  } catch (e) {
    yield { malformed: 'unreadable', origin: name, bytes: source.byteLength, detail: `not a readable Parquet file: ${message(e)}` };
    return;
  }
  const contentColumns = FIELDS.content.filter((c) => present.has(c));
  const columns = [...contentColumns, ...[FIELDS.path, FIELDS.language, FIELDS.repository].flat().filter((c) => present.has(c))];
  let rowStart = 0;
  for (const [g, group] of metadata.row_groups.entries()) {
    const rows = Number(group.num_rows);
    const rowEnd = rowStart + rows;
    let data: Record<string, unknown>[] = [];
    let failure: string | undefined;
    if (rows > 0 && contentColumns.length) {
      try {
        data = await parquetReadObjects({ file: source, metadata, columns, rowStart, rowEnd, compressors: PARQUET_CODECS, parsers: PARSERS });
        if (data.length !== rows) failure = `row group ${g}: ${data.length} rows decoded of ${rows}`;
      } catch (e) {
        failure = `row group ${g}: ${message(e)}`;
      }
    }
    // A group that failed (or decoded to the wrong number of rows, which cannot be matched to theirs) is
    // accounted for row by row; its compressed size is spread over its rows, so bytes in still add up.
    const lostBytes = failure ? group.columns.reduce((s, c) => s + Number(c.meta_data?.total_compressed_size ?? 0), 0) : 0;
    if (failure) data = [];
    for (let i = 0; i < rows; i++) {
      const origin = `${name}:${rowStart + i + 1}`;
      if (failure) {
        const bytes = Math.floor(lostBytes / rows) + (i === 0 ? lostBytes % rows : 0);
        yield { malformed: 'unreadable', origin, bytes, detail: failure };
      } else if (!contentColumns.length) yield { malformed: 'no-content', origin, bytes: 0, detail: 'no "content" or "text" column' };
      else {
        const row = data[i]!;
        // Each row is let go of once it is out, so the group's memory shrinks as it is read.
        (data as unknown[])[i] = undefined;
        yield rowItem(row, contentColumns, origin, max);
      }
    }
    rowStart = rowEnd;
  }
}

/** Records of a Parquet file, read with ranged reads from a file handle; see `readParquetSource`. */
export async function* readParquet(file: string, opts: ReadOptions = {}): AsyncGenerator<Item> {
  let source: ParquetSource;
  try {
    source = await openParquetSource(file);
  } catch (e) {
    yield { malformed: 'unreadable', origin: file, bytes: 0, detail: message(e) };
    return;
  }
  try {
    yield* readParquetSource(source, file, opts);
  } finally {
    await source.close();
  }
}

/** The `.parquet` files under `dir`, sorted as `walk` sorts them (depth first, by name); synchronous, for `optionsFrom`. */
export function listParquetFiles(dir: string): string[] {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const out: string[] = [];
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (!SKIP_DIRS.has(e.name)) out.push(...listParquetFiles(p));
    } else if (e.isFile() && e.name.toLowerCase().endsWith('.parquet')) out.push(p);
  }
  return out;
}

/** Records of every `.parquet` file under `dir` (a downloaded dataset); other files are not records and are skipped. */
export async function* readParquetDirectory(dir: string, opts: ReadOptions = {}): AsyncGenerator<Item> {
  for await (const file of walk(dir)) if (file.toLowerCase().endsWith('.parquet')) yield* readParquet(file, opts);
}
