/**
 * The run part of `kiln demo`: the controller runs here (in-process, no simulation hooks) until the local
 * stack's run has finished, while every stage pod executes for real on the local node. Shows each stage's
 * phase changes, progress as the stage reports it, and its wall time (Job start to completion). Nothing
 * serves the run's model until it is promoted (provision.ts does that next).
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { findRun, kubeConfigFrom, listRuns, stageSimulated, type ModelRun, type StageStatus } from '@kiln/cluster';
import { paths } from '@kiln/local-cluster';
import type { Io } from '../../io.ts';
import { renderRun } from '../../render/status.ts';
import { progressBar } from '../../render/table.ts';

/** Seconds a stage ran, from its Job's start to its completion (or to now while it runs); undefined before it starts. */
export function stageSeconds(s: Pick<StageStatus, 'startTime' | 'completionTime'>, now = Date.now()): number | undefined {
  if (!s.startTime) return undefined;
  const end = s.completionTime ? Date.parse(s.completionTime) : now;
  return Math.max(0, (end - Date.parse(s.startTime)) / 1000);
}

/** Runs the controller for `namespace` until run `runId` ends; returns its final state, or undefined on timeout. */
export async function runUntilDone(root: string, namespace: string, runId: string, io: Io, timeoutMs = 1_500_000): Promise<ModelRun | undefined> {
  const { Controller } = await import('@kiln/controller');
  const kc = kubeConfigFrom(paths(root).kubeconfig);
  const logDir = join(root, '.kiln', 'logs');
  mkdirSync(logDir, { recursive: true });
  const logFile = join(logDir, 'demo-controller.log');
  const ctl = new Controller({ kubeConfig: kc, namespace, progressEveryMs: 2000, log: (l) => appendFileSync(logFile, `${l}\n`) });
  await ctl.start();
  io.out(`  controller running here (log: ${logFile}); the stage pods run for real on the local node kiln-local-0`);
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
          const pct = s.progress ? Math.floor((10 * s.progress.done) / Math.max(1, s.progress.total)) : -1;
          const key = `${s.phase}/${s.attempts}/${pct}`;
          if (seen.get(s.name) === key || s.phase === 'Pending') continue;
          seen.set(s.name, key);
          const secs = stageSeconds(s);
          const took = s.phase === 'Succeeded' || s.phase === 'Failed' ? ` (${secs?.toFixed(1) ?? '?'} s)` : '';
          const detail = `${s.progress && s.phase === 'Running' ? progressBar(s.progress) : s.message}${took}${stageSimulated(s) ? ' (simulated)' : ''}`;
          io.out(`  ${`${((Date.now() - t0) / 1000).toFixed(1)}s`.padStart(7)}  ${s.name.padEnd(15)} ${s.phase.padEnd(9)} ${detail}`);
        }
        if (found.status?.phase === 'Succeeded' || found.status?.phase === 'Failed') break;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    await ctl.stop();
  }
  if (last) {
    io.out(`\n  Wall time per stage (Job start to completion, measured):`);
    for (const s of last.status?.stages ?? []) io.out(`    ${s.name.padEnd(15)} ${stageSeconds(s)?.toFixed(1).padStart(7) ?? '      -'} s  ${s.phase}${s.attempts > 1 ? `, ${s.attempts} attempts` : ''}`);
    io.out(`    ${'whole run'.padEnd(15)} ${((Date.now() - t0) / 1000).toFixed(1).padStart(7)} s`);
  }
  return last?.status?.phase === 'Succeeded' || last?.status?.phase === 'Failed' ? last : undefined;
}

/** `kiln status <run>` as the demo prints it at the end: stages, measured metrics, gate verdicts. */
export const statusText = (run: ModelRun): string => renderRun(run).replace(/^(?=.)/gm, '  ');
