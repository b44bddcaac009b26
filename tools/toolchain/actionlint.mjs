#!/usr/bin/env node
// actionlint, the GitHub Actions workflow checker, built from its Go module through the module proxy into a
// cache outside the repository keyed by its version, then run:
//
//   node tools/toolchain/actionlint.mjs [files...]   (default: .github/workflows/*.yml and *.yaml)
//
// The build follows the local-cluster toolchain's Go conventions (tools/local-cluster/src/toolchain.ts):
// GOPROXY, GOCACHE and GOMODCACHE come from the environment (`go env`), CGO is off, GOFLAGS=-mod=mod.
// This file is deliberately not a .go/.json/go.mod file: the toolchain's cache key hashes those under
// tools/toolchain/, and actionlint has its own cache entry. Exit code: actionlint's (0 clean, 1 findings,
// 2 bad invocation, 3 its own failure); 4 when it cannot be built.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ACTIONLINT = { module: 'github.com/rhysd/actionlint', version: 'v1.7.12', pkg: 'cmd/actionlint' };

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Where the binary lives: $KILN_TOOLS_DIR, else $XDG_CACHE_HOME/kiln/tools, else ~/.cache/kiln/tools; one folder per version. */
export function actionlintPath(env = process.env) {
  const tools = env.KILN_TOOLS_DIR || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'kiln', 'tools');
  return join(tools, `actionlint-${ACTIONLINT.version}`, 'actionlint');
}

/**
 * The binary, built first when it is missing. The build goes to a private GOBIN and is renamed into place, so
 * two processes building at once both end with a complete binary. Returns `{ path, built, ms }`; throws with
 * go's output when the build fails.
 */
export function ensureActionlint(env = process.env, log = (m) => console.error(m)) {
  const path = actionlintPath(env);
  if (existsSync(path)) return { path, built: false, ms: 0 };
  const dir = join(path, '..');
  const gobin = join(dir, `.partial-${process.pid}`);
  mkdirSync(gobin, { recursive: true });
  const target = `${ACTIONLINT.module}/${ACTIONLINT.pkg}@${ACTIONLINT.version}`;
  log(`actionlint: building ${target} into ${dir} (once per version)`);
  const t0 = Date.now();
  const r = spawnSync('go', ['install', '-trimpath', '-ldflags', '-s -w', target], {
    cwd: dir, // outside any module: `go install pkg@version` ignores the repository's go.mod files
    env: { ...env, CGO_ENABLED: '0', GOFLAGS: '-mod=mod', GOBIN: gobin },
    encoding: 'utf8',
  });
  try {
    if (r.error) throw new Error(`actionlint: cannot run go (${r.error.message}); install Go 1.24 or later to build ${target}`);
    if (r.status !== 0) throw new Error(`actionlint: \`go install ${target}\` failed (exit ${r.status}):\n${r.stderr}${r.stdout}`);
    renameSync(join(gobin, 'actionlint'), path);
  } finally {
    rmSync(gobin, { recursive: true, force: true });
  }
  const ms = Date.now() - t0;
  log(`actionlint: built in ${(ms / 1000).toFixed(1)}s`);
  return { path, built: true, ms };
}

/** The repository's workflow files, relative to the root. */
export function workflowFiles(dir = join(root, '.github', 'workflows')) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => join(dir, f));
}

/**
 * Runs actionlint on `files`; `{ code, out }`. Shellcheck and pyflakes are turned off so that findings do not
 * depend on what else the machine has installed; `-no-color` keeps the output plain for tests and CI logs.
 */
export function runActionlint(files, env = process.env) {
  const { path } = ensureActionlint(env);
  const r = spawnSync(path, ['-no-color', '-shellcheck=', '-pyflakes=', ...files], { cwd: root, env, encoding: 'utf8' });
  if (r.error) throw r.error;
  return { code: r.status ?? 3, out: `${r.stdout}${r.stderr}` };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const files = process.argv.slice(2);
  try {
    const list = files.length ? files : workflowFiles();
    if (list.length === 0) {
      console.error('actionlint: no workflow files under .github/workflows');
      process.exit(0);
    }
    const r = runActionlint(list);
    process.stdout.write(r.out);
    process.exit(r.code);
  } catch (e) {
    console.error(e.message);
    process.exit(4);
  }
}
