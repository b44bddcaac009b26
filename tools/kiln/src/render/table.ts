/** Plain-text building blocks: aligned tables, progress bars, ages, bold and pass/fail marks. */
import { formatCount } from '@kiln/spec';
import type { Progress } from '@kiln/stage';

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function table(rows: string[][]): string {
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ').trimEnd()).join('\n');
}

/** `[███████░░░] 70% 350K/500K tokens` */
export function progressBar(p: { done: number; total: number; unit: string }, width = 20): string {
  const f = p.total > 0 ? Math.min(1, p.done / p.total) : 0;
  const n = Math.round(f * width);
  return `[${'█'.repeat(n)}${'░'.repeat(width - n)}] ${Math.floor(f * 100)}% ${formatCount(p.done)}/${formatCount(p.total)} ${p.unit}`;
}

/** A time left, as a person reads it: `45s`, `12m`, `2h10m`, `3d4h`. */
export function timeLeft(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

/**
 * What a training stage's progress adds after its bar, from rank 0's last progress line: `loss 2.31 · 181K
 * tok/s · MFU 52% · 2h10m left`, each part only where the line had it, and the note when the numbers may be stale.
 */
export function trainingMetrics(p: Progress): string {
  const parts: string[] = [];
  if (p.loss !== undefined) parts.push(`loss ${p.loss.toFixed(2)}`);
  if (p.tokens_per_s !== undefined) parts.push(`${formatCount(Math.round(p.tokens_per_s))} tok/s`);
  if (p.mfu !== undefined) parts.push(`MFU ${Math.round(p.mfu * 100)}%`);
  if (p.eta_s !== undefined && p.done < p.total) parts.push(`${timeLeft(p.eta_s)} left`);
  if (p.note) parts.push(p.note);
  return parts.join(' · ');
}

/** How long from `from` to `to` (a time, epoch milliseconds, or now): `42s`, `5m`, `3.2h`, `4d`. */
export const age = (from?: string, to?: string | number): string => {
  if (!from) return '-';
  const s = Math.max(0, Math.round(((typeof to === 'number' ? to : to ? Date.parse(to) : Date.now()) - Date.parse(from)) / 1000));
  return s < 120 ? `${s}s` : s < 7200 ? `${Math.round(s / 60)}m` : s < 172800 ? `${(s / 3600).toFixed(1)}h` : `${Math.round(s / 86400)}d`;
};

/** Bold on a terminal that takes colour. */
export const bold = (s: string, color: boolean): string => (color ? `\x1b[1m${s}\x1b[22m` : s);

/** ✓ or ✗, green or red on a terminal that takes colour. */
export const mark = (ok: boolean, color: boolean): string => (ok ? (color ? '\x1b[32m✓\x1b[39m' : '✓') : color ? '\x1b[31m✗\x1b[39m' : '✗');

/** `1 file`, `2 files`. */
export const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
