import { readPodLog, kubeConfigFrom } from '@kiln/cluster';
const kc = kubeConfigFrom('/work/wt/stack/.kiln/cluster/kubeconfig');
console.log(await readPodLog(kc, 'kiln-tiny', process.argv[2]!, { container: process.argv[3], tailLines: 15, previous: process.argv[4] === 'prev' } as any));
