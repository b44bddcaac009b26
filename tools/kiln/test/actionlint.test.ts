import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

// actionlint (github.com/rhysd/actionlint, built from the Go module proxy into a cache outside the repository by
// tools/toolchain/actionlint.mjs) checks every workflow of .github/workflows; any finding fails `npm test`.
const root = fileURLToPath(new URL('../../../', import.meta.url));
const script = join(root, 'tools/toolchain/actionlint.mjs');
const tmp = mkdtempSync(join(tmpdir(), 'kiln-actionlint-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const actionlint = (...files: string[]) => {
  const r = spawnSync(process.execPath, [script, ...files], { cwd: root, encoding: 'utf8', timeout: 590_000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
};

describe('actionlint', () => {
  // The first run may build actionlint (about 15–30 s cold on 2 cores, module downloads included).
  it('finds nothing in the repository\'s workflows', () => {
    const r = actionlint();
    expect(r.out.replace(/^actionlint: (building|built) .*\n/gm, '')).toBe('');
    expect(r.code).toBe(0);
  }, 600_000);

  it('fails on a broken workflow, naming the line and the mistake', () => {
    const bad = join(tmp, 'broken.yml');
    writeFileSync(
      bad,
      [
        'on: pull_request',
        'permissions: {}',
        'jobs:',
        '  plan:',
        '    runs-on: ubuntu-latest',
        '    steps:',
        '      - uses: actions/checkout@v4',
        '        with:',
        '          fetch-dept: 0',
        '      - run: echo "${{ secrets.KUBECONFIG }"',
        '',
      ].join('\n'),
    );
    const r = actionlint(bad);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/broken\.yml:9:11: input "fetch-dept" is not defined in action "actions\/checkout@v4"/);
    expect(r.out).toMatch(/broken\.yml:10:\d+: .*(unexpected|not closed|unterminated)/i);
  }, 600_000);
});
