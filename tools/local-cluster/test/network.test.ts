/** Each cluster's own pod and Service CIDRs: derived from its directory, moved past what the host already uses. */
import { describe, expect, it } from 'vitest';
import { chooseNetwork, kubernetesServiceIP, slotNetwork } from '../src/network.ts';

const num = (ip: string) => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);
const range = (cidr: string): [number, number] => [num(cidr.split('/')[0]!), num(cidr.split('/')[0]!) + 255];

describe('cluster networks', () => {
  it('are stable per directory and differ between directories', () => {
    const a = chooseNetwork('/work/wt/a/.kiln/cluster', []);
    expect(chooseNetwork('/work/wt/a/.kiln/cluster', [])).toEqual(a);
    const b = chooseNetwork('/work/wt/b/.kiln/cluster', []);
    expect(b.podCidr).not.toBe(a.podCidr);
    expect(b.name).not.toBe(a.name);
    expect(a.name).toMatch(/^[0-9a-f]{6}$/);
    expect(a.podCidr).toMatch(/^10\.(20[89]|21\d|22[0-3])\.\d+\.0\/24$/);
    expect(a.serviceCidr).toMatch(/^10\.(19[2-9]|20[0-7])\.\d+\.0\/24$/);
  });
  it('skip a slot whose pod or Service CIDR overlaps an address or route of the host', () => {
    const first = chooseNetwork('/x/.kiln/cluster', []);
    const taken = chooseNetwork('/x/.kiln/cluster', [range(first.podCidr)]);
    expect(taken.podCidr).not.toBe(first.podCidr);
    const viaService = chooseNetwork('/x/.kiln/cluster', [[num(first.serviceCidr.split('/')[0]!) + 7, num(first.serviceCidr.split('/')[0]!) + 7]]);
    expect(viaService.serviceCidr).not.toBe(first.serviceCidr);
    // A host route covering all of 10.0.0.0/8 leaves nothing free: the hashed slot is kept.
    expect(chooseNetwork('/x/.kiln/cluster', [[num('10.0.0.0'), num('10.255.255.255')]])).toEqual(first);
  });
  it('names the kubernetes Service IP as the first host of the Service CIDR', () => {
    expect(slotNetwork('abc123', 0x1ff)).toEqual({ name: 'abc123', podCidr: '10.209.255.0/24', serviceCidr: '10.193.255.0/24' });
    expect(kubernetesServiceIP('10.193.255.0/24')).toBe('10.193.255.1');
  });
});
