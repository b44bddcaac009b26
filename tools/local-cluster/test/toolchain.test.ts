import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { acquireLock, binarySpecs, buildOne, cacheRoot, readVersions, ToolchainError } from '../src/index.ts';

const tmp = mkdtempSync(join(tmpdir(), 'kiln-toolchain-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('toolchain binaries', () => {
  const specs = Object.fromEntries(binarySpecs().map((s) => [s.name, s]));
  const v = readVersions();

  it('cover everything the local cluster and the Pulumi engine need', () => {
    expect(Object.keys(specs).sort()).toEqual(
      ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok', 'pulumi', 'pulumi-language-nodejs', 'pulumi-resource-kubernetes'].sort(),
    );
  });

  it('stamp Kubernetes binaries with their release (unstamped ones report v0.0.0)', () => {
    const flags = specs['kube-apiserver']!.ldflags.join(' ');
    const [major, minor] = v.kubernetes.split('.');
    for (const pkg of ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']) {
      expect(flags).toContain(`-X ${pkg}.gitVersion=v${v.kubernetes}`);
      expect(flags).toContain(`-X ${pkg}.gitMajor=${major}`);
      expect(flags).toContain(`-X ${pkg}.gitMinor=${minor}`);
    }
  });

  it('stamp the Pulumi CLI and language host (an unstamped CLI breaks the Automation API) and the provider', () => {
    for (const n of ['pulumi', 'pulumi-language-nodejs']) expect(specs[n]!.ldflags).toContain(`-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v${v.pulumi}`);
    expect(specs['pulumi-resource-kubernetes']!.ldflags).toContain(`-X ${v.kubernetesProvider.module}/pkg/version.Version=${v.kubernetesProvider.version}`);
  });

  it('pin the npm Kubernetes SDK to the provider version that is built', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../kiln/package.json', import.meta.url), 'utf8')) as { devDependencies: Record<string, string> };
    expect(pkg.devDependencies['@pulumi/kubernetes']).toBe(v.kubernetesProvider.version);
  });
});

describe('the toolchain cache', () => {
  it('lives outside the repository: $KILN_TOOLCHAIN_DIR, else $XDG_CACHE_HOME/kiln/toolchain, else ~/.cache/kiln/toolchain', () => {
    expect(cacheRoot({ KILN_TOOLCHAIN_DIR: '/x', XDG_CACHE_HOME: '/y' })).toBe('/x');
    expect(cacheRoot({ XDG_CACHE_HOME: '/y' })).toBe('/y/kiln/toolchain');
    expect(cacheRoot({})).toBe(join(homedir(), '.cache', 'kiln', 'toolchain'));
  });
});

describe('the build lock', () => {
  it('makes a second builder wait while the first holds it', async () => {
    const lock = join(tmp, 'held.lock');
    const release = await acquireLock(lock, () => {});
    const messages: string[] = [];
    let second = false;
    const waiting = acquireLock(lock, (m) => messages.push(m)).then((r) => {
      second = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 300));
    expect(second).toBe(false);
    expect(messages[0]).toMatch(/another kiln process \(pid \d+\) is building the toolchain; waiting/);
    release();
    (await waiting)();
    expect(second).toBe(true);
  });

  it('takes over a lock whose owner died', async () => {
    const lock = join(tmp, 'stale.lock');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    mkdirSync(lock);
    writeFileSync(join(lock, 'pid'), dead);
    const release = await acquireLock(lock, () => {});
    expect(readFileSync(join(lock, 'pid'), 'utf8')).toBe(String(process.pid));
    release();
    expect(existsSync(lock)).toBe(false);
  });
});

describe('a failed build', () => {
  it('names the binary, the command and the log', async () => {
    mkdirSync(join(tmp, 'cache', 'bin'), { recursive: true });
    mkdirSync(join(tmp, 'cache', 'logs'), { recursive: true });
    const spec = { name: 'broken', module: 'etcd', pkg: './no/such/package', ldflags: [], versionArgs: [], expect: '' };
    const err = await buildOne(spec, join(tmp, 'cache'), '[1/1]', () => {}, process.env).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ToolchainError);
    const e = err as ToolchainError;
    expect(e.message).toBe('building broken failed (exit 1)');
    expect(e.command).toMatch(/go build -trimpath .* -o .*\.broken\.partial \.\/no\/such\/package/);
    expect(e.log).toContain(join(tmp, 'cache', 'logs', 'broken.log'));
    expect(existsSync(join(tmp, 'cache', 'bin', 'broken'))).toBe(false);
  });
});
