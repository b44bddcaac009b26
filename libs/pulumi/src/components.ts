/**
 * Thin components over libs/k8s (STYLE.md §2, §5): the objects come from pure builders; these classes only
 * hand them to @pulumi/kubernetes, name children `${name}-<role>`, parent them, and register outputs.
 */
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { canaryObjects, controllerDeployment, gatewayObjects, gatewayUrl, modelRun, modelRunCrd, platformObjects, servingObjects, servingUrl, targetModel } from '@kiln/k8s';
import type { Plan, ServedModel, ServingPlan } from '@kiln/plan';

/** Objects Pulumi should not wait on: a claim may stay Pending until a pod uses it (WaitForFirstConsumer). */
const SKIP_AWAIT = { 'pulumi.com/skipAwait': 'true' };

const withAnnotations = <T extends { metadata?: { annotations?: Record<string, string> } }>(o: T, a: Record<string, string>): T => ({
  ...o,
  metadata: { ...o.metadata, annotations: { ...o.metadata?.annotations, ...a } },
});

export interface PlatformArgs {
  /** The compiled plan whose namespace, accounts and storage this platform provides. */
  readonly plan: Plan;
  /** Controller image; default `CONTROLLER_IMAGE` of libs/k8s. */
  readonly controllerImage?: string;
  /** Size and class of the pvc:// claim; default 100Gi on the cluster's default class. */
  readonly storageSize?: string;
  readonly storageClass?: string;
}

/** Namespace, service accounts with least-privilege RBAC, storage, the ModelRun CRD and the run controller. */
export class Platform extends pulumi.ComponentResource {
  readonly namespace: k8s.core.v1.Namespace;
  readonly crd: k8s.apiextensions.v1.CustomResourceDefinition;
  readonly controller: k8s.apps.v1.Deployment;
  readonly namespaceName: pulumi.Output<string>;

  constructor(name: string, args: PlatformArgs, opts?: pulumi.ComponentResourceOptions) {
    super('kiln:platform:Platform', name, {}, opts);
    const p = platformObjects(args.plan, {
      ...(args.storageSize !== undefined ? { storageSize: args.storageSize } : {}),
      ...(args.storageClass !== undefined ? { storageClass: args.storageClass } : {}),
    });
    const child = { parent: this };
    this.namespace = new k8s.core.v1.Namespace(`${name}-namespace`, p.namespace as k8s.core.v1.NamespaceArgs, child);
    const inNs = { parent: this, dependsOn: [this.namespace] };
    // The CRD is cluster-wide and shared by every pipeline's stacks: destroying one stack must not delete
    // it (that would delete every other stack's ModelRuns with it).
    this.crd = new k8s.apiextensions.v1.CustomResourceDefinition(`${name}-crd`, modelRunCrd() as k8s.apiextensions.v1.CustomResourceDefinitionArgs, { parent: this, retainOnDelete: true });
    // Cluster-wide and shared like the CRD; training pods name them, so they must exist first.
    const priorities = p.priorityClasses.map((pc) => new k8s.scheduling.v1.PriorityClass(`${name}-priority-${pc.metadata!.name}`, pc as k8s.scheduling.v1.PriorityClassArgs, { parent: this, retainOnDelete: true }));
    const accounts = p.serviceAccounts.map((sa) => new k8s.core.v1.ServiceAccount(`${name}-sa-${sa.metadata!.name}`, sa as k8s.core.v1.ServiceAccountArgs, inNs));
    const roles = p.roles.map((r) => new k8s.rbac.v1.Role(`${name}-role-${r.metadata!.name}`, r as k8s.rbac.v1.RoleArgs, inNs));
    p.roleBindings.forEach((b) => new k8s.rbac.v1.RoleBinding(`${name}-rolebinding-${b.metadata!.name}`, b as k8s.rbac.v1.RoleBindingArgs, { parent: this, dependsOn: [...roles, ...accounts] }));
    if (p.pvc) new k8s.core.v1.PersistentVolumeClaim(`${name}-storage`, withAnnotations(p.pvc, SKIP_AWAIT) as k8s.core.v1.PersistentVolumeClaimArgs, inNs);
    this.controller = new k8s.apps.v1.Deployment(`${name}-controller`, controllerDeployment(args.plan, args.controllerImage) as k8s.apps.v1.DeploymentArgs, {
      parent: this,
      dependsOn: [this.namespace, this.crd, ...accounts, ...priorities],
    });
    this.namespaceName = this.namespace.metadata.name;
    this.registerOutputs({ namespace: this.namespaceName });
  }
}

export interface ModelRunArgs {
  readonly plan: Plan;
}

/**
 * One run of the pipeline, as a ModelRun object the controller executes. It is named by its run id and
 * retained on delete: a changed spec declares a new run beside the old one, and the old run's history
 * stays in the cluster (deleting the namespace removes it).
 */
export class ModelRun extends pulumi.ComponentResource {
  readonly runId: string;
  readonly resource: k8s.apiextensions.CustomResource;

  constructor(name: string, args: ModelRunArgs, opts?: pulumi.ComponentResourceOptions) {
    super('kiln:run:ModelRun', name, {}, opts);
    this.runId = args.plan.runId;
    const obj = modelRun(args.plan);
    this.resource = new k8s.apiextensions.CustomResource(`${name}-${args.plan.runId}`, obj as unknown as k8s.apiextensions.CustomResourceArgs, {
      parent: this,
      retainOnDelete: true,
    });
    this.registerOutputs({ runId: this.runId });
  }
}

export interface ServingTargetArgs {
  readonly plan: Plan;
  readonly target: ServingPlan;
  /** The stable model: the promotion record of the stack (`kiln:model`); the target serves its repository of the target's name. */
  readonly model: ServedModel;
  /** The candidate of a canary rollout (`kiln:canary`); absent: no canary. Declared only when the target's share is above 0. */
  readonly canary?: ServedModel;
}

/**
 * One serving target on the model promoted to its stack: Triton (Deployment, Service, HorizontalPodAutoscaler,
 * PodDisruptionBudget); while a canary is declared and the target has a share, the canary Triton beside it; and
 * when it has a gateway, the gateway in front (config, Deployment, Service, autoscaler, disruption budget,
 * NetworkPolicies that make it the only way in).
 */
export class ServingTarget extends pulumi.ComponentResource {
  readonly deployment: k8s.apps.v1.Deployment;
  readonly service: k8s.core.v1.Service;
  readonly canary?: { readonly deployment: k8s.apps.v1.Deployment; readonly service: k8s.core.v1.Service };
  readonly gateway?: { readonly deployment: k8s.apps.v1.Deployment; readonly service: k8s.core.v1.Service; readonly configMap: k8s.core.v1.ConfigMap };
  /** What clients call: the gateway's `/v1` URL when the target has one, else Triton's. */
  readonly endpoint: string;
  /** In-cluster HTTP endpoint of the stable Triton. */
  readonly tritonEndpoint: string;
  /** In-cluster OpenAI-style API root of the gateway (`…:8080/v1`), when the target has one. */
  readonly gatewayEndpoint?: string;
  /** The run whose model the stable Triton serves, and the candidate's while a canary is declared. */
  readonly modelRun: string;
  readonly canaryRun?: string;

  constructor(name: string, args: ServingTargetArgs, opts?: pulumi.ComponentResourceOptions) {
    super('kiln:serving:ServingTarget', name, {}, opts);
    const { plan, target } = args;
    // A record without this target's repository fails the program on this component (STYLE.md §10).
    const resolve = (m: ServedModel) => {
      try {
        return targetModel(target, m);
      } catch (e) {
        throw new pulumi.ResourceError((e as Error).message, this);
      }
    };
    const stable = resolve(args.model);
    const candidate = args.canary && target.canary > 0 ? resolve(args.canary) : undefined;
    const o = servingObjects(plan, target, stable);
    const child = { parent: this };
    // Not awaited: a promoted model is served as soon as Triton has loaded it, which `pulumi up` need not wait
    // for (kiln promote checks the live endpoint itself). The gateway likewise.
    this.deployment = new k8s.apps.v1.Deployment(`${name}-deployment`, withAnnotations(o.deployment, SKIP_AWAIT) as k8s.apps.v1.DeploymentArgs, child);
    this.service = new k8s.core.v1.Service(`${name}-service`, withAnnotations(o.service, SKIP_AWAIT) as k8s.core.v1.ServiceArgs, child);
    new k8s.autoscaling.v2.HorizontalPodAutoscaler(`${name}-hpa`, o.hpa as k8s.autoscaling.v2.HorizontalPodAutoscalerArgs, child);
    new k8s.policy.v1.PodDisruptionBudget(`${name}-pdb`, o.pdb as k8s.policy.v1.PodDisruptionBudgetArgs, child);
    const c = canaryObjects(plan, target, candidate);
    if (c) {
      this.canary = {
        deployment: new k8s.apps.v1.Deployment(`${name}-canary-deployment`, withAnnotations(c.deployment, SKIP_AWAIT) as k8s.apps.v1.DeploymentArgs, child),
        service: new k8s.core.v1.Service(`${name}-canary-service`, withAnnotations(c.service, SKIP_AWAIT) as k8s.core.v1.ServiceArgs, child),
      };
    }
    this.modelRun = stable.run;
    if (c && candidate) this.canaryRun = candidate.run;
    this.tritonEndpoint = servingUrl(plan, target);
    if (target.gateway) {
      const g = gatewayObjects(plan, target, { canary: c !== undefined });
      const netpol = (role: string, p: typeof g.gatewayPolicy) => new k8s.networking.v1.NetworkPolicy(`${name}-${role}`, p as k8s.networking.v1.NetworkPolicyArgs, child);
      // Policies first: Triton is closed to everyone but the gateway before the gateway opens.
      const policies = [netpol('triton-policy', g.tritonPolicy), ...(g.canaryPolicy ? [netpol('canary-policy', g.canaryPolicy)] : []), netpol('gateway-policy', g.gatewayPolicy)];
      const configMap = new k8s.core.v1.ConfigMap(`${name}-gateway-config`, g.configMap as k8s.core.v1.ConfigMapArgs, child);
      // The canary's Service exists before the gateway is sent to it.
      const deployment = new k8s.apps.v1.Deployment(`${name}-gateway`, withAnnotations(g.deployment, SKIP_AWAIT) as k8s.apps.v1.DeploymentArgs, {
        ...child,
        dependsOn: [configMap, ...policies, ...(this.canary ? [this.canary.service] : [])],
      });
      const service = new k8s.core.v1.Service(`${name}-gateway-service`, withAnnotations(g.service, SKIP_AWAIT) as k8s.core.v1.ServiceArgs, child);
      new k8s.autoscaling.v2.HorizontalPodAutoscaler(`${name}-gateway-hpa`, g.hpa as k8s.autoscaling.v2.HorizontalPodAutoscalerArgs, child);
      new k8s.policy.v1.PodDisruptionBudget(`${name}-gateway-pdb`, g.pdb as k8s.policy.v1.PodDisruptionBudgetArgs, child);
      this.gateway = { deployment, service, configMap };
      this.gatewayEndpoint = gatewayUrl(plan, target);
    }
    this.endpoint = this.gatewayEndpoint ?? this.tritonEndpoint;
    this.registerOutputs({ endpoint: this.endpoint, tritonEndpoint: this.tritonEndpoint, ...(this.gatewayEndpoint ? { gatewayEndpoint: this.gatewayEndpoint } : {}), model: this.modelRun });
  }
}

/** Where a serving target is reached (a stack output; no secrets). */
export interface ServingEndpoints {
  /** What clients call: the gateway when there is one, else Triton. */
  readonly endpoint: string;
  readonly triton: string;
  readonly gateway?: string;
  /** The canary's share of requests and the candidate's run, while a canary is declared. */
  readonly canary?: number;
  readonly canaryModel?: string;
  /** The run whose model the stable Triton serves. */
  readonly model: string;
}

/** A promotion record as the stack outputs it: what is served and on what evidence (no repositories, nothing secret). */
export interface ServedModelOutput {
  readonly run: string;
  readonly digest: string;
  readonly seq: number;
  readonly action: ServedModel['action'];
  readonly from: string | null;
  readonly at: string;
  readonly by: string;
  readonly override?: ServedModel['override'];
  readonly evidence: ServedModel['evidence'];
}

/** The output form of a promotion record (`model`, `canary`); null when there is none. */
export function servedModelOutput(m: ServedModel | undefined): ServedModelOutput | null {
  if (!m) return null;
  return { run: m.run, digest: m.digest, seq: m.seq, action: m.action, from: m.from ?? null, at: m.at, by: m.by, ...(m.override ? { override: m.override } : {}), evidence: m.evidence };
}

export interface PipelineOptions {
  /** Controller image; default `CONTROLLER_IMAGE` of libs/k8s. */
  readonly controllerImage?: string;
  /** Whether the stack trains (`kiln:train`): the platform and the ModelRun; default true. False: serving only. */
  readonly train?: boolean;
  /** What the stack serves (`kiln:model`); absent: no serving objects at all. */
  readonly model?: ServedModel;
  /** The candidate of a canary rollout (`kiln:canary`); absent: none. Ignored without `model`. */
  readonly canary?: ServedModel;
}

export interface PipelineOutputs {
  /** The stack's run; null for a serving-only stack. */
  readonly runId: string | null;
  readonly namespace: pulumi.Output<string>;
  readonly train: boolean;
  /** The promotion the stack serves, and the canary's while one is declared. */
  readonly model: ServedModelOutput | null;
  readonly canary: ServedModelOutput | null;
  /** Per serving target, what clients call: the gateway's `/v1` URL when it has one, else Triton's. Empty without a model. */
  readonly endpoints: Record<string, string>;
  /** Per serving target, every endpoint: Triton's, the gateway's, the canary share while a canary is declared, and the run served. */
  readonly serving: Record<string, ServingEndpoints>;
  readonly plan: { readonly stages: string[]; readonly gpus: number; readonly gpuHours: number; readonly wallHours: number; readonly cost: number | null; readonly currency: string };
}

/**
 * The whole pipeline of a plan: the platform and the run (unless `train` is false), and every serving target
 * on the model promoted to the stack (none without `model`). Outputs never hold secrets.
 */
export function pipeline(plan: Plan, opts: PipelineOptions = {}): PipelineOutputs {
  const train = opts.train ?? true;
  const platform = train ? new Platform(plan.name, { plan, ...(opts.controllerImage ? { controllerImage: opts.controllerImage } : {}) }) : undefined;
  const after = platform ? { dependsOn: [platform] } : {};
  const run = train ? new ModelRun(`${plan.name}-run`, { plan }, after) : undefined;
  const model = opts.model;
  const canary = model ? opts.canary : undefined;
  const targets = model ? plan.serving.map((t) => new ServingTarget(`${plan.name}-${t.name}`, { plan, target: t, model, ...(canary ? { canary } : {}) }, after)) : [];
  const e = plan.estimate;
  return {
    runId: run ? run.runId : null,
    // A serving-only stack does not declare the namespace: it names the spec's, which must exist.
    namespace: platform ? platform.namespaceName : pulumi.output(plan.namespace),
    train,
    model: servedModelOutput(model),
    canary: servedModelOutput(canary && targets.some((t) => t.canary) ? canary : undefined),
    endpoints: Object.fromEntries(targets.map((c, i) => [plan.serving[i]!.name, c.endpoint])),
    serving: Object.fromEntries(
      targets.map((c, i) => {
        const t = plan.serving[i]!;
        return [
          t.name,
          { endpoint: c.endpoint, triton: c.tritonEndpoint, ...(c.gatewayEndpoint ? { gateway: c.gatewayEndpoint } : {}), ...(c.canary ? { canary: t.canary, canaryModel: c.canaryRun! } : {}), model: c.modelRun },
        ];
      }),
    ),
    plan: { stages: plan.stages.map((s) => s.name), gpus: e.gpus, gpuHours: Math.round(e.gpuHours), wallHours: Math.round(e.wallHours * 10) / 10, cost: e.cost === null ? null : Math.round(e.cost), currency: e.currency },
  };
}

/**
 * Where a stack's model came from, read live: the source stack's `model` output through a StackReference
 * (`<org>/<project>/<from>`). Undefined when the model was not promoted from another stack.
 */
export function promotionSource(model: Pick<ServedModel, 'from'> | undefined, stack: string = pulumi.getStack()): { readonly stack: string; readonly model: pulumi.Output<unknown> } | undefined {
  const from = model?.from;
  if (!from || from === stack) return undefined;
  const ref = new pulumi.StackReference(`source-${from}`, { name: `${pulumi.getOrganization()}/${pulumi.getProject()}/${from}` });
  return { stack: from, model: ref.getOutput('model') };
}
