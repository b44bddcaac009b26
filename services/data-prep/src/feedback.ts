/**
 * The `feedback` data source: what users accepted in production, read back from the gateway's feedback log
 * (`<storage root>/feedback/<target>/*.jsonl`, one record per line, services/gateway/src/feedback.ts) as
 * training records. An accepted completion becomes prompt + completion + suffix, an edited one prompt +
 * final text + suffix, in the order the code reads. Every line read is a record of the ledger: the ones that
 * do not become training data come out as `Malformed` items with their reason (rejected, no context, older
 * than `since`, a prompt accepted too rarely, a second copy of a completion id, a line torn by a crash), so
 * they are counted in the shard's manifest and report, never lost silently.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DEFAULT_MAX, type FeedbackDrop, type Item, type ReadOptions } from './read.ts';

/** A feedback source as data prep reads it (from a spec's `type: feedback` source). */
export interface FeedbackInput {
  readonly kind: 'feedback';
  /** The spec's source name: the cleaned records carry it (`source`), so packing applies its weight. */
  readonly source: string;
  /** The serving target whose log this is. */
  readonly target: string;
  /** The log's directory: `<storage root>/feedback/<target>`. */
  readonly dir: string;
  /** How far back to read, `<n>h`, `<n>d` or `<n>w`, against `received_at`. */
  readonly since: string;
  /** Keep only prompts whose acceptance rate (accepted + edited over all their feedback) is at least this. */
  readonly minAcceptance: number;
  /** The records' language; when absent, it is detected as for any file (a `#!` line). */
  readonly language?: string;
  /** The time `since` counts back from. Default: now. */
  readonly now?: Date;
}

/** Why a feedback line is not a training record; the ledger counts each under its reason. */
export const FEEDBACK_DROPS: readonly FeedbackDrop[] = ['feedback-rejected', 'feedback-no-context', 'feedback-expired', 'feedback-low-acceptance', 'feedback-duplicate', 'feedback-torn', 'feedback-bad-record'];

export const isFeedbackInput = (i: unknown): i is FeedbackInput => typeof i === 'object' && i !== null && (i as { kind?: unknown }).kind === 'feedback';

const UNIT_MS = { h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 } as const;

/** `30d` → milliseconds; the spec's pattern is `^[0-9]+[hdw]$`. */
export function sinceMs(since: string): number {
  const m = /^(\d+)([hdw])$/.exec(since);
  if (!m) throw new Error(`feedback since must be a number and h, d or w (e.g. 30d), not "${since}"`);
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}

/** The feedback files of a log directory, oldest first (the names start with their UTC time). */
export async function feedbackFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw e;
  }
  return names.filter((f) => /^feedback-.*\.jsonl$/.test(f)).sort().map((f) => join(dir, f));
}

interface Line {
  readonly origin: string;
  readonly bytes: number;
  /** The parsed record, or why it is none. */
  readonly record?: Record<string, unknown>;
  readonly bad?: { readonly reason: FeedbackDrop; readonly detail: string };
}

/** Each line of each file; the last line of a file without a newline was cut by a crash: `feedback-torn`. */
async function* linesOf(files: readonly string[], max: number): AsyncGenerator<Line> {
  for (const file of files) {
    let endsInNewline = true;
    const fh = await open(file, 'r');
    try {
      const size = (await fh.stat()).size;
      if (size > 0) {
        const b = Buffer.alloc(1);
        await fh.read(b, 0, 1, size - 1);
        endsInNewline = b[0] === 10;
      }
    } finally {
      await fh.close();
    }
    let n = 0;
    let previous: { text: string; n: number } | undefined;
    const judge = (text: string, at: number, torn: boolean): Line => {
      const origin = `${file}:${at}`;
      const bytes = Buffer.byteLength(text);
      if (torn) return { origin, bytes, bad: { reason: 'feedback-torn', detail: 'a last line without its newline (a write cut short)' } };
      if (bytes > max) return { origin, bytes, bad: { reason: 'feedback-bad-record', detail: `${bytes} bytes > ${max}` } };
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch (e) {
        return { origin, bytes, bad: { reason: 'feedback-bad-record', detail: (e as Error).message } };
      }
      if (!v || typeof v !== 'object' || Array.isArray(v)) return { origin, bytes, bad: { reason: 'feedback-bad-record', detail: 'not a JSON object' } };
      return { origin, bytes, record: v as Record<string, unknown> };
    };
    for await (const text of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
      n++;
      if (previous && previous.text.trim()) yield judge(previous.text, previous.n, false);
      previous = { text, n };
    }
    if (previous && previous.text.trim()) yield judge(previous.text, previous.n, !endsInNewline);
  }
}

interface Context {
  readonly prompt: string;
  readonly suffix?: string;
  readonly completion: string;
}

/** A record's fields, checked; a string says what is wrong. */
function fieldsOf(r: Record<string, unknown>): { id: string; outcome: string; at: number; finalText?: string; context: Context | null } | string {
  if (r.v !== 1) return `v is ${JSON.stringify(r.v)}, not 1`;
  if (typeof r.completion_id !== 'string' || !r.completion_id) return 'no completion_id';
  if (r.outcome !== 'accepted' && r.outcome !== 'rejected' && r.outcome !== 'edited') return `outcome is ${JSON.stringify(r.outcome)}`;
  const at = typeof r.received_at === 'string' ? Date.parse(r.received_at) : NaN;
  if (Number.isNaN(at)) return `received_at is ${JSON.stringify(r.received_at)}, not an ISO-8601 time`;
  if (r.outcome === 'edited' && typeof r.final_text !== 'string') return 'an edited record without final_text';
  const c = r.context as Record<string, unknown> | null | undefined;
  let context: Context | null = null;
  if (c !== null && c !== undefined) {
    if (typeof c !== 'object' || typeof c.prompt !== 'string' || typeof c.completion !== 'string' || (c.suffix !== undefined && typeof c.suffix !== 'string')) return 'context is not {prompt, suffix?, completion}';
    context = { prompt: c.prompt, completion: c.completion, ...(typeof c.suffix === 'string' ? { suffix: c.suffix } : {}) };
  }
  return { id: r.completion_id, outcome: r.outcome, at, ...(typeof r.final_text === 'string' ? { finalText: r.final_text } : {}), context };
}

const promptKey = (prompt: string) => createHash('sha256').update(prompt).digest('base64');

/**
 * The records of a feedback source. With `minAcceptance` above 0 the log is read twice: first to count, per
 * prompt text, how much of its feedback was accepted or edited (within `since`, first copy of each id), then
 * to emit. The first line of a completion id wins; later copies (a retry that reached another replica) are
 * `feedback-duplicate`.
 */
export async function* readFeedback(input: FeedbackInput, opts: ReadOptions = {}): AsyncGenerator<Item> {
  const max = opts.maxBytes ?? DEFAULT_MAX;
  const files = await feedbackFiles(input.dir);
  const cutoff = (input.now ?? new Date()).getTime() - sinceMs(input.since);
  let rates: Map<string, { good: number; all: number }> | undefined;
  if (input.minAcceptance > 0) {
    rates = new Map();
    const seen = new Set<string>();
    for await (const l of linesOf(files, max)) {
      if (!l.record) continue;
      const f = fieldsOf(l.record);
      if (typeof f === 'string' || seen.has(f.id)) continue;
      seen.add(f.id);
      if (f.at < cutoff || !f.context) continue;
      const k = promptKey(f.context.prompt);
      const r = rates.get(k) ?? { good: 0, all: 0 };
      r.all++;
      if (f.outcome !== 'rejected') r.good++;
      rates.set(k, r);
    }
  }
  const seen = new Set<string>();
  for await (const l of linesOf(files, max)) {
    const { origin, bytes } = l;
    if (!l.record) {
      yield { malformed: l.bad!.reason, origin, bytes, detail: l.bad!.detail };
      continue;
    }
    const f = fieldsOf(l.record);
    if (typeof f === 'string') {
      yield { malformed: 'feedback-bad-record', origin, bytes, detail: f };
      continue;
    }
    if (seen.has(f.id)) {
      yield { malformed: 'feedback-duplicate', origin, bytes, detail: f.id };
      continue;
    }
    seen.add(f.id);
    if (f.at < cutoff) {
      yield { malformed: 'feedback-expired', origin, bytes, detail: `received before the last ${input.since}` };
      continue;
    }
    if (f.outcome === 'rejected') {
      yield { malformed: 'feedback-rejected', origin, bytes };
      continue;
    }
    if (!f.context) {
      yield { malformed: 'feedback-no-context', origin, bytes, detail: 'the gateway no longer had the completion when the feedback came' };
      continue;
    }
    if (rates) {
      const r = rates.get(promptKey(f.context.prompt))!;
      if (r.good / r.all < input.minAcceptance) {
        yield { malformed: 'feedback-low-acceptance', origin, bytes, detail: `${r.good} of ${r.all} accepted, below ${input.minAcceptance}` };
        continue;
      }
    }
    const middle = f.outcome === 'edited' ? f.finalText! : f.context.completion;
    yield {
      content: f.context.prompt + middle + (f.context.suffix ?? ''),
      path: `feedback/${f.id}`,
      repository: `feedback:${input.target}`,
      source: input.source,
      ...(input.language ? { language: input.language } : {}),
      origin,
      bytes,
    };
  }
}
