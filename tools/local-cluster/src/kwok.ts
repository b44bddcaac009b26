/** kwok's stages for the local cluster: node set-up and heartbeats, pods Ready once scheduled, Job pods ending as their annotations say. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import type { Paths } from './paths.ts';
import type { Toolchain } from './toolchain.ts';

/**
 * How a simulated Job pod ends: with the exit code and termination message its annotations ask for (the
 * controller's simulation sets them per stage and attempt), else exit 0 and no message. `pod-complete.stage.
 * kwok.x-k8s.io/delay` (a Go duration) overrides how long it runs.
 */
export const SIM_ANNOTATIONS = { exitCode: 'kiln.dev/sim-exit-code', message: 'kiln.dev/sim-message', duration: 'pod-complete.stage.kwok.x-k8s.io/delay' } as const;
/** A kwok status template that ends every container of a pod (`terminated`) and sets the pod's phase. */
function endPod(t: { vars?: string; exitCode: string; reason: string; message: string; phase: string }): string {
  return `{{ $now := Now }}
{{ $root := . }}
${t.vars ?? ''}
containerStatuses:
{{ range $index, $item := .spec.containers }}
- image: {{ $item.image | Quote }}
  name: {{ $item.name | Quote }}
  ready: false
  restartCount: 0
  started: false
  state:
    terminated:
      exitCode: ${t.exitCode}
      finishedAt: {{ $now | Quote }}
      reason: ${t.reason}
      message: ${t.message}
      startedAt: {{ $root.status.startTime | default $now | Quote }}
{{ end }}
phase: ${t.phase}
`;
}

const SIMULATED_EXIT = endPod({
  vars: `{{ $a := .metadata.annotations | default dict }}
{{ $code := get $a "${SIM_ANNOTATIONS.exitCode}" | default "0" }}
{{ $msg := get $a "${SIM_ANNOTATIONS.message}" }}`,
  exitCode: '{{ $code }}',
  reason: '{{ if eq $code "0" }}Completed{{ else }}Error{{ end }}',
  message: '{{ $msg | Quote }}',
  phase: '{{ if eq $code "0" }}Succeeded{{ else }}Failed{{ end }}',
});

/** A deleted (or evicted) pod of a Job ends Failed with exit 137, as the kubelet would end it. */
const POD_TERMINATE = {
  apiVersion: 'kwok.x-k8s.io/v1alpha1',
  kind: 'Stage',
  metadata: { name: 'kiln-pod-terminate' },
  spec: {
    resourceRef: { apiGroup: 'v1', kind: 'Pod' },
    selector: {
      matchExpressions: [
        { key: '.metadata.deletionTimestamp', operator: 'Exists' },
        { key: '.status.phase', operator: 'In', values: ['Running', 'Pending'] },
        { key: '.metadata.ownerReferences.[].kind', operator: 'In', values: ['Job'] },
      ],
    },
    next: {
      statusTemplate: endPod({ exitCode: '137', reason: 'Error', message: '"terminated: the pod was deleted"', phase: 'Failed' }),
    },
  },
};

/** kwok stages: node set-up and heartbeats, pods Ready when scheduled, Job pods end after a delay. */
export function writeStages(p: Paths, tc: Toolchain, jobDurationMs: number): string {
  const stage = join(tc.dir, 'share', 'kwok', 'stage');
  const files = ['node/fast/node-initialize.yaml', 'node/heartbeat-with-lease/node-heartbeat-with-lease.yaml', 'pod/fast/pod-ready.yaml', 'pod/general/pod-complete.yaml', 'pod/fast/pod-delete.yaml'];
  const docs = files.flatMap((f) => parseAllDocuments(readFileSync(join(stage, f), 'utf8')).map((d) => d.toJS() as Record<string, unknown>));
  for (const d of docs) {
    const meta = d.metadata as { name: string };
    const spec = d.spec as { delay?: { durationMilliseconds?: number; jitterDurationMilliseconds?: number; durationFrom?: unknown; jitterDurationFrom?: unknown } };
    if (meta.name === 'pod-complete' && spec.delay) {
      // kwok waits min(duration, jitter) when jitter ≤ duration: a jitter of 0 would end pods at once. Equal
      // values (from the same annotation, when a pod has it) give exactly the duration.
      spec.delay.durationMilliseconds = jobDurationMs;
      spec.delay.jitterDurationMilliseconds = jobDurationMs;
      spec.delay.jitterDurationFrom = spec.delay.durationFrom;
      (spec as { next: { statusTemplate: string } }).next.statusTemplate = SIMULATED_EXIT;
    } else if (meta.name === 'pod-delete') {
      // A pod a Job still tracks (finalizer) is not deleted outright: kiln-pod-terminate ends it first, as a
      // kubelet would, so the Job controller sees the failure (and its DisruptionTarget, on eviction).
      const sel = (d.spec as { selector: { matchExpressions: unknown[] } }).selector;
      sel.matchExpressions.push({ key: '.metadata.finalizers', operator: 'DoesNotExist' });
    } else if (meta.name === 'pod-ready' && spec.delay) {
      spec.delay.durationMilliseconds = 0;
      spec.delay.jitterDurationMilliseconds = 0;
    }
  }
  docs.push(POD_TERMINATE);
  const out = join(p.cluster, 'kwok-stages.yaml');
  writeFileSync(out, docs.map((d) => stringify(d)).join('---\n'));
  return out;
}

