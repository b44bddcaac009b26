/**
 * The gateway's feedback log: what users did with a completion (accepted, rejected, edited), appended to JSON
 * Lines files under the run's storage (`<storage root>/feedback/<target>/`), where the next run's `feedback`
 * data source reads it back as training data.
 *
 * Durable: `append()` resolves only after the line is on disk (`datasync`), so an acknowledged feedback
 * survives a crash of the process or of the machine. Group commit: one write + fsync is in flight at a time;
 * appends that arrive meanwhile go together in the next one, so the log keeps up with load at one fsync per
 * batch, not per request. Files are never appended to after this process's first open: each process writes
 * its own (`feedback-<UTC time>-<pid>-<seq>.jsonl`), rotated at `maxFileBytes`, the directory fsynced after
 * each new file. Idempotent per completion id: the ids of every file in the directory are read at open, and a
 * torn last line (a write cut by a crash) is tolerated and counted, never continued.
 */
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/** What the gateway knew about a completion when it answered it: the feedback line's `context`. */
export interface CompletionContext {
  readonly model: string;
  readonly version: string;
  readonly prompt: string;
  readonly suffix?: string;
  readonly choices: readonly string[];
  /** Unix seconds. */
  readonly created: number;
}

export const OUTCOMES = ['accepted', 'rejected', 'edited'] as const;
export type Outcome = (typeof OUTCOMES)[number];

/** A `POST /v1/feedback` body, checked. */
export interface FeedbackInput {
  readonly completion_id: string;
  readonly outcome: Outcome;
  /** The text the user kept instead of the completion; only with `edited`, where it is required. */
  readonly final_text?: string;
  /** Which choice of the completion (default 0). */
  readonly index?: number;
}

/** One line of a feedback file (contract §5). */
export interface FeedbackRecord {
  readonly v: 1;
  readonly completion_id: string;
  readonly outcome: Outcome;
  readonly final_text?: string;
  readonly index: number;
  /** ISO-8601, UTC. */
  readonly received_at: string;
  readonly model: string | null;
  readonly version: string | null;
  readonly key_id: string | null;
  /** null: the completion was not in this process's memory (another replica answered it, or it is old). */
  readonly context: { readonly prompt: string; readonly suffix?: string; readonly completion: string } | null;
}

/** Bad feedback: the gateway answers 400 in OpenAI's error shape, `param` naming the field. */
export class FeedbackError extends Error {
  readonly param: string | null;
  constructor(message: string, param: string | null) {
    super(message);
    this.name = 'FeedbackError';
    this.param = param;
  }
}

/** Longest completion id accepted; the gateway's are `cmpl-` and 24 characters. */
export const MAX_ID_CHARS = 128;
const FIELDS = new Set(['completion_id', 'outcome', 'final_text', 'index']);

/** Checks a `POST /v1/feedback` body; throws a `FeedbackError` that says which field is wrong and how. */
export function parseFeedback(body: unknown): FeedbackInput {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new FeedbackError('the body must be a JSON object: {"completion_id": "cmpl-…", "outcome": "accepted" | "rejected" | "edited"}', null);
  }
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b)) {
    if (!FIELDS.has(k)) throw new FeedbackError(`unknown field "${k}"; the fields are completion_id, outcome, final_text and index`, k);
  }
  const id = b.completion_id;
  if (id === undefined) throw new FeedbackError('completion_id is required: the "id" of the completion this feedback is about', 'completion_id');
  if (typeof id !== 'string' || id.length === 0) throw new FeedbackError('completion_id must be a non-empty string (the completion\'s "id")', 'completion_id');
  if (id.length > MAX_ID_CHARS || !/^[\x21-\x7e]+$/.test(id)) throw new FeedbackError(`completion_id must be at most ${MAX_ID_CHARS} printable ASCII characters without spaces`, 'completion_id');
  const outcome = b.outcome;
  if (outcome === undefined) throw new FeedbackError('outcome is required: "accepted", "rejected" or "edited"', 'outcome');
  if (typeof outcome !== 'string' || !(OUTCOMES as readonly string[]).includes(outcome)) throw new FeedbackError(`outcome must be "accepted", "rejected" or "edited", not ${JSON.stringify(outcome)}`, 'outcome');
  const final = b.final_text;
  if (outcome === 'edited') {
    if (final === undefined) throw new FeedbackError('final_text is required with outcome "edited": the text the user kept', 'final_text');
    if (typeof final !== 'string') throw new FeedbackError('final_text must be a string', 'final_text');
  } else if (final !== undefined) {
    throw new FeedbackError(`final_text goes only with outcome "edited", not "${outcome}"`, 'final_text');
  }
  const index = b.index;
  if (index !== undefined && (typeof index !== 'number' || !Number.isInteger(index) || index < 0)) throw new FeedbackError('index must be a non-negative integer: which choice of the completion (default 0)', 'index');
  return { completion_id: id, outcome: outcome as Outcome, ...(final !== undefined ? { final_text: final as string } : {}), ...(index !== undefined ? { index: index as number } : {}) };
}

/** The file name pattern of feedback logs (contract §5). */
export const FILE_PATTERN = /^feedback-\d{8}T\d{6}Z-\d+-\d+\.jsonl$/;
export const DEFAULT_MAX_FILE_BYTES = 64 << 20;
export const DEFAULT_CONTEXTS = 10_000;

/** What a log found at open and has done since; the gateway's metrics read it. */
export interface FeedbackStats {
  /** Feedback files in the directory at open. */
  readonly filesAtOpen: number;
  /** Records (distinct completion ids) found at open. */
  readonly recordsAtOpen: number;
  /** Last lines cut short by a crash (no newline), found at open. */
  readonly tornLines: number;
  /** Whole lines that were not a feedback record, found at open. */
  readonly badLines: number;
  readonly appended: number;
  readonly duplicates: number;
  /** Write + fsync rounds; appended / batches is the group-commit factor. */
  readonly batches: number;
  readonly filesCreated: number;
}

interface Pending {
  readonly id: string;
  readonly line: Buffer;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

/** A bounded map that forgets the least recently used entry first. */
class Lru<V> {
  private readonly map = new Map<string, V>();
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
  get(k: string): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  set(k: string, v: V): void {
    this.map.delete(k);
    this.map.set(k, v);
    while (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }
  get size(): number {
    return this.map.size;
  }
}

const stamp = (d: Date) => d.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');

/** The completion ids of one feedback file; a torn last line and unparsable lines are counted, not fatal. */
async function idsOf(file: string, into: Set<string>): Promise<{ torn: number; bad: number }> {
  let torn = 0;
  let bad = 0;
  const fh = await open(file, 'r');
  let endsInNewline = true;
  try {
    const size = (await fh.stat()).size;
    if (size > 0) {
      const last = Buffer.alloc(1);
      await fh.read(last, 0, 1, size - 1);
      endsInNewline = last[0] === 10;
    }
  } finally {
    await fh.close();
  }
  // Every line but the last is whole; the last is whole only if the file ends in a newline.
  let previous: string | undefined;
  for await (const line of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    if (previous !== undefined) bad += addId(previous, into);
    previous = line;
  }
  if (previous !== undefined) {
    if (endsInNewline) bad += addId(previous, into);
    else torn++;
  }
  return { torn, bad };
}

function addId(line: string, into: Set<string>): number {
  if (!line.trim()) return 0;
  try {
    const r = JSON.parse(line) as { completion_id?: unknown };
    if (typeof r.completion_id !== 'string') return 1;
    into.add(r.completion_id);
    return 0;
  } catch {
    return 1;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

export interface FeedbackLogOptions {
  /** The directory of the log, created if missing (`<storage root>/feedback/<target>`). */
  readonly dir: string;
  /** A file is closed and a new one started before it would grow past this. Default 64 MiB. */
  readonly maxFileBytes?: number;
  /** How many recent completions' contexts are kept in memory. Default 10000. */
  readonly contexts?: number;
  /** The clock, for tests. Default `() => new Date()`. */
  readonly now?: () => Date;
}

/** The feedback log of one gateway process. */
export class FeedbackLog {
  readonly dir: string;
  private readonly maxFileBytes: number;
  private readonly now: () => Date;
  private readonly ids: Set<string>;
  private readonly contexts: Lru<CompletionContext>;
  /** Appends written but not yet acknowledged, by id: a second append of the same id waits on the first. */
  private readonly inFlight = new Map<string, Promise<void>>();
  private queue: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private fh: FileHandle | undefined;
  private fileBytes = 0;
  private seq = 0;
  private closed = false;
  private s: { -readonly [K in keyof FeedbackStats]: FeedbackStats[K] };
  /** The file being written, if any. */
  file: string | undefined;

  private constructor(o: FeedbackLogOptions, ids: Set<string>, stats: FeedbackStats) {
    this.dir = o.dir;
    this.maxFileBytes = o.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
    this.now = o.now ?? (() => new Date());
    this.ids = ids;
    this.contexts = new Lru(o.contexts ?? DEFAULT_CONTEXTS);
    this.s = { ...stats };
  }

  /** Opens the log in `dir`: reads the completion ids of every feedback file there. Writes nothing yet. */
  static async open(o: FeedbackLogOptions): Promise<FeedbackLog> {
    if (o.maxFileBytes !== undefined && !(Number.isInteger(o.maxFileBytes) && o.maxFileBytes > 0)) throw new Error(`feedback maxFileBytes must be a positive integer, not ${o.maxFileBytes}`);
    if (o.contexts !== undefined && !(Number.isInteger(o.contexts) && o.contexts >= 0)) throw new Error(`feedback contexts must be a non-negative integer, not ${o.contexts}`);
    try {
      await mkdir(o.dir, { recursive: true });
    } catch (e) {
      throw new Error(`cannot create the feedback directory ${o.dir}: ${(e as Error).message}`);
    }
    const files = (await readdir(o.dir)).filter((f) => FILE_PATTERN.test(f)).sort();
    const ids = new Set<string>();
    let torn = 0;
    let bad = 0;
    for (const f of files) {
      const r = await idsOf(join(o.dir, f), ids);
      torn += r.torn;
      bad += r.bad;
    }
    return new FeedbackLog(o, ids, { filesAtOpen: files.length, recordsAtOpen: ids.size, tornLines: torn, badLines: bad, appended: 0, duplicates: 0, batches: 0, filesCreated: 0 });
  }

  /** Keeps a completion's context so its feedback can carry the prompt and the completion. */
  remember(id: string, ctx: CompletionContext): void {
    this.contexts.set(id, ctx);
  }

  /** What this log found and has done. */
  stats(): FeedbackStats {
    return { ...this.s };
  }

  /**
   * Records feedback; resolves once it is on disk. `{ duplicate: true }` when this completion already has
   * feedback (in any file of the directory at open, or appended since): nothing is written then.
   */
  async append(input: FeedbackInput, keyId: string | null): Promise<{ duplicate: boolean }> {
    if (this.closed) throw new Error('the feedback log is closed');
    const id = input.completion_id;
    const earlier = this.inFlight.get(id);
    if (earlier) {
      // Only a durable first copy makes this one a duplicate; if that write failed, this one is tried.
      try {
        await earlier;
      } catch {
        return this.append(input, keyId);
      }
    }
    if (this.ids.has(id)) {
      this.s.duplicates++;
      return { duplicate: true };
    }
    const ctx = this.contexts.get(id);
    const index = input.index ?? 0;
    if (ctx && index >= ctx.choices.length) throw new FeedbackError(`index ${index} is out of range: completion ${id} has ${ctx.choices.length} choice${ctx.choices.length === 1 ? '' : 's'}`, 'index');
    const record: FeedbackRecord = {
      v: 1,
      completion_id: id,
      outcome: input.outcome,
      ...(input.final_text !== undefined ? { final_text: input.final_text } : {}),
      index,
      received_at: this.now().toISOString(),
      model: ctx?.model ?? null,
      version: ctx?.version ?? null,
      key_id: keyId,
      context: ctx ? { prompt: ctx.prompt, ...(ctx.suffix !== undefined ? { suffix: ctx.suffix } : {}), completion: ctx.choices[index]! } : null,
    };
    const line = Buffer.from(`${JSON.stringify(record)}\n`);
    const done = new Promise<void>((resolve, reject) => this.queue.push({ id, line, resolve, reject }));
    this.inFlight.set(id, done);
    this.kick();
    try {
      await done;
    } finally {
      this.inFlight.delete(id);
    }
    return { duplicate: false };
  }

  /** Starts the writer if it is idle; it drains the queue in batches until it is empty. */
  private kick(): void {
    if (this.flushing) return;
    this.flushing = (async () => {
      while (this.queue.length) {
        const batch = this.queue;
        this.queue = [];
        try {
          await this.write(Buffer.concat(batch.map((p) => p.line)));
          for (const p of batch) this.ids.add(p.id);
          this.s.appended += batch.length;
          this.s.batches++;
          for (const p of batch) p.resolve();
        } catch (e) {
          const err = new Error(`cannot write feedback to ${this.file ?? this.dir}: ${(e as Error).message}`);
          for (const p of batch) p.reject(err);
        }
      }
    })().finally(() => {
      this.flushing = undefined;
      if (this.queue.length) this.kick();
    });
  }

  /** Writes one batch and syncs it; a file that fails is abandoned (it may end torn) and a new one started next. */
  private async write(buf: Buffer): Promise<void> {
    if (this.fh && this.fileBytes > 0 && this.fileBytes + buf.length > this.maxFileBytes) await this.closeFile();
    if (!this.fh) await this.newFile();
    const fh = this.fh!;
    try {
      let off = 0;
      while (off < buf.length) {
        const { bytesWritten } = await fh.write(buf, off, buf.length - off);
        off += bytesWritten;
      }
      await fh.datasync();
      this.fileBytes += buf.length;
    } catch (e) {
      await this.closeFile().catch(() => undefined);
      throw e;
    }
  }

  private async newFile(): Promise<void> {
    for (;;) {
      const name = `feedback-${stamp(this.now())}-${process.pid}-${this.seq++}.jsonl`;
      const path = join(this.dir, name);
      try {
        this.fh = await open(path, 'wx');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
        throw e;
      }
      this.file = path;
      this.fileBytes = 0;
      this.s.filesCreated++;
      // The file's name must survive a crash too, not only its bytes.
      await syncDirectory(this.dir);
      return;
    }
  }

  private async closeFile(): Promise<void> {
    const fh = this.fh;
    this.fh = undefined;
    this.file = undefined;
    await fh?.close();
  }

  /** Waits for the appends in flight, then closes the file; later appends are refused. */
  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await this.flushing;
    await this.closeFile();
  }
}
