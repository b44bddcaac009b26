/**
 * Triton serving of one target: Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget; and, while
 * the target has a canary share, a second Triton serving this run's model beside the stable one.
 */
import type { V1Deployment, V1NetworkPolicy, V1PodDisruptionBudget, V1Service, V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import { TRITON_RESOURCES, type GpuRequest, type Placement, type Plan, type PodResources, type ServingPlan } from '@kiln/plan';
import type { V1PodSpec } from '@kubernetes/client-node';
import { ingressFrom } from './gateway.ts';
import { metadata } from './meta.ts';
import { canaryName, canarySelector, evalModelSelector, LABELS, servingName, servingSelector, TRITON_PORTS } from './names.ts';
import { credentialEnv } from './stages.ts';
import { podPath, storageEnv, storageVolumes } from './storage.ts';

/** Seconds before the first liveness probe of a Triton pod. */
export const TRITON_LIVENESS_DELAY_SECONDS = 60;

export interface ServingObjects {
  readonly deployment: V1Deployment;
  readonly service: V1Service;
  readonly hpa: V2HorizontalPodAutoscaler;
  readonly pdb: V1PodDisruptionBudget;
}

/** The Triton metric each autoscaling choice maps to (exposed per pod through the custom metrics API). */
const METRICS: Record<string, string> = {
  queue_duration_ms: 'nv_inference_queue_duration_ms',
  inflight_requests: 'nv_inference_pending_request_count',
  requests_per_second: 'nv_inference_request_success_per_second',
};

export function servingObjects(plan: Plan, target: ServingPlan): ServingObjects {
  const name = servingName(plan, target);
  const selector = servingSelector(plan, target);
  // Serving objects keep their name across runs: a new run rolls the Deployment to the new model.
  const meta = metadata(plan, name, 'serving', { [LABELS.servingTarget]: target.name });
  const deployment: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta,
    spec: {
      replicas: Math.max(target.replicas.min, 1),
      selector: { matchLabels: selector },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: { ...selector, [LABELS.runId]: plan.runId } },
        spec: tritonPod(plan, target.image, target.modelRepository, target.gpu, target.placement, target.credentials, target.resources),
      },
    },
  };
  const service: V1Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta,
    spec: { selector, ports: Object.entries(TRITON_PORTS).map(([n, p]) => ({ name: n, port: p, targetPort: n })) },
  };
  const metric = target.autoscaling.metric;
  const hpa: V2HorizontalPodAutoscaler = {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: meta,
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name },
      minReplicas: Math.max(target.replicas.min, 1),
      maxReplicas: target.replicas.max,
      metrics: [
        metric === 'gpu_utilization'
          ? { type: 'Pods', pods: { metric: { name: 'DCGM_FI_DEV_GPU_UTIL' }, target: { type: 'AverageValue', averageValue: String(target.autoscaling.target) } } }
          : { type: 'Pods', pods: { metric: { name: METRICS[metric]! }, target: { type: 'AverageValue', averageValue: String(target.autoscaling.target) } } },
      ],
    },
  };
  const pdb: V1PodDisruptionBudget = {
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: meta,
    spec: { selector: { matchLabels: selector }, ...(target.replicas.max > 1 ? { minAvailable: 1 } : { maxUnavailable: 1 }) },
  };
  return { deployment, service, hpa, pdb };
}

/**
 * The fields of the stable Triton Deployment that name the model it serves (its repository flag, the run's
 * storage prefix, the run label of its pods). While a target has a canary, Pulumi leaves them as they are
 * (`ignoreChanges`): the stable Triton keeps its current model and only the canary gets this run's.
 * Promotion (#17) is what moves the stable one on.
 */
export const STABLE_MODEL_FIELDS: readonly string[] = [
  'spec.template.spec.containers[0].command',
  'spec.template.spec.containers[0].env',
  `spec.template.metadata.labels["${LABELS.runId}"]`,
];

export interface CanaryObjects {
  readonly deployment: V1Deployment;
  readonly service: V1Service;
}

/**
 * The canary of a target with a canary share: one Triton replica serving this run's model repository, with a
 * Service the gateway sends `canary` share of requests to. Undefined when the share is 0.
 */
export function canaryObjects(plan: Plan, target: ServingPlan): CanaryObjects | undefined {
  if (target.canary <= 0) return undefined;
  const name = canaryName(plan, target);
  const selector = canarySelector(plan, target);
  const meta = metadata(plan, name, 'serving-canary', { [LABELS.canaryOf]: target.name });
  return {
    deployment: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: meta,
      spec: {
        replicas: 1,
        selector: { matchLabels: selector },
        strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
        template: {
          metadata: { labels: { ...selector, [LABELS.runId]: plan.runId } },
          spec: tritonPod(plan, target.image, target.modelRepository, target.gpu, target.placement, target.credentials, target.resources),
        },
      },
    },
    service: {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta,
      spec: { selector, ports: Object.entries(TRITON_PORTS).map(([n, p]) => ({ name: n, port: p, targetPort: n })) },
    },
  };
}

/**
 * A pod running Triton on one model repository: read from object storage directly, or from the mounted claim.
 * With `gpu.count` 0 (CPU serving) it asks for no GPU and selects no GPU model: its placement alone says where.
 */
function tritonPod(plan: Plan, image: string, repository: string, gpu: GpuRequest, placement: Placement, credentials: readonly string[], size?: PodResources): V1PodSpec {
  const r = size ?? { requests: TRITON_RESOURCES, limits: TRITON_RESOURCES };
  const gpus: Record<string, string> = gpu.count > 0 ? { [gpu.resource]: String(gpu.count) } : {};
  const limits = { ...r.limits, ...gpus };
  const requests = { ...r.requests, ...gpus };
  const nodeSelector = { ...(gpu.count > 0 ? { 'nvidia.com/gpu.product': gpu.product } : {}), ...placement.nodeSelector };
  return {
    automountServiceAccountToken: false,
    ...(Object.keys(nodeSelector).length ? { nodeSelector } : {}),
    ...(placement.tolerations.length ? { tolerations: placement.tolerations.map((t) => ({ ...t })) } : {}),
    containers: [
      {
        name: 'triton',
        image,
        command: ['tritonserver', `--model-repository=${podPath(repository)}`, `--http-port=${TRITON_PORTS.http}`, `--grpc-port=${TRITON_PORTS.grpc}`, `--metrics-port=${TRITON_PORTS.metrics}`],
        env: [...storageEnv(plan), ...credentialEnv(plan, credentials)],
        ports: Object.entries(TRITON_PORTS).map(([n, p]) => ({ name: n, containerPort: p })),
        readinessProbe: { httpGet: { path: '/v2/health/ready', port: TRITON_PORTS.http }, periodSeconds: 5, failureThreshold: 3 },
        // Triton answers only once its models are loaded, which takes from seconds (a python model on a CPU) to
        // minutes (a large engine): the startup probe gives it 10 minutes, and liveness waits a minute besides,
        // for nodes that do not run startup probes.
        startupProbe: { httpGet: { path: '/v2/health/live', port: TRITON_PORTS.http }, periodSeconds: 5, failureThreshold: 120 },
        livenessProbe: { httpGet: { path: '/v2/health/live', port: TRITON_PORTS.http }, initialDelaySeconds: TRITON_LIVENESS_DELAY_SECONDS, periodSeconds: 10, failureThreshold: 6 },
        resources: { requests, limits },
        volumeMounts: storageVolumes(plan).map((v) => ({ name: v.name, mountPath: '/artifacts', readOnly: true })),
      },
    ],
    volumes: storageVolumes(plan),
  };
}

/**
 * The run's eval model server (the only thing eval sandboxes may reach): a Deployment, its Service, and a
 * NetworkPolicy that lets only the run's eval stage pods reach its HTTP and gRPC ports.
 */
export function evalModelObjects(plan: Plan): { readonly deployment: V1Deployment; readonly service: V1Service; readonly networkPolicy: V1NetworkPolicy } {
  const m = plan.evalModel;
  const labels = evalModelSelector(plan);
  const meta = metadata(plan, m.name, 'eval-model');
  const evalStages = plan.stages.filter((s) => s.kind === 'eval').map((s) => s.name);
  return {
    networkPolicy: {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: meta,
      spec: {
        podSelector: { matchLabels: labels },
        policyTypes: ['Ingress'],
        // Without eval stages nothing may reach it (an `In` needs values, and an empty `from` would admit everyone).
        ingress: [
          ...(evalStages.length ? [ingressFrom([{ podSelector: { matchLabels: { [LABELS.runId]: plan.runId }, matchExpressions: [{ key: LABELS.stage, operator: 'In', values: evalStages }] } }], [TRITON_PORTS.http, TRITON_PORTS.grpc])] : []),
          { ports: [{ protocol: 'TCP', port: TRITON_PORTS.metrics }] },
        ],
      },
    },
    deployment: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: meta,
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: tritonPod(plan, m.image, m.modelRepository, m.gpu, m.placement, plan.serving[0]?.credentials ?? [], m.resources) },
      },
    },
    service: {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta,
      spec: { selector: labels, ports: Object.entries(TRITON_PORTS).map(([n, p]) => ({ name: n, port: p, targetPort: n })) },
    },
  };
}
