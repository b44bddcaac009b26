/**
 * Pure parts of the pod network: a pod's /etc/hosts (hostsFile), the names a Service answers to (serviceNames),
 * and the CIDR arithmetic behind the gateway and the overlap check.
 */
import { describe, expect, it } from 'vitest';
import { hostsFile, serviceNames } from '../src/network/index.ts';
import { firstHost, formatIp, lastHost, overlaps, parseCidr } from '../src/network/cidr.ts';

describe('hostsFile', () => {
  it('writes localhost, the pod itself, then each Service entry', () => {
    const text = hostsFile(
      [{ ip: '10.252.7.10', names: serviceNames('gateway', 'kiln', 'kiln') }],
      { ip: '10.251.7.2', hostname: 'train-0' },
    );
    expect(text).toMatchInlineSnapshot(`
      "# Kubernetes-managed hosts file (kiln local node).
      127.0.0.1	localhost
      ::1	localhost ip6-localhost ip6-loopback
      fe00::0	ip6-localnet
      fe00::0	ip6-mcastprefix
      fe00::1	ip6-allnodes
      fe00::2	ip6-allrouters
      10.251.7.2	train-0

      # Services of the cluster (kiln local node: no cluster DNS).
      10.252.7.10	gateway.kiln.svc.cluster.local gateway.kiln.svc gateway.kiln gateway
      "
    `);
  });

  it('names the pod by its FQDN under a subdomain first, as the kubelet does', () => {
    const text = hostsFile([], { ip: '10.251.7.3', hostname: 'w-1', subdomainFqdn: 'workers.kiln.svc.cluster.local' });
    expect(text).toContain('10.251.7.3\tw-1.workers.kiln.svc.cluster.local\tw-1\n');
    expect(text).not.toContain('Services of the cluster');
  });

  it('refuses a name that would corrupt the file', () => {
    expect(() => hostsFile([{ ip: '10.0.0.1', names: ['a b'] }], { ip: '10.0.0.2', hostname: 'p' })).toThrow('"a b" (for 10.0.0.1) is not a host name');
    expect(() => hostsFile([], { ip: '10.0.0.2\n1.1.1.1', hostname: 'p' })).toThrow('is not an IP address');
  });
});

describe('serviceNames', () => {
  it('gives the bare name only in the Service’s own namespace', () => {
    expect(serviceNames('db', 'data', 'data')).toEqual(['db.data.svc.cluster.local', 'db.data.svc', 'db.data', 'db']);
    expect(serviceNames('db', 'data', 'kiln')).toEqual(['db.data.svc.cluster.local', 'db.data.svc', 'db.data']);
  });
});

describe('CIDR arithmetic', () => {
  it('finds the gateway and the last host, and refuses host bits', () => {
    const c = parseCidr('10.250.7.0/24');
    expect(formatIp(firstHost(c))).toBe('10.250.7.1');
    expect(formatIp(lastHost(c))).toBe('10.250.7.254');
    expect(() => parseCidr('10.250.7.5/24', 'pod CIDR')).toThrow('did you mean 10.250.7.0/24?');
    expect(() => parseCidr('10.250.7/24', 'pod CIDR')).toThrow('is not an IPv4 CIDR');
  });

  it('detects overlap, including a range inside another', () => {
    expect(overlaps(parseCidr('10.0.0.0/8'), parseCidr('10.250.7.0/24'))).toBe(true);
    expect(overlaps(parseCidr('10.250.7.0/24'), parseCidr('10.250.8.0/24'))).toBe(false);
    expect(overlaps(parseCidr('10.250.7.0/25'), parseCidr('10.250.7.128/25'))).toBe(false);
  });
});
