import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zstdDecompressSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { load } from '@kiln/spec';
import type { FeedbackSource } from '@kiln/spec';
import { readFeedback, type FeedbackInput } from '../src/feedback.ts';
import { optionsFrom, storageRootOf } from '../src/from-spec.ts';
import { prepare } from '../src/pipeline.ts';
import { runStage } from '../src/stage.ts';
import { isMalformed, type Item } from '../src/read.ts';

const tmp = mkdtempSync(join(tmpdir(), 'kiln-feedback-source-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const NOW = new Date('2026-12-01T12:00:00.000Z');
const daysAgo = (d: number) => new Date(NOW.getTime() - d * 86_400_000).toISOString();

const PROMPT = 'def mean(values):\n    """The arithmetic mean of a non-empty list."""\n';
const COMPLETION = '    total = sum(values)\n    return total / len(values)\n';

/** A line as the gateway's FeedbackLog writes it (contract §5). */
function line(id: string, outcome: string, o: { prompt?: string; completion?: string; suffix?: string; final_text?: string; at?: string; context?: null } = {}) {
  return JSON.stringify({
    v: 1,
    completion_id: id,
    outcome,
    ...(o.final_text !== undefined ? { final_text: o.final_text } : {}),
    index: 0,
    received_at: o.at ?? daysAgo(1),
    model: 'completions',
    version: 'stable',
    key_id: 'abcdef012345',
    context: o.context === null ? null : { prompt: o.prompt ?? PROMPT, ...(o.suffix !== undefined ? { suffix: o.suffix } : {}), completion: o.completion ?? COMPLETION },
  });
}

function logDir(name: string, files: Record<string, string>): string {
  const dir = join(tmp, name, 'feedback', 'completions');
  mkdirSync(dir, { recursive: true });
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
  return dir;
}

const input = (dir: string, o: Partial<FeedbackInput> = {}): FeedbackInput => ({ kind: 'feedback', source: 'prod-feedback', target: 'completions', dir, since: '30d', minAcceptance: 0, now: NOW, ...o });

async function all(it: AsyncIterable<Item>): Promise<Item[]> {
  const out: Item[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const reasons = (items: Item[]) => items.filter(isMalformed).map((i) => i.malformed);

describe('readFeedback', () => {
  it('turns accepted and edited feedback into records (prompt + completion or final text + suffix), and every other line into a counted reason', async () => {
    const dir = logDir('mixed', {
      'feedback-20261130T000000Z-11-0.jsonl': [
        line('cmpl-acc', 'accepted', { suffix: '\n\nprint(mean([1, 2]))\n' }),
        line('cmpl-edit', 'edited', { final_text: '    return sum(values) / len(values)\n' }),
        line('cmpl-rej', 'rejected'),
        line('cmpl-nocontext', 'accepted', { context: null }),
        line('cmpl-old', 'accepted', { at: daysAgo(45) }),
        'not json',
        '',
      ].join('\n'),
      // A second replica recorded a retry of the same completion; then crashed mid-write.
      'feedback-20261130T010000Z-12-0.jsonl': `${line('cmpl-acc', 'accepted')}\n{"v":1,"completion_id":"cmpl-to`,
      'notes.txt': 'not a feedback log',
    });
    const items = await all(readFeedback(input(dir)));
    const records = items.filter((i) => !isMalformed(i));
    expect(records).toEqual([
      expect.objectContaining({ content: `${PROMPT}${COMPLETION}\n\nprint(mean([1, 2]))\n`, path: 'feedback/cmpl-acc', repository: 'feedback:completions', source: 'prod-feedback' }),
      expect.objectContaining({ content: `${PROMPT}    return sum(values) / len(values)\n`, path: 'feedback/cmpl-edit', repository: 'feedback:completions', source: 'prod-feedback' }),
    ]);
    expect(reasons(items)).toEqual(['feedback-rejected', 'feedback-no-context', 'feedback-expired', 'feedback-bad-record', 'feedback-duplicate', 'feedback-torn']);
    // Every line of the logs is an item: the ledger will account for each.
    expect(items).toHaveLength(8);
  });

  it('applies since in hours, days or weeks against received_at', async () => {
    const dir = logDir('since', { 'feedback-20261130T000000Z-1-0.jsonl': `${line('a', 'accepted', { at: daysAgo(0.5) })}\n${line('b', 'accepted', { at: daysAgo(3) })}\n${line('c', 'accepted', { at: daysAgo(10) })}\n` });
    const kept = async (since: string) => (await all(readFeedback(input(dir, { since })))).filter((i) => !isMalformed(i)).map((i) => (i as { path: string }).path);
    expect(await kept('24h')).toEqual(['feedback/a']);
    expect(await kept('1w')).toEqual(['feedback/a', 'feedback/b']);
    expect(await kept('2w')).toEqual(['feedback/a', 'feedback/b', 'feedback/c']);
  });

  it('keeps only prompts accepted at least min_acceptance of the time (accepted + edited over all their feedback)', async () => {
    const other = 'function add(a, b) {\n';
    const dir = logDir('acceptance', {
      'feedback-20261130T000000Z-1-0.jsonl': [
        // PROMPT: 2 of 3 accepted (0.67); other: 1 of 4 (0.25).
        line('p1', 'accepted'),
        line('p2', 'edited', { final_text: '    return 0\n' }),
        line('p3', 'rejected'),
        line('o1', 'accepted', { prompt: other, completion: '  return a + b;\n}\n' }),
        line('o2', 'rejected', { prompt: other }),
        line('o3', 'rejected', { prompt: other }),
        line('o4', 'rejected', { prompt: other }),
        '',
      ].join('\n'),
    });
    const at = async (minAcceptance: number) => {
      const items = await all(readFeedback(input(dir, { minAcceptance })));
      return { kept: items.filter((i) => !isMalformed(i)).map((i) => (i as { path: string }).path), dropped: reasons(items) };
    };
    expect((await at(0)).kept).toEqual(['feedback/p1', 'feedback/p2', 'feedback/o1']);
    expect(await at(0.5)).toEqual({ kept: ['feedback/p1', 'feedback/p2'], dropped: ['feedback-rejected', 'feedback-low-acceptance', 'feedback-rejected', 'feedback-rejected', 'feedback-rejected'] });
    expect((await at(0.7)).kept).toEqual([]);
  });

  it('reads a log that does not exist yet as no records', async () => {
    expect(await all(readFeedback(input(join(tmp, 'nowhere'))))).toEqual([]);
  });
});

describe('data prep with a feedback source', () => {
  it('writes accepted completions into the cleaned shard with their source, and the manifest counts every dropped line by reason', async () => {
    const body = (i: number) => `    values = [v for v in values if v is not None]\n    return sum(values) / max(len(values), ${i})\n`;
    const dir = logDir('prep', {
      'feedback-20261130T000000Z-1-0.jsonl': [
        line('cmpl-1', 'accepted', { completion: body(1) }),
        line('cmpl-2', 'accepted', { completion: body(2) }),
        line('cmpl-3', 'rejected'),
        line('cmpl-4', 'accepted', { context: null }),
        '',
      ].join('\n'),
    });
    const out = join(tmp, 'prep-out');
    const m = await prepare({ inputs: [input(dir)], output: out, near: false, workers: 0 });
    expect(m.inputs).toEqual(['feedback://completions?since=30d']);
    expect(m.records).toMatchObject({ recordsIn: 4, kept: 2, dropped: { 'feedback-no-context': 1, 'feedback-rejected': 1 } });
    const rows = zstdDecompressSync(readFileSync(join(out, 'shard-00000.jsonl.zst'))).toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows).toEqual([
      { content: PROMPT + body(1), path: 'feedback/cmpl-1', language: null, repository: 'feedback:completions', source: 'prod-feedback' },
      { content: PROMPT + body(2), path: 'feedback/cmpl-2', language: null, repository: 'feedback:completions', source: 'prod-feedback' },
    ]);
    expect(readFileSync(join(out, 'shard-00000.report.html'), 'utf8')).toContain('feedback-rejected');
  });
});

describe('the data-prep stage with a feedback source', () => {
  it('reads the feedback under the storage root its output is planned under', async () => {
    const spec = load(new URL('../../../configs/tiny.yaml', import.meta.url).pathname).spec!;
    const root = join(tmp, 'stage-root');
    const dir = join(root, 'feedback', 'completions');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'feedback-20261130T000000Z-1-0.jsonl'), `${line('cmpl-s1', 'accepted', { at: new Date().toISOString() })}\n${line('cmpl-s2', 'rejected', { at: new Date().toISOString() })}\n`);
    const run = `file://${root}/tiny/runs/r-0123456789ab`;
    const config = {
      sources: [{ type: 'feedback', name: 'prod-feedback', target: 'completions', since: '30d', min_acceptance: 0, weight: 1, format: 'jsonl' }],
      preprocessing: { ...spec.data.preprocessing, shards: 1 },
      output: `${run}/data/shards/`,
      manifests: `${run}/data/manifests/`,
    };
    writeFileSync(join(tmp, 'stage.json'), JSON.stringify(config));
    const logs: string[] = [];
    const r = await runStage(join(tmp, 'stage.json'), { env: { KILN_TERMINATION_LOG: join(tmp, 'termination-log') }, log: (m) => logs.push(m) });
    expect(logs.filter((l) => l.includes('feedback'))).toEqual([]);
    expect(r.manifest?.records).toMatchObject({ recordsIn: 2, kept: 1, dropped: { 'feedback-rejected': 1 } });
    expect(r.summary.metrics).toMatchObject({ records_in: 2, records_out: 1, dropped_feedback_rejected: 1 });
  });
});

describe('optionsFrom: feedback sources', () => {
  const spec = load(new URL('../../../configs/tiny.yaml', import.meta.url).pathname).spec!;
  const source: FeedbackSource = { type: 'feedback', name: 'prod-feedback', target: 'completions', since: '7d', min_acceptance: 0.5, weight: 2, format: 'jsonl' };

  it('reads <storage root>/feedback/<target>/ with the source settings, and says when there is no feedback yet', () => {
    const root = join(tmp, 'root');
    const r = optionsFrom([source], spec.data.preprocessing, [], '/nowhere', { storageRoot: root });
    expect(r.options.inputs).toEqual([{ kind: 'feedback', source: 'prod-feedback', target: 'completions', dir: join(root, 'feedback', 'completions'), since: '7d', minAcceptance: 0.5 }]);
    expect(r.warnings).toContainEqual(expect.stringMatching(/feedback source "prod-feedback": no feedback from serving target "completions" yet/));
    mkdirSync(join(root, 'feedback', 'completions'), { recursive: true });
    expect(optionsFrom([source], spec.data.preprocessing, [], '/nowhere', { storageRoot: root }).warnings.filter((w) => w.includes('feedback'))).toEqual([]);
  });

  it('says plainly that a feedback source is not read when the storage root is unknown', () => {
    const r = optionsFrom([source], spec.data.preprocessing, [], '/nowhere');
    expect(r.options.inputs).toEqual([]);
    expect(r.warnings).toContainEqual(expect.stringMatching(/feedback source "prod-feedback" is not read: the run's storage root is not known/));
  });

  it('finds the storage root from the output the plan gives the data-prep stage', () => {
    expect(storageRootOf('pvc://kiln-artifacts/tiny/runs/r-0123456789ab/data/shards/')).toBe('pvc://kiln-artifacts');
    expect(storageRootOf('file:///srv/kiln/tiny/runs/r-0123456789ab/data/shards/')).toBe('file:///srv/kiln');
    expect(storageRootOf('/tmp/out')).toBeUndefined();
  });
});
