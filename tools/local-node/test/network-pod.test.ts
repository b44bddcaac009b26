/**
 * PodNetwork on this machine for real: a bridge, two sandboxes whose servers reach each other and the host,
 * IPs that survive a new PodNetwork over the same state dir, removal and teardown that leave nothing behind,
 * idempotence, and refusal of a pod CIDR that overlaps a route already here.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PodNetwork } from '../src/network/index.ts';
import { fetchFromHost, fetchFromNetns, ipOut, linkExists, randomCidr, requireRoot, scrub, startServer, uniqueName } from './network-fixtures.ts';

const name = uniqueName();
const other = uniqueName();
const podCidr = randomCidr(251, 1, 128);
const prefix = podCidr.slice(0, podCidr.lastIndexOf('.'));
const stateDir = mkdtempSync(join(tmpdir(), 'kiln-net-'));
const children: ChildProcess[] = [];
const net = new PodNetwork({ name, podCidr, stateDir });
const bridgeMac = async () => (JSON.parse(await ipOut(['-j', 'link', 'show', 'dev', `kb-${name}`])) as { address: string }[])[0]!.address;
let gatewayMac = '';

beforeAll(() => requireRoot());
afterAll(async () => {
  await scrub(name, children);
  await scrub(other, []);
  rmSync(stateDir, { recursive: true, force: true });
});

describe('PodNetwork', () => {
  it('brings the bridge up with the first host address as gateway, idempotently', async () => {
    expect(await net.ensure()).toEqual({ bridge: `kb-${name}`, gateway: `${prefix}.1` });
    expect(await net.ensure()).toEqual({ bridge: `kb-${name}`, gateway: `${prefix}.1` });
    const addrs = await ipOut(['-4', '-o', 'addr', 'show', 'dev', `kb-${name}`]);
    expect(addrs).toContain(`${prefix}.1/24`);
    gatewayMac = await bridgeMac();
  });

  it('gives each pod a netns with lo, eth0 and a default route, the same answer twice', async () => {
    const a = await net.createSandbox('aaaaaaaa-1111-4000-8000-000000000001');
    expect(a).toEqual({ ip: `${prefix}.2`, netns: expect.stringMatching(new RegExp(`^/run/netns/kiln-${name}-aaaaaaaa$`)) });
    expect(await net.createSandbox('aaaaaaaa-1111-4000-8000-000000000001')).toEqual(a);
    const b = await net.createSandbox('bbbbbbbb-2222-4000-8000-000000000002');
    expect(b.ip).toBe(`${prefix}.3`);
    const ns = a.netns.slice('/run/netns/'.length);
    expect(await ipOut(['-n', ns, '-4', '-o', 'addr', 'show', 'dev', 'eth0'])).toContain(`${prefix}.2/24`);
    expect(await ipOut(['-n', ns, 'route', 'show', 'default'])).toContain(`default via ${prefix}.1 dev eth0`);
    expect(await ipOut(['-n', ns, '-o', 'link', 'show', 'dev', 'lo'])).toMatch(/<[^>]*\bUP\b/);
  });

  it('lets servers in two sandboxes reach each other, and the host reach both', async () => {
    const [a, b] = net.sandboxes().sort((x, y) => x.ip.localeCompare(y.ip));
    const nsA = a!.netns.slice('/run/netns/'.length);
    const nsB = b!.netns.slice('/run/netns/'.length);
    children.push(await startServer('from-a', 8080, nsA), await startServer('from-b', 8080, nsB));
    expect(await fetchFromNetns(nsA, b!.ip, 8080)).toBe('from-b');
    expect(await fetchFromNetns(nsB, a!.ip, 8080)).toBe('from-a');
    expect(await fetchFromHost(a!.ip, 8080)).toBe('from-a');
    expect(await fetchFromHost(b!.ip, 8080)).toBe('from-b');
    const hostPort = 20000 + Math.floor(Math.random() * 30000);
    children.push(await startServer('from-host', hostPort));
    expect(await fetchFromNetns(nsA, `${prefix}.1`, hostPort)).toBe('from-host');
  });

  it('keeps every IP and netns in a new PodNetwork over the same state dir, and never reuses one', async () => {
    const again = new PodNetwork({ name, podCidr, stateDir });
    expect(again.sandboxes()).toEqual(net.sandboxes());
    expect(JSON.parse(readFileSync(join(stateDir, 'network.json'), 'utf8')).pods).toBeDefined();
    const c = await again.createSandbox('cccccccc-3333-4000-8000-000000000003');
    expect(c.ip).toBe(`${prefix}.4`);
    expect(net.sandboxes().map((s) => s.ip)).toContain(`${prefix}.4`); // the first instance sees it too
    await again.removeSandbox('cccccccc-3333-4000-8000-000000000003');
  });

  it('leaves a whole sandbox alone and rebuilds a half-made one with the same IP', async () => {
    const a = net.sandboxes().find((s) => s.ip === `${prefix}.2`)!;
    const ns = a.netns.slice('/run/netns/'.length);
    const eth0 = async () => (JSON.parse(await ipOut(['-n', ns, '-j', 'link', 'show', 'dev', 'eth0'])) as { ifindex: number }[])[0]!.ifindex;
    const before = await eth0();
    expect(await new PodNetwork({ name, podCidr, stateDir }).createSandbox(a.podUid)).toEqual({ ip: a.ip, netns: a.netns });
    expect(await eth0()).toBe(before);
    const mac = async () => (JSON.parse(await ipOut(['-n', ns, '-j', 'link', 'show', 'dev', 'eth0'])) as { address: string }[])[0]!.address;
    const macBefore = await mac();
    await ipOut(['-n', ns, 'link', 'del', 'eth0']); // as a crash between the veth and its address would leave it
    expect(await net.createSandbox(a.podUid)).toEqual({ ip: a.ip, netns: a.netns });
    expect(await mac()).toBe(macBefore); // so the host's neighbour cache still holds (no wait for ARP to expire)
    expect(await fetchFromHost(a.ip, 8080)).toBe('from-a');
  });

  it('removeSandbox leaves no netns and no veth, and frees the IP', async () => {
    const before = (await ipOut(['-j', 'link', 'show'])).length;
    const b = net.sandboxes().find((s) => s.ip === `${prefix}.3`)!;
    await net.removeSandbox(b.podUid);
    await net.removeSandbox(b.podUid);
    expect(existsSync(b.netns)).toBe(false);
    const ports = (JSON.parse(await ipOut(['-j', 'link', 'show'])) as { master?: string }[]).filter((l) => l.master === `kb-${name}`);
    expect(ports).toHaveLength(1);
    expect((await ipOut(['-j', 'link', 'show'])).length).toBeLessThan(before);
    expect((await net.createSandbox('dddddddd-4444-4000-8000-000000000004')).ip).toBe(`${prefix}.3`);
    expect(await bridgeMac()).toBe(gatewayMac); // pods' caches of the gateway's MAC stay right as ports change
  });

  it('refuses a state dir of another pod CIDR, and a bad name, with the fix', () => {
    expect(() => new PodNetwork({ name, podCidr: '10.251.0.0/24', stateDir })).toThrow(`belongs to pod network "${name}" with pod CIDR ${podCidr}`);
    expect(() => new PodNetwork({ name: 'Way-Too-Long-Name', podCidr, stateDir: join(stateDir, 'x') })).toThrow('must be 1 to 12 characters of [a-z0-9]');
  });

  it('refuses a pod CIDR that overlaps a route already on this machine', async () => {
    const clash = new PodNetwork({ name: other, podCidr: podCidr.replace('.0/24', '.128/25'), stateDir: join(stateDir, 'other') });
    await expect(clash.ensure()).rejects.toThrow(
      `the pod CIDR ${podCidr.replace('.0/24', '.128/25')} overlaps the route ${podCidr} on kb-${name} already on this machine; choose another pod CIDR`,
    );
    expect(await linkExists(`kb-${other}`)).toBe(false);
  });

  it('teardown leaves no bridge, netns or state', async () => {
    const paths = net.sandboxes().map((s) => s.netns);
    await net.teardown();
    expect(await linkExists(`kb-${name}`)).toBe(false);
    for (const p of paths) expect(existsSync(p)).toBe(false);
    expect(existsSync(join(stateDir, 'network.json'))).toBe(false);
    expect(net.sandboxes()).toEqual([]);
  });
});
