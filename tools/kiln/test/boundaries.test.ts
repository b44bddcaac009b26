import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));

// The layout table of ARCHITECTURE.md, top to bottom; imports may only point down it.
const ORDER = ['scope:schema', 'scope:spec', 'scope:stage', 'scope:plan', 'scope:k8s', 'scope:pulumi', 'scope:cluster', 'scope:controller', 'scope:data-prep', 'scope:eval-runner', 'scope:gateway', 'scope:stacks', 'scope:local-cluster', 'scope:cli', 'scope:bench'];

interface Constraint {
  sourceTag: string;
  onlyDependOnLibsWithTags: string[];
}

describe('module boundaries', () => {
  let constraints: Constraint[];
  beforeAll(async () => {
    // The boundary rule reads Nx's project graph; make sure one is cached.
    execFileSync(process.execPath, [fileURLToPath(new URL('../../../node_modules/nx/dist/bin/nx.js', import.meta.url)), 'show', 'projects'], { cwd: root, env: { ...process.env, NX_DAEMON: 'false' } });
    const config = (await import(new URL('../../../eslint.config.mjs', import.meta.url).href)).default as { rules?: Record<string, unknown> }[];
    const rule = config.find((c) => c.rules?.['@nx/enforce-module-boundaries'])!.rules!['@nx/enforce-module-boundaries'] as [string, { depConstraints: Constraint[] }];
    constraints = rule[1].depConstraints;
  });

  it('constrain every scope, and only let a layer import layers above it in the table', () => {
    for (const scope of ORDER) {
      const c = constraints.find((x) => x.sourceTag === scope);
      expect(c, scope).toBeDefined();
      for (const dep of c!.onlyDependOnLibsWithTags) expect(ORDER.indexOf(dep), `${scope} -> ${dep}`).toBeLessThan(ORDER.indexOf(scope));
    }
    expect(constraints.some((c) => c.onlyDependOnLibsWithTags.includes('*'))).toBe(false);
  });

  it('keep libraries from importing tools, services or stacks', () => {
    const lib = constraints.find((c) => c.sourceTag === 'type:lib')!;
    expect(lib.onlyDependOnLibsWithTags.sort()).toEqual(['type:lib', 'type:schema']);
  });

  it('make lint fail when libs/spec imports the CLI', async () => {
    const eslint = new ESLint({ cwd: root });
    const [result] = await eslint.lintText("import { main } from '@kiln/cli/src/cli.ts';\nexport const x = main;\n", { filePath: `${root}libs/spec/src/boundary-probe.ts` });
    expect(result!.messages.map((m) => m.ruleId)).toContain('@nx/enforce-module-boundaries');
  });

  it('make lint fail when libs/stage imports the plan or the spec: the contract sits below both', async () => {
    const eslint = new ESLint({ cwd: root });
    for (const probe of ["import { compile } from '@kiln/plan';\nexport const x = compile;\n", "import { load } from '@kiln/spec';\nexport const x = load;\n"]) {
      const [result] = await eslint.lintText(probe, { filePath: `${root}libs/stage/src/boundary-probe.ts` });
      expect(result!.messages.map((m) => m.ruleId), probe).toContain('@nx/enforce-module-boundaries');
    }
  });

  it('let every worker and the plan import the stage contract', async () => {
    const eslint = new ESLint({ cwd: root });
    for (const dir of ['libs/plan', 'libs/k8s', 'libs/cluster', 'services/controller', 'services/data-prep', 'services/eval-runner', 'tools/kiln']) {
      const [result] = await eslint.lintText("import { TERMINAL_EXIT } from '@kiln/stage';\nexport const x = TERMINAL_EXIT;\n", { filePath: `${root}${dir}/src/boundary-probe.ts` });
      expect(result!.messages, dir).toEqual([]);
    }
  });

  it('make lint fail when production code (src/) imports test support, and let tests import it', async () => {
    const eslint = new ESLint({ cwd: root });
    const code = "import { startFixtureServer } from '@kiln/eval-runner/test-support';\nexport const x = startFixtureServer;\n";
    const [src] = await eslint.lintText(code, { filePath: `${root}tools/kiln/src/boundary-probe.ts` });
    expect(src!.messages.map((m) => m.ruleId)).toContain('no-restricted-imports');
    const [rel] = await eslint.lintText("import { startFixtureServer } from '../test/support/fixture-server.ts';\nexport const x = startFixtureServer;\n", { filePath: `${root}services/eval-runner/src/boundary-probe.ts` });
    expect(rel!.messages.map((m) => m.ruleId)).toContain('no-restricted-imports');
    const [test] = await eslint.lintText(code, { filePath: `${root}tools/kiln/test/boundary-probe.ts` });
    expect(test!.messages).toEqual([]);
  });

  it('make lint fail when the local cluster imports the CLI or a service', async () => {
    const eslint = new ESLint({ cwd: root });
    for (const probe of ["import { main } from '@kiln/cli/src/cli.ts';\nexport const x = main;\n", "import { Controller } from '@kiln/controller';\nexport const x = Controller;\n"]) {
      const [result] = await eslint.lintText(probe, { filePath: `${root}tools/local-cluster/src/boundary-probe.ts` });
      expect(result!.messages.map((m) => m.ruleId), probe).toContain('@nx/enforce-module-boundaries');
    }
  });

  it('let the local cluster import the cluster library, and the CLI import the local cluster', async () => {
    const eslint = new ESLint({ cwd: root });
    const [inside] = await eslint.lintText("import { listNodes } from '@kiln/cluster';\nexport const x = listNodes;\n", { filePath: `${root}tools/local-cluster/src/boundary-probe.ts` });
    expect(inside!.messages).toEqual([]);
    const [cli] = await eslint.lintText("import { up } from '@kiln/local-cluster';\nexport const x = up;\n", { filePath: `${root}tools/kiln/src/boundary-probe.ts` });
    expect(cli!.messages).toEqual([]);
  });

  it('make lint fail when a bench reaches into another project by a relative path or imports test support, and let it use the public API', async () => {
    const eslint = new ESLint({ cwd: root });
    const file = `${root}bench/boundary-probe.ts`;
    for (const probe of [
      "import { signature } from '../services/data-prep/src/minhash.ts';\nexport const x = signature;\n",
      "import { up } from '../tools/local-cluster/src/index.ts';\nexport const x = up;\n",
      "import { load } from '../libs/spec/src/index.ts';\nexport const x = load;\n",
      "import { startFixtureServer } from '@kiln/eval-runner/test-support';\nexport const x = startFixtureServer;\n",
    ]) {
      const [result] = await eslint.lintText(probe, { filePath: file });
      expect(result!.messages.map((m) => m.ruleId), probe).toContain('no-restricted-imports');
    }
    const [api] = await eslint.lintText("import { signature } from '@kiln/data-prep';\nimport { up } from '@kiln/local-cluster';\nexport const x = [signature, up];\n", { filePath: file });
    expect(api!.messages).toEqual([]);
  });

  it('make lint fail when a bench imports the CLI', async () => {
    const eslint = new ESLint({ cwd: root });
    const [result] = await eslint.lintText("import { main } from '@kiln/cli/src/cli.ts';\nexport const x = main;\n", { filePath: `${root}bench/boundary-probe.ts` });
    expect(result!.messages.map((m) => m.ruleId)).toContain('@nx/enforce-module-boundaries');
  });

  it('let the CLI import the spec library', async () => {
    const eslint = new ESLint({ cwd: root });
    const [result] = await eslint.lintText("import { load } from '@kiln/spec';\nexport const x = load;\n", { filePath: `${root}tools/kiln/src/boundary-probe.ts` });
    expect(result!.messages).toEqual([]);
  });
});
