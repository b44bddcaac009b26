/** The last part of `kiln demo`: run the controller here until the dev stack's run has finished, showing it. */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { findRun, kubeConfigFrom, listRuns, stageSimulated, type ModelRun } from '@kiln/cluster';
import { paths, simulationHooks } from '@kiln/local-cluster';
import type { Io } from '../../io.ts';
import { renderRun } from '../../render/status.ts';
import { progressBar } from '../../render/table.ts';

/** Runs the controller for `namespace` until run `runId` ends; returns its final state, or undefined on timeout. */
export async function runUntilDone(root: string, namespace: string, runId: string, io: Io, timeoutMs = 300_000): Promise<ModelRun | undefined> {
  const { Controller } = await import('@kiln/controller');
  const kc = kubeConfigFrom(paths(root).kubeconfig);
  const logDir = join(root, '.kiln', 'logs');
  mkdirSync(logDir, { recursive: true });
  const logFile = join(logDir, 'demo-controller.log');
  const ctl = new Controller({ kubeConfig: kc, namespace, hooks: simulationHooks(), progressEveryMs: 700, log: (l) => appendFileSync(logFile, `${l}\n`) });
  await ctl.start();
  io.out(`  controller running here (log: ${logFile}); pods are simulated, each stage takes about 2 s`);
  const t0 = Date.now();
  const seen = new Map<string, string>();
  let last: ModelRun | undefined;
  try {
    while (Date.now() - t0 < timeoutMs) {
      const found = findRun(await listRuns(kc, namespace), runId);
      if ('error' in found && Date.now() - t0 > 15_000) {
        io.err(`kiln demo: ${found.error} in namespace ${namespace}`);
        break;
      }
      if (!('error' in found)) {
        last = found;
        for (const s of found.status?.stages ?? []) {
          const pct = s.progress ? Math.floor((4 * s.progress.done) / Math.max(1, s.progress.total)) : -1;
          const key = `${s.phase}/${s.attempts}/${pct}`;
          if (seen.get(s.name) === key || s.phase === 'Pending') continue;
          seen.set(s.name, key);
          const detail = `${s.progress && s.phase === 'Running' ? progressBar(s.progress) : s.message}${stageSimulated(s) ? ' (simulated)' : ''}`;
          io.out(`  ${`${((Date.now() - t0) / 1000).toFixed(1)}s`.padStart(6)}  ${s.name.padEnd(15)} ${s.phase.padEnd(9)} ${detail}`);
        }
        if (found.status?.phase === 'Succeeded' || found.status?.phase === 'Failed') break;
      }
      await new Promise((r) => setTimeout(r, 300));
    }
  } finally {
    await ctl.stop();
  }
  if (last) io.out(`\n${renderRun(last).replace(/^(?=.)/gm, '  ')}`);
  return last?.status?.phase === 'Succeeded' || last?.status?.phase === 'Failed' ? last : undefined;
}
