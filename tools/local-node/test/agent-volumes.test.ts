/** Pod volumes materialized on the host: configMap/secret items and modes, downwardAPI, emptyDir, claims, fsGroup. */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { materializeVolumes, type ObjectReader } from '../src/agent/volumes.ts';

const dir = mkdtempSync(join(tmpdir(), 'kiln-volumes-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const api: ObjectReader = {
  configMap: async (_ns, name) => (name === 'cm' ? { data: { 'stage.json': '{"a":1}', other: 'x' } } : undefined),
  secret: async (_ns, name) => (name === 's' ? { data: { keys: Buffer.from('k1\n').toString('base64') } } : undefined),
  claim: async (_ns, name) => (name === 'artifacts' ? { spec: { volumeName: 'pv-3' }, status: { phase: 'Bound' } } : name === 'pending' ? { spec: {}, status: { phase: 'Pending' } } : undefined),
  volume: async (name) => (name === 'pv-3' ? { spec: { hostPath: { path: join(dir, 'pv-3') } } } : undefined),
  token: async () => 'tok',
};

const pod = (volumes: NonNullable<V1Pod['spec']>['volumes'], fsGroup?: number): V1Pod => ({
  metadata: { name: 'p', namespace: 'n', uid: 'u', labels: { a: 'b' } },
  spec: { containers: [{ name: 'c', resources: { limits: { memory: '1Gi' } } }], volumes, ...(fsGroup !== undefined ? { securityContext: { fsGroup } } : {}) },
});
const ips = { podIP: '10.0.0.2', hostIP: '127.0.0.1' };
const alloc = { cpu: 2, memory: 4 * 2 ** 30 };
const mode = (f: string) => statSync(f).mode & 0o7777;

describe('materializeVolumes', () => {
  it('writes a configMap\'s items with their modes, a secret decoded, downwardAPI fields; all read-only', async () => {
    const podDir = join(dir, 'a');
    const v = await materializeVolumes(pod([
      { name: 'config', configMap: { name: 'cm', items: [{ key: 'stage.json', path: 'stage.json', mode: 0o600 }] } },
      { name: 'keys', secret: { secretName: 's', defaultMode: 0o400 } },
      { name: 'info', downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }, { path: 'mem', resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } }] } },
    ]), podDir, api, ips, alloc);
    const config = v.get('config')!;
    expect(config).toEqual({ kind: 'bind', hostPath: join(podDir, 'volumes', 'config'), readOnly: true });
    expect(readFileSync(join(config.hostPath!, 'stage.json'), 'utf8')).toBe('{"a":1}');
    expect(mode(join(config.hostPath!, 'stage.json'))).toBe(0o600);
    expect(() => statSync(join(config.hostPath!, 'other'))).toThrow();
    expect(readFileSync(join(v.get('keys')!.hostPath!, 'keys'), 'utf8')).toBe('k1\n');
    expect(mode(join(v.get('keys')!.hostPath!, 'keys'))).toBe(0o400);
    expect(readFileSync(join(v.get('info')!.hostPath!, 'labels'), 'utf8')).toBe('a="b"');
    expect(readFileSync(join(v.get('info')!.hostPath!, 'mem'), 'utf8')).toBe('1024');
  });
  it('makes emptyDir world-writable, Memory a tmpfs of its size, and a claim its bound volume\'s hostPath', async () => {
    const v = await materializeVolumes(pod([
      { name: 'tmp', emptyDir: {} },
      { name: 'shm', emptyDir: { medium: 'Memory', sizeLimit: '64Mi' } },
      { name: 'artifacts', persistentVolumeClaim: { claimName: 'artifacts' } },
    ]), join(dir, 'b'), api, ips, alloc);
    expect(mode(v.get('tmp')!.hostPath!)).toBe(0o777);
    expect(v.get('shm')).toEqual({ kind: 'tmpfs', readOnly: false, sizeBytes: 64 * 2 ** 20 });
    expect(v.get('artifacts')).toEqual({ kind: 'bind', hostPath: join(dir, 'pv-3'), readOnly: false });
    expect(statSync(join(dir, 'pv-3')).isDirectory()).toBe(true);
  });
  it('gives a non-root pod\'s fsGroup its secret (0400 → group-readable) and its claim', async () => {
    const v = await materializeVolumes(pod([{ name: 'keys', secret: { secretName: 's', defaultMode: 0o400 } }, { name: 'artifacts', persistentVolumeClaim: { claimName: 'artifacts' } }], 65532), join(dir, 'c'), api, ips, alloc);
    const f = join(v.get('keys')!.hostPath!, 'keys');
    expect(statSync(f).gid).toBe(65532);
    expect(mode(f)).toBe(0o440);
    expect(statSync(join(dir, 'pv-3')).gid).toBe(65532);
    expect(mode(join(dir, 'pv-3')) & 0o2070).toBe(0o2070);
  });
  it('fails with CreateContainerConfigError for a missing ConfigMap, an unbound claim, an unsupported type', async () => {
    await expect(materializeVolumes(pod([{ name: 'x', configMap: { name: 'gone' } }]), join(dir, 'd'), api, ips, alloc)).rejects.toThrow(/ConfigMap "n\/gone" of volume "x" not found/);
    await expect(materializeVolumes(pod([{ name: 'x', configMap: { name: 'gone', optional: true } }]), join(dir, 'd'), api, ips, alloc)).resolves.toBeDefined();
    await expect(materializeVolumes(pod([{ name: 'x', persistentVolumeClaim: { claimName: 'pending' } }]), join(dir, 'd'), api, ips, alloc)).rejects.toThrow(/not bound yet/);
    await expect(materializeVolumes(pod([{ name: 'x', nfs: { server: 's', path: '/' } }]), join(dir, 'd'), api, ips, alloc)).rejects.toThrow(/does not support/);
  });
});
