/**
 * `kiln-local-node`: the local execution node's agent (docs/local-node.md). `kiln cluster up` starts it with
 * everything on the command line; it runs until SIGTERM or SIGINT and leaves its pods running when it stops (a
 * restarted agent adopts them; `kiln cluster down` stops them).
 */
import { parseArgs } from 'node:util';
import { Agent } from './agent/agent.ts';
import { NODE_NAME } from './agent/node.ts';
import { startKubeletServer } from './agent/server.ts';

const USAGE = `usage: kiln-local-node --kubeconfig FILE --state-dir DIR --pod-cidr CIDR --network-name ID --port N
                       --tls-cert FILE --tls-key FILE --client-ca FILE [--node-name NAME]
  --kubeconfig    the node's kubeconfig (a client certificate CN=system:node:<name>, O=system:nodes)
  --state-dir     where the node keeps containers, sandboxes, volumes (created when missing)
  --pod-cidr      this node's pod CIDR (e.g. 10.208.3.0/24); --network-name: a short id unique on this host
  --port          the kubelet API's HTTPS port on 127.0.0.1; --tls-cert/--tls-key: its serving certificate
  --client-ca     the CA whose system:masters clients (the API server) may read logs
  --node-name     default ${NODE_NAME}`;

export async function main(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        kubeconfig: { type: 'string' },
        'state-dir': { type: 'string' },
        'pod-cidr': { type: 'string' },
        'network-name': { type: 'string' },
        port: { type: 'string' },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'client-ca': { type: 'string' },
        'node-name': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    process.stderr.write(`kiln-local-node: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const need = ['kubeconfig', 'state-dir', 'pod-cidr', 'network-name', 'port', 'tls-cert', 'tls-key', 'client-ca'];
  const missing = need.filter((k) => typeof values[k] !== 'string');
  if (missing.length) {
    process.stderr.write(`kiln-local-node: missing ${missing.map((m) => `--${m}`).join(', ')}\n${USAGE}\n`);
    return 2;
  }
  const v = values as Record<string, string>;
  const log = (m: string) => process.stderr.write(`${new Date().toISOString()} ${m}\n`);
  const { kubeConfigFrom } = await import('@kiln/cluster');
  const agent = new Agent({ kc: kubeConfigFrom(v.kubeconfig!), nodeName: v['node-name'] ?? NODE_NAME, stateDir: v['state-dir']!, podCidr: v['pod-cidr']!, networkName: v['network-name']!, port: Number(v.port), log });
  const server = await startKubeletServer({ port: Number(v.port), cert: v['tls-cert']!, key: v['tls-key']!, ca: v['client-ca']!, source: { pod: (ns, n) => agent.pod(ns, n), containerRecord: (p, c, prev) => agent.containerRecord(p, c, prev), logFile: (id) => agent.runtime.logFile(id) }, log });
  await agent.start();
  await new Promise<void>((resolve) => {
    for (const s of ['SIGTERM', 'SIGINT'] as const) process.once(s, () => resolve());
  });
  log('stopping (pods keep running; a restarted agent adopts them)');
  server.close();
  await agent.stop();
  return 0;
}
