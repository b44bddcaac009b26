import { fileURLToPath } from 'node:url';
import type { V1LabelSelector, V1NetworkPolicy } from '@kubernetes/client-node';
import { compileFile, type Plan } from '@kiln/plan';
import { describe, expect, it } from 'vitest';
import {
  allObjects,
  canaryObjects,
  evalModelObjects,
  GATEWAY_KEYS_PATH,
  gatewayConfig,
  gatewayObjects,
  gatewayUrl,
  servingObjects,
  servingUrl,
  stageObjects,
} from '../src/index.ts';
import { DIGEST, record, served } from './served.ts';

const configs = fileURLToPath(new URL('../../../configs/', import.meta.url));
function plan(file: string, stack?: string): Plan {
  const r = compileFile(configs + file, stack ? { stack } : {});
  if (!r.plan) throw new Error(r.diagnostics.map((d) => d.message).join('; '));
  return r.plan;
}

/** Does a label selector (matchLabels and In expressions) select a pod with these labels? */
function selects(sel: V1LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  if (!sel) return false;
  const l = labels ?? {};
  const byLabels = Object.entries(sel.matchLabels ?? {}).every(([k, v]) => l[k] === v);
  const byExpr = (sel.matchExpressions ?? []).every((e) => e.operator === 'In' && e.values!.includes(l[e.key]!));
  return byLabels && byExpr;
}

/** The pod selectors a policy's ingress rule on `port` admits (`[{}]`: any peer, when the rule has no `from`). */
function ingressPeersOn(p: V1NetworkPolicy, port: number): (V1LabelSelector | 'anyone')[] {
  type Rule = { from?: { podSelector?: V1LabelSelector }[]; ports?: { port?: number | string }[] };
  const rules = (p.spec!.ingress ?? []) as unknown as Rule[];
  return rules.filter((r) => !r.ports || r.ports.some((x) => x.port === port)).flatMap<V1LabelSelector | 'anyone'>((r) => (r.from ? r.from.map((f) => f.podSelector!) : ['anyone' as const]));
}

/** The run a stack serves before the canary, and the candidate's digest. */
const STABLE_RUN = 'r-5ab1e5ab1e00';
const CANDIDATE_DIGEST = `sha256:${'cd'.repeat(32)}`;

describe('gateway objects (tiny-loop: python backend, gateway, canary 0.1, pvc storage) while a canary is declared', () => {
  const p = plan('tiny-loop.yaml');
  const t = p.serving[0]!;
  const g = gatewayObjects(p, t, { canary: true });
  const triton = servingObjects(p, t, served(p, t, STABLE_RUN));
  const canary = canaryObjects(p, t, served(p, t, p.runId, CANDIDATE_DIGEST))!;
  const pod = g.deployment.spec!.template.spec!;
  const c = pod.containers[0]!;

  it('GIVEN the plan WHEN the config is built THEN it is the contract §3 shape: the target as model, stable and canary upstreams weighted by the share', () => {
    const cfg = JSON.parse(g.configMap.data!['config.json']!);
    expect(cfg).toEqual(gatewayConfig(p, t, { canary: true }));
    expect(cfg).toEqual({
      model: 'completions',
      upstreams: [
        { name: 'stable', url: servingUrl(p, t), weight: 0.9 },
        { name: 'canary', url: `http://${canary.service.metadata!.name}.kiln-tiny-loop.svc:8000`, weight: 0.1 },
      ],
      api_keys_file: '/etc/kiln/gateway-keys/keys',
      limits: { requests_per_minute: 120, tokens_per_minute: 50000, max_tokens: 64 },
      feedback: { dir: '/artifacts/feedback/completions' },
      log: { level: 'info', prompts: false },
    });
    expect(canary.service.metadata!.name).toBe('tiny-loop-completions-canary');
  });

  it('GIVEN the Deployment WHEN inspected THEN it runs kiln-gateway on the mounted config, with probes on /readyz and /healthz', () => {
    expect(c.image).toBe('kiln/gateway:0.1.0');
    expect(c.command).toEqual(['kiln-gateway', '--config', '/etc/kiln/gateway/config.json', '--port', '8080']);
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(c.ports).toEqual([{ name: 'http', containerPort: 8080 }]);
    expect(pod.volumes!.find((v) => v.name === 'config')!.configMap!.name).toBe(g.configMap.metadata!.name);
  });

  it('GIVEN the API-keys Secret WHEN mounted THEN its one key is a read-only file at api_keys_file, and no env var or config holds it', () => {
    const keys = pod.volumes!.find((v) => v.name === 'api-keys')!;
    expect(keys.secret).toEqual({ secretName: 'tiny-loop-gateway-keys', items: [{ key: 'keys', path: 'keys' }], defaultMode: 0o440 });
    const mount = c.volumeMounts!.find((m) => m.name === 'api-keys')!;
    expect(mount.readOnly).toBe(true);
    expect(`${mount.mountPath}/keys`).toBe(GATEWAY_KEYS_PATH);
    expect(c.env ?? []).toEqual([]);
    expect(c.envFrom).toBeUndefined();
    // kiln only names the Secret: nothing it builds has a Secret object, secretKeyRef or inline data.
    const all = JSON.stringify(allObjects(p, { model: record(p, STABLE_RUN), canary: record(p) }));
    expect(all).not.toMatch(/"kind":"Secret"|secretKeyRef|"stringData"/);
  });

  it('GIVEN the pod WHEN inspected THEN it runs with least privilege: no API token, non-root, read-only root, no capabilities, bounded resources', () => {
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.enableServiceLinks).toBe(false);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } });
    expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, privileged: false, capabilities: { drop: ['ALL'] } });
    expect(c.resources?.requests).toEqual({ cpu: '250m', memory: '256Mi' });
    expect(c.resources?.limits).toEqual({ cpu: '1', memory: '512Mi' });
  });

  it('GIVEN pvc storage WHEN the feedback folder is mounted THEN only the claim\'s feedback/<target> folder, writable, at the config\'s dir', () => {
    const v = pod.volumes!.find((x) => x.name === 'feedback')!;
    expect(v.persistentVolumeClaim).toEqual({ claimName: 'kiln-artifacts' });
    expect(c.volumeMounts!.find((m) => m.name === 'feedback')).toEqual({ name: 'feedback', mountPath: '/artifacts/feedback/completions', subPath: 'feedback/completions' });
  });

  it('GIVEN the selectors WHEN matched THEN the Service, HPA and PDB pick the gateway pods, and neither Triton Service picks a gateway or each other\'s pods', () => {
    const gwPod = g.deployment.spec!.template.metadata!.labels!;
    const stablePod = triton.deployment.spec!.template.metadata!.labels!;
    const canaryPod = canary.deployment.spec!.template.metadata!.labels!;
    expect(selects({ matchLabels: g.service.spec!.selector! }, gwPod)).toBe(true);
    expect(selects(g.deployment.spec!.selector, gwPod)).toBe(true);
    expect(selects(g.pdb.spec!.selector, gwPod)).toBe(true);
    expect(g.hpa.spec!.scaleTargetRef.name).toBe(g.deployment.metadata!.name);
    expect(g.hpa.spec).toMatchObject({ minReplicas: 1, maxReplicas: 2 });
    const stableSvc = { matchLabels: triton.service.spec!.selector! };
    const canarySvc = { matchLabels: canary.service.spec!.selector! };
    expect([selects(stableSvc, stablePod), selects(stableSvc, canaryPod), selects(stableSvc, gwPod)]).toEqual([true, false, false]);
    expect([selects(canarySvc, canaryPod), selects(canarySvc, stablePod), selects(canarySvc, gwPod)]).toEqual([true, false, false]);
    expect(selects(canary.deployment.spec!.selector, canaryPod)).toBe(true);
  });

  it('GIVEN the NetworkPolicies WHEN evaluated THEN Triton HTTP (stable and canary) admits exactly the gateway pods, and the gateway admits anyone on 8080', () => {
    const gwPod = g.deployment.spec!.template.metadata!.labels!;
    const stablePod = triton.deployment.spec!.template.metadata!.labels!;
    const canaryPod = canary.deployment.spec!.template.metadata!.labels!;
    const evalPod = stageObjects(p, p.stages.find((s) => s.kind === 'eval')!).job.spec!.template.metadata!.labels!;
    for (const [policy, pods] of [[g.tritonPolicy, stablePod], [g.canaryPolicy!, canaryPod]] as const) {
      expect(selects(policy.spec!.podSelector, pods)).toBe(true);
      expect(policy.spec!.policyTypes).toEqual(['Ingress']);
      const peers = ingressPeersOn(policy, 8000);
      expect(peers).toHaveLength(1);
      expect(peers[0]).not.toBe('anyone');
      const peer = peers[0] as V1LabelSelector;
      expect([selects(peer, gwPod), selects(peer, evalPod), selects(peer, stablePod), selects(peer, canaryPod)]).toEqual([true, false, false, false]);
      expect(ingressPeersOn(policy, 8002)).toEqual(['anyone']);
    }
    expect(selects(g.tritonPolicy.spec!.podSelector, canaryPod)).toBe(false);
    expect(selects(g.gatewayPolicy.spec!.podSelector, gwPod)).toBe(true);
    expect(ingressPeersOn(g.gatewayPolicy, 8080)).toEqual(['anyone']);
    expect(ingressPeersOn(g.gatewayPolicy, 8000)).toEqual([]);
    // Egress: the two Triton Deployments' pods on 8000, and DNS.
    const egress = g.gatewayPolicy.spec!.egress!;
    expect(egress[0]!.ports).toEqual([{ protocol: 'TCP', port: 8000 }]);
    expect(egress[0]!.to!.map((x) => [selects(x.podSelector, stablePod), selects(x.podSelector, canaryPod)])).toEqual([[true, false], [false, true]]);
    expect(egress[1]!.ports!.map((x) => x.port)).toEqual([53, 53]);
  });

  it('GIVEN a stable model and a candidate WHEN built THEN each Triton serves its own promotion\'s repository, labelled with its run and annotated with its digest', () => {
    const pod = (d: typeof canary.deployment) => d.spec!.template;
    expect(pod(canary.deployment).spec!.containers[0]!.command).toContain(`--model-repository=/artifacts/tiny-loop/runs/${p.runId}/export/completions/`);
    expect(pod(triton.deployment).spec!.containers[0]!.command).toContain(`--model-repository=/artifacts/tiny-loop/runs/${STABLE_RUN}/export/completions/`);
    expect(pod(canary.deployment).metadata!.labels!['kiln.dev/run-id']).toBe(p.runId);
    expect(pod(triton.deployment).metadata!.labels!['kiln.dev/run-id']).toBe(STABLE_RUN);
    expect(pod(canary.deployment).metadata!.annotations).toEqual({ 'kiln.dev/model-digest': CANDIDATE_DIGEST });
    expect(pod(triton.deployment).metadata!.annotations).toEqual({ 'kiln.dev/model-digest': DIGEST });
    expect(canary.deployment.spec!.replicas).toBe(1);
  });

  it('GIVEN a config change WHEN rebuilt THEN the pod template digest changes (pods roll); the same plan gives the same digest', () => {
    const digest = (x: ReturnType<typeof gatewayObjects>) => x.deployment.spec!.template.metadata!.annotations!['kiln.dev/config-digest'];
    expect(digest(gatewayObjects(p, t, { canary: true }))).toBe(digest(g));
    const changed = { ...t, gateway: { ...t.gateway!, requestsPerMinute: 7 } };
    expect(digest(gatewayObjects(p, changed, { canary: true }))).not.toBe(digest(g));
    // The end of a canary rollout is a config change too: the gateway rolls onto the stable upstream alone.
    expect(digest(gatewayObjects(p, t, { canary: false }))).not.toBe(digest(g));
  });

  it('GIVEN the gateway URL WHEN made THEN it is the gateway Service on 8080 under /v1', () => {
    expect(gatewayUrl(p, t)).toBe(`http://${g.service.metadata!.name}.kiln-tiny-loop.svc:8080/v1`);
  });
});

describe('gateway without canary or feedback folder', () => {
  it('GIVEN tiny (canary 0) WHEN built, even with a candidate declared THEN one stable upstream of weight 1, no canary objects or policy', () => {
    const p = plan('tiny.yaml');
    const t = p.serving[0]!;
    expect(gatewayConfig(p, t, { canary: true }).upstreams).toEqual([{ name: 'stable', url: servingUrl(p, t), weight: 1 }]);
    expect(canaryObjects(p, t, served(p, t))).toBeUndefined();
    expect(gatewayObjects(p, t, { canary: true }).canaryPolicy).toBeUndefined();
  });

  it('GIVEN tiny-loop (canary 0.1) and no candidate declared WHEN built THEN the stable upstream alone at weight 1, no canary objects, no egress to canary pods', () => {
    const p = plan('tiny-loop.yaml');
    const t = p.serving[0]!;
    expect(gatewayConfig(p, t, { canary: false }).upstreams).toEqual([{ name: 'stable', url: servingUrl(p, t), weight: 1 }]);
    expect(canaryObjects(p, t)).toBeUndefined();
    const g = gatewayObjects(p, t, { canary: false });
    expect(g.canaryPolicy).toBeUndefined();
    expect(g.gatewayPolicy.spec!.egress![0]!.to).toEqual([{ podSelector: { matchLabels: { 'app.kubernetes.io/part-of': 'tiny-loop', 'kiln.dev/serving-target': 'completions' } } }]);
    const kinds = allObjects(p, { model: record(p) }).map((o) => `${o.kind} ${o.metadata!.name}`);
    expect(kinds).toContain('Deployment tiny-loop-completions');
    expect(kinds).not.toContain('Deployment tiny-loop-completions-canary');
  });

  it('GIVEN s3 storage (multinode-7b) WHEN built THEN no feedback in the config and no volume but config, keys and tmp; on the CPU pool with a PDB keeping one', () => {
    const p = plan('multinode-7b.yaml');
    const t = p.serving[0]!;
    const g = gatewayObjects(p, t, { canary: false });
    expect(gatewayConfig(p, t, { canary: false })).not.toHaveProperty('feedback');
    expect(g.deployment.spec!.template.spec!.volumes!.map((v) => v.name)).toEqual(['config', 'api-keys', 'tmp']);
    expect(g.deployment.spec!.template.spec!.nodeSelector).toEqual({ 'node.kubernetes.io/instance-type': 'm7i.8xlarge' });
    expect(g.pdb.spec).toMatchObject({ minAvailable: 1 });
    expect(g.deployment.spec!.replicas).toBe(3);
  });

  it('GIVEN a target without a gateway, or a gateway naming no secret WHEN built THEN a clear error', () => {
    const p = plan('fim.yaml');
    expect(() => gatewayObjects(p, p.serving[0]!, { canary: false })).toThrow(/has no gateway/);
    const q = plan('tiny.yaml');
    expect(() => gatewayObjects({ ...q, secrets: {} }, q.serving[0]!, { canary: false })).toThrow(/api_keys "gateway-keys" is not an entry of infra.secrets/);
  });
});

describe('canary weights', () => {
  it('GIVEN a canary of 0.7 WHEN weighted THEN the stable weight is 0.3 exactly, and the two sum to 1', () => {
    const p = plan('tiny-loop.yaml');
    const t = { ...p.serving[0]!, canary: 0.7 };
    const [stable, canary] = gatewayConfig(p, t, { canary: true }).upstreams;
    expect([stable!.weight, canary!.weight]).toEqual([0.3, 0.7]);
  });
});

describe('eval model server policy', () => {
  it('GIVEN a plan without eval stages WHEN built THEN no pod may reach the eval model\'s HTTP port (never an empty from)', () => {
    const p = plan('tiny-loop.yaml');
    const none = { ...p, stages: p.stages.filter((s) => s.kind !== 'eval') };
    const policy = evalModelObjects(none).networkPolicy;
    expect(ingressPeersOn(policy, 8000)).toEqual([]);
    expect(ingressPeersOn(policy, 8002)).toEqual(['anyone']);
  });

  it('GIVEN the run WHEN built THEN only its eval stage pods may reach the eval model\'s HTTP port', () => {
    const p = plan('tiny-loop.yaml');
    const { deployment, networkPolicy } = evalModelObjects(p);
    const evalPod = stageObjects(p, p.stages.find((s) => s.kind === 'eval')!).job.spec!.template.metadata!.labels!;
    const trainPod = stageObjects(p, p.stages.find((s) => s.kind === 'train')!).job.spec!.template.metadata!.labels!;
    const gwPod = gatewayObjects(p, p.serving[0]!, { canary: false }).deployment.spec!.template.metadata!.labels!;
    expect(selects(networkPolicy.spec!.podSelector, deployment.spec!.template.metadata!.labels)).toBe(true);
    const peers = ingressPeersOn(networkPolicy, 8000) as V1LabelSelector[];
    expect(peers).toHaveLength(1);
    expect([selects(peers[0], evalPod), selects(peers[0], trainPod), selects(peers[0], gwPod)]).toEqual([true, false, false]);
  });
});

describe('snapshots (tiny-loop)', () => {
  const p = plan('tiny-loop.yaml');
  it('gateway', () => expect(gatewayObjects(p, p.serving[0]!, { canary: true })).toMatchSnapshot());
  it('canary', () => expect(canaryObjects(p, p.serving[0]!, served(p, p.serving[0]!))).toMatchSnapshot());
});
