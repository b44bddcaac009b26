/**
 * The local cluster's certificates (a CA, the API server's serving certificate, the admin client; for the local
 * node: its client identity, its kubelet API's serving certificate and the API server's kubelet client) and the
 * kubeconfigs of the admin and of the node.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { ClusterError, paths, readState, type Paths } from './paths.ts';

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new ClusterError(`openssl ${args[0]} failed`, r.stderr);
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function sign(pki: string, name: string, subject: string, ext: string): void {
  openssl(['req', '-new', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], pki);
  writeFileSync(join(pki, `${name}.ext`), ext);
  openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '3650', '-extfile', `${name}.ext`], pki);
}

/**
 * A CA, the API server's serving certificate (its SANs include `kubernetesServiceIP`, the first host of the
 * cluster's Service CIDR), an admin client certificate, the service-account key, and the local node's certificates.
 */
export function makeCertificates(pki: string, kubernetesServiceIP = '10.0.0.1'): void {
  mkdirSync(pki, { recursive: true });
  openssl(['req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3650', '-subj', '/CN=kiln-local-ca'], pki);
  sign(pki, 'apiserver', '/CN=kube-apiserver', `subjectAltName=IP:127.0.0.1,IP:${kubernetesServiceIP},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n`);
  sign(pki, 'admin', '/O=system:masters/CN=kiln-admin', 'extendedKeyUsage=clientAuth\n');
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'sa.key'], pki);
  openssl(['ec', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], pki);
  makeNodeCertificates(pki);
}

/** The local node's name (@kiln/local-node's NODE_NAME; spelled here so that pki needs no import of the agent). */
export const LOCAL_NODE = 'kiln-local-0';

/**
 * The local node's certificates, each made when missing (a cluster from before the local node gets them on its
 * next `up`): `node` (its client identity for the Node authorizer: CN=system:node:<name>, O=system:nodes),
 * `kubelet` (its kubelet API's serving certificate for 127.0.0.1) and `apiserver-kubelet-client` (the API server's
 * client certificate towards that API, in system:masters).
 */
export function makeNodeCertificates(pki: string): void {
  if (!existsSync(join(pki, 'node.crt'))) sign(pki, 'node', `/O=system:nodes/CN=system:node:${LOCAL_NODE}`, 'extendedKeyUsage=clientAuth\n');
  if (!existsSync(join(pki, 'kubelet.crt'))) sign(pki, 'kubelet', `/CN=${LOCAL_NODE}`, `subjectAltName=IP:127.0.0.1,DNS:${LOCAL_NODE},DNS:localhost\nextendedKeyUsage=serverAuth\n`);
  if (!existsSync(join(pki, 'apiserver-kubelet-client.crt'))) sign(pki, 'apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client', 'extendedKeyUsage=clientAuth\n');
}

function kubeconfig(p: Paths, port: number, user: string, cert: string): string {
  const b64 = (f: string) => readFileSync(join(p.pki, f)).toString('base64');
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'kiln-local', cluster: { server: `https://127.0.0.1:${port}`, 'certificate-authority-data': b64('ca.crt') } }],
    users: [{ name: user, user: { 'client-certificate-data': b64(`${cert}.crt`), 'client-key-data': b64(`${cert}.key`) } }],
    contexts: [{ name: 'kiln-local', context: { cluster: 'kiln-local', user } }],
    'current-context': 'kiln-local',
  });
}

export function writeKubeconfig(p: Paths, port: number): void {
  writeFileSync(p.kubeconfig, kubeconfig(p, port, 'kiln-admin', 'admin'), { mode: 0o600 });
}

/** The local node's kubeconfig: its own certificate, so the Node authorizer gives it only its node's objects. */
export function writeNodeKubeconfig(p: Paths, port: number): void {
  writeFileSync(p.nodeKubeconfig, kubeconfig(p, port, `system:node:${LOCAL_NODE}`, 'node'), { mode: 0o600 });
}

/** A client-node KubeConfig for the cluster under `root` (its admin user); throws when there is no cluster there. */
export async function clusterKubeConfig(root: string): Promise<KubeConfig> {
  const p = paths(root);
  if (!readState(p)) throw new ClusterError(`no local cluster in ${p.cluster}`, 'start one with `kiln cluster up`');
  const { kubeConfigFrom } = await import('@kiln/cluster');
  return kubeConfigFrom(p.kubeconfig);
}

/** The cluster's CA certificate (PEM), for kubeconfigs of other users of the same API server. */
export function caCertificate(p: Paths): string {
  return readFileSync(join(p.pki, 'ca.crt'), 'utf8');
}
