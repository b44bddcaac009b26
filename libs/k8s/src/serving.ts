/**
 * Triton serving of one target: Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget, on the model
 * promoted to the stack; and, while a canary is declared and the target has a canary share, a second Triton
 * serving the candidate beside the stable one.
 */
import type { V1Deployment, V1EnvVar, V1NetworkPolicy, V1PodDisruptionBudget, V1Service, V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import { TRITON_RESOURCES, type GpuRequest, type Placement, type Plan, type PodResources, type ServedModel, type ServingPlan } from '@kiln/plan';
import type { V1PodSpec } from '@kubernetes/client-node';
import { ingressFrom } from './gateway.ts';
import { metadata } from './meta.ts';
import { ANNOTATIONS, canaryName, canarySelector, evalModelSelector, LABELS, servingName, servingSelector, TRITON_PORTS } from './names.ts';
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

/** The model one Triton serves: the run it came from, the model repository it loads (a URI), and the model's digest. */
export interface ServingModel {
  readonly run: string;
  readonly repository: string;
  readonly digest: string;
}

/**
 * What a target serves of a promotion record: the record's repository for the target's name. Throws, naming the
 * target and the repositories the promotion has, when it has none for it (the program must not guess).
 */
export function targetModel(target: Pick<ServingPlan, 'name'>, model: Pick<ServedModel, 'run' | 'digest' | 'repositories'>): ServingModel {
  const repos = model.repositories ?? {};
  const repository = Object.hasOwn(repos, target.name) ? repos[target.name] : undefined;
  if (typeof repository !== 'string' || !repository) {
    const has = Object.keys(repos);
    throw new Error(
      `serving target ${target.name}: the promotion of run ${model.run} has no model repository for it (it has ${has.length ? has.join(', ') : 'none'}); promote a run whose export has a "${target.name}" repository, or name it in the record's repositories`,
    );
  }
  return { run: model.run, repository, digest: model.digest };
}

/**
 * The stable Triton of a target, serving `model`: its pods carry the model's run (label) and digest
 * (annotation), so a new promotion rolls them and nothing else about the stack's own run does.
 */
export function servingObjects(plan: Plan, target: ServingPlan, model: ServingModel): ServingObjects {
  const name = servingName(plan, target);
  const selector = servingSelector(plan, target);
  // Serving objects keep their name across promotions: a new model rolls the Deployment. They are labelled with
  // the run they serve, not the stack's own run (a serving-only stack runs nothing).
  const meta = metadata(plan, name, 'serving', { [LABELS.servingTarget]: target.name, [LABELS.runId]: model.run });
  const deployment: V1Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta,
    spec: {
      replicas: Math.max(target.replicas.min, 1),
      selector: { matchLabels: selector },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: { ...selector, [LABELS.runId]: model.run }, annotations: { [ANNOTATIONS.modelDigest]: model.digest } },
        spec: servingPod(plan, target, model),
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

export interface CanaryObjects {
  readonly deployment: V1Deployment;
  readonly service: V1Service;
}

/**
 * The canary of a target: one Triton replica serving the candidate's model repository, with a Service the
 * gateway sends the target's `canary` share of requests to. Undefined unless a candidate is declared
 * (`kiln:canary`) and the target's share is above 0.
 */
export function canaryObjects(plan: Plan, target: ServingPlan, candidate?: ServingModel): CanaryObjects | undefined {
  if (!candidate || target.canary <= 0) return undefined;
  const name = canaryName(plan, target);
  const selector = canarySelector(plan, target);
  const meta = metadata(plan, name, 'serving-canary', { [LABELS.canaryOf]: target.name, [LABELS.runId]: candidate.run });
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
          metadata: { labels: { ...selector, [LABELS.runId]: candidate.run }, annotations: { [ANNOTATIONS.modelDigest]: candidate.digest } },
          spec: servingPod(plan, target, candidate),
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
 * A serving target's Triton pod on a promoted model. Its storage prefix is the model's run's (the repository
 * less its `/export/<repo>/`), not the stack's own run's: what the pod is given depends on the model alone.
 */
function servingPod(plan: Plan, target: ServingPlan, model: ServingModel): V1PodSpec {
  const prefix = model.repository.replace(/\/export\/[^/]+\/?$/, '');
  const env = (e: V1EnvVar): V1EnvVar => (e.name === 'KILN_STORAGE_PREFIX' ? { ...e, value: prefix } : e);
  const pod = tritonPod(plan, target.image, model.repository, target.gpu, target.placement, target.credentials, target.resources);
  return { ...pod, containers: pod.containers.map((c) => ({ ...c, env: (c.env ?? []).map(env) })) };
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
