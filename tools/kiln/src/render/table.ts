/** Plain-text building blocks: aligned tables, progress bars, ages, bold and pass/fail marks. */
import { formatCount } from '@kiln/spec';

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
