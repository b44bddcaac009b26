/**
 * Thin components over libs/k8s (STYLE.md §2, §5): the objects come from pure builders; these classes only
 * hand them to @pulumi/kubernetes, name children `${name}-<role>`, parent them, and register outputs.
 */
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import { canaryObjects, controllerDeployment, gatewayObjects, gatewayUrl, modelRun, modelRunCrd, platformObjects, servingObjects, servingUrl, STABLE_MODEL_FIELDS } from '@kiln/k8s';
import type { Plan, ServingPlan } from '@kiln/plan';

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
}

/**
 * Options of the stable Triton Deployment. With a canary share, the fields that name its model are left as
 * they are in the cluster (`ignoreChanges`): the stable Triton keeps serving its current model while the
 * canary serves this run's. Without one, this run's model rolls out to the stable Triton, as before.
 */
export function stableDeploymentOptions(target: Pick<ServingPlan, 'canary'>): { readonly ignoreChanges?: string[] } {
  return target.canary > 0 ? { ignoreChanges: [...STABLE_MODEL_FIELDS] } : {};
}

/**
 * One serving target: Triton (Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget); while it has a
 * canary share, the canary Triton beside it; and when it has a gateway, the gateway in front (config, Deployment,
 * Service, autoscaler, disruption budget, NetworkPolicies that make it the only way in).
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

  constructor(name: string, args: ServingTargetArgs, opts?: pulumi.ComponentResourceOptions) {
    super('kiln:serving:ServingTarget', name, {}, opts);
    const { plan, target } = args;
    const o = servingObjects(plan, target);
    const child = { parent: this };
    // Not awaited: Triton serves the run's export, which exists only once the run has reached its export stage;
    // awaiting readiness (or a Service's endpoints) would hold `pulumi up`, which creates the run, until it times
    // out. The gateway likewise.
    this.deployment = new k8s.apps.v1.Deployment(`${name}-deployment`, withAnnotations(o.deployment, SKIP_AWAIT) as k8s.apps.v1.DeploymentArgs, { ...child, ...stableDeploymentOptions(target) });
    this.service = new k8s.core.v1.Service(`${name}-service`, withAnnotations(o.service, SKIP_AWAIT) as k8s.core.v1.ServiceArgs, child);
    new k8s.autoscaling.v2.HorizontalPodAutoscaler(`${name}-hpa`, o.hpa as k8s.autoscaling.v2.HorizontalPodAutoscalerArgs, child);
    new k8s.policy.v1.PodDisruptionBudget(`${name}-pdb`, o.pdb as k8s.policy.v1.PodDisruptionBudgetArgs, child);
    const c = canaryObjects(plan, target);
    if (c) {
      this.canary = {
        deployment: new k8s.apps.v1.Deployment(`${name}-canary-deployment`, withAnnotations(c.deployment, SKIP_AWAIT) as k8s.apps.v1.DeploymentArgs, child),
        service: new k8s.core.v1.Service(`${name}-canary-service`, withAnnotations(c.service, SKIP_AWAIT) as k8s.core.v1.ServiceArgs, child),
      };
    }
    this.tritonEndpoint = servingUrl(plan, target);
    if (target.gateway) {
      const g = gatewayObjects(plan, target);
      const netpol = (role: string, p: typeof g.gatewayPolicy) => new k8s.networking.v1.NetworkPolicy(`${name}-${role}`, p as k8s.networking.v1.NetworkPolicyArgs, child);
      // Policies first: Triton is closed to everyone but the gateway before the gateway opens.
      const policies = [netpol('triton-policy', g.tritonPolicy), ...(g.canaryPolicy ? [netpol('canary-policy', g.canaryPolicy)] : []), netpol('gateway-policy', g.gatewayPolicy)];
      const configMap = new k8s.core.v1.ConfigMap(`${name}-gateway-config`, g.configMap as k8s.core.v1.ConfigMapArgs, child);
      const deployment = new k8s.apps.v1.Deployment(`${name}-gateway`, withAnnotations(g.deployment, SKIP_AWAIT) as k8s.apps.v1.DeploymentArgs, { ...child, dependsOn: [configMap, ...policies] });
      const service = new k8s.core.v1.Service(`${name}-gateway-service`, withAnnotations(g.service, SKIP_AWAIT) as k8s.core.v1.ServiceArgs, child);
      new k8s.autoscaling.v2.HorizontalPodAutoscaler(`${name}-gateway-hpa`, g.hpa as k8s.autoscaling.v2.HorizontalPodAutoscalerArgs, child);
      new k8s.policy.v1.PodDisruptionBudget(`${name}-gateway-pdb`, g.pdb as k8s.policy.v1.PodDisruptionBudgetArgs, child);
      this.gateway = { deployment, service, configMap };
      this.gatewayEndpoint = gatewayUrl(plan, target);
    }
    this.endpoint = this.gatewayEndpoint ?? this.tritonEndpoint;
    this.registerOutputs({ endpoint: this.endpoint, tritonEndpoint: this.tritonEndpoint, ...(this.gatewayEndpoint ? { gatewayEndpoint: this.gatewayEndpoint } : {}) });
  }
}

/** Where a serving target is reached (a stack output; no secrets). */
export interface ServingEndpoints {
  /** What clients call: the gateway when there is one, else Triton. */
  readonly endpoint: string;
  readonly triton: string;
  readonly gateway?: string;
  /** The canary's share of requests, when the target has a canary. */
  readonly canary?: number;
}

export interface PipelineOutputs {
  readonly runId: string;
  readonly namespace: pulumi.Output<string>;
  /** Per serving target, what clients call: the gateway's `/v1` URL when it has one, else Triton's. */
  readonly endpoints: Record<string, string>;
  /** Per serving target, every endpoint: Triton's, the gateway's, the canary share. */
  readonly serving: Record<string, ServingEndpoints>;
  readonly plan: { readonly stages: string[]; readonly gpus: number; readonly gpuHours: number; readonly wallHours: number; readonly cost: number | null; readonly currency: string };
}

/** The whole pipeline of a plan: platform, the run, and every serving target. Outputs never hold secrets. */
export function pipeline(plan: Plan, opts: { readonly controllerImage?: string } = {}): PipelineOutputs {
  const platform = new Platform(plan.name, { plan, ...(opts.controllerImage ? { controllerImage: opts.controllerImage } : {}) });
  const after = { dependsOn: [platform] };
  const run = new ModelRun(`${plan.name}-run`, { plan }, after);
  const targets = plan.serving.map((t) => new ServingTarget(`${plan.name}-${t.name}`, { plan, target: t }, after));
  const e = plan.estimate;
  return {
    runId: run.runId,
    namespace: platform.namespaceName,
    endpoints: Object.fromEntries(plan.serving.map((t, i) => [t.name, targets[i]!.endpoint])),
    serving: Object.fromEntries(
      plan.serving.map((t, i) => {
        const c = targets[i]!;
        return [t.name, { endpoint: c.endpoint, triton: c.tritonEndpoint, ...(c.gatewayEndpoint ? { gateway: c.gatewayEndpoint } : {}), ...(t.canary > 0 ? { canary: t.canary } : {}) }];
      }),
    ),
    plan: { stages: plan.stages.map((s) => s.name), gpus: e.gpus, gpuHours: Math.round(e.gpuHours), wallHours: Math.round(e.wallHours * 10) / 10, cost: e.cost === null ? null : Math.round(e.cost), currency: e.currency },
  };
}
