/**
 * Stage Jobs: one Kubernetes Job per plan stage, with its config in a ConfigMap. Data-prep and pack are
 * Indexed Jobs (one index per shard); training is a multi-node Indexed Job with a headless Service for
 * torchrun's rendezvous; eval Jobs are hardened as sandboxes. Pure and deterministic.
 */
import type { V1ConfigMap, V1Container, V1EnvVar, V1Job, V1NetworkPolicy, V1PodSpec, V1Service, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { dnsName, type MountedStageConfig, type Plan, type Stage } from '@kiln/plan';
import { TERMINAL_EXIT, type UpstreamOutput } from '@kiln/stage';
import { metadata } from './meta.ts';
import { CONFIG_DIR, CONFIG_FILE, CONFIG_FLAG, CONFIG_PATH, evalModelSelector, evalModelUrl, LABELS, priorityClassName, stageSelector, TRITON_PORTS } from './names.ts';
import { storageEnv, storageVolumes } from './storage.ts';

/** Port torchrun's rendezvous listens on, on the node of rank 0. */
export const RENDEZVOUS_PORT = 29500;

export interface StageObjects {
  readonly configMap: V1ConfigMap;
  readonly job: V1Job;
  /** Headless Service giving training pods stable DNS names for rendezvous. */
  readonly service?: V1Service;
  /** Egress policy of an eval sandbox. */
  readonly networkPolicy?: V1NetworkPolicy;
}

/** How the controller runs one attempt of a stage. */
export interface StageRunOptions {
  /** 1 for the first attempt; later attempts get Jobs of their own (`<job>-<attempt>`). Default 1. */
  readonly attempt?: number;
  /** Outputs of the stages this one depends on, by stage name. Default: none. */
  readonly upstream?: Readonly<Record<string, UpstreamOutput>>;
  /** Extra annotations on the stage's pods (the local cluster's simulation reads them). Default: none. */
  readonly podAnnotations?: Readonly<Record<string, string>>;
}

/** The Job of one attempt of a stage: deterministic, so a controller that restarts never runs it twice. */
export const jobName = (plan: Plan, stage: Stage, attempt = 1) => dnsName(attempt === 1 ? [plan.runId, stage.name] : [plan.runId, stage.name, String(attempt)]);
const configName = (plan: Plan, stage: Stage, attempt: number) => dnsName(attempt === 1 ? [plan.runId, stage.name, 'config'] : [plan.runId, stage.name, String(attempt), 'config']);

/**
 * How long a training pod has between SIGTERM and SIGKILL (preemption, node drain, a suspended run): the
 * trainer saves a checkpoint on SIGTERM, and Kubernetes' default 30 s is too short for a large model's.
 * Other stages keep the default. The spec has no field for it yet.
 */
export const TRAIN_TERMINATION_GRACE_SECONDS = 300;

/** Service account of stage pods; it has no RBAC bindings (stages never call the Kubernetes API). */
export const STAGE_SERVICE_ACCOUNT = 'kiln-stage';

/** Environment variables that carry a stage's credentials, by reference to their Secrets. */
export function credentialEnv(plan: Plan, names: readonly string[]): V1EnvVar[] {
  return names.map((n) => {
    const ref = plan.secrets[n];
    if (!ref) throw new Error(`credentials "${n}" are not in the plan's secrets`);
    return { name: `KILN_SECRET_${n.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`, valueFrom: { secretKeyRef: { name: ref.secret, key: ref.key } } };
  });
}

/**
 * The config a stage reads from its mounted file: the plan's config, the controller's envelope
 * (schemas/stages/common.schema.json#/$defs/envelope) and, for an eval stage, the eval model server's URL as
 * its `endpoint` (a Kubernetes spelling, so the plan does not carry it).
 */
export function stageConfig<K extends Stage['kind']>(plan: Plan, stage: Stage<K>, opts: Pick<StageRunOptions, 'attempt' | 'upstream'> = {}): MountedStageConfig<K> {
  const attempt = opts.attempt ?? 1;
  const s = stage as Stage;
  // The endpoint goes right after the suite, where the plan had it, so the mounted JSON keeps its key order.
  const config = s.kind === 'eval' ? (({ suite, ...rest }) => ({ suite, endpoint: evalModelUrl(plan), ...rest }))(s.config) : s.config;
  return {
    runId: plan.runId,
    stage: stage.name,
    attempt,
    storagePrefix: plan.storagePrefix,
    manifest: stage.manifest,
    ...config,
    // A retried stage picks up where the last attempt stopped (training: its latest checkpoint).
    resume: attempt > 1,
    upstream: opts.upstream ?? {},
  } as unknown as MountedStageConfig<K>;
}

/** The container command of a stage: the plan's, with the mounted config file after `--config`. */
export const stageCommand = (stage: Stage): string[] => [...stage.command, CONFIG_FLAG, CONFIG_PATH];

export function stageObjects(plan: Plan, stage: Stage, opts: StageRunOptions = {}): StageObjects {
  const attempt = opts.attempt ?? 1;
  const name = jobName(plan, stage, attempt);
  const cmName = configName(plan, stage, attempt);
  const meta = (n: string) => metadata(plan, n, 'stage', { [LABELS.stage]: stage.name });
  const configMap: V1ConfigMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: meta(cmName),
    data: {
      [CONFIG_FILE]: JSON.stringify(stageConfig(plan, stage, opts), null, 2),
    },
  };
  const r = stage.resources;
  const limits: Record<string, string> = { cpu: r.cpu, memory: r.memory };
  if (r.gpu) limits[r.gpu.resource] = String(r.gpu.count);
  // Requests below the limits when the spec sizes them (infra.stage_resources); extended resources (GPUs) are equal.
  const requests: Record<string, string> = { ...limits, ...(r.requests ? { cpu: r.requests.cpu, memory: r.requests.memory } : {}) };
  const volumes: V1Volume[] = [{ name: 'config', configMap: { name: cmName } }, ...storageVolumes(plan)];
  const mounts: V1VolumeMount[] = [{ name: 'config', mountPath: CONFIG_DIR, readOnly: true }];
  if (plan.storagePrefix.startsWith('pvc://')) mounts.push({ name: 'artifacts', mountPath: '/artifacts' });
  if (r.shm) {
    volumes.push({ name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: r.shm } });
    mounts.push({ name: 'dshm', mountPath: '/dev/shm' });
  }
  const env: V1EnvVar[] = [
    { name: 'KILN_RUN_ID', value: plan.runId },
    { name: 'KILN_STAGE', value: stage.name },
    { name: 'KILN_CONFIG', value: CONFIG_PATH },
    { name: 'KILN_ATTEMPT', value: String(attempt) },
    ...storageEnv(plan),
    ...credentialEnv(plan, stage.credentials),
  ];
  const par = stage.parallelism;
  let service: V1Service | undefined;
  let command = stageCommand(stage);
  if (par.kind === 'nodes') {
    // torchrun: every pod knows the rank-0 pod by its stable name under the headless Service.
    const svc = dnsName([plan.runId, stage.name, 'rdzv']);
    service = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta(svc),
      spec: { clusterIP: 'None', publishNotReadyAddresses: true, selector: stageSelector(plan, stage.name), ports: [{ name: 'rendezvous', port: RENDEZVOUS_PORT }] },
    };
    env.push(
      { name: 'MASTER_ADDR', value: `${name}-0.${svc}` },
      { name: 'MASTER_PORT', value: String(RENDEZVOUS_PORT) },
      { name: 'NODE_RANK', valueFrom: { fieldRef: { fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']" } } },
    );
    // The rendezvous flags go right after the launcher: `torchrun`, or `python -m kiln_trainer.launch` (torchrun
    // keeping the stage's exit codes).
    const launcher = command[0] === 'python' && command[1] === '-m' ? 3 : 1;
    command = [...command.slice(0, launcher), `--node-rank=$(NODE_RANK)`, `--master-addr=$(MASTER_ADDR)`, `--master-port=$(MASTER_PORT)`, ...command.slice(launcher)];
  }
  const container: V1Container = {
    name: stage.kind,
    image: stage.image,
    command,
    env,
    resources: { requests, limits },
    volumeMounts: mounts,
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  const nodeSelector = { ...(r.gpu ? { 'nvidia.com/gpu.product': r.gpu.product } : {}), ...stage.placement.nodeSelector };
  const pod: V1PodSpec = {
    restartPolicy: 'Never',
    serviceAccountName: plan.serviceAccount ?? STAGE_SERVICE_ACCOUNT,
    automountServiceAccountToken: false,
    ...(stage.kind === 'train' ? { terminationGracePeriodSeconds: TRAIN_TERMINATION_GRACE_SECONDS } : {}),
    containers: [container],
    volumes,
    ...(Object.keys(nodeSelector).length ? { nodeSelector } : {}),
    ...(stage.placement.tolerations.length ? { tolerations: stage.placement.tolerations.map((t) => ({ ...t })) } : {}),
    ...(stage.priority ? { priorityClassName: priorityClassName(stage.priority) } : {}),
    ...(service ? { subdomain: service.metadata!.name! } : {}),
  };
  let networkPolicy: V1NetworkPolicy | undefined;
  if (stage.kind === 'eval') {
    hardenSandbox(pod, container);
    networkPolicy = evalNetworkPolicy(plan, stage);
  }
  const completions = par.kind === 'shards' ? par.shards : par.kind === 'nodes' ? par.nodes : 1;
  const jobMeta = meta(name);
  jobMeta.labels = { ...jobMeta.labels, [LABELS.attempt]: String(attempt) };
  // Kueue admits Jobs by this label; without a queue the Job starts at once.
  if (stage.queue) jobMeta.labels = { ...jobMeta.labels, 'kueue.x-k8s.io/queue-name': stage.queue };
  const job: V1Job = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: jobMeta,
    spec: {
      completions,
      parallelism: completions,
      ...(completions > 1 || par.kind === 'nodes' ? { completionMode: 'Indexed' as const } : {}),
      // The controller owns attempts: a failed pod fails this attempt's Job, and the controller decides whether
      // to start the next. Shards are the exception: a flaky shard retries alone instead of rerunning all.
      ...(par.kind === 'shards' ? { backoffLimitPerIndex: stage.maxAttempts - 1, completionMode: 'Indexed' as const } : { backoffLimit: 0 }),
      podFailurePolicy: {
        rules: [
          // A stage's own declared terminal exit (bad config, missing input): no retry can fix it.
          { action: 'FailJob', onExitCodes: { containerName: container.name, operator: 'In', values: [TERMINAL_EXIT] } },
          // Node loss, preemption, eviction: not the stage's fault, and not counted against its attempts.
          { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget' }] },
        ],
      },
      template: {
        metadata: { labels: { ...stageSelector(plan, stage.name), [LABELS.attempt]: String(attempt) }, ...(opts.podAnnotations ? { annotations: { ...opts.podAnnotations } } : {}) },
        spec: pod,
      },
    },
  };
  return { configMap, job, ...(service ? { service } : {}), ...(networkPolicy ? { networkPolicy } : {}) };
}

/** Eval runs model-written code: no API token, non-root, read-only root, no capabilities, seccomp. */
function hardenSandbox(pod: V1PodSpec, c: V1Container): void {
  pod.automountServiceAccountToken = false;
  pod.enableServiceLinks = false;
  pod.securityContext = { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } };
  c.securityContext = { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, privileged: false, capabilities: { drop: ['ALL'] } };
  pod.volumes = [...(pod.volumes ?? []), { name: 'scratch', emptyDir: { sizeLimit: '2Gi' } }];
  c.volumeMounts = [...(c.volumeMounts ?? []), { name: 'scratch', mountPath: '/tmp' }];
}

/** Eval pods may reach the model endpoint (the run's eval model server) and DNS, nothing else. */
function evalNetworkPolicy(plan: Plan, stage: Stage): V1NetworkPolicy {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: metadata(plan, dnsName([plan.runId, stage.name, 'sandbox']), 'stage', { [LABELS.stage]: stage.name }),
    spec: {
      podSelector: { matchLabels: stageSelector(plan, stage.name) },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [],
      egress: [
        { to: [{ podSelector: { matchLabels: evalModelSelector(plan) } }], ports: [{ protocol: 'TCP', port: TRITON_PORTS.http }, { protocol: 'TCP', port: TRITON_PORTS.grpc }] },
        { to: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }], ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }] },
      ],
    },
  };
}
