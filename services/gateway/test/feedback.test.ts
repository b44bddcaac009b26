import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { FeedbackError, FeedbackLog, FILE_PATTERN, parseFeedback, type CompletionContext, type FeedbackRecord } from '../src/feedback.ts';

const tmp = mkdtempSync(join(tmpdir(), 'kiln-feedback-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const freshDir = () => join(tmp, `log-${n++}`);

const ctx = (prompt: string, choices: string[] = ['    return a + b\n']): CompletionContext => ({ model: 'completions', version: 'stable', prompt, choices, created: 1_700_000_000 });

/** Every record in every feedback file of `dir`, in file then line order. */
function records(dir: string): FeedbackRecord[] {
  return readdirSync(dir)
    .filter((f) => FILE_PATTERN.test(f))
    .sort()
    .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as FeedbackRecord));
}

function paramOf(body: unknown): string | null | 'no error' {
  try {
    parseFeedback(body);
    return 'no error';
  } catch (e) {
    expect(e).toBeInstanceOf(FeedbackError);
    return (e as FeedbackError).param;
  }
}

describe('parseFeedback', () => {
  it('accepts the three outcomes, with final_text only for edited, and index optional', () => {
    expect(parseFeedback({ completion_id: 'cmpl-1', outcome: 'accepted' })).toEqual({ completion_id: 'cmpl-1', outcome: 'accepted' });
    expect(parseFeedback({ completion_id: 'cmpl-1', outcome: 'rejected', index: 2 })).toEqual({ completion_id: 'cmpl-1', outcome: 'rejected', index: 2 });
    expect(parseFeedback({ completion_id: 'cmpl-1', outcome: 'edited', final_text: 'x = 1\n' })).toEqual({ completion_id: 'cmpl-1', outcome: 'edited', final_text: 'x = 1\n' });
  });

  it('names the wrong field in param and says how to fix it', () => {
    expect(paramOf([])).toBeNull();
    expect(paramOf('accepted')).toBeNull();
    expect(paramOf({ outcome: 'accepted' })).toBe('completion_id');
    expect(paramOf({ completion_id: 7, outcome: 'accepted' })).toBe('completion_id');
    expect(paramOf({ completion_id: 'has space', outcome: 'accepted' })).toBe('completion_id');
    expect(paramOf({ completion_id: 'x'.repeat(129), outcome: 'accepted' })).toBe('completion_id');
    expect(paramOf({ completion_id: 'cmpl-1' })).toBe('outcome');
    expect(paramOf({ completion_id: 'cmpl-1', outcome: 'liked' })).toBe('outcome');
    expect(paramOf({ completion_id: 'cmpl-1', outcome: 'edited' })).toBe('final_text');
    expect(paramOf({ completion_id: 'cmpl-1', outcome: 'edited', final_text: 3 })).toBe('final_text');
    expect(paramOf({ completion_id: 'cmpl-1', outcome: 'accepted', final_text: 'x' })).toBe('final_text');
    expect(paramOf({ completion_id: 'cmpl-1', outcome: 'accepted', index: -1 })).toBe('index');
    expect(paramOf({ completion_id: 'cmpl-1', outcome: 'accepted', index: 1.5 })).toBe('index');
    expect(paramOf({ completion_id: 'cmpl-1', outcome: 'accepted', rating: 5 })).toBe('rating');
    expect(() => parseFeedback({ completion_id: 'cmpl-1', outcome: 'liked' })).toThrow('outcome must be "accepted", "rejected" or "edited", not "liked"');
    expect(() => parseFeedback({ completion_id: 'cmpl-1', outcome: 'edited' })).toThrow(/final_text is required with outcome "edited"/);
  });
});

describe('FeedbackLog', () => {
  it('writes one line per feedback in the contract form, with the remembered context, and null context for an unknown completion', async () => {
    const dir = freshDir();
    const log = await FeedbackLog.open({ dir, now: () => new Date('2026-12-01T10:00:00.000Z') });
    log.remember('cmpl-a', { ...ctx('def add(a, b):\n'), suffix: '\n# end\n' });
    expect(await log.append({ completion_id: 'cmpl-a', outcome: 'accepted' }, 'abcdef012345')).toEqual({ duplicate: false });
    expect(await log.append({ completion_id: 'cmpl-unknown', outcome: 'edited', final_text: 'pass\n' }, null)).toEqual({ duplicate: false });
    await log.close();
    const files = readdirSync(dir);
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(new RegExp(`^feedback-20261201T100000Z-${process.pid}-0\\.jsonl$`));
    expect(records(dir)).toEqual([
      { v: 1, completion_id: 'cmpl-a', outcome: 'accepted', index: 0, received_at: '2026-12-01T10:00:00.000Z', model: 'completions', version: 'stable', key_id: 'abcdef012345', context: { prompt: 'def add(a, b):\n', suffix: '\n# end\n', completion: '    return a + b\n' } },
      { v: 1, completion_id: 'cmpl-unknown', outcome: 'edited', final_text: 'pass\n', index: 0, received_at: '2026-12-01T10:00:00.000Z', model: null, version: null, key_id: null, context: null },
    ]);
  });

  it('takes the chosen choice by index, and refuses an index the completion does not have', async () => {
    const dir = freshDir();
    const log = await FeedbackLog.open({ dir });
    log.remember('cmpl-b', ctx('p', ['one', 'two']));
    await log.append({ completion_id: 'cmpl-b', outcome: 'accepted', index: 1 }, null);
    log.remember('cmpl-c', ctx('p', ['one']));
    await expect(log.append({ completion_id: 'cmpl-c', outcome: 'accepted', index: 3 }, null)).rejects.toMatchObject({ param: 'index', message: expect.stringMatching(/index 3 is out of range: completion cmpl-c has 1 choice$/) });
    await log.close();
    expect(records(dir).map((r) => r.context?.completion)).toEqual(['two']);
  });

  it('is idempotent per completion id, within a process, between concurrent appends, and after a restart', async () => {
    const dir = freshDir();
    const log = await FeedbackLog.open({ dir });
    const first = await Promise.all([1, 2, 3].map(() => log.append({ completion_id: 'cmpl-same', outcome: 'accepted' }, null)));
    expect(first.filter((r) => !r.duplicate)).toHaveLength(1);
    expect((await log.append({ completion_id: 'cmpl-same', outcome: 'rejected' }, null)).duplicate).toBe(true);
    expect(log.stats()).toMatchObject({ appended: 1, duplicates: 3 });
    await log.close();
    const again = await FeedbackLog.open({ dir });
    expect(again.stats()).toMatchObject({ filesAtOpen: 1, recordsAtOpen: 1, tornLines: 0 });
    expect((await again.append({ completion_id: 'cmpl-same', outcome: 'accepted' }, null)).duplicate).toBe(true);
    expect((await again.append({ completion_id: 'cmpl-other', outcome: 'accepted' }, null)).duplicate).toBe(false);
    await again.close();
    // The reopened log wrote a file of its own: the old one is never appended to.
    expect(readdirSync(dir)).toHaveLength(2);
    expect(records(dir).map((r) => r.completion_id)).toEqual(['cmpl-same', 'cmpl-other']);
  });

  it('acknowledges an append only after its line is written and datasync has returned', async () => {
    const dir = freshDir();
    const log = await FeedbackLog.open({ dir });
    const probe = await open(join(tmp, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
    await probe.close();
    const events: string[] = [];
    const real = proto.datasync;
    const spy = vi.spyOn(proto, 'datasync').mockImplementation(async function (this: unknown) {
      events.push('datasync start');
      await new Promise((r) => setTimeout(r, 50));
      await real.call(this);
      events.push('datasync done');
    });
    try {
      await log.append({ completion_id: 'cmpl-sync', outcome: 'accepted' }, null).then(() => events.push('acknowledged'));
    } finally {
      spy.mockRestore();
    }
    expect(events).toEqual(['datasync start', 'datasync done', 'acknowledged']);
    expect(records(dir).map((r) => r.completion_id)).toEqual(['cmpl-sync']);
    await log.close();
  });

  it('groups concurrent appends into few write + fsync rounds, and acknowledges each only once written', async () => {
    const dir = freshDir();
    const log = await FeedbackLog.open({ dir });
    const ids = Array.from({ length: 200 }, (_, i) => `cmpl-${i}`);
    const acks = await Promise.all(ids.map((id) => log.append({ completion_id: id, outcome: 'accepted' }, null)));
    expect(acks.every((a) => !a.duplicate)).toBe(true);
    const s = log.stats();
    expect(s.appended).toBe(200);
    // The first append goes alone; the 199 that queued behind it go together.
    expect(s.batches).toBeLessThanOrEqual(3);
    await log.close();
    expect(records(dir).map((r) => r.completion_id).sort()).toEqual([...ids].sort());
  });

  it('rotates to a new file before one would pass maxFileBytes', async () => {
    const dir = freshDir();
    const log = await FeedbackLog.open({ dir, maxFileBytes: 600 });
    for (let i = 0; i < 10; i++) await log.append({ completion_id: `cmpl-r${i}`, outcome: 'rejected' }, null);
    await log.close();
    const files = readdirSync(dir).sort();
    expect(files.length).toBeGreaterThan(2);
    for (const f of files) expect(readFileSync(join(dir, f)).length).toBeLessThanOrEqual(600);
    expect(records(dir)).toHaveLength(10);
    expect(log.stats().filesCreated).toBe(files.length);
  });

  it('tolerates a torn last line from a crash: counts it, keeps the whole lines before it, never appends to that file', async () => {
    const dir = freshDir();
    const log = await FeedbackLog.open({ dir });
    await log.append({ completion_id: 'cmpl-whole', outcome: 'accepted' }, null);
    await log.close();
    const [old] = readdirSync(dir);
    // A crash cut the next write short: half a line, no newline.
    appendFileSync(join(dir, old!), '{"v":1,"completion_id":"cmpl-torn","outc');
    const before = readFileSync(join(dir, old!), 'utf8');
    const again = await FeedbackLog.open({ dir });
    expect(again.stats()).toMatchObject({ recordsAtOpen: 1, tornLines: 1, badLines: 0 });
    expect((await again.append({ completion_id: 'cmpl-whole', outcome: 'accepted' }, null)).duplicate).toBe(true);
    // The torn feedback was never acknowledged: sent again, it is recorded (in a new file).
    expect((await again.append({ completion_id: 'cmpl-torn', outcome: 'accepted' }, null)).duplicate).toBe(false);
    await again.close();
    expect(readFileSync(join(dir, old!), 'utf8')).toBe(before);
    expect(readdirSync(dir)).toHaveLength(2);
  });

  it('counts a whole line that is not a record, and ignores files that are not feedback logs', async () => {
    const dir = freshDir();
    await (await FeedbackLog.open({ dir })).close();
    writeFileSync(join(dir, 'feedback-20260101T000000Z-1-0.jsonl'), '{"v":1,"completion_id":"cmpl-x"}\nnot json\n{"v":1}\n');
    writeFileSync(join(dir, 'notes.jsonl'), '{"completion_id":"cmpl-y"}\n');
    const log = await FeedbackLog.open({ dir });
    expect(log.stats()).toMatchObject({ filesAtOpen: 1, recordsAtOpen: 1, badLines: 2, tornLines: 0 });
    expect((await log.append({ completion_id: 'cmpl-y', outcome: 'accepted' }, null)).duplicate).toBe(false);
    await log.close();
  });

  it('forgets the least recently used contexts beyond its bound', async () => {
    const dir = freshDir();
    const log = await FeedbackLog.open({ dir, contexts: 2 });
    log.remember('cmpl-1', ctx('one'));
    log.remember('cmpl-2', ctx('two'));
    log.remember('cmpl-3', ctx('three'));
    await log.append({ completion_id: 'cmpl-1', outcome: 'accepted' }, null);
    await log.append({ completion_id: 'cmpl-3', outcome: 'accepted' }, null);
    await log.close();
    expect(records(dir).map((r) => r.context?.prompt ?? null)).toEqual([null, 'three']);
  });

  it('refuses appends after close, and bad options with a clear message', async () => {
    const log = await FeedbackLog.open({ dir: freshDir() });
    await log.close();
    await expect(log.append({ completion_id: 'cmpl-late', outcome: 'accepted' }, null)).rejects.toThrow('the feedback log is closed');
    await expect(FeedbackLog.open({ dir: freshDir(), maxFileBytes: 0 })).rejects.toThrow('feedback maxFileBytes must be a positive integer, not 0');
    const file = join(tmp, 'a-file');
    writeFileSync(file, '');
    await expect(FeedbackLog.open({ dir: join(file, 'sub') })).rejects.toThrow(/cannot create the feedback directory .*a-file\/sub/);
  });
});
