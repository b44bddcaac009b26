/** The text of `kiln data prep`: what one shard kept, dropped and redacted, and where it went. */
import { resolve } from 'node:path';
import type { ShardManifest } from '@kiln/data-prep';

/** A shard's manifest as a person reads it; paths are shown under `output`. */
export function formatManifest(manifest: ShardManifest, output: string): string {
  const r = manifest.records;
  const lines: string[] = [];
  const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
  lines.push(`shard ${manifest.shard}: ${r.recordsIn} records in (${mb(r.bytesIn)}), ${r.kept} kept (${mb(r.bytesOut)}) in ${manifest.seconds}s`);
  for (const [reason, n] of Object.entries(r.dropped).sort(([, a], [, b]) => b - a)) lines.push(`  dropped ${String(n).padStart(7)}  ${reason}`);
  const pii = Object.entries(manifest.pii).filter(([, n]) => n > 0);
  if (pii.length) lines.push(`  redacted ${pii.map(([k, n]) => `${n} ${k}`).join(', ')}`);
  lines.push(`  languages: ${Object.entries(manifest.languages).slice(0, 8).map(([l, v]) => `${l} ${v.files}`).join(', ') || '-'}`);
  lines.push(`  wrote ${manifest.outputs.map((o) => `${resolve(output, o.path)} (${o.records} records, sha256 ${o.sha256.slice(0, 12)}…)`).join(', ')} and its manifest`);
  return lines.join('\n');
}
