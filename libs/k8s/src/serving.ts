/** Triton serving of one target: Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget. */
import type { V1Deployment, V1PodDisruptionBudget, V1Service, V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import type { GpuRequest, Placement, Plan, ServingPlan } from '@kiln/plan';
import type { V1PodSpec } from '@kubernetes/client-node';
import { metadata } from './meta.ts';
import { evalModelSelector, LABELS, pipelineSelector, servingName, TRITON_PORTS } from './names.ts';
import { credentialEnv } from './stages.ts';
import { podPath, storageEnv, storageVolumes } from './storage.ts';

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
  const selector = { ...pipelineSelector(plan.name), [LABELS.servingTarget]: target.name };
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
        spec: tritonPod(plan, target.image, target.modelRepository, target.gpu, target.placement, target.credentials),
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

/** A pod running Triton on one model repository: read from object storage directly, or from the mounted claim. */
function tritonPod(plan: Plan, image: string, repository: string, gpu: GpuRequest, placement: Placement, credentials: readonly string[]): V1PodSpec {
  const limits = { cpu: '4', memory: '16Gi', [gpu.resource]: String(gpu.count) };
  return {
    automountServiceAccountToken: false,
    nodeSelector: { 'nvidia.com/gpu.product': gpu.product, ...placement.nodeSelector },
    ...(placement.tolerations.length ? { tolerations: placement.tolerations.map((t) => ({ ...t })) } : {}),
    containers: [
      {
        name: 'triton',
        image,
        command: ['tritonserver', `--model-repository=${podPath(repository)}`, `--http-port=${TRITON_PORTS.http}`, `--grpc-port=${TRITON_PORTS.grpc}`, `--metrics-port=${TRITON_PORTS.metrics}`],
        env: [...storageEnv(plan), ...credentialEnv(plan, credentials)],
        ports: Object.entries(TRITON_PORTS).map(([n, p]) => ({ name: n, containerPort: p })),
        readinessProbe: { httpGet: { path: '/v2/health/ready', port: TRITON_PORTS.http }, periodSeconds: 5, failureThreshold: 3 },
        livenessProbe: { httpGet: { path: '/v2/health/live', port: TRITON_PORTS.http }, periodSeconds: 10, failureThreshold: 6 },
        resources: { requests: { ...limits }, limits },
        volumeMounts: storageVolumes(plan).map((v) => ({ name: v.name, mountPath: '/artifacts', readOnly: true })),
      },
    ],
    volumes: storageVolumes(plan),
  };
}

/** The run's eval model server (the only thing eval sandboxes may reach): a Deployment and its Service. */
export function evalModelObjects(plan: Plan): { readonly deployment: V1Deployment; readonly service: V1Service } {
  const m = plan.evalModel;
  const labels = evalModelSelector(plan);
  const meta = metadata(plan, m.name, 'eval-model');
  return {
    deployment: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: meta,
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: tritonPod(plan, m.image, m.modelRepository, m.gpu, m.placement, plan.serving[0]?.credentials ?? []) },
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
