/** Placeholder: the lead writes verifyExport (a pod in the run's namespace that hashes every served file of the export). */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Plan } from '@kiln/plan';
import type { RunEvidence, VerifyResult } from './evidence.ts';

/** Verifies a run's export against its manifest and status. Written by the lead; this stub refuses to run. */
export async function verifyExport(_kc: KubeConfig, _evidence: RunEvidence, _plan: Plan): Promise<VerifyResult> {
  throw new Error('verifyExport: written by the lead');
}
