import { kubeConfigFrom, requestRaw } from '@kiln/cluster';
const kc = kubeConfigFrom('/work/wt/stack/.kiln/cluster/kubeconfig');
const r = await requestRaw(kc, 'PATCH', '/apis/apps/v1/namespaces/kiln-tiny/deployments/tiny-completions-gateway', { spec: { template: { spec: { containers: [{ name: 'gateway', livenessProbe: { httpGet: { path: '/healthz', port: 'http' }, initialDelaySeconds: 15, periodSeconds: 10, failureThreshold: 3 } }] } } } }, { contentType: 'application/strategic-merge-patch+json' });
console.log(r.status);
