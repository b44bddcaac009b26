/**
 * Every Kubernetes spelling kiln uses, in one place: label and annotation keys, the selectors built from them,
 * PriorityClass names, where a stage's config is mounted and the model servers' in-cluster URLs. The plan
 * states intent (a run id, a stage, a priority, a model server's name); this module says how Kubernetes
 * spells it. Nothing outside libs/k8s writes these strings out (test/names.test.ts scans for them).
 */
import { dnsName, type Plan, type ServingPlan } from '@kiln/plan';

/** Label keys on kiln's objects and on the nodes it schedules onto. */
export const LABELS = {
  /** `kiln` on a run's objects, `kiln-controller` on the controller. */
  name: 'app.kubernetes.io/name',
  /** The pipeline (`metadata.name` of the spec). */
  partOf: 'app.kubernetes.io/part-of',
  managedBy: 'app.kubernetes.io/managed-by',
  /** What the object is for: `stage`, `serving`, `eval-model`, `run`, `platform`, `controller`, … */
  component: 'app.kubernetes.io/component',
  /** The run an object belongs to (its content-addressed id). */
  runId: 'kiln.dev/run-id',
  /** The plan stage a Job, its pods and its ConfigMap belong to. */
  stage: 'kiln.dev/stage',
  /** The attempt of a stage a Job and its pods run (1, 2, …). */
  attempt: 'kiln.dev/attempt',
  /** The serving target a (stable) Triton Deployment and its pods serve. */
  servingTarget: 'kiln.dev/serving-target',
  /** The serving target a canary Triton Deployment and its pods serve (kept apart from the stable pods' label). */
  canaryOf: 'kiln.dev/canary-of',
  /** The serving target a gateway Deployment and its pods front. */
  gateway: 'kiln.dev/gateway',
  /** The node pool of a node (the local cluster's nodes: `gpu`, `cpu`). */
  pool: 'kiln.dev/pool',
  /** The GPU type of a node (a spec's `gpu_type`). */
  gpuType: 'kiln.dev/gpu-type',
  /** A PersistentVolume the local cluster made for a claim. */
  localVolume: 'kiln.dev/local-volume',
} as const;

/** The value of `app.kubernetes.io/managed-by` (and `app.kubernetes.io/name` of a run's objects). */
export const MANAGED_BY = 'kiln';

/** The labels kiln puts on every object of a run, after the spec's own (`Plan.labels`). */
export function runLabels(plan: Pick<Plan, 'name' | 'runId'>): Record<string, string> {
  return { [LABELS.name]: MANAGED_BY, [LABELS.partOf]: plan.name, [LABELS.managedBy]: MANAGED_BY, [LABELS.runId]: plan.runId };
}

/** Labels that select every object of one run. */
export const runSelector = (runId: string): Record<string, string> => ({ [LABELS.runId]: runId });

/** Labels that select the pods of one stage of one run (stable: they never include user labels). */
export function stageSelector(plan: Pick<Plan, 'runId'> | string, stage: string): Record<string, string> {
  return { [LABELS.runId]: typeof plan === 'string' ? plan : plan.runId, [LABELS.stage]: stage };
}

/** Labels that select the pods of one pipeline (every run), e.g. its ModelRuns. */
export const pipelineSelector = (name: string): Record<string, string> => ({ [LABELS.partOf]: name });

/** Labels of the run's eval model server pods: what its Service selects and the eval sandboxes may reach. */
export const evalModelSelector = (plan: Pick<Plan, 'runId'>): Record<string, string> => ({ [LABELS.runId]: plan.runId, [LABELS.component]: 'eval-model' });

/** A label selector's query string (`k=v,k=v`), as the API's `labelSelector` takes it. */
export const labelSelector = (labels: Readonly<Record<string, string>>): string =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');

/** A training priority, as the spec says it. */
export type Priority = NonNullable<Plan['stages'][number]['priority']>;

/** The PriorityClass of a training priority (libs/k8s platformObjects creates one per priority). */
export const priorityClassName = (priority: Priority): string => `kiln-${priority}`;

/** Directory a stage's ConfigMap is mounted at, and the file in it. */
export const CONFIG_DIR = '/etc/kiln';
export const CONFIG_FILE = 'stage.json';
/** Where a stage finds its config inside its container (passed as `--config` and as `KILN_CONFIG`). */
export const CONFIG_PATH = `${CONFIG_DIR}/${CONFIG_FILE}`;
/** The flag every stage command takes its config file by (docs/stages.md). */
export const CONFIG_FLAG = '--config';

/** Ports of a Triton model server (serving targets and the eval model server). */
export const TRITON_PORTS = { http: 8000, grpc: 8001, metrics: 8002 } as const;

/** The in-cluster URL of a Service (HTTP, by its namespaced DNS name). */
export const serviceUrl = (name: string, namespace: string, port: number = TRITON_PORTS.http): string => `http://${name}.${namespace}.svc:${port}`;

/** Name of a serving target's Deployment and Service: stable across runs, so a new run rolls it. */
export function servingName(plan: Pick<Plan, 'name'>, target: Pick<ServingPlan, 'name'>): string {
  return dnsName([plan.name, target.name]);
}

/** The in-cluster HTTP URL of a serving target. */
export const servingUrl = (plan: Pick<Plan, 'name' | 'namespace'>, target: Pick<ServingPlan, 'name'>): string => serviceUrl(servingName(plan, target), plan.namespace);

/** The in-cluster HTTP URL of the run's eval model server: every eval stage's `endpoint`. */
export const evalModelUrl = (plan: Pick<Plan, 'namespace' | 'evalModel'>): string => serviceUrl(plan.evalModel.name, plan.namespace);

/** Annotations kiln puts on pod templates. */
export const ANNOTATIONS = {
  /** Digest of a gateway's config file: a changed config rolls its pods (the gateway reads the file at start). */
  configDigest: 'kiln.dev/config-digest',
  /** Digest of the model a Triton pod serves (the promotion's `digest`): a new promotion rolls its pods. */
  modelDigest: 'kiln.dev/model-digest',
} as const;

/** The port the kiln gateway listens on (`kiln-gateway --port`), in its pods and on its Service. */
export const GATEWAY_PORT = 8080;

/** Name of a serving target's canary Triton Deployment and Service (`<pipeline>-<target>-canary`). */
export const canaryName = (plan: Pick<Plan, 'name'>, target: Pick<ServingPlan, 'name'>): string => dnsName([plan.name, target.name, 'canary']);

/** Name of a serving target's gateway objects (`<pipeline>-<target>-gateway`). */
export const gatewayName = (plan: Pick<Plan, 'name'>, target: Pick<ServingPlan, 'name'>): string => dnsName([plan.name, target.name, 'gateway']);

/** The in-cluster URL of a target's gateway: its OpenAI-style API root (`…:8080/v1`). */
export const gatewayUrl = (plan: Pick<Plan, 'name' | 'namespace'>, target: Pick<ServingPlan, 'name'>): string => `${serviceUrl(gatewayName(plan, target), plan.namespace, GATEWAY_PORT)}/v1`;

/** Labels of a target's stable Triton pods: what its Service selects (unchanged since serving began: a Deployment's selector is immutable). */
export const servingSelector = (plan: Pick<Plan, 'name'>, target: Pick<ServingPlan, 'name'>): Record<string, string> => ({ ...pipelineSelector(plan.name), [LABELS.servingTarget]: target.name });

/** Labels of a target's canary Triton pods: not the stable ones, so the stable Service never selects a canary pod. */
export const canarySelector = (plan: Pick<Plan, 'name'>, target: Pick<ServingPlan, 'name'>): Record<string, string> => ({ ...pipelineSelector(plan.name), [LABELS.canaryOf]: target.name });

/** Labels of a target's gateway pods. */
export const gatewaySelector = (plan: Pick<Plan, 'name'>, target: Pick<ServingPlan, 'name'>): Record<string, string> => ({ ...pipelineSelector(plan.name), [LABELS.gateway]: target.name });
