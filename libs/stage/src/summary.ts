import { writeFileSync } from 'node:fs';
import type { StageSummary } from './types.ts';

/** Kubernetes keeps at most 4096 bytes of a container's termination message. */
export const TERMINATION_MESSAGE_MAX_BYTES = 4096;

const size = (s: StageSummary) => Buffer.byteLength(JSON.stringify(s));

/**
 * The summary as JSON of at most `maxBytes` bytes, always valid. When it is too long, what is least needed goes
 * first: the warnings, then artifacts from the end, then metrics from the end, then the tail of long texts;
 * whatever was dropped, `truncated: true` says so.
 */
export function fitSummary(summary: StageSummary, maxBytes = TERMINATION_MESSAGE_MAX_BYTES): string {
  if (size(summary) <= maxBytes) return JSON.stringify(summary);
  let s: StageSummary = { ...summary, truncated: true };
  const { warnings: _w, ...rest } = s;
  s = rest;
  const artifacts = [...(s.artifacts ?? [])];
  while (artifacts.length && size({ ...s, artifacts }) > maxBytes) artifacts.pop();
  if (s.artifacts) s = { ...s, artifacts };
  const metrics = Object.entries(s.metrics ?? {});
  while (metrics.length && size({ ...s, metrics: Object.fromEntries(metrics) }) > maxBytes) metrics.pop();
  if (s.metrics) s = { ...s, metrics: Object.fromEntries(metrics) };
  for (const k of ['message', 'error'] as const) {
    const text = s[k];
    if (typeof text !== 'string' || size(s) <= maxBytes) continue;
    // The longest head that fits, found by bisection: JSON escapes and multi-byte characters make bytes and characters differ.
    const fits = (n: number) => size({ ...s, [k]: `${text.slice(0, n)}…` }) <= maxBytes;
    let keep = 0;
    for (let lo = 0, hi = text.length; lo <= hi; ) {
      const mid = (lo + hi) >> 1;
      if (fits(mid)) {
        keep = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    s = { ...s, [k]: `${text.slice(0, keep)}…` };
  }
  return size(s) <= maxBytes ? JSON.stringify(s) : JSON.stringify({ truncated: true });
}

/**
 * Writes the stage's summary as its termination message (`KILN_TERMINATION_LOG`, default the pod's), within the
 * 4096 bytes Kubernetes keeps. Outside a pod there is none, and that is fine. Returns the text it wrote.
 */
export function writeSummary(summary: StageSummary, env: NodeJS.ProcessEnv = process.env): string {
  const text = fitSummary(summary);
  try {
    writeFileSync(env.KILN_TERMINATION_LOG ?? '/dev/termination-log', text);
  } catch {
    // Not in a pod: the stage's own outputs hold everything.
  }
  return text;
}
