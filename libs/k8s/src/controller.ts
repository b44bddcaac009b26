/** The run controller's Deployment (the controller itself lives in services/controller). */
import type { V1Deployment } from '@kubernetes/client-node';
import type { Plan } from '@kiln/plan';
import { LABELS, MANAGED_BY } from './names.ts';
import { CONTROLLER_SERVICE_ACCOUNT } from './platform.ts';

export const CONTROLLER_IMAGE = 'kiln/controller:0.1.0';

export function controllerDeployment(plan: Plan, image = CONTROLLER_IMAGE): V1Deployment {
  const labels = { [LABELS.name]: 'kiln-controller', [LABELS.partOf]: plan.name, [LABELS.managedBy]: MANAGED_BY, [LABELS.component]: 'controller' };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'kiln-controller', namespace: plan.namespace, labels },
    spec: {
      // Two replicas for availability; a Lease makes only one act at a time.
      replicas: 2,
      selector: { matchLabels: { [LABELS.name]: 'kiln-controller', [LABELS.partOf]: plan.name } },
      template: {
        metadata: { labels },
        spec: {
          serviceAccountName: CONTROLLER_SERVICE_ACCOUNT,
          securityContext: { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'controller',
              image,
              // The controller's own bin (services/controller), not the CLI: the image carries only the controller.
              command: ['kiln-controller', `--namespace=${plan.namespace}`, '--leader-elect'],
              resources: { requests: { cpu: '100m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } },
              securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
            },
          ],
        },
      },
    },
  };
}
