/**
 * The kiln gateway of one serving target, the only door to its Triton: its config file (a ConfigMap), a
 * Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget, and the NetworkPolicies that make it
 * the only door: Triton's pods accept HTTP from the gateway's pods alone.
 *
 *   clients ──▶ :8080 gateway pods ──▶ :8000 stable Triton pods
 *                                  └─▶ :8000 canary Triton pods (while a canary is declared and the target has a share)
 *   anyone  ──▶ :8002 Triton metrics (Prometheus, the autoscaler's metrics adapter)
 */
import { createHash } from 'node:crypto';
import type {
  V1ConfigMap,
  V1Deployment,
  V1NetworkPolicy,
  V1NetworkPolicyIngressRule,
  V1NetworkPolicyPeer,
  V1PodDisruptionBudget,
  V1PodSpec,
  V1Service,
  V1Volume,
  V1VolumeMount,
  V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';
import { GATEWAY_RESOURCES, type GatewayPlan, type Plan, type ServingPlan } from '@kiln/plan';
import { metadata } from './meta.ts';
import { ANNOTATIONS, canaryName, canarySelector, gatewayName, gatewaySelector, GATEWAY_PORT, LABELS, serviceUrl, servingName, servingSelector, TRITON_PORTS } from './names.ts';
import { podPath } from './storage.ts';

/** Where the gateway's config file is mounted, and the file. */
export const GATEWAY_CONFIG_DIR = '/etc/kiln/gateway';
export const GATEWAY_CONFIG_PATH = `${GATEWAY_CONFIG_DIR}/config.json`;
/** Where the API-keys Secret is mounted (read-only), and the file its key is projected to. */
export const GATEWAY_KEYS_DIR = '/etc/kiln/gateway-keys';
export const GATEWAY_KEYS_PATH = `${GATEWAY_KEYS_DIR}/keys`;
/** The user the gateway runs as (distroless `nonroot`); it also owns what it writes to the feedback folder. */
const GATEWAY_UID = 65532;
/** The autoscaler holds utilisation of the gateway's CPU request (GATEWAY_RESOURCES unless the plan sizes it) near this. */
const CPU_TARGET_PERCENT = 70;

/** The gateway's config file (the contract's §3; schemas/gateway-config.schema.json is the gateway's own). */
export interface GatewayConfig {
  readonly model: string;
  readonly upstreams: readonly { readonly name: string; readonly url: string; readonly weight: number }[];
  readonly api_keys_file: string;
  readonly limits: { readonly requests_per_minute: number; readonly tokens_per_minute: number; readonly max_tokens?: number };
  readonly feedback?: { readonly dir: string };
  readonly log: { readonly level: 'info'; readonly prompts: false };
}

export interface GatewayObjects {
  readonly configMap: V1ConfigMap;
  readonly deployment: V1Deployment;
  readonly service: V1Service;
  readonly hpa: V2HorizontalPodAutoscaler;
  readonly pdb: V1PodDisruptionBudget;
  /** The gateway's pods: ingress on 8080 from anywhere; egress to the target's Triton pods and DNS only. */
  readonly gatewayPolicy: V1NetworkPolicy;
  /** The stable Triton pods: HTTP and gRPC from the gateway's pods only; metrics from anywhere. */
  readonly tritonPolicy: V1NetworkPolicy;
  /** The canary Triton pods, the same rules; only while a canary is declared and the target has a canary share. */
  readonly canaryPolicy?: V1NetworkPolicy;
}

/** Whether the stack declares a canary of the target now (`kiln:canary`): only then is there a canary upstream. */
export interface GatewayOptions {
  readonly canary: boolean;
}

/** A canary upstream exists while one is declared and the target gives it a share. */
const hasCanary = (target: ServingPlan, opts: GatewayOptions): boolean => opts.canary && target.canary > 0;

/**
 * A gateway's config: the target's name as the model; the stable Triton upstream, and while a canary is declared
 * (`opts.canary`) and the target has a share, the canary's, weighted `1 - share` and `share`. Otherwise stable
 * alone, weight 1.
 */
export function gatewayConfig(plan: Plan, target: ServingPlan, opts: GatewayOptions): GatewayConfig {
  const g = requireGateway(target);
  const share = hasCanary(target, opts) ? target.canary : 0;
  // Rounded: 1 - 0.7 is 0.30000000000000004 in floating point.
  const stable = { name: 'stable', url: serviceUrl(servingName(plan, target), plan.namespace), weight: Math.round((1 - share) * 1e6) / 1e6 };
  const canary = share > 0 ? [{ name: 'canary', url: serviceUrl(canaryName(plan, target), plan.namespace), weight: share }] : [];
  return {
    model: target.name,
    upstreams: [stable, ...canary],
    api_keys_file: GATEWAY_KEYS_PATH,
    limits: { requests_per_minute: g.requestsPerMinute, tokens_per_minute: g.tokensPerMinute, ...(g.maxTokens !== undefined ? { max_tokens: g.maxTokens } : {}) },
    ...(g.feedback ? { feedback: { dir: podPath(g.feedback).replace(/\/+$/, '') } } : {}),
    // Prompts are user code: never logged.
    log: { level: 'info', prompts: false },
  };
}

/**
 * Every object of a target's gateway; the canary's upstream, egress and policy only while a canary is declared
 * (`opts.canary`). Throws when the target has no gateway or its API-keys entry is not in the plan's secrets.
 */
export function gatewayObjects(plan: Plan, target: ServingPlan, opts: GatewayOptions): GatewayObjects {
  const g = requireGateway(target);
  const keys = plan.secrets[g.apiKeys];
  if (!keys) throw new Error(`serving target ${target.name}: gateway api_keys "${g.apiKeys}" is not an entry of infra.secrets`);
  const name = gatewayName(plan, target);
  const selector = gatewaySelector(plan, target);
  // The gateway serves every run: its objects keep their name, and nothing in them changes with the run id.
  const meta = metadata(plan, name, 'gateway', { [LABELS.gateway]: target.name });
  const config = JSON.stringify(gatewayConfig(plan, target, opts), null, 2) + '\n';
  const configMap: V1ConfigMap = { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta, data: { 'config.json': config } };
  const feedback = feedbackVolume(g);
  const volumes: V1Volume[] = [
    { name: 'config', configMap: { name, items: [{ key: 'config.json', path: 'config.json' }] } },
    // The value stays in the Secret: the pod gets the one key as a file, readable by the gateway's group only (fsGroup).
    { name: 'api-keys', secret: { secretName: keys.secret, items: [{ key: keys.key, path: 'keys' }], defaultMode: 0o440 } },
    { name: 'tmp', emptyDir: { sizeLimit: '64Mi' } },
    ...(feedback ? [feedback.volume] : []),
  ];
  const mounts: V1VolumeMount[] = [
    { name: 'config', mountPath: GATEWAY_CONFIG_DIR, readOnly: true },
    { name: 'api-keys', mountPath: GATEWAY_KEYS_DIR, readOnly: true },
    { name: 'tmp', mountPath: '/tmp' },
    ...(feedback ? [feedback.mount] : []),
  ];
  const pod: V1PodSpec = {
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    securityContext: { runAsNonRoot: true, runAsUser: GATEWAY_UID, runAsGroup: GATEWAY_UID, fsGroup: GATEWAY_UID, seccompProfile: { type: 'RuntimeDefault' } },
    ...(Object.keys(g.placement.nodeSelector).length ? { nodeSelector: { ...g.placement.nodeSelector } } : {}),
    ...(g.placement.tolerations.length ? { tolerations: g.placement.tolerations.map((t) => ({ ...t })) } : {}),
    topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'kubernetes.io/hostname', whenUnsatisfiable: 'ScheduleAnyway', labelSelector: { matchLabels: selector } }],
    containers: [
      {
        name: 'gateway',
        image: g.image,
        command: ['kiln-gateway', '--config', GATEWAY_CONFIG_PATH, '--port', String(GATEWAY_PORT)],
        ports: [{ name: 'http', containerPort: GATEWAY_PORT }],
        readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 5, failureThreshold: 2 },
        // A loaded node takes seconds to start Node and fastify: liveness waits for that first.
        livenessProbe: { httpGet: { path: '/healthz', port: 'http' }, initialDelaySeconds: 15, periodSeconds: 10, failureThreshold: 3 },
        resources: { requests: { ...(g.resources ?? GATEWAY_RESOURCES).requests }, limits: { ...(g.resources ?? GATEWAY_RESOURCES).limits } },
        securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, privileged: false, capabilities: { drop: ['ALL'] } },
        volumeMounts: mounts,
      },
    ],
    volumes,
  };
  const deployment: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta,
    spec: {
      replicas: g.replicas.min,
      selector: { matchLabels: selector },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: { ...selector }, annotations: { [ANNOTATIONS.configDigest]: createHash('sha256').update(config).digest('hex').slice(0, 16) } },
        spec: pod,
      },
    },
  };
  const service: V1Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta,
    spec: { selector, ports: [{ name: 'http', port: GATEWAY_PORT, targetPort: 'http' }] },
  };
  const hpa: V2HorizontalPodAutoscaler = {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: meta,
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
      minReplicas: g.replicas.min,
      maxReplicas: g.replicas.max,
      metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: CPU_TARGET_PERCENT } } }],
    },
  };
  const pdb: V1PodDisruptionBudget = {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: meta,
    // With one replica, minAvailable 1 would block every node drain.
    spec: { selector: { matchLabels: selector }, ...(g.replicas.min > 1 ? { minAvailable: 1 } : { maxUnavailable: 1 }) },
  };
  const canary = hasCanary(target, opts);
  const tritonPeers = [servingSelector(plan, target), ...(canary ? [canarySelector(plan, target)] : [])];
  const gatewayPolicy: V1NetworkPolicy = {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: meta,
    spec: {
      podSelector: { matchLabels: selector },
      policyTypes: ['Ingress', 'Egress'],
      // The public door: whatever fronts it (an Ingress controller, a load balancer) reaches port 8080.
      ingress: [{ ports: [{ protocol: 'TCP', port: GATEWAY_PORT }] }],
      egress: [
        { to: tritonPeers.map((l): V1NetworkPolicyPeer => ({ podSelector: { matchLabels: l } })), ports: [{ protocol: 'TCP', port: TRITON_PORTS.http }] },
        { to: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }], ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] },
      ],
    },
  };
  return {
    configMap,
    deployment,
    service,
    hpa,
    pdb,
    gatewayPolicy,
    tritonPolicy: tritonPolicy(plan, servingName(plan, target), servingSelector(plan, target), selector, 'serving'),
    ...(canary ? { canaryPolicy: tritonPolicy(plan, canaryName(plan, target), canarySelector(plan, target), selector, 'serving-canary') } : {}),
  };
}

/** Triton pods accept HTTP and gRPC from the gateway's pods only, and metrics from anyone (scrapers live elsewhere). */
function tritonPolicy(plan: Plan, name: string, pods: Record<string, string>, gateway: Record<string, string>, component: string): V1NetworkPolicy {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: metadata(plan, name, component),
    spec: {
      podSelector: { matchLabels: pods },
      policyTypes: ['Ingress'],
      ingress: [
        ingressFrom([{ podSelector: { matchLabels: gateway } }], [TRITON_PORTS.http, TRITON_PORTS.grpc]),
        { ports: [{ protocol: 'TCP', port: TRITON_PORTS.metrics }] },
      ],
    },
  };
}

/**
 * The feedback folder, writable: for pvc:// storage the claim's `feedback/<target>` folder alone (subPath), at
 * the path the config names; none for file:// (a local path) or object stores (the plan has no folder then).
 */
function feedbackVolume(g: GatewayPlan): { volume: V1Volume; mount: V1VolumeMount } | undefined {
  if (!g.feedback) return undefined;
  const m = /^pvc:\/\/([^/]+)\/?(.*)$/.exec(g.feedback);
  if (!m) return undefined;
  const dir = podPath(g.feedback).replace(/\/+$/, '');
  return {
    volume: { name: 'feedback', persistentVolumeClaim: { claimName: m[1]! } },
    mount: { name: 'feedback', mountPath: dir, subPath: m[2]!.replace(/\/+$/, '') },
  };
}

/**
 * An ingress rule from some peers. The wire name is `from`; @kubernetes/client-node's type calls it `_from`
 * (its serializer renames it), and these objects go to the API server as they are.
 */
export function ingressFrom(peers: readonly V1NetworkPolicyPeer[], ports: readonly number[]): V1NetworkPolicyIngressRule {
  return { from: peers.map((p) => ({ ...p })), ports: ports.map((port) => ({ protocol: 'TCP', port })) } as unknown as V1NetworkPolicyIngressRule;
}

function requireGateway(target: ServingPlan): GatewayPlan {
  if (!target.gateway) throw new Error(`serving target ${target.name} has no gateway`);
  return target.gateway;
}
