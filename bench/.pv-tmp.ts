import { kubeConfigFrom, requestRaw } from '@kiln/cluster';
const kc = kubeConfigFrom('/work/wt/stack/.kiln/cluster/kubeconfig');
const pvc = (await requestRaw(kc, 'GET', '/api/v1/namespaces/kiln-tiny/persistentvolumeclaims/kiln-artifacts')).body as any;
const pv = (await requestRaw(kc, 'GET', `/api/v1/persistentvolumes/${pvc.spec.volumeName}`)).body as any;
console.log(pv.spec.hostPath?.path ?? pv.spec.local?.path);
