/**
 * A pod's /etc/hosts, as the kubelet writes it: the localhost lines, the pod's own IP and hostname (with its
 * FQDN under a headless Service's subdomain when it has one), then one line per entry (Services by name, since
 * the local node has no cluster DNS). serviceNames gives the names a Service answers to from a pod.
 */

/** One line of the hosts file: an IP and the names that resolve to it. */
export interface HostsEntry {
  readonly ip: string;
  readonly names: readonly string[];
}

/** The pod itself: its IP, hostname and, with `subdomain`, the domain `<subdomain>.<ns>.svc.cluster.local`. */
export interface HostsSelf {
  readonly ip: string;
  readonly hostname: string;
  /** e.g. "workers.default.svc.cluster.local"; absent: no FQDN line part. */
  readonly subdomainFqdn?: string;
}

const IP = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]*:[0-9a-fA-F:.]*)$/;
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/;

/** A complete /etc/hosts for a pod. Throws on an IP or name that would corrupt the file (whitespace, '#'). */
export function hostsFile(entries: { ip: string; names: string[] }[], self: HostsSelf): string {
  check(self.ip, [self.hostname, ...(self.subdomainFqdn ? [self.subdomainFqdn] : [])]);
  const selfNames = self.subdomainFqdn ? [`${self.hostname}.${self.subdomainFqdn}`, self.hostname] : [self.hostname];
  const lines = [
    '# Kubernetes-managed hosts file (kiln local node).',
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'fe00::0\tip6-mcastprefix',
    'fe00::1\tip6-allnodes',
    'fe00::2\tip6-allrouters',
    `${self.ip}\t${selfNames.join('\t')}`,
  ];
  if (entries.length > 0) lines.push('', '# Services of the cluster (kiln local node: no cluster DNS).');
  for (const e of entries) {
    check(e.ip, e.names);
    const names = [...new Set(e.names)];
    if (names.length > 0) lines.push(`${e.ip}\t${names.join(' ')}`);
  }
  return lines.join('\n') + '\n';
}

/**
 * The names a Service answers to from a pod in `podNamespace`: `<svc>.<ns>.svc.cluster.local`, `<svc>.<ns>.svc`,
 * `<svc>.<ns>`, and the bare `<svc>` only from the Service's own namespace (as cluster DNS search paths give).
 */
export function serviceNames(service: string, namespace: string, podNamespace: string): string[] {
  const names = [`${service}.${namespace}.svc.cluster.local`, `${service}.${namespace}.svc`, `${service}.${namespace}`];
  if (namespace === podNamespace) names.push(service);
  return names;
}

function check(ip: string, names: readonly string[]): void {
  if (!IP.test(ip)) throw new Error(`hostsFile: "${ip}" is not an IP address`);
  for (const n of names) {
    if (!HOSTNAME.test(n)) throw new Error(`hostsFile: "${n}" (for ${ip}) is not a host name`);
  }
}
