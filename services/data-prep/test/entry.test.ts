import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../bin/kiln-data-prep.js', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'kiln-data-prep-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function run(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: tmp, encoding: 'utf8', env: { ...process.env, KILN_TERMINATION_LOG: join(tmp, 'termination-log'), KILN_STORAGE_ROOT: join(tmp, 'artifacts') }, timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('kiln-data-prep (the stage entry, without the kiln CLI)', () => {
  it('fails as a terminal error (exit 2) on a config the stage cannot use, says why, and leaves it in the termination log', () => {
    const config = join(tmp, 'stage.json');
    writeFileSync(config, '{"output": "pvc://artifacts/x"}');
    const r = run(['--config', config]);
    expect(r.code, r.err).toBe(2);
    expect(r.err).toContain(`kiln-data-prep: ${config} is not a valid data-prep config: /sources is missing`);
    expect(r.err).not.toMatch(/^\s+at /m);
    expect(JSON.parse(readFileSync(join(tmp, 'termination-log'), 'utf8')).error).toContain('/sources is missing');
  }, 60_000);

  it('says what it is with --help (exit 0), and exits 2 without --config or with an unknown option', () => {
    const help = run(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^Usage: kiln-data-prep .*--config stage\.json/);
    const none = run([]);
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/--config FILE is required/);
    expect(run(['--config', 'x.json', '--frob']).code).toBe(2);
  });
});
