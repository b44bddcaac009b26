/** The local cluster's certificates (a CA, the API server's serving certificate, the admin client) and its kubeconfig. */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { ClusterError, paths, readState, type Paths } from './paths.ts';

function openssl(args: string[], cwd: string): void {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.status !== 0) throw new ClusterError(`openssl ${args[0]} failed`, r.stderr);
}

/** A CA, the API server's serving certificate, an admin client certificate and the service-account key. */
export function makeCertificates(pki: string): void {
  mkdirSync(pki, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '3650', '-subj', '/CN=kiln-local-ca'], pki);
  const sign = (name: string, subject: string, ext: string) => {
    openssl(['req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], pki);
    writeFileSync(join(pki, `${name}.ext`), ext);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '3650', '-extfile', `${name}.ext`], pki);
  };
  sign('apiserver', '/CN=kube-apiserver', 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n');
  sign('admin', '/O=system:masters/CN=kiln-admin', 'extendedKeyUsage=clientAuth\n');
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'sa.key'], pki);
  openssl(['ec', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], pki);
}

export function writeKubeconfig(p: Paths, port: number): void {
  const b64 = (f: string) => readFileSync(join(p.pki, f)).toString('base64');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'kiln-local', cluster: { server: `https://127.0.0.1:${port}`, 'certificate-authority-data': b64('ca.crt') } }],
    users: [{ name: 'kiln-admin', user: { 'client-certificate-data': b64('admin.crt'), 'client-key-data': b64('admin.key') } }],
    contexts: [{ name: 'kiln-local', context: { cluster: 'kiln-local', user: 'kiln-admin' } }],
    'current-context': 'kiln-local',
  };
  writeFileSync(p.kubeconfig, stringify(config), { mode: 0o600 });
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
