/** @kiln/k8s: pure, deterministic builders from a Plan to Kubernetes objects. No Pulumi, no I/O. */
import type { KubernetesObject } from '@kubernetes/client-node';
import type { Plan } from '@kiln/plan';
import { controllerDeployment } from './controller.ts';
import { modelRun, modelRunCrd } from './crd.ts';
import { platformObjects } from './platform.ts';
import { gatewayObjects } from './gateway.ts';
import { canaryObjects, evalModelObjects, servingObjects } from './serving.ts';
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
export { canaryObjects, evalModelObjects, servingObjects, STABLE_MODEL_FIELDS, type CanaryObjects, type ServingObjects } from './serving.ts';
export { gatewayConfig, gatewayObjects, GATEWAY_CONFIG_DIR, GATEWAY_CONFIG_PATH, GATEWAY_KEYS_DIR, GATEWAY_KEYS_PATH, type GatewayConfig, type GatewayObjects } from './gateway.ts';
export { jobName, stageObjects, stageConfig, stageCommand, STAGE_SERVICE_ACCOUNT, TRAIN_TERMINATION_GRACE_SECONDS, RENDEZVOUS_PORT, type StageObjects, type StageRunOptions } from './stages.ts';
export { pvcClaim, storageEnv, storageVolumes } from './storage.ts';

/**
 * Every object a plan can lead to, in apply order: what Pulumi declares (platform, CRD, controller, the
 * ModelRun, serving) and what the controller creates per stage.
 */
export function allObjects(plan: Plan): KubernetesObject[] {
  const p = platformObjects(plan);
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
    ...plan.serving.flatMap((t) => [
      ...Object.values(servingObjects(plan, t)),
      ...Object.values(canaryObjects(plan, t) ?? {}),
      ...(t.gateway ? Object.values(gatewayObjects(plan, t)) : []),
    ]),
    ...Object.values(evalModelObjects(plan)),
    ...plan.stages.flatMap((s) => Object.values(stageObjects(plan, s))),
  ] as KubernetesObject[];
}
export { verifyPod, VERIFY_SCRIPT, type VerifyReport } from './verify.ts';
