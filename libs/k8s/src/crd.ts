/** The ModelRun custom resource: Pulumi declares one per run; the controller executes it. */
import type { V1CustomResourceDefinition } from '@kubernetes/client-node';
import { dnsName, type Plan } from '@kiln/plan';
import { metadata } from './meta.ts';
import { LABELS, MANAGED_BY } from './names.ts';

export const GROUP = 'kiln.dev';
export const VERSION = 'v1alpha1';

const open = { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } as const;

const num = (description: string) => ({ type: 'number', description }) as const;
/**
 * A running stage's progress (schemas/stages/progress.schema.json): declared field by field, since the API
 * server prunes what a structural schema does not name; the training fields come from rank 0's last
 * kiln.progress/v1 line.
 */
const progress = {
  type: 'object',
  description: 'How far a running stage is (training: tokens of its budget, with the trainer\'s latest metrics).',
  required: ['done', 'total', 'unit'],
  properties: {
    done: num('Units done.'),
    total: num('Units in all.'),
    unit: { type: 'string', description: 'What is counted (tokens, records, problems).' },
    updatedAt: { type: 'string', description: 'When the numbers were written (RFC 3339).' },
    simulated: { type: 'boolean', description: 'The numbers come from the local cluster\'s simulation, not from the stage.' },
    step: { type: 'integer', description: 'Training: optimizer steps done.' },
    steps: { type: 'integer', description: 'Training: optimizer steps planned.' },
    loss: num('Training: loss at the latest log interval.'),
    lr: num('Training: learning rate at the latest step.'),
    grad_norm: num('Training: gradient norm before clipping.'),
    tokens_per_s: num('Training: throughput over the latest log interval, tokens per second.'),
    eta_s: num('Training: seconds left at that throughput.'),
    mfu: num('Training: model FLOPs utilisation, 0..1.'),
    note: { type: 'string', description: 'Why the numbers may be stale or missing.' },
  },
} as const;

/** The run's status: open (the controller owns its shape, see @kiln/cluster's status.ts) except each stage's progress. */
const status = {
  ...open,
  properties: { stages: { type: 'array', items: { ...open, properties: { progress } } } },
} as const;

export function modelRunCrd(): V1CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `modelruns.${GROUP}`, labels: { [LABELS.managedBy]: MANAGED_BY } },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: { kind: 'ModelRun', plural: 'modelruns', singular: 'modelrun', shortNames: ['mr'], categories: ['kiln'] },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'Run', type: 'string', jsonPath: '.spec.runId' },
            { name: 'Stack', type: 'string', jsonPath: '.spec.stack' },
            { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
            { name: 'Stage', type: 'string', jsonPath: '.status.currentStage' },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: 'One run of a kiln pipeline: the compiled plan of a kiln.yaml and its progress.',
              properties: {
                spec: {
                  type: 'object',
                  required: ['runId', 'name', 'namespace', 'storagePrefix', 'stages'],
                  properties: {
                    runId: { type: 'string', pattern: '^r-[0-9a-f]{12}$' },
                    name: { type: 'string' },
                    stack: { type: 'string', nullable: true },
                    namespace: { type: 'string' },
                    storagePrefix: { type: 'string' },
                    suspend: { type: 'boolean', description: 'Pause the run: no new stage Jobs are started.' },
                    stages: { type: 'array', items: open },
                    serving: { type: 'array', items: open },
                    evalModel: open,
                    gates: open,
                    estimate: open,
                    labels: { type: 'object', additionalProperties: { type: 'string' } },
                    secrets: {
                      type: 'object',
                      description: 'Named references to Secret keys; never values.',
                      additionalProperties: { type: 'object', required: ['secret', 'key'], properties: { secret: { type: 'string' }, key: { type: 'string' } } },
                    },
                    serviceAccount: { type: 'string', nullable: true },
                  },
                },
                status,
              },
            },
          },
        },
      ],
    },
  };
}

export interface ModelRunObject {
  readonly apiVersion: string;
  readonly kind: 'ModelRun';
  readonly metadata: ReturnType<typeof metadata>;
  readonly spec: Record<string, unknown>;
}

export function modelRun(plan: Plan): ModelRunObject {
  const { apiVersion: _a, ...spec } = plan;
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'ModelRun',
    metadata: metadata(plan, dnsName([plan.name, plan.runId]), 'run'),
    spec: { ...spec, suspend: false },
  };
}
