import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BUNDLED_HUMANEVAL, canonicalJson, check, fitSummary, readStageConfig, StageConfigError, storagePath, TERMINATION_MESSAGE_MAX_BYTES, writeSummary, type StageSummary } from '../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-stage-io-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const digest = `sha256:${'ab'.repeat(32)}`;

describe('storage URIs', () => {
  it('GIVEN file:// and pvc:// WHEN mapped THEN local paths; other storage is refused with the stage named', () => {
    expect(storagePath('file:///var/lib/kiln/x/', 'data prep')).toBe('/var/lib/kiln/x/');
    expect(storagePath('pvc://kiln-artifacts/tiny/runs/r-1/data/', 'data prep', { KILN_STORAGE_ROOT: '/mnt/a' })).toBe('/mnt/a/tiny/runs/r-1/data/');
    expect(storagePath('pvc://kiln-artifacts/x', 'data prep', {})).toBe('/artifacts/x');
    expect(() => storagePath('s3://bucket/x', 'the eval runner')).toThrow(new StageConfigError('storage s3:// is not written by the eval runner yet; use pvc:// or file://'));
  });
});

describe('readStageConfig', () => {
  const f = join(dir, 'stage.json');
  it('GIVEN a config that conforms WHEN read THEN it comes back as it is', () => {
    writeFileSync(f, JSON.stringify({ input: 'file:///x/', manifests: 'file:///m/', shards: 2, attempt: 1, upstream: {} }));
    expect(readStageConfig('dedup', f)).toEqual({ input: 'file:///x/', manifests: 'file:///m/', shards: 2, attempt: 1, upstream: {} });
  });

  it('GIVEN a missing field WHEN read THEN a StageConfigError names it as a JSON pointer', () => {
    writeFileSync(f, JSON.stringify({ input: 'file:///x/', shards: 2 }));
    expect(() => readStageConfig('dedup', f)).toThrow(StageConfigError);
    expect(() => readStageConfig('dedup', f)).toThrow(`${f} is not a valid dedup config: /manifests is missing`);
  });

  it('GIVEN a field of the wrong type, a nested one, or an unknown one WHEN read THEN each is named with what is wrong', () => {
    writeFileSync(f, JSON.stringify({ input: 'file:///x/', manifests: 'file:///m/', shards: '2', extra: true }));
    expect(() => readStageConfig('dedup', f)).toThrow(/\/shards must be integer; \/extra is not a field of this config/);
    writeFileSync(f, JSON.stringify({ suite: { name: 'humaneval' }, endpoint: 'http://m:8000', output: 'file:///o/' }));
    expect(() => readStageConfig('eval', f)).toThrow(/\/suite\/benchmark is missing/);
    writeFileSync(f, JSON.stringify({ input: 'bucket/x', manifests: 'file:///m/', shards: 1 }));
    expect(() => readStageConfig('dedup', f)).toThrow(/\/input must match pattern/);
  });

  it('GIVEN the controller\'s envelope with a bad upstream summary WHEN read THEN the pointer goes into it', () => {
    writeFileSync(f, JSON.stringify({ input: 'file:///x/', manifests: 'file:///m/', shards: 1, upstream: { 'data-prep': { summary: { metrics: { n: 'many' } }, manifest: 'm' } } }));
    expect(() => readStageConfig('dedup', f)).toThrow(/\/upstream\/data-prep\/summary\/metrics\/n must be number/);
  });

  it('GIVEN a file that is not JSON or not there WHEN read THEN it says it cannot read it', () => {
    writeFileSync(f, '{"input": ');
    expect(() => readStageConfig('dedup', f)).toThrow(StageConfigError);
    expect(() => readStageConfig('dedup', join(dir, 'none.json'))).toThrow(/cannot read the stage config .*none\.json/);
  });
});

describe('writeSummary', () => {
  it('GIVEN KILN_TERMINATION_LOG WHEN written THEN the summary is there, and outside a pod it is quiet', () => {
    const f = join(dir, 'term');
    writeSummary({ metrics: { ok: 1 } }, { KILN_TERMINATION_LOG: f });
    expect(readFileSync(f, 'utf8')).toBe('{"metrics":{"ok":1}}');
    expect(() => writeSummary({ error: 'x' }, { KILN_TERMINATION_LOG: join(dir, 'no', 'such', 'dir') })).not.toThrow();
  });

  it('GIVEN a summary too long for 4096 bytes WHEN fitted THEN warnings go first, then artifacts from the end, and it says so', () => {
    const artifacts = Array.from({ length: 40 }, (_, i) => ({ name: `shard-${i}`, uri: `pvc://kiln-artifacts/tiny/runs/r-0123456789ab/data/shards/shard-${String(i).padStart(5, '0')}.jsonl.zst`, digest, bytes: 1000 + i }));
    const s: StageSummary = { metrics: { records_in: 10, records_out: 9 }, artifacts, warnings: ['w'.repeat(150)] };
    const text = fitSummary(s);
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(TERMINATION_MESSAGE_MAX_BYTES);
    const fitted = JSON.parse(text) as StageSummary;
    expect(fitted).toMatchObject({ truncated: true, metrics: { records_in: 10, records_out: 9 } });
    expect(fitted.warnings).toBeUndefined();
    expect(fitted.artifacts!.length).toBeGreaterThan(10);
    expect(fitted.artifacts).toEqual(artifacts.slice(0, fitted.artifacts!.length));
    expect(check('summary', fitted)).toEqual([]);
    expect(fitSummary({ metrics: { a: 1 } })).toBe('{"metrics":{"a":1}}');
  });

  it('GIVEN an error message of multi-byte text beyond the limit WHEN fitted THEN it is cut, still valid JSON within the bytes', () => {
    const text = fitSummary({ error: 'é"\n'.repeat(3000) });
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(TERMINATION_MESSAGE_MAX_BYTES);
    expect(JSON.parse(text)).toMatchObject({ truncated: true, error: expect.stringMatching(/^(é"\n)+.*…$/s) });
  });
});

describe('canonicalJson', () => {
  it('GIVEN objects whose keys differ in order WHEN serialised THEN the text is the same, as JSON.stringify would write it sorted', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: null } })).toBe('{"a":{"c":null,"d":[2,{"e":0,"f":1}]},"b":1}');
    expect(canonicalJson({ a: undefined, b: [undefined, new Date(0)] })).toBe('{"b":[null,"1970-01-01T00:00:00.000Z"]}');
  });
});

describe('BUNDLED_HUMANEVAL', () => {
  it('is the repository\'s data/humaneval file', () => {
    expect(BUNDLED_HUMANEVAL.endsWith('/data/humaneval/HumanEval.jsonl.gz')).toBe(true);
    expect(existsSync(BUNDLED_HUMANEVAL)).toBe(true);
  });
});
