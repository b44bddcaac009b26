#!/usr/bin/env node
// Runs `npm run demo` and `npm test` on a fresh clone: installs the dependencies when they are missing or older
// than package-lock.json, then runs the task on the Node 24 that the `node` devDependency provides (the
// machine's own Node may be older). Written for any Node >= 18, without dependencies.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = join(root, 'node_modules', '.bin');
const [task, ...args] = process.argv.slice(2);

const TASKS = {
  demo: () => run(join(bin, 'node'), [join(root, 'tools/kiln/bin/kiln.js'), 'demo', ...args]),
  kiln: () => run(join(bin, 'node'), [join(root, 'tools/kiln/bin/kiln.js'), ...args]),
  test: () => {
    const status = run(join(bin, 'nx'), ['run-many', '-t', 'typecheck', 'lint', 'test', 'integration', '--outputStyle=stream', ...args]);
    run(join(bin, 'node'), [join(root, 'tools/test-summary.mjs')]);
    return status;
  },
};

function run(cmd, argv) {
  const env = { ...process.env, PATH: `${bin}${delimiter}${process.env.PATH ?? ''}`, NX_NO_CLOUD: 'true' };
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit', env });
  if (r.error) {
    console.error(`kiln: cannot run ${cmd}: ${r.error.message}`);
    return 1;
  }
  return r.status ?? 1;
}

function installed() {
  const hidden = join(root, 'node_modules', '.package-lock.json');
  if (!existsSync(hidden) || !existsSync(join(bin, 'node')) || !existsSync(join(bin, 'nx'))) return false;
  return statSync(hidden).mtimeMs >= statSync(join(root, 'package-lock.json')).mtimeMs;
}

if (!TASKS[task]) {
  console.error(`usage: node tools/bootstrap.mjs <${Object.keys(TASKS).join('|')}> [args...]`);
  process.exit(2);
}
if (!installed()) {
  console.error('kiln: installing dependencies (npm ci), once per change of package-lock.json ...');
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error('kiln: `npm ci` failed; see the output above.');
    process.exit(r.status ?? 1);
  }
}
process.exit(TASKS[task]());
