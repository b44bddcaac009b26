/** A real stage pod (libs/k8s stageObjects of a multi-node training stage) as the local node runs it. */
import { fileURLToPath } from 'node:url';
import type { V1Pod } from '@kubernetes/client-node';
import { stageObjects } from '@kiln/k8s';
import { containerSpec } from '@kiln/local-node';
import { compileFile } from '@kiln/plan';
import { describe, expect, it } from 'vitest';

const configs = fileURLToPath(new URL('../../../configs/', import.meta.url));

describe('the train stage pod on the local node', () => {
  const r = compileFile(`${configs}multinode-7b.yaml`, {});
  if (!r.plan) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  const plan = r.plan;
  const stage = plan.stages.find((s) => s.kind === 'train')!;
  const { job, configMap } = stageObjects(plan, stage);
  const template = job.spec!.template;
  // What the Job controller adds to an Indexed Job's pod, and the API server's defaults the agent relies on.
  const pod: V1Pod = {
    metadata: { ...template.metadata, name: `${job.metadata!.name}-1-abcde`, namespace: plan.namespace, uid: 'pod-uid-1', annotations: { ...template.metadata?.annotations, 'batch.kubernetes.io/job-completion-index': '1' } },
    spec: { ...template.spec!, nodeName: 'kiln-local-0' },
  };
  const c = pod.spec!.containers[0]!;
  const volumes = new Map(
    (pod.spec!.volumes ?? []).map((v) => [v.name, v.emptyDir?.medium === 'Memory' ? { kind: 'tmpfs' as const, readOnly: false, sizeBytes: 1 << 30 } : { kind: 'bind' as const, hostPath: `/state/pods/pod-uid-1/volumes/${v.name}`, readOnly: Boolean(v.configMap) }]),
  );
  const secrets = new Map(Object.values(plan.secrets).map((ref) => [ref.secret, { [ref.key]: 'secret-value' }]));
  const spec = containerSpec({
    pod,
    container: c,
    restartCount: 0,
    image: { kind: 'trainer', env: { PATH: '/venv/bin:/usr/bin', PYTHONPATH: '/checkout/services/trainer/src' }, workingDir: '/checkout' },
    volumes,
    sources: { configMaps: new Map(), secrets },
    hostsFile: '/state/pods/pod-uid-1/hosts',
    podIP: '10.208.0.5',
    hostIP: '127.0.0.1',
    netns: '/run/netns/kiln-abc-pod',
    nodeAllocatable: { cpu: 2, memory: 4 * 2 ** 30 },
  });

  it('runs the launcher with its rendezvous flags expanded from the completion index and the headless Service', () => {
    expect(spec.argv.slice(0, 3)).toEqual(c.command!.slice(0, 3));
    expect(spec.argv).toContain('--node-rank=1');
    expect(spec.argv).toContain(`--master-addr=${job.metadata!.name}-0.${job.metadata!.name}-rdzv`);
    expect(spec.argv.join(' ')).not.toMatch(/\$\(/);
    expect(spec.argv.slice(-2)).toEqual(['--config', '/etc/kiln/stage.json']);
  });
  it('mounts the stage ConfigMap at /etc/kiln (read-only), so the stage reads /etc/kiln/stage.json unchanged', () => {
    expect(configMap.data).toHaveProperty(['stage.json']);
    expect(spec.mounts).toContainEqual({ kind: 'bind', containerPath: '/etc/kiln', hostPath: '/state/pods/pod-uid-1/volumes/config', readOnly: true });
    expect(spec.mounts.at(-1)).toMatchObject({ containerPath: '/etc/hosts' });
  });
  it('gets the stage env, its NODE_RANK and HOSTNAME = the pod name, on top of the image env', () => {
    expect(spec.env).toMatchObject({ KILN_STAGE: stage.name, KILN_CONFIG: '/etc/kiln/stage.json', NODE_RANK: '1', HOSTNAME: pod.metadata!.name, PYTHONPATH: '/checkout/services/trainer/src' });
  });
  it('carries its memory and CPU limits and its termination message path', () => {
    expect(spec.limits.memoryBytes).toBeGreaterThan(0);
    expect(spec.limits.cpuMillis).toBeGreaterThan(0);
    expect(spec.terminationMessagePath).toBe('/dev/termination-log');
    expect(spec.netns).toBe('/run/netns/kiln-abc-pod');
  });
});
