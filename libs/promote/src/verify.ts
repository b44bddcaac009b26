/**
 * The check that a run's model is what its status says: the verification pod of libs/k8s (verifyPod), run in the
 * run's namespace with its storage mounted read-only, hashes every file of the export and compares it with the
 * export manifest and with the run's status. Promotion refuses a run whose files or digests do not match.
 */
import { randomBytes } from 'node:crypto';
import type { KubeConfig, V1Pod } from '@kubernetes/client-node';
import { requestRaw } from '@kiln/cluster';
import { verifyPod, type VerifyReport } from '@kiln/k8s';
import type { Plan } from '@kiln/plan';

export type VerifyResult = VerifyReport;

export interface VerifyOptions {
  /** Longest wait for the pod's verdict. Default 15 minutes. */
  readonly timeoutMs?: number;
  readonly log?: (line: string) => void;
}

/** Raised when the pod gives no verdict (not scheduled, no termination message, timed out): the cluster's fault, not the run's. */
export class VerifyError extends Error {}

/**
 * Runs the verification pod of `plan`'s export stage (the plan is the run's: the ModelRun's spec) against the
 * artifacts its status records for that stage, and returns the pod's verdict. The pod is deleted afterwards.
 */
export async function verifyExport(kc: KubeConfig, plan: Plan, statusArtifacts: readonly { name: string; digest?: string }[], opts: VerifyOptions = {}): Promise<VerifyResult> {
  const stage = plan.stages.find((s) => s.kind === 'export');
  if (!stage) throw new VerifyError(`run ${plan.runId} has no export stage: there is no model to promote`);
  const pod = verifyPod(plan, stage, statusArtifacts, randomBytes(3).toString('hex'));
  const ns = plan.namespace;
  const name = pod.metadata!.name!;
  const base = `/api/v1/namespaces/${ns}/pods`;
  const created = await requestRaw(kc, 'POST', base, pod);
  if (created.status >= 300) throw new VerifyError(`creating the verification pod ${ns}/${name} failed (HTTP ${created.status}): ${JSON.stringify(created.body).slice(0, 300)}`);
  opts.log?.(`verifying the export of ${plan.runId}: pod ${ns}/${name} hashes every file of the model`);
  const t0 = Date.now();
  const limit = opts.timeoutMs ?? 15 * 60_000;
  try {
    for (;;) {
      const r = await requestRaw(kc, 'GET', `${base}/${name}`);
      const p = r.body as V1Pod | undefined;
      const term = p?.status?.containerStatuses?.[0]?.state?.terminated;
      if (term) {
        const text = (term.message ?? '').trim();
        try {
          return JSON.parse(text.slice(text.indexOf('{'))) as VerifyResult;
        } catch {
          throw new VerifyError(`the verification pod ${ns}/${name} ended (exit ${term.exitCode}, ${term.reason ?? 'no reason'}) without a verdict: ${text.slice(-400) || '(no message)'}`);
        }
      }
      const waiting = p?.status?.containerStatuses?.[0]?.state?.waiting;
      if (waiting && /ErrImagePull|ImagePullBackOff|CreateContainerConfigError|InvalidImageName/.test(waiting.reason ?? '')) {
        throw new VerifyError(`the verification pod ${ns}/${name} cannot start: ${waiting.reason}: ${waiting.message ?? ''}`);
      }
      if (Date.now() - t0 > limit) throw new VerifyError(`the verification pod ${ns}/${name} gave no verdict in ${Math.round(limit / 1000)} s (phase ${p?.status?.phase ?? 'unknown'}); see kubectl -n ${ns} describe pod ${name}`);
      await new Promise((res) => setTimeout(res, 1000));
    }
  } finally {
    await requestRaw(kc, 'DELETE', `${base}/${name}`).catch(() => undefined);
  }
}
