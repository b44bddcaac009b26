/**
 * The report a person wants after data prep: what came in, what was kept, why the rest went, which
 * languages, how long the files are, and what was redacted, as one self-contained HTML page (inline SVG
 * charts, no scripts, nothing fetched) next to the manifest.
 */
import type { HistogramBucket, ShardManifest } from './manifest.ts';

/** Counts in power-of-two buckets: bucket k holds values in [2^k, 2^(k+1)). */
export class Log2Histogram {
  readonly buckets: number[] = [];
  add(v: number): void {
    const k = v < 1 ? 0 : Math.floor(Math.log2(v));
    while (this.buckets.length <= k) this.buckets.push(0);
    this.buckets[k]!++;
  }
  toJSON(): HistogramBucket[] {
    return this.buckets.map((count, k) => ({ bucket: `${2 ** k}–${2 ** (k + 1) - 1}`, count }));
  }
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
const fmt = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(1)}G` : n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}K` : String(n));

/** A horizontal bar chart as inline SVG. */
export function barChart(title: string, rows: readonly (readonly [string, number])[], unit = ''): string {
  if (!rows.length) return `<h2>${esc(title)}</h2><p class="none">none</p>`;
  const max = Math.max(...rows.map(([, v]) => v), 1);
  const h = 22;
  const label = 170;
  const width = 640;
  const bars = rows
    .map(([k, v], i) => {
      const w = Math.max(1, Math.round(((width - label - 90) * v) / max));
      const y = i * h;
      return `<g transform="translate(0,${y})"><text x="${label - 8}" y="15" text-anchor="end">${esc(k)}</text><rect x="${label}" y="3" width="${w}" height="${h - 6}" rx="2"></rect><text x="${label + w + 6}" y="15">${fmt(v)}${unit}</text></g>`;
    })
    .join('');
  return `<h2>${esc(title)}</h2><svg role="img" aria-label="${esc(title)}" width="${width}" height="${rows.length * h}" viewBox="0 0 ${width} ${rows.length * h}">${bars}</svg>`;
}

export interface ReportStats {
  /** Sizes of kept files, bytes. */
  readonly fileBytes: Log2Histogram;
  /** Mean line length of kept files, chars. */
  readonly meanLine: Log2Histogram;
}

/** The HTML page for one shard. */
export function renderReport(m: ShardManifest, stats: ReportStats): string {
  const r = m.records;
  const dropped = Object.entries(r.dropped).sort(([, a], [, b]) => b - a);
  const langs = Object.entries(m.languages).slice(0, 20);
  const pii = Object.entries(m.pii).filter(([, n]) => n > 0);
  const totalDropped = dropped.reduce((a, [, n]) => a + n, 0);
  const hist = (h: Log2Histogram) => h.toJSON().map((b) => [b.bucket, b.count] as const);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kiln data prep: shard ${m.shard}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:760px;color:#1f2328}
h1{font-size:1.4rem}h2{font-size:1.05rem;margin-top:1.8rem}
table{border-collapse:collapse}td,th{padding:.2rem .8rem .2rem 0;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
svg text{font:12px system-ui,sans-serif;fill:#1f2328}svg rect{fill:#d9730d}.none{color:#6e7781}
</style></head><body>
<h1>Data prep, shard ${m.shard}</h1>
<table>
<tr><th>records in</th><td class="n">${r.recordsIn}</td><td class="n">${fmt(r.bytesIn)}B</td></tr>
<tr><th>kept</th><td class="n">${r.kept}</td><td class="n">${fmt(r.bytesOut)}B</td></tr>
<tr><th>dropped</th><td class="n">${totalDropped}</td><td></td></tr>
<tr><th>redacted</th><td class="n">${pii.reduce((a, [, n]) => a + n, 0)}</td><td></td></tr>
<tr><th>took</th><td class="n">${m.seconds}s</td><td></td></tr>
</table>
${barChart('Why records were dropped', dropped)}
${barChart('Languages kept (bytes)', langs.map(([l, v]) => [l, v.bytes] as const), 'B')}
${barChart('Kept file sizes (bytes)', hist(stats.fileBytes))}
${barChart('Mean line length of kept files (chars)', hist(stats.meanLine))}
${barChart('Redacted, by kind', pii)}
<h2>Outputs</h2>
<table>${m.outputs.map((o) => `<tr><td>${esc(o.path)}</td><td class="n">${o.records} records</td><td class="n">${fmt(o.bytes)}B</td><td><code>sha256:${o.sha256.slice(0, 16)}…</code></td></tr>`).join('')}</table>
</body></html>
`;
}
