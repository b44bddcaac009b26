/** Services as pods see them: /etc/hosts (ClusterIP, headless, own subdomain names), the proxy table, KUBERNETES_SERVICE_*. */
import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { kubernetesServiceEnv, podHosts, proxyServices } from '../src/agent/services.ts';

const svc = (name: string, ns: string, spec: V1Service['spec']): V1Service => ({ metadata: { name, namespace: ns }, spec });
const slice = (svcName: string, ns: string, endpoints: V1EndpointSlice['endpoints'], ports: V1EndpointSlice['ports'] = []): V1EndpointSlice => ({ addressType: 'IPv4', metadata: { name: `${svcName}-x`, namespace: ns, labels: { 'kubernetes.io/service-name': svcName } }, endpoints, ports });

const services = [
  svc('kubernetes', 'default', { clusterIP: '10.192.0.1', ports: [{ name: 'https', port: 443, targetPort: 6443 }] }),
  svc('triton', 'runs', { clusterIP: '10.192.0.20', ports: [{ name: 'http', port: 8000, targetPort: 'http' }, { name: 'grpc', port: 8001 }] }),
  svc('train-rdzv', 'runs', { clusterIP: 'None', publishNotReadyAddresses: true, ports: [{ port: 29500 }] }),
];
const slices = [
  slice('triton', 'runs', [{ addresses: ['10.208.0.7'], conditions: { ready: true } }, { addresses: ['10.208.0.8'], conditions: { ready: false } }], [{ name: 'http', port: 18000 }, { name: 'grpc', port: 8001 }]),
  slice('train-rdzv', 'runs', [{ addresses: ['10.208.0.9'], hostname: 'train-1', conditions: { ready: false } }]),
];

describe('pod /etc/hosts', () => {
  const pod: V1Pod = { metadata: { name: 'train-0-abc', namespace: 'runs' }, spec: { hostname: 'train-0', subdomain: 'train-rdzv', containers: [] } };
  const hosts = podHosts(pod, '10.208.0.5', services, slices);
  const line = (ip: string) => hosts.split('\n').filter((l) => l.startsWith(`${ip}\t`));

  it('maps a ClusterIP Service\'s names to its IP (the bare name only from its own namespace)', () => {
    expect(line('10.192.0.20')[0]).toContain('triton.runs.svc.cluster.local');
    expect(line('10.192.0.20')[0]!.split(/\s+/)).toContain('triton');
    expect(line('10.192.0.1')[0]!.split(/\s+/)).not.toContain('kubernetes');
    expect(line('10.192.0.1')[0]).toContain('kubernetes.default');
  });
  it('maps a headless Service\'s endpoints by hostname (not-ready ones too when it publishes them)', () => {
    expect(line('10.208.0.9').join(' ')).toContain('train-1.train-rdzv');
  });
  it('names the pod itself under its subdomain, short forms included (rank 0 resolves MASTER_ADDR before its endpoint exists)', () => {
    const own = line('10.208.0.5').join(' ');
    expect(own).toContain('train-0.train-rdzv.runs.svc.cluster.local');
    expect(own.split(/\s+/)).toContain('train-0.train-rdzv');
  });
});

describe('proxy table', () => {
  it('sends each ClusterIP port to its ready endpoints at the slice\'s resolved target port; headless Services are left out', () => {
    const t = proxyServices(services, slices);
    expect(t.map((s) => s.clusterIP)).toEqual(['10.192.0.1', '10.192.0.20']);
    expect(t[1]!.ports).toEqual([
      { port: 8000, protocol: 'TCP', endpoints: [{ ip: '10.208.0.7', port: 18000 }] },
      { port: 8001, protocol: 'TCP', endpoints: [{ ip: '10.208.0.7', port: 8001 }] },
    ]);
  });
});

describe('the kubernetes Service', () => {
  it('goes to the API server the agent uses when it has no endpoints (the local API server advertises loopback)', () => {
    const t = proxyServices(services, slices, { ip: '127.0.0.1', port: 36917 });
    expect(t[0]!.ports).toEqual([{ port: 443, protocol: 'TCP', endpoints: [{ ip: '127.0.0.1', port: 36917 }] }]);
    expect(proxyServices(services, slices)[0]!.ports[0]!.endpoints).toEqual([]);
  });
});

describe('KUBERNETES_SERVICE_*', () => {
  it('comes from the kubernetes Service, and is absent without one', () => {
    expect(kubernetesServiceEnv(services[0])).toEqual({ KUBERNETES_SERVICE_HOST: '10.192.0.1', KUBERNETES_SERVICE_PORT: '443', KUBERNETES_SERVICE_PORT_HTTPS: '443', KUBERNETES_PORT: 'tcp://10.192.0.1:443' });
    expect(kubernetesServiceEnv(undefined)).toEqual({});
  });
});
