/**
 * Reading sources as a stream of records, with memory bounded by the longest record allowed, not by the
 * shard: JSON Lines (plain, gzip, zstd) and directories of raw files (git checkouts included) here, Parquet in
 * `parquet.ts` (one row group at a time); `input.ts` tells which an input is. A record that cannot be read is not an error: it comes out as a
 * `Malformed` item with its reason, so it is counted.
 */
import { createReadStream, type Dirent } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import type { Readable } from 'node:stream';
import { DEFAULT_FILTERS } from './filters.ts';

/** One code file as the cleaning steps see it. */
export interface CodeRecord {
  readonly content: string;
  readonly path: string;
  readonly language?: string;
  readonly repository?: string;
  /** The spec's source it came from, when data prep knows it (feedback sources): packing weighs records by it. */
  readonly source?: string;
  /** Where it came from: `file:line` for JSON Lines, `file:row` (from 1) for Parquet, the file for directories. */
  readonly origin: string;
  /** Its size in the source, bytes. */
  readonly bytes: number;
}

/** Why a line of a gateway feedback log is not a training record (`feedback.ts`). */
export type FeedbackDrop = 'feedback-rejected' | 'feedback-no-context' | 'feedback-expired' | 'feedback-low-acceptance' | 'feedback-duplicate' | 'feedback-torn' | 'feedback-bad-record';

export type MalformedReason = 'bad-json' | 'not-an-object' | 'no-content' | 'invalid-utf8' | 'oversized' | 'binary' | 'unreadable' | FeedbackDrop;

/** A record that could not be read, and why. */
export interface Malformed {
  readonly malformed: MalformedReason;
  readonly origin: string;
  readonly bytes: number;
  readonly detail?: string;
}

export type Item = CodeRecord | Malformed;

export const isMalformed = (i: Item): i is Malformed => 'malformed' in i;

export interface ReadOptions {
  /** Largest record (a JSON line, a Parquet row's content, or a file) read, bytes; larger ones are `oversized`. Default 1 MiB. */
  readonly maxBytes?: number;
}

export const DEFAULT_MAX = 1 << 20;
export const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Where a record's parts are read from, in JSON Lines and Parquet alike: the first name present with a string
 * value wins. The later names are The Stack's (v1: `max_stars_repo_path`, `max_stars_repo_name`, `lang`).
 */
export const FIELDS = {
  content: ['content', 'text'],
  path: ['path', 'max_stars_repo_path', 'file_path'],
  language: ['language', 'lang'],
  repository: ['repository', 'max_stars_repo_name', 'repo_name'],
} as const;

/** The first of `names` whose value in `o` is a string. */
export function firstString(o: Readonly<Record<string, unknown>>, names: readonly string[]): string | undefined {
  for (const n of names) {
    const v = o[n];
    if (typeof v === 'string') return v;
  }
  return undefined;
}

/** A record's path (`''` when none), language and repository, by `FIELDS`. */
export function recordFields(o: Readonly<Record<string, unknown>>): { path: string; language?: string; repository?: string } {
  const language = firstString(o, FIELDS.language);
  const repository = firstString(o, FIELDS.repository);
  return { path: firstString(o, FIELDS.path) ?? '', ...(language !== undefined ? { language } : {}), ...(repository !== undefined ? { repository } : {}) };
}

/** Lines of a byte stream, each at most `max` bytes; a longer line yields `{ over: n }` without being held. */
async function* lines(src: Readable, max: number): AsyncGenerator<Buffer | { over: number }> {
  let parts: Buffer[] = [];
  let held = 0;
  let over = 0;
  for await (const chunk of src as AsyncIterable<Buffer>) {
    let from = 0;
    for (;;) {
      const nl = chunk.indexOf(10, from);
      const end = nl === -1 ? chunk.length : nl;
      const piece = chunk.subarray(from, end);
      if (over) over += piece.length;
      else if (held + piece.length > max) {
        over = held + piece.length;
        parts = [];
        held = 0;
      } else if (piece.length) {
        parts.push(piece);
        held += piece.length;
      }
      if (nl === -1) break;
      if (over) yield { over };
      else yield parts.length === 1 ? parts[0]! : Buffer.concat(parts, held);
      parts = [];
      held = 0;
      over = 0;
      from = nl + 1;
    }
  }
  if (over) yield { over };
  else if (held) yield Buffer.concat(parts, held);
}

/** Records of a JSON Lines file (`.jsonl`, `.jsonl.gz`, `.jsonl.zst`): `content` (or `text`), `path`, `language`, `repository`. */
export async function* readJsonl(file: string, opts: ReadOptions = {}): AsyncGenerator<Item> {
  const max = opts.maxBytes ?? DEFAULT_MAX;
  let src: Readable = createReadStream(file, { highWaterMark: 1 << 16 });
  if (file.endsWith('.gz')) src = src.pipe(createGunzip());
  else if (file.endsWith('.zst') || file.endsWith('.zstd')) src = src.pipe(createZstdDecompress());
  let n = 0;
  for await (const line of lines(src, max)) {
    n++;
    const origin = `${file}:${n}`;
    if (!Buffer.isBuffer(line)) {
      yield { malformed: 'oversized', origin, bytes: line.over, detail: `${line.over} bytes > ${max}` };
      continue;
    }
    if (line.length === 0 || (line.length === 1 && line[0] === 13)) {
      n--; // Blank lines are not records.
      continue;
    }
    let text: string;
    try {
      text = utf8.decode(line);
    } catch {
      yield { malformed: 'invalid-utf8', origin, bytes: line.length };
      continue;
    }
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      yield { malformed: 'bad-json', origin, bytes: line.length, detail: (e as Error).message };
      continue;
    }
    if (!v || typeof v !== 'object' || Array.isArray(v)) {
      yield { malformed: 'not-an-object', origin, bytes: line.length };
      continue;
    }
    const o = v as Record<string, unknown>;
    const content = firstString(o, FIELDS.content);
    if (content === undefined) {
      yield { malformed: 'no-content', origin, bytes: line.length, detail: 'no string "content" or "text" field' };
      continue;
    }
    // A NUL byte in a JSON string is not dropped here but by the filters (`nul-byte`), as it is for Parquet.
    yield { content, ...recordFields(o), origin, bytes: line.length };
  }
}

/** Directories never read: version control internals. */
export const SKIP_DIRS: ReadonlySet<string> = new Set(['.git', '.hg', '.svn']);

/**
 * Directories a tree of raw files is not descended into: version control internals, and the vendored
 * directories (node_modules, site-packages, __pycache__, …) whose every file the `vendored` filter would drop
 * anyway. Reading them first would cost more than the rest: a Python installation's site-packages is most of it.
 */
export const RAW_SKIP_DIRS: ReadonlySet<string> = new Set([...SKIP_DIRS, ...DEFAULT_FILTERS.vendor_dirs]);

/**
 * Every regular file under `dir`, in a stable (sorted) order, depth first. Symlinks are not followed, except
 * `dir` itself (a source may be a link to a directory). Directories named in `skip` are not entered.
 */
export async function* walk(dir: string, skip: ReadonlySet<string> = SKIP_DIRS): AsyncGenerator<string> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (!skip.has(e.name)) yield* walk(p, skip);
    } else if (e.isFile()) yield p;
  }
}

/** Records of a directory of raw files: one per file, its path relative to `dir`. */
export async function* readDirectory(dir: string, opts: ReadOptions = {}): AsyncGenerator<Item> {
  const max = opts.maxBytes ?? DEFAULT_MAX;
  for await (const file of walk(dir, RAW_SKIP_DIRS)) {
    const rel = relative(dir, file);
    let size: number;
    try {
      size = (await stat(file)).size;
    } catch (e) {
      yield { malformed: 'unreadable', origin: file, bytes: 0, detail: (e as Error).message };
      continue;
    }
    if (size > max) {
      yield { malformed: 'oversized', origin: file, bytes: size, detail: `${size} bytes > ${max}` };
      continue;
    }
    let buf: Buffer;
    try {
      const fh = await open(file, 'r');
      try {
        buf = await fh.readFile();
      } finally {
        await fh.close();
      }
    } catch (e) {
      yield { malformed: 'unreadable', origin: file, bytes: size, detail: (e as Error).message };
      continue;
    }
    // The Stack v2's rule: a NUL byte means binary.
    if (buf.includes(0)) {
      yield { malformed: 'binary', origin: file, bytes: buf.length };
      continue;
    }
    let content: string;
    try {
      content = utf8.decode(buf);
    } catch {
      yield { malformed: 'invalid-utf8', origin: file, bytes: buf.length };
      continue;
    }
    yield { content, path: rel, origin: file, bytes: buf.length };
  }
}
