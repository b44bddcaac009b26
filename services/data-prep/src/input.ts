/**
 * Which reader an input takes: a directory of raw files, a Parquet file, or a JSON Lines file. Apart from
 * `read.ts` because the Parquet reader builds on it (the record fields, the size cap, the directory walk).
 */
import { open, stat } from 'node:fs/promises';
import { isFeedbackInput, readFeedback, type FeedbackInput } from './feedback.ts';
import { readDirectory, readJsonl, type Item, type ReadOptions } from './read.ts';

/** What data prep reads: a path (a directory, a Parquet or JSON Lines file) or a gateway's feedback log. */
export type Input = string | FeedbackInput;

/** How a manifest names an input. */
export const inputName = (i: Input): string => (typeof i === 'string' ? i : `feedback://${i.target}?since=${i.since}`);

/** Whether `file` is Parquet: its name ends in `.parquet`, or it starts with Parquet's magic `PAR1`. */
export async function isParquetFile(file: string): Promise<boolean> {
  if (file.toLowerCase().endsWith('.parquet')) return true;
  try {
    const fh = await open(file, 'r');
    try {
      const head = Buffer.alloc(4);
      const { bytesRead } = await fh.read(head, 0, 4, 0);
      return bytesRead === 4 && head.toString('latin1') === 'PAR1';
    } finally {
      await fh.close();
    }
  } catch {
    return false;
  }
}

/**
 * Records of any input: a directory of raw files, a Parquet file (by its name or its magic bytes), or a JSON
 * Lines file. A `.parquet` file inside a directory is one of its raw files (so, with its NUL bytes, `binary`),
 * not a table: a directory is a checkout of source code, where a Parquet file is test data of the project, not
 * a set of records. A feedback input is read by `readFeedback`. A directory of Parquet files is read as such when the spec's source says `format:
 * parquet`: `optionsFrom` then lists its `.parquet` files as the inputs (or call `readParquetDirectory`).
 */
export async function* readInput(input: Input, opts: ReadOptions = {}): AsyncGenerator<Item> {
  if (isFeedbackInput(input)) {
    yield* readFeedback(input, opts);
    return;
  }
  const s = await stat(input);
  if (s.isDirectory()) yield* readDirectory(input, opts);
  else if (await isParquetFile(input)) {
    // Loaded on first use: JSON Lines runs need none of hyparquet.
    const { readParquet } = await import('./parquet.ts');
    yield* readParquet(input, opts);
  } else yield* readJsonl(input, opts);
}
