import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../bin/kiln.js', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'kiln-data-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const kiln = (...args: string[]) => {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: tmp, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

const code = (i: number) => `"""Module ${i}: helpers for the reporting service."""\n\nimport os\n\n\ndef total_${i}(values):\n    """Sum the values that are set."""\n    result = 0\n    for v in values:\n        if v is not None:\n            result += v * ${i}\n    return result\n\n\ndef describe_${i}(name):\n    return "%s has %d items" % (name, len(os.listdir(".")) + ${i})\n`;

describe('kiln data prep --config (as the pipeline stage)', () => {
  it('reads the stage config the controller mounts, writes its shard under the run storage, and reports a summary', async () => {
    const { compileFile } = await import('@kiln/plan');
    const { stageObjects } = await import('@kiln/k8s');
    const plan = compileFile(fileURLToPath(new URL('../../../configs/tiny.yaml', import.meta.url)), { stack: 'dev' }).plan!;
    const stage = plan.stages.find((x) => x.name === 'data-prep')!;
    const config = JSON.parse(stageObjects(plan, stage).configMap.data!['stage.json']!) as Record<string, unknown>;
    // The pod's view: sources mounted at an absolute path, storage on the claim under KILN_STORAGE_ROOT.
    const work = join(tmp, 'stage');
    mkdirSync(join(work, 'code'), { recursive: true });
    for (let i = 0; i < 6; i++) writeFileSync(join(work, 'code', `m${i}.py`), code(i));
    (config.sources as { path: string }[])[0]!.path = join(work, 'code');
    writeFileSync(join(work, 'stage.json'), JSON.stringify(config));
    const env = { ...process.env, NO_COLOR: '1', KILN_STORAGE_ROOT: join(work, 'artifacts'), KILN_TERMINATION_LOG: join(work, 'termination-log') };
    const run = (index: number) => spawnSync(process.execPath, [bin, 'data', 'prep', '--config', join(work, 'stage.json')], { encoding: 'utf8', env: { ...env, JOB_COMPLETION_INDEX: String(index) } });
    const rel = `${plan.name}/runs/${plan.runId}`;
    // tiny has 2 shards and near dedup: each data-prep pod maps its shard; the dedup stage finishes them.
    const { check } = await import('@kiln/stage');
    const totals = [0, 1].map((i) => {
      const r = run(i);
      expect(r.status, r.stderr).toBe(0);
      const summary = JSON.parse(readFileSync(join(work, 'termination-log'), 'utf8')) as { shard: number; phase: string; metrics: { records_in: number; candidates: number } };
      // Each real summary conforms to schemas/stages/summary.schema.json.
      expect(check('summary', summary)).toEqual([]);
      expect(summary).toMatchObject({ shard: i, phase: 'map' });
      return summary.metrics.records_in;
    });
    // Between them they read each of the 6 files once.
    expect(totals[0]! + totals[1]!).toBe(6);
    const dedupStage = plan.stages.find((x) => x.name === 'dedup')!;
    writeFileSync(join(work, 'dedup.json'), stageObjects(plan, dedupStage).configMap.data!['stage.json']!);
    const d = spawnSync(process.execPath, [bin, 'data', 'dedup', '--config', join(work, 'dedup.json')], { encoding: 'utf8', env });
    expect(d.status, d.stderr).toBe(0);
    const summary = JSON.parse(readFileSync(join(work, 'termination-log'), 'utf8')) as { metrics: Record<string, number>; artifacts: { uri: string; digest: string }[] };
    expect(check('summary', summary)).toEqual([]);
    expect(summary.metrics).toMatchObject({ shards: 2, records_in: 6 });
    expect(summary.artifacts.map((a) => a.uri)).toEqual([0, 1].map((i) => `${plan.storagePrefix}/data/shards/shard-0000${i}.jsonl.zst`));
    for (const a of summary.artifacts) expect(a.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    for (const i of [0, 1]) expect(JSON.parse(readFileSync(join(work, 'artifacts', rel, 'data', 'manifests', `shard-0000${i}.manifest.json`), 'utf8'))).toMatchObject({ shard: i, nearDedup: { shards: 2 } });
    // A dedup stage that finds a shard unmapped fails terminally (exit 2): the data-prep stage must run again.
    const again = spawnSync(process.execPath, [bin, 'data', 'dedup', '--config', join(work, 'dedup.json')], { encoding: 'utf8', env });
    expect(again.status).toBe(2);
    const failed = JSON.parse(readFileSync(join(work, 'termination-log'), 'utf8')) as { error: string };
    expect(failed.error).toMatch(/no mapped shards|have not been mapped/);
    expect(check('summary', failed)).toEqual([]);
  });

  it('in one shard, reports the cleaned shard with its digest in a summary that conforms to the contract', async () => {
    const { compileFile } = await import('@kiln/plan');
    const { check } = await import('@kiln/stage');
    const plan = compileFile(fileURLToPath(new URL('../../../configs/tiny.yaml', import.meta.url))).plan!;
    const planned = JSON.parse(JSON.stringify(plan.stages.find((x) => x.kind === 'data-prep')!.config)) as { phase?: string; sources: { path: string }[]; preprocessing: Record<string, unknown> };
    const work = join(tmp, 'one-shard');
    mkdirSync(join(work, 'code'), { recursive: true });
    for (let i = 0; i < 4; i++) writeFileSync(join(work, 'code', `m${i}.py`), code(i));
    // One shard: no map phase, the stage dedups and writes its shard itself.
    const { phase: _phase, ...config } = { ...planned, sources: [{ ...planned.sources[0]!, path: join(work, 'code') }], preprocessing: { ...planned.preprocessing, shards: 1 } };
    writeFileSync(join(work, 'stage.json'), JSON.stringify({ ...config, attempt: 1, resume: false, upstream: {} }));
    const r = spawnSync(process.execPath, [bin, 'data', 'prep', '--config', join(work, 'stage.json')], { encoding: 'utf8', env: { ...process.env, KILN_STORAGE_ROOT: join(work, 'artifacts'), KILN_TERMINATION_LOG: join(work, 'termination-log') } });
    expect(r.status, r.stderr).toBe(0);
    const summary = JSON.parse(readFileSync(join(work, 'termination-log'), 'utf8')) as { metrics: Record<string, number>; artifacts: { digest: string; bytes: number }[] };
    expect(check('summary', summary)).toEqual([]);
    expect(summary.metrics.records_in).toBe(4);
    expect(summary.metrics.records_out).toBeGreaterThan(0);
    expect(summary.artifacts).toHaveLength(1);
    expect(summary.artifacts[0]!.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('fails as a terminal error (exit 2) on a config it cannot use, and says why in the termination log', async () => {
    const { compileFile } = await import('@kiln/plan');
    const plan = compileFile(fileURLToPath(new URL('../../../configs/tiny.yaml', import.meta.url))).plan!;
    const config = plan.stages.find((x) => x.kind === 'data-prep')!.config;
    const work = join(tmp, 'bad-stage');
    mkdirSync(work, { recursive: true });
    const run = (c: unknown) => {
      writeFileSync(join(work, 'stage.json'), JSON.stringify(c));
      const r = spawnSync(process.execPath, [bin, 'data', 'prep', '--config', join(work, 'stage.json')], { encoding: 'utf8', env: { ...process.env, KILN_TERMINATION_LOG: join(work, 'term') } });
      return { status: r.status, stderr: r.stderr, error: (JSON.parse(readFileSync(join(work, 'term'), 'utf8')) as { error: string }).error };
    };
    // A storage the stage cannot reach as files.
    const s3 = run({ ...config, output: 's3://bucket/x/', manifests: 's3://bucket/m/' });
    expect(s3.status).toBe(2);
    expect(s3.error).toMatch(/s3:\/\/ is not written by data prep yet/);
    // A config that does not match schemas/stages/data-prep.schema.json: the field is named, before any work.
    const bad = run({ ...config, preprocessing: { ...config.preprocessing, shards: 'two' }, manifests: undefined });
    expect(bad.status).toBe(2);
    expect(bad.error).toMatch(/is not a valid data-prep config: .*\/preprocessing\/shards must be integer/);
    expect(bad.error).toMatch(/\/manifests is missing/);
    expect(bad.stderr).toMatch(/\/manifests is missing/);
    expect(bad.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('kiln data prep', () => {
  it('cleans a directory and a JSON Lines file into a shard and a manifest that account for every record', () => {
    const src = join(tmp, 'src');
    mkdirSync(src);
    for (let i = 0; i < 5; i++) writeFileSync(join(src, `m${i}.py`), code(i));
    writeFileSync(join(src, 'dup.py'), code(0));
    writeFileSync(join(src, 'owner.py'), `${code(9)}\nOWNER = "ops-team@example-corp.io"\n`);
    writeFileSync(join(tmp, 'more.jsonl'), `${JSON.stringify({ content: code(7), path: 'x/seven.py' })}\nnot json\n`);
    const r = kiln('data', 'prep', '--input', 'src', '--input', 'more.jsonl', '--output', 'out', '--json');
    expect(r.code, r.err).toBe(0);
    const m = JSON.parse(r.out) as { records: { recordsIn: number; kept: number; dropped: Record<string, number> }; pii: Record<string, number>; outputs: { path: string }[] };
    expect(m.records.recordsIn).toBe(9);
    expect(m.records.dropped['exact-duplicate']).toBe(1);
    expect(m.records.dropped['bad-json']).toBe(1);
    expect(m.records.kept + Object.values(m.records.dropped).reduce((a, b) => a + b, 0)).toBe(9);
    expect(m.pii.email).toBe(1);
    expect(JSON.parse(readFileSync(join(tmp, 'out', 'shard-00000.manifest.json'), 'utf8'))).toEqual(m);
    const text = kiln('data', 'prep', '--input', 'src', '--output', 'out2');
    expect(text.code).toBe(0);
    expect(text.out).toMatch(/^shard 0: 7 records in .*, \d+ kept/);
    expect(text.out).toMatch(/dropped\s+1\s+exact-duplicate/);
  });

  it('says what is wrong with its arguments (exit 2) or its inputs (exit 1), without a stack trace', () => {
    expect(kiln('data', 'prep', '--output', 'o').code).toBe(2);
    expect(kiln('data', 'prep', '--input', 'src').err).toContain('--output DIR is required');
    expect(kiln('data', 'frob').code).toBe(2);
    expect(kiln('data', 'prep', '--spec', 'x.yaml', '--shard', '3/2', '--output', 'o').err).toContain('--shard takes i/N');
    const missing = kiln('data', 'prep', '--input', 'nope', '--output', 'o');
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/cannot read .*nope: no such file or directory/);
    expect(missing.err).not.toMatch(/^\s+at /m);
  });

  it('reads a spec\'s local sources and settings, and says which sources it cannot read', () => {
    // configs/tiny.yaml with its local source pointing at src/ next to the spec (paths are relative to the spec).
    const tiny = readFileSync(fileURLToPath(new URL('../../../configs/tiny.yaml', import.meta.url)), 'utf8');
    writeFileSync(join(tmp, 'kiln.yaml'), tiny.replace('path: .', 'path: src'));
    const shards = [0, 1].map((i) => kiln('data', 'prep', '--spec', 'kiln.yaml', '--stack', 'dev', '--shard', `${i}/2`, '--output', 'spec-out', '--json'));
    for (const r of shards) expect(r.code, r.err).toBe(0);
    const ms = shards.map((r) => JSON.parse(r.out) as { shard: number; records: { recordsIn: number } });
    expect(ms.map((m) => m.shard)).toEqual([0, 1]);
    // The two shards split the 7 files between them, each file to exactly one.
    expect(ms[0]!.records.recordsIn + ms[1]!.records.recordsIn).toBe(7);
    // tiny's humaneval suite names no path: the copy of HumanEval in the repository is used, so no warning.
    expect(shards[0]!.err).not.toMatch(/not decontaminated/);
    // Mapped, not final: the text form says what to run next; dedup refuses a shard count it has not seen.
    const text = kiln('data', 'prep', '--spec', 'kiln.yaml', '--stack', 'dev', '--shard', '1/2', '--output', 'spec-out');
    expect(text.out).toMatch(/shard 1 of 2 mapped: \d+ records in/);
    expect(text.out).toContain('kiln data dedup --output spec-out');
    const three = kiln('data', 'dedup', '--output', 'spec-out', '--shards', '3');
    expect(three.code).toBe(1);
    expect(three.err).toContain('shards 2 of 3 have not been mapped');
    const d = kiln('data', 'dedup', '--output', 'spec-out', '--shards', '2');
    expect(d.code, d.err).toBe(0);
    expect(d.out).toMatch(/^2 shards: \d+ signed records, \d+ clusters of near duplicates/);
    expect(d.out).toMatch(/kept \d+ of 7 records/);
    const recs = [0, 1].map((i) => (JSON.parse(readFileSync(join(tmp, 'spec-out', `shard-0000${i}.manifest.json`), 'utf8')) as { records: { recordsIn: number; kept: number; dropped: Record<string, number> } }).records);
    // Every record of both shards is accounted for, and the text names each reason with its total.
    expect(recs.reduce((a, x) => a + x.recordsIn, 0)).toBe(7);
    expect(recs.reduce((a, x) => a + x.kept + Object.values(x.dropped).reduce((p, q) => p + q, 0), 0)).toBe(7);
    for (const reason of new Set(recs.flatMap((x) => Object.keys(x.dropped)))) expect(d.out).toMatch(new RegExp(`dropped\\s+${recs.reduce((a, x) => a + (x.dropped[reason] ?? 0), 0)}\\s+${reason}`));
    expect(readdirSync(join(tmp, 'spec-out')).sort()).toEqual(['near-dedup.json', 'shard-00000.jsonl.zst', 'shard-00000.manifest.json', 'shard-00000.report.html', 'shard-00001.jsonl.zst', 'shard-00001.manifest.json', 'shard-00001.report.html']);
    expect(kiln('data', 'dedup').code).toBe(2);
  });
});
