/**
 * Each local cluster's own address ranges: the local node's pod CIDR and the API server's Service CIDR, both /24s
 * chosen from a hash of the cluster's directory (several clusters run on one machine: every worktree has its
 * own), moved on to the next free pair when a range overlaps an address or route this host already has.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { ClusterNetwork } from './paths.ts';

/** 4096 /24 pairs: pod CIDRs in 10.208.0.0/12, Service CIDRs in 10.192.0.0/12. */
const SLOTS = 4096;

const ipNum = (ip: string) => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);

/** The pair of /24s of slot `n`. */
export function slotNetwork(name: string, n: number): ClusterNetwork {
  const hi = n >> 8;
  const lo = n & 255;
  return { name, podCidr: `10.${208 + hi}.${lo}.0/24`, serviceCidr: `10.${192 + hi}.${lo}.0/24` };
}

/** The IPv4 prefixes this host has (interface addresses and routes), as [first, last] numbers. */
export function hostRanges(): [number, number][] {
  const out: [number, number][] = [];
  const add = (cidr: string) => {
    const [ip, bits] = cidr.split('/');
    if (!ip || !/^\d+\.\d+\.\d+\.\d+$/.test(ip)) return;
    const prefix = bits === undefined ? 32 : Number(bits);
    const size = 2 ** (32 - prefix);
    const first = Math.floor(ipNum(ip) / size) * size;
    if (prefix > 0) out.push([first, first + size - 1]);
  };
  try {
    for (const l of JSON.parse(execFileSync('ip', ['-4', '-j', 'addr'], { encoding: 'utf8' })) as { addr_info?: { local: string; prefixlen: number }[] }[]) {
      for (const a of l.addr_info ?? []) add(`${a.local}/${a.prefixlen}`);
    }
    for (const r of JSON.parse(execFileSync('ip', ['-4', '-j', 'route', 'show', 'table', 'all'], { encoding: 'utf8' })) as { dst: string }[]) {
      if (r.dst && r.dst !== 'default') add(r.dst);
    }
  } catch {
    /* no `ip`: nothing known to avoid */
  }
  return out;
}

const overlaps = (cidr: string, ranges: [number, number][]) => {
  const first = ipNum(cidr.split('/')[0]!);
  const last = first + 255;
  return ranges.some(([a, b]) => a <= last && first <= b);
};

/** This cluster's network: the hash of its directory's slot, or the next one that overlaps nothing on this host. */
export function chooseNetwork(clusterDir: string, ranges: [number, number][] = hostRanges()): ClusterNetwork {
  const h = createHash('sha256').update(clusterDir).digest();
  const name = h.subarray(0, 3).toString('hex');
  const start = h.readUInt16BE(3) % SLOTS;
  for (let i = 0; i < SLOTS; i++) {
    const net = slotNetwork(name, (start + i) % SLOTS);
    if (!overlaps(net.podCidr, ranges) && !overlaps(net.serviceCidr, ranges)) return net;
  }
  return slotNetwork(name, start);
}

/** The `kubernetes` Service's IP: the first host of the Service CIDR. */
export const kubernetesServiceIP = (serviceCidr: string): string => serviceCidr.replace(/\.0\/\d+$/, '.1');
