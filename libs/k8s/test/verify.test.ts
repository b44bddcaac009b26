/**
 * The verification pod of a run's export: its shape (the export stage's image and placement, storage read-only,
 * no token), and its program run here with python3 over an export on disk (file:// URIs): a clean export, a file
 * changed on disk, a missing file, and a status digest that is not the manifest's.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { compileFile, modelDigest, type Plan } from '@kiln/plan';
import { VERIFY_SCRIPT, verifyPod, type VerifyReport } from '../src/index.ts';

const r = compileFile(fileURLToPath(new URL('../../../configs/tiny.yaml', import.meta.url)), { stack: 'local' });
const plan = r.plan as Plan;
const exportStage = plan.stages.find((s) => s.kind === 'export')!;

const dir = mkdtempSync(join(tmpdir(), 'kiln-verify-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const sha = (b: string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** An export on disk with its manifest; returns the manifest's file:// URI and its artifacts. */
function writeExport(name: string, files: Record<string, string>) {
  const root = join(dir, name);
  const artifacts = Object.entries(files).map(([n, body]) => {
    const path = join(root, n.includes('/') ? n : `hf/${n}`);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, body);
    return { name: n, uri: `file://${path}`, digest: sha(body), bytes: body.length };
  });
  const manifest = join(root, 'manifest.json');
  writeFileSync(manifest, JSON.stringify({ kind: 'kiln.stage-manifest/v1', stage: 'export', artifacts }));
  return { manifest: `file://${manifest}`, artifacts, root };
}

function verify(manifest: string, status: { name: string; digest?: string }[] = []): VerifyReport {
  const p = spawnSync('python3', ['-c', VERIFY_SCRIPT], { encoding: 'utf8', env: { ...process.env, KILN_VERIFY_MANIFEST: manifest, KILN_VERIFY_STATUS: JSON.stringify(status) } });
  expect(p.status, p.stderr).toBe(0);
  return JSON.parse(p.stdout) as VerifyReport;
}

const FILES = { 'config.json': '{"a":1}', 'model.safetensors': 'weights', 'completions/kiln/config.pbtxt': 'name: "kiln"', 'eval/kiln/config.pbtxt': 'eval' };

describe('verifyPod', () => {
  it("runs the program in the export stage's image and place, with the run's storage read-only and no token", () => {
    const pod = verifyPod(plan, exportStage, [{ name: 'config.json', digest: sha('x') }], 'abc123');
    const spec = pod.spec!;
    const c = spec.containers[0]!;
    expect(pod.metadata!.namespace).toBe(plan.namespace);
    expect(spec.restartPolicy).toBe('Never');
    expect(spec.automountServiceAccountToken).toBe(false);
    expect(c.image).toBe(exportStage.image);
    expect(c.command).toEqual(['python3', '-c', VERIFY_SCRIPT]);
    expect(spec.nodeSelector).toEqual(exportStage.placement.nodeSelector);
    expect(c.volumeMounts).toEqual([{ name: 'artifacts', mountPath: '/artifacts', readOnly: true }]);
    expect(c.env).toContainEqual({ name: 'KILN_VERIFY_MANIFEST', value: exportStage.manifest });
    expect(JSON.parse(c.env!.find((e) => e.name === 'KILN_VERIFY_STATUS')!.value!)).toEqual([{ name: 'config.json', digest: sha('x') }]);
  });
});

describe('the verification program', () => {
  it('passes a clean export, with the model digest of @kiln/plan over every file but the eval repository', () => {
    const e = writeExport('clean', FILES);
    const v = verify(e.manifest, e.artifacts.slice(0, 2));
    expect(v).toMatchObject({ ok: true, files: 3, mismatches: [], unverified: [] });
    expect(v.digest).toBe(modelDigest(e.artifacts));
  });

  it('names a file changed on disk, a missing file, and a status digest that is not the manifest\'s', () => {
    const e = writeExport('bad', FILES);
    writeFileSync(join(e.root, 'hf', 'model.safetensors'), 'tampered');
    expect(verify(e.manifest).mismatches).toEqual([`model.safetensors: ${sha('tampered')} on disk, ${sha('weights')} in the manifest`]);
    rmSync(join(e.root, 'hf', 'config.json'));
    const v = verify(e.manifest, [{ name: 'completions/kiln/config.pbtxt', digest: sha('other') }]);
    expect(v.ok).toBe(false);
    expect(v.digest).toBeNull();
    expect(v.mismatches[0]).toMatch(/^config\.json: missing/);
    expect(v.mismatches).toContain(`completions/kiln/config.pbtxt: ${sha('other')} in the run's status, ${sha('name: "kiln"')} in the manifest`);
  });

  it('says so when the manifest cannot be read', () => {
    expect(verify(`file://${join(dir, 'nope.json')}`)).toMatchObject({ ok: false, digest: null, mismatches: [expect.stringContaining('is not readable here')] });
  });
});
