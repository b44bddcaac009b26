/**
 * ServiceProxy for real on a pod bridge: host → ClusterIP:port → endpoint in a sandbox, sandbox → ClusterIP →
 * endpoint in another sandbox, round robin, failover past a dead endpoint, endpoints swapped on sync without
 * dropping an open connection, a connection closed at once when there is no endpoint, and ClusterIPs removed
 * (also those an earlier agent left) when their Service goes or the proxy closes.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PodNetwork, type ProxyService, ServiceProxy } from '../src/network/index.ts';
import { fetchFromHost, fetchFromNetns, ipOut, randomCidr, requireRoot, scrub, startServer, uniqueName } from './network-fixtures.ts';

const name = uniqueName();
const podCidr = randomCidr(251, 128, 255);
const svcPrefix = randomCidr(252).replace('.0/24', '');
const clusterIP = `${svcPrefix}.10`;
const stateDir = mkdtempSync(join(tmpdir(), 'kiln-proxy-'));
const children: ChildProcess[] = [];
const net = new PodNetwork({ name, podCidr, stateDir });
let proxy: ServiceProxy;
let a: { ip: string; ns: string };
let b: { ip: string; ns: string };

const svc = (endpoints: { ip: string; port: number }[], echo?: { ip: string; port: number }): ProxyService => ({
  clusterIP,
  ports: [
    { port: 80, protocol: 'TCP', endpoints },
    ...(echo ? [{ port: 81, protocol: 'TCP' as const, endpoints: [echo] }] : []),
  ],
});
const bridgeAddrs = async () => ipOut(['-4', '-o', 'addr', 'show', 'dev', `kb-${name}`]);

beforeAll(async () => {
  requireRoot();
  const { bridge } = await net.ensure();
  proxy = new ServiceProxy({ bridge });
  const sa = await net.createSandbox('aaaaaaaa-0000-4000-8000-00000000000a');
  const sb = await net.createSandbox('bbbbbbbb-0000-4000-8000-00000000000b');
  a = { ip: sa.ip, ns: sa.netns.slice('/run/netns/'.length) };
  b = { ip: sb.ip, ns: sb.netns.slice('/run/netns/'.length) };
  children.push(await startServer('from-a', 8080, a.ns), await startServer('from-b', 8080, b.ns), await startServer('ECHO', 7000, a.ns));
});
afterAll(async () => {
  await proxy?.close().catch(() => undefined);
  await scrub(name, children);
  rmSync(stateDir, { recursive: true, force: true });
});

describe('ServiceProxy', () => {
  it('forwards host → ClusterIP:port → an endpoint in a sandbox', async () => {
    await proxy.sync([svc([{ ip: a.ip, port: 8080 }])]);
    expect(await bridgeAddrs()).toContain(`${clusterIP}/32`);
    expect(await fetchFromHost(clusterIP, 80)).toBe('from-a');
  });

  it('forwards sandbox → ClusterIP → an endpoint in another sandbox', async () => {
    expect(await fetchFromNetns(b.ns, clusterIP, 80)).toBe('from-a');
  });

  it('switches endpoints on sync without dropping the listener or an open connection', async () => {
    await proxy.sync([svc([{ ip: a.ip, port: 8080 }], { ip: a.ip, port: 7000 })]);
    const held = connect({ host: clusterIP, port: 81 });
    const echoed = (text: string) =>
      new Promise<string>((resolve, reject) => {
        held.once('data', (d) => resolve(d.toString()));
        held.once('error', reject);
        held.write(text);
      });
    expect(await echoed('before')).toBe('before');
    await proxy.sync([svc([{ ip: b.ip, port: 8080 }], { ip: a.ip, port: 7000 })]);
    expect(await fetchFromHost(clusterIP, 80)).toBe('from-b');
    expect(await echoed('after')).toBe('after');
    held.destroy();
  });

  it('spreads connections round robin and skips an endpoint that refuses', async () => {
    await proxy.sync([svc([{ ip: a.ip, port: 8080 }, { ip: b.ip, port: 8080 }])]);
    const two = [await fetchFromHost(clusterIP, 80), await fetchFromHost(clusterIP, 80)];
    expect(two.sort()).toEqual(['from-a', 'from-b']);
    await proxy.sync([svc([{ ip: a.ip, port: 9999 }, { ip: b.ip, port: 8080 }])]);
    const three = [await fetchFromHost(clusterIP, 80), await fetchFromHost(clusterIP, 80), await fetchFromHost(clusterIP, 80)];
    expect(three).toEqual(['from-b', 'from-b', 'from-b']);
  });

  it('carries a large payload both ways and passes on a half-close', async () => {
    await proxy.sync([svc([], { ip: a.ip, port: 7000 })]);
    const payload = Buffer.alloc(4 * 1024 * 1024, 'kiln');
    const back = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const s = connect({ host: clusterIP, port: 81 }, () => s.end(payload));
      s.on('data', (d: Buffer) => chunks.push(d));
      s.on('error', reject);
      s.on('close', () => resolve(Buffer.concat(chunks)));
    });
    expect(back.length).toBe(payload.length);
    expect(back.equals(payload)).toBe(true);
  });

  it('fails over past an endpoint that never answers', async () => {
    // A second proxy on the bridge owns its /32s while it lives (the next test's sync restores the first's).
    const slow = new ServiceProxy({ bridge: `kb-${name}`, connectTimeoutMs: 300 });
    const otherIP = `${svcPrefix}.11`;
    try {
      // .250 of the pod CIDR has no pod: its connect gets no answer (ARP fails), so the timeout moves on.
      const silent = a.ip.replace(/\.\d+$/, '.250');
      await slow.sync([{ clusterIP: otherIP, ports: [{ port: 80, protocol: 'TCP', endpoints: [{ ip: silent, port: 8080 }, { ip: b.ip, port: 8080 }] }] }]);
      expect(await fetchFromHost(otherIP, 80)).toBe('from-b');
      expect(await fetchFromHost(otherIP, 80)).toBe('from-b');
    } finally {
      await slow.close();
    }
  });

  it('accepts and closes at once when a port has no endpoints', async () => {
    await proxy.sync([svc([])]);
    expect(await fetchFromHost(clusterIP, 80)).toBe('');
  });

  it('removes the ClusterIPs of Services that went, also those an earlier agent left', async () => {
    const leftover = `${svcPrefix}.99`;
    await ipOut(['addr', 'add', `${leftover}/32`, 'dev', `kb-${name}`]);
    await proxy.sync([svc([{ ip: a.ip, port: 8080 }])]);
    expect(await bridgeAddrs()).not.toContain(`${leftover}/32`);
    await proxy.sync([]);
    expect(await bridgeAddrs()).not.toContain(`${clusterIP}/32`);
    expect(await bridgeAddrs()).toContain(`${net.gateway}/24`);
  });

  it('syncs every other port when one is taken by another process, and names that one', async () => {
    const taken = 20000 + Math.floor(Math.random() * 30000);
    children.push(await startServer('squatter', taken));
    const both: ProxyService = { clusterIP, ports: [{ port: 80, protocol: 'TCP', endpoints: [{ ip: a.ip, port: 8080 }] }, { port: taken, protocol: 'TCP', endpoints: [{ ip: a.ip, port: 8080 }] }] };
    await expect(proxy.sync([both])).rejects.toThrow(`the Service proxy cannot listen on ${clusterIP}:${taken}: another process on this machine listens on port ${taken}`);
    expect(await fetchFromHost(clusterIP, 80)).toBe('from-a');
  });

  it('says which bridge is missing when there is none', async () => {
    await expect(new ServiceProxy({ bridge: 'kb-absent0' }).sync([])).rejects.toThrow(
      'the Service proxy needs the pod bridge kb-absent0, which is missing (PodNetwork.ensure() makes it)',
    );
  });

  it('close removes its listeners and ClusterIPs', async () => {
    await proxy.sync([svc([{ ip: a.ip, port: 8080 }])]);
    expect(await fetchFromHost(clusterIP, 80)).toBe('from-a');
    await proxy.close();
    expect(await bridgeAddrs()).not.toContain(`${clusterIP}/32`);
    await expect(proxy.sync([])).rejects.toThrow('ServiceProxy.sync after close');
  });
});
