/**
 * Services as the local node's pods see them, from the cached Services and EndpointSlices: each pod's /etc/hosts
 * (every Service's names → its ClusterIP; a headless Service's ready endpoints, with `<hostname>.<service>…` for
 * pods that have a hostname; the pod's own names under its subdomain), the Service proxy's table, and the
 * KUBERNETES_SERVICE_* variables of in-cluster clients. Pure.
 */
import type { V1EndpointSlice, V1Pod, V1Service } from '@kubernetes/client-node';
import { hostsFile, serviceNames, type ProxyService } from '../network/index.ts';

function slicesOf(svc: V1Service, slices: readonly V1EndpointSlice[]): V1EndpointSlice[] {
  const ns = svc.metadata?.namespace;
  const name = svc.metadata?.name;
  return slices.filter((e) => e.metadata?.namespace === ns && e.metadata?.labels?.['kubernetes.io/service-name'] === name);
}

/** A pod's /etc/hosts. */
export function podHosts(pod: V1Pod, ip: string, services: readonly V1Service[], slices: readonly V1EndpointSlice[]): string {
  const ns = pod.metadata?.namespace ?? 'default';
  const entries: { ip: string; names: string[] }[] = [];
  for (const svc of services) {
    const sns = svc.metadata?.namespace ?? 'default';
    const name = svc.metadata?.name ?? '';
    const cip = svc.spec?.clusterIP;
    if (cip && cip !== 'None') {
      entries.push({ ip: cip, names: serviceNames(name, sns, ns) });
      continue;
    }
    const publish = Boolean(svc.spec?.publishNotReadyAddresses);
    for (const sl of slicesOf(svc, slices)) {
      for (const ep of sl.endpoints ?? []) {
        if (!publish && ep.conditions?.ready === false) continue;
        for (const a of ep.addresses ?? []) {
          const names = serviceNames(name, sns, ns);
          if (ep.hostname) names.unshift(`${ep.hostname}.${name}.${sns}.svc.cluster.local`, `${ep.hostname}.${name}.${sns}.svc`, `${ep.hostname}.${name}.${sns}`, `${ep.hostname}.${name}`);
          entries.push({ ip: a, names });
        }
      }
    }
  }
  const sub = pod.spec?.subdomain;
  const host = pod.spec?.hostname ?? pod.metadata?.name ?? '';
  // The pod's own short names under its subdomain (torchrun's MASTER_ADDR `<job>-0.<service>` on rank 0), before
  // its EndpointSlice entry exists.
  if (sub) entries.unshift({ ip, names: [`${host}.${sub}.${ns}.svc`, `${host}.${sub}.${ns}`, `${host}.${sub}`] });
  return hostsFile(entries, { ip, hostname: host, ...(sub ? { subdomainFqdn: `${sub}.${ns}.svc.cluster.local` } : {}) });
}

/**
 * The Service proxy's table: every IPv4 ClusterIP Service's TCP ports with their ready endpoints. `apiServer`:
 * the endpoint of `default/kubernetes` when it has none — the local API server advertises 127.0.0.1, which
 * Endpoints and EndpointSlices refuse (loopback), so that Service never gets any; the proxy on the host can reach it.
 */
export function proxyServices(services: readonly V1Service[], slices: readonly V1EndpointSlice[], apiServer?: { ip: string; port: number }): ProxyService[] {
  const out: ProxyService[] = [];
  for (const svc of services) {
    const cip = svc.spec?.clusterIP;
    if (!cip || cip === 'None' || !/^\d+\.\d+\.\d+\.\d+$/.test(cip)) continue;
    const mine = slicesOf(svc, slices);
    const ports = (svc.spec?.ports ?? [])
      .filter((p) => (p.protocol ?? 'TCP') === 'TCP')
      .map((p) => {
        const endpoints: { ip: string; port: number }[] = [];
        for (const sl of mine) {
          // A slice's port of the same name carries the resolved target port (a named targetPort included).
          const sp = (sl.ports ?? []).find((x) => (x.name ?? '') === (p.name ?? ''));
          const target = sp?.port ?? (typeof p.targetPort === 'number' ? p.targetPort : p.port);
          for (const ep of sl.endpoints ?? []) {
            if (ep.conditions?.ready === false) continue;
            for (const a of ep.addresses ?? []) endpoints.push({ ip: a, port: target });
          }
        }
        if (!endpoints.length && apiServer && svc.metadata?.namespace === 'default' && svc.metadata?.name === 'kubernetes') endpoints.push({ ...apiServer });
        return { port: p.port, protocol: 'TCP' as const, endpoints };
      });
    out.push({ clusterIP: cip, ports });
  }
  return out;
}

/** KUBERNETES_SERVICE_HOST/PORT (and friends) from the `default/kubernetes` Service; {} without it. */
export function kubernetesServiceEnv(k: V1Service | undefined): Record<string, string> {
  const ip = k?.spec?.clusterIP;
  const port = k?.spec?.ports?.find((p) => p.name === 'https')?.port ?? k?.spec?.ports?.[0]?.port;
  if (!ip || !port) return {};
  return { KUBERNETES_SERVICE_HOST: ip, KUBERNETES_SERVICE_PORT: String(port), KUBERNETES_SERVICE_PORT_HTTPS: String(port), KUBERNETES_PORT: `tcp://${ip}:${port}` };
}
