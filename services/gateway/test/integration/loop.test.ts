/**
 * The loop back into data: a completion served by the real gateway (in front of a Triton upstream), accepted
 * through `POST /v1/feedback`, lands in the run's storage (`<storage>/feedback/<target>/`), and the next run's
 * data prep — `kiln data prep --spec` on a spec whose sources include `type: feedback` for that target — puts
 * the prompt and that completion into its cleaned shard.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { zstdDecompressSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.ts';
import { Gateway } from '../../src/gateway.ts';
import { startUpstreams, type Upstreams } from '../support/real-triton.ts';

const kilnBin = fileURLToPath(new URL('../../../../tools/kiln/bin/kiln.js', import.meta.url));
const KEY = 'kiln-loop-key-0123456789abcdef';
const tmp = mkdtempSync(join(tmpdir(), 'kiln-loop-'));
const storage = join(tmp, 'storage');
let upstreams: Upstreams;
let gateway: Gateway;
let url: string;

beforeAll(async () => {
  upstreams = await startUpstreams({ canary: false });
  writeFileSync(join(tmp, 'keys'), `${KEY}\n`);
  // Where the serving target's gateway pod writes: the run storage's feedback/<target>/ (contract §6).
  gateway = await Gateway.create(
    parseConfig({ model: 'completions', upstreams: [{ name: 'stable', url: upstreams.stable }], api_keys_file: join(tmp, 'keys'), feedback: { dir: join(storage, 'feedback', 'completions') }, health: { interval_ms: 200, timeout_ms: 2000 } }),
    { logStream: new PassThrough() },
  );
  url = await gateway.listen('127.0.0.1', 0);
}, 1_800_000);

afterAll(async () => {
  await gateway?.close();
  await upstreams?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const post = async (path: string, body: unknown) => {
  const r = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }, body: JSON.stringify(body) });
  return { status: r.status, json: (await r.json()) as Record<string, unknown> };
};

/** The tiny spec, reading only production feedback of its `completions` target, its storage in this test's folder. */
function spec(): string {
  const tiny = readFileSync(fileURLToPath(new URL('../../../../configs/tiny.yaml', import.meta.url)), 'utf8');
  const text = tiny
    .replace(/ {2}sources:\n(?: {4}.*\n)+/, '  sources:\n    - type: feedback\n      name: prod-feedback\n      target: completions\n      since: 7d\n      weight: 2\n')
    .replace(/uri: pvc:\/\/kiln-artifacts/, `uri: file://${storage}`);
  expect(text).toContain('type: feedback');
  expect(text).toContain(`uri: file://${storage}`);
  const file = join(tmp, 'kiln.yaml');
  writeFileSync(file, text);
  return file;
}

describe('feedback loop: from an accepted completion to the next run’s cleaned shard', () => {
  it('puts the accepted completion, after its prompt, into the cleaned data, tagged with the feedback source', async () => {
    const prompt = 'def clamp(value, low, high):\n    """Limit value to the range [low, high]."""\n';
    const c = await post('/v1/completions', { model: 'completions', prompt, max_tokens: 24, temperature: 0, seed: 1 });
    expect(c.status, JSON.stringify(c.json)).toBe(200);
    const id = c.json.id as string;
    const text = (c.json.choices as { text: string }[])[0]!.text;
    expect(text.length).toBeGreaterThan(0);
    // A second completion, rejected: it must not reach the data.
    const r = await post('/v1/completions', { model: 'completions', prompt: 'def unused():\n', max_tokens: 8, seed: 2 });
    expect((await post('/v1/feedback', { completion_id: id, outcome: 'accepted' })).json).toEqual({ status: 'recorded' });
    expect((await post('/v1/feedback', { completion_id: r.json.id, outcome: 'rejected' })).json).toEqual({ status: 'recorded' });

    const out = join(tmp, 'next-run');
    const prep = spawnSync(process.execPath, [kilnBin, 'data', 'prep', '--spec', spec(), '--output', out, '--json'], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 240_000 });
    expect(prep.status, prep.stderr).toBe(0);
    expect(prep.stderr).not.toMatch(/feedback source .* is not read|no feedback from serving target/);
    const manifest = JSON.parse(prep.stdout) as { inputs: string[]; records: { recordsIn: number; kept: number; dropped: Record<string, number> } };
    expect(manifest.inputs).toEqual(['feedback://completions?since=7d']);
    expect(manifest.records).toMatchObject({ recordsIn: 2, kept: 1, dropped: { 'feedback-rejected': 1 } });
    const rows = zstdDecompressSync(readFileSync(join(out, 'shard-00000.jsonl.zst'))).toString('utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(rows).toEqual([{ content: prompt + text, path: `feedback/${id}`, language: null, repository: 'feedback:completions', source: 'prod-feedback' }]);
  }, 300_000);
});
