/** Pod → ContainerSpec translation: env (valueFrom, envFrom, expansion order), mounts, user, limits, errors. */
import type { V1Pod } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { ConfigError, containerSpec, resolvConf, type TranslateInput } from '../src/agent/translate.ts';
import { parseQuantity, cpuMillis } from '../src/agent/quantity.ts';

function pod(over: Partial<V1Pod['spec']> = {}, container: Record<string, unknown> = {}): V1Pod {
  return {
    metadata: { name: 'p-0', namespace: 'ns1', uid: 'u-1', labels: { app: 'a' }, annotations: { 'batch.kubernetes.io/job-completion-index': '3' } },
    spec: {
      nodeName: 'kiln-local-0',
      containers: [{ name: 'c', image: 'kiln/trainer:1', command: ['python', '-m', 'x', '--rank=$(RANK)'], args: ['$(MISSING)', '$$(RANK)'], ...container }],
      ...over,
    },
  };
}

const input = (p: V1Pod, over: Partial<TranslateInput> = {}): TranslateInput => ({
  pod: p,
  container: p.spec!.containers[0]!,
  restartCount: 0,
  image: { kind: 'trainer', env: { PATH: '/venv/bin:/usr/bin', HF_HUB_OFFLINE: '1' }, workingDir: '/checkout' },
  volumes: new Map([
    ['config', { kind: 'bind', hostPath: '/state/pods/u-1/volumes/config', readOnly: true }],
    ['dshm', { kind: 'tmpfs', readOnly: false, sizeBytes: 1 << 20 }],
  ]),
  sources: { configMaps: new Map([['cm', { K: 'from-cm', RANK: 'cm-rank' }]]), secrets: new Map([['s', { token: 'sekrit' }]]) },
  hostsFile: '/state/pods/u-1/hosts',
  podIP: '10.9.9.2',
  hostIP: '127.0.0.1',
  netns: '/run/netns/kiln-x-u1',
  nodeAllocatable: { cpu: 1.8, memory: 3 * 2 ** 30 },
  ...over,
});

describe('containerSpec', () => {
  const p = pod({}, {
    envFrom: [{ configMapRef: { name: 'cm' }, prefix: 'CM_' }],
    env: [
      { name: 'RANK', valueFrom: { fieldRef: { fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']" } } },
      { name: 'DERIVED', value: 'r$(RANK)-$(CM_K)' },
      { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 's', key: 'token' } } },
      { name: 'MEM', valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } } },
      { name: 'IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    ],
    resources: { limits: { cpu: '1500m', memory: '512Mi' } },
    volumeMounts: [{ name: 'config', mountPath: '/etc/kiln', readOnly: true }, { name: 'dshm', mountPath: '/dev/shm' }, { name: 'config', mountPath: '/one', subPath: 'stage.json' }],
    terminationMessagePath: '/dev/termination-log',
    securityContext: { readOnlyRootFilesystem: true },
  });
  const spec = containerSpec(input(p));

  it('builds the environment: image first, envFrom with its prefix, env in order with $(VAR) of what came before', () => {
    expect(spec.env).toMatchObject({ PATH: '/venv/bin:/usr/bin', HF_HUB_OFFLINE: '1', HOSTNAME: 'p-0', CM_K: 'from-cm', CM_RANK: 'cm-rank', RANK: '3', DERIVED: 'r3-from-cm', TOKEN: 'sekrit', MEM: '512', IP: '10.9.9.2' });
  });
  it('expands command and args against the final environment (undefined refs kept, $$ escaped)', () => {
    expect(spec.argv).toEqual(['python', '-m', 'x', '--rank=3', '$(MISSING)', '$(RANK)']);
  });
  it('mounts volumes at their paths in order (subPath under the volume), then the pod\'s /etc/hosts', () => {
    expect(spec.mounts).toEqual([
      { kind: 'bind', containerPath: '/etc/kiln', hostPath: '/state/pods/u-1/volumes/config', readOnly: true },
      { kind: 'tmpfs', containerPath: '/dev/shm', readOnly: false, sizeBytes: 1 << 20 },
      { kind: 'bind', containerPath: '/one', hostPath: '/state/pods/u-1/volumes/config/stage.json', readOnly: true },
      { kind: 'bind', containerPath: '/etc/hosts', hostPath: '/state/pods/u-1/hosts', readOnly: false },
    ]);
  });
  it('carries limits, read-only root, netns, working dir and the termination message path', () => {
    expect(spec).toMatchObject({ podUid: 'u-1', podKey: 'ns1/p-0', container: 'c', restartCount: 0, limits: { cpuMillis: 1500, memoryBytes: 512 * 2 ** 20 }, readOnlyRoot: true, netns: '/run/netns/kiln-x-u1', workingDir: '/checkout', terminationMessagePath: '/dev/termination-log' });
    expect(spec.user).toBeUndefined();
  });
  it('runs as the pod\'s user, the container\'s securityContext winning', () => {
    const q = pod({ securityContext: { runAsUser: 1000, runAsGroup: 1000 } }, { securityContext: { runAsUser: 65532 } });
    expect(containerSpec(input(q)).user).toEqual({ uid: 65532, gid: 1000 });
  });
  it('fails with CreateContainerConfigError for a missing key, a missing Secret and a pod without command', () => {
    const missing = pod({}, { env: [{ name: 'X', valueFrom: { configMapKeyRef: { name: 'cm', key: 'nope' } } }] });
    expect(() => containerSpec(input(missing))).toThrow(/ConfigMap "cm" has no key "nope"/);
    const noSecret = pod({}, { env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'gone', key: 'k' } } }] });
    expect(() => containerSpec(input(noSecret))).toThrow(ConfigError);
    const optional = pod({}, { env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'gone', key: 'k', optional: true } } }] });
    expect(containerSpec(input(optional)).env.X).toBeUndefined();
    const noCommand = pod({}, { command: undefined, args: ['a'] });
    expect(() => containerSpec(input(noCommand))).toThrow(/has no command/);
  });
  it('reports the node\'s allocatable for resourceFieldRef of an unset limit', () => {
    const q = pod({}, { env: [{ name: 'CPU', valueFrom: { resourceFieldRef: { resource: 'limits.cpu' } } }] });
    expect(containerSpec(input(q)).env.CPU).toBe('2');
  });
});

describe('the image under a pod volume', () => {
  it('binds the image\'s roots again right after a mount that covers them (a checkout under /tmp, an emptyDir at /tmp)', () => {
    const p = pod({}, { volumeMounts: [{ name: 'dshm', mountPath: '/tmp' }, { name: 'config', mountPath: '/etc/kiln', readOnly: true }], securityContext: { readOnlyRootFilesystem: true } });
    const spec = containerSpec(input(p, { image: { kind: 'node', env: { PATH: '/tmp/co/node_modules/.bin:/usr/bin' }, workingDir: '/tmp/co' } }));
    expect(spec.mounts.map((m) => [m.containerPath, m.kind, m.hostPath, m.readOnly])).toEqual([
      ['/tmp', 'tmpfs', undefined, false],
      ['/tmp/co', 'bind', '/tmp/co', true],
      ['/etc/kiln', 'bind', '/state/pods/u-1/volumes/config', true],
      ['/etc/hosts', 'bind', '/state/pods/u-1/hosts', false],
    ]);
  });
  it('adds nothing when no mount covers them', () => {
    const p = pod({}, { volumeMounts: [{ name: 'dshm', mountPath: '/tmp' }] });
    expect(containerSpec(input(p)).mounts.map((m) => m.containerPath)).toEqual(['/tmp', '/etc/hosts']);
  });
});

describe('resolv.conf', () => {
  it('fails DNS at once (no cluster DNS, no reachable resolver) with a cluster\'s search domains, and mounts it read-only', () => {
    expect(resolvConf(pod())).toBe('# kiln local node: no cluster DNS; Services resolve through /etc/hosts.\nsearch ns1.svc.cluster.local svc.cluster.local cluster.local\nnameserver 127.0.0.1\noptions ndots:5 timeout:1 attempts:1\n');
    const p = pod();
    expect(containerSpec(input(p, { resolvFile: '/state/r' })).mounts.at(-1)).toEqual({ kind: 'bind', containerPath: '/etc/resolv.conf', hostPath: '/state/r', readOnly: true });
  });
  it('honours dnsPolicy None with dnsConfig', () => {
    expect(resolvConf(pod({ dnsPolicy: 'None', dnsConfig: { nameservers: ['10.0.0.53'], searches: ['corp'], options: [{ name: 'ndots', value: '2' }] } }))).toBe('# kiln local node: no cluster DNS; Services resolve through /etc/hosts.\nsearch corp\nnameserver 10.0.0.53\noptions ndots:2\n');
  });
});

describe('quantities', () => {
  it('parses binary, decimal, milli and exponent forms', () => {
    expect(parseQuantity('2Gi')).toBe(2 * 2 ** 30);
    expect(parseQuantity('500M')).toBe(5e8);
    expect(parseQuantity('250m')).toBe(0.25);
    expect(parseQuantity('1e3')).toBe(1000);
    expect(cpuMillis('0.1')).toBe(100);
    expect(() => parseQuantity('lots')).toThrow(/not a Kubernetes quantity/);
  });
});
