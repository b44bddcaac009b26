/**
 * Pod networking of the local execution node: a bridge and per-pod network namespaces (PodNetwork), a userspace
 * Service proxy (ServiceProxy; there is no iptables on these machines), and pods' /etc/hosts (hostsFile).
 * See the "Network API" of issue #16's contract.
 */
export { PodNetwork, type PodNetworkOptions, type Sandbox } from './pod-network.ts';
export { hostsFile, serviceNames, type HostsEntry, type HostsSelf } from './hosts.ts';
export { ServiceProxy, type ProxyService, type ServiceProxyOptions } from './service-proxy.ts';
