import { listObjects, kubeConfigFrom } from '@kiln/cluster';
const kc = kubeConfigFrom('/work/wt/stack/.kiln/cluster/kubeconfig');
for (const p of await listObjects<any>(kc, 'v1', 'Pod', 'kiln-tiny')) console.log(p.metadata.name, p.spec.nodeName, p.status.phase, JSON.stringify(p.status.containerStatuses?.map((c: any) => [c.ready, c.restartCount, c.state])).slice(0, 300));
