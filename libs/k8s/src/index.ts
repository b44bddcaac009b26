/** @kiln/k8s: pure, deterministic builders from a Plan to Kubernetes objects. No Pulumi, no I/O. */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Plan, ServedModel } from '@kiln/plan';
import { controllerDeployment } from './controller.ts';
import { modelRun, modelRunCrd } from './crd.ts';
import { platformObjects } from './platform.ts';
import { gatewayObjects } from './gateway.ts';
import { canaryObjects, evalModelObjects, servingObjects, targetModel } from './serving.ts';
import { stageObjects } from './stages.ts';

export { controllerDeployment, CONTROLLER_IMAGE } from './controller.ts';
export { modelRun, modelRunCrd, GROUP, VERSION, type ModelRunObject } from './crd.ts';
export { metadata } from './meta.ts';
export {
  LABELS,
  MANAGED_BY,
  runLabels,
  runSelector,
  stageSelector,
  pipelineSelector,
  evalModelSelector,
  labelSelector,
  priorityClassName,
  type Priority,
  CONFIG_DIR,
  CONFIG_FILE,
  CONFIG_PATH,
  CONFIG_FLAG,
  TRITON_PORTS,
  serviceUrl,
  servingName,
  servingUrl,
  evalModelUrl,
  ANNOTATIONS,
  GATEWAY_PORT,
  canaryName,
  gatewayName,
  gatewayUrl,
  servingSelector,
  canarySelector,
  gatewaySelector,
} from './names.ts';
export { platformObjects, PRIORITIES, CONTROLLER_SERVICE_ACCOUNT, type PlatformObjects } from './platform.ts';
export { canaryObjects, evalModelObjects, servingObjects, targetModel, type CanaryObjects, type ServingModel, type ServingObjects } from './serving.ts';
export { gatewayConfig, gatewayObjects, GATEWAY_CONFIG_DIR, GATEWAY_CONFIG_PATH, GATEWAY_KEYS_DIR, GATEWAY_KEYS_PATH, type GatewayConfig, type GatewayObjects, type GatewayOptions } from './gateway.ts';
export { jobName, stageObjects, stageConfig, stageCommand, STAGE_SERVICE_ACCOUNT, TRAIN_TERMINATION_GRACE_SECONDS, RENDEZVOUS_PORT, type StageObjects, type StageRunOptions } from './stages.ts';
export { pvcClaim, storageEnv, storageVolumes } from './storage.ts';

/** What a stack serves, for `allObjects`: promotion records as the stack's config holds them (`kiln:model`, `kiln:canary`). */
export interface ServedObjectsOptions {
  /** The stable model; absent: the stack serves nothing, and no serving object is listed. */
  readonly model?: Pick<ServedModel, 'run' | 'digest' | 'repositories'>;
  /** The candidate of a canary rollout; absent: no canary objects and no canary upstream. */
  readonly canary?: Pick<ServedModel, 'run' | 'digest' | 'repositories'>;
}

/**
 * Every object a plan can lead to, in apply order: what Pulumi declares (platform, CRD, controller, the
 * ModelRun, and the serving of the model promoted to the stack, when one is given) and what the controller
 * creates per stage.
 */
export function allObjects(plan: Plan, served: ServedObjectsOptions = {}): KubernetesObject[] {
  const p = platformObjects(plan);
  const { model, canary } = served;
  return [
    ...p.priorityClasses,
    modelRunCrd(),
    p.namespace,
    ...p.serviceAccounts,
    ...p.roles,
    ...p.roleBindings,
    ...(p.pvc ? [p.pvc] : []),
    controllerDeployment(plan),
    modelRun(plan),
    ...(model
      ? plan.serving.flatMap((t) => {
          const candidate = canary && t.canary > 0 ? targetModel(t, canary) : undefined;
          return [
            ...Object.values(servingObjects(plan, t, targetModel(t, model))),
            ...Object.values(canaryObjects(plan, t, candidate) ?? {}),
            ...(t.gateway ? Object.values(gatewayObjects(plan, t, { canary: candidate !== undefined })) : []),
          ];
        })
      : []),
    ...Object.values(evalModelObjects(plan)),
    ...plan.stages.flatMap((s) => Object.values(stageObjects(plan, s))),
  ] as KubernetesObject[];
}
export { verifyPod, VERIFY_SCRIPT, type VerifyReport } from './verify.ts';
