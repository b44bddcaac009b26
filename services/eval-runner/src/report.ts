/**
 * The eval report: one JSON document per suite (`EvalReport`), a plain-text table for the terminal, a
 * self-contained HTML page, gate verdicts, and the small summary the stage writes to its termination message.
 */
import { gatePasses, parseGate, type Gate } from '@kiln/spec';
import type { Artifact, StageSummary } from '@kiln/stage';
import { metricName, scoreResults, STATUSES, type OmittedK, type ProblemOutcomes, type StatusCounts, type GroupScore, type ProblemScore } from './passk.ts';
import type { Language, OutcomeStatus } from './types.ts';

/** How much of a failing completion and its stderr the report keeps. */
const EXCERPT_CHARS = 2000;

export interface FirstFailure {
  /** The sandbox's short reason (`AssertionError`, `exit 1`, `killed after 3000 ms`). */
  readonly reason: string;
  readonly status: OutcomeStatus;
  /** The start of the completion that failed, when the results carried completions. */
  readonly completion?: string;
  /** The end of its stderr. */
  readonly stderr?: string;
}

/** A problem's scores (as `scoreResults` gives them, less `scored`), with its first failure. */
export interface ProblemReport extends Omit<ProblemScore, 'scored'> {
  /** The first outcome that failed or timed out. */
  readonly firstFailure?: FirstFailure;
  /** True when the language has no toolchain here: left out of pass@k, never counted as a model failure. */
  readonly noToolchain?: true;
}

/** A language's scores: the same shape as a group's in `scoreResults`. */
export type LanguageReport = GroupScore;

export interface EvalTiming {
  readonly startedAt?: string;
  readonly finishedAt?: string;
  /** finishedAt − startedAt, when both are known. */
  readonly wallMs?: number;
  /** Time spent generating completions, when the runner measured it. */
  readonly generationMs?: number;
  /** Sum of every program's run time. */
  readonly executionMs: number;
  /** The longest single program run. */
  readonly slowestMs: number;
}

/** One suite's results. Metric names are `pass@<k>`. */
export interface EvalReport {
  readonly kind: 'kiln.eval-report';
  readonly version: 1;
  readonly suite: string;
  /** `humaneval`, `multipl-e` or `custom`. */
  readonly benchmark: string;
  readonly model?: string;
  /** Languages evaluated, sorted. */
  readonly languages: readonly Language[];
  /** Completions requested per problem (the suite's `samples`). */
  readonly samplesPerProblem: number;
  /** The k requested. */
  readonly ks: readonly number[];
  /** Mean pass@k over every scored problem, for each k all of them have enough samples for. */
  readonly passAtK: Readonly<Record<string, number>>;
  /** Requested k not reported, and why. */
  readonly omitted: readonly OmittedK[];
  readonly byLanguage: Readonly<Record<string, LanguageReport>>;
  readonly problems: readonly ProblemReport[];
  /** Problems excluded because their language has no toolchain here. */
  readonly noToolchain: readonly { readonly id: string; readonly language: Language; readonly reason: string }[];
  /** Outcomes per status, over every sample. */
  readonly counts: StatusCounts;
  readonly timing: EvalTiming;
}

export interface BuildReportInput {
  readonly suite: string;
  readonly benchmark: string;
  readonly ks: readonly number[];
  readonly results: readonly ProblemOutcomes[];
  /** Completions requested per problem; default: the most any problem has. */
  readonly samples?: number;
  readonly model?: string;
  readonly startedAt?: Date | string;
  readonly finishedAt?: Date | string;
  readonly generationMs?: number;
}

const iso = (d: Date | string) => (typeof d === 'string' ? d : d.toISOString());

/** Scores the results and builds the suite's report. */
export function buildReport(input: BuildReportInput): EvalReport {
  const scores = scoreResults(input.results, input.ks);
  const byId = new Map(input.results.map((r) => [r.id, r]));
  const problems: ProblemReport[] = scores.problems.map((p) => {
    const r = byId.get(p.id)!;
    const i = r.outcomes.findIndex((o) => o.status === 'failed' || o.status === 'timeout');
    const o = i >= 0 ? r.outcomes[i]! : undefined;
    const completion = i >= 0 ? r.completions?.[i] : undefined;
    const firstFailure: FirstFailure | undefined = o && {
      reason: o.reason,
      status: o.status,
      ...(completion !== undefined ? { completion: completion.slice(0, EXCERPT_CHARS) } : {}),
      ...(o.stderr ? { stderr: o.stderr.slice(-EXCERPT_CHARS) } : {}),
    };
    return { id: p.id, language: p.language, n: p.n, c: p.c, passAtK: p.passAtK, counts: p.counts, ...(firstFailure ? { firstFailure } : {}), ...(p.scored ? {} : { noToolchain: true as const }) };
  });
  const durations = input.results.flatMap((r) => r.outcomes.map((o) => o.durationMs));
  const started = input.startedAt !== undefined ? iso(input.startedAt) : undefined;
  const finished = input.finishedAt !== undefined ? iso(input.finishedAt) : undefined;
  const timing: EvalTiming = {
    ...(started !== undefined ? { startedAt: started } : {}),
    ...(finished !== undefined ? { finishedAt: finished } : {}),
    ...(started !== undefined && finished !== undefined ? { wallMs: Date.parse(finished) - Date.parse(started) } : {}),
    ...(input.generationMs !== undefined ? { generationMs: input.generationMs } : {}),
    executionMs: durations.reduce((a, b) => a + b, 0),
    slowestMs: durations.reduce((a, b) => Math.max(a, b), 0),
  };
  return {
    kind: 'kiln.eval-report',
    version: 1,
    suite: input.suite,
    benchmark: input.benchmark,
    ...(input.model !== undefined ? { model: input.model } : {}),
    languages: Object.keys(scores.byLanguage),
    samplesPerProblem: input.samples ?? input.results.reduce((a, r) => Math.max(a, r.outcomes.length), 0),
    ks: scores.ks,
    passAtK: scores.overall.passAtK,
    omitted: scores.overall.omitted,
    byLanguage: scores.byLanguage,
    problems,
    noToolchain: scores.noToolchain,
    counts: scores.overall.counts,
    timing,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Plain text

/**
 * The first columns of the table by language, in text and HTML: problems scored, then problems left out for
 * want of a toolchain. The HTML's outcome columns leave the `no-toolchain` status out: a language's toolchain
 * is there for all its samples or for none, so those samples are the ones of the problems that column counts
 * (the outcomes line still gives their number).
 */
const LANGUAGE_COLUMNS = ['language', 'problems', 'no-toolchain'] as const;
const SCORED_STATUSES = STATUSES.filter((s) => s !== 'no-toolchain');

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
const fmt = (v: number | undefined) => (v === undefined ? '—' : v.toFixed(4));

function pad(cells: readonly string[], widths: readonly number[]): string {
  return cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
}

/** A short plain-text summary for a terminal: headline pass@k, one row per language, outcome counts, omissions. */
export function renderTable(report: EvalReport): string {
  const ks = report.ks.map(metricName);
  const head = [...LANGUAGE_COLUMNS, ...ks];
  const rows = [
    ...report.languages.map((l) => {
      const g = report.byLanguage[l]!;
      return [l, String(g.problems), String(g.noToolchain), ...ks.map((m) => fmt(g.passAtK[m]))];
    }),
    ['all', String(report.problems.length - report.noToolchain.length), String(report.noToolchain.length), ...ks.map((m) => fmt(report.passAtK[m]))],
  ];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const lines = [
    `${report.suite} (${report.benchmark})${report.model ? ` · ${report.model}` : ''} · ${plural(report.problems.length, 'problem')} · ${plural(report.samplesPerProblem, 'sample')} each`,
    '',
    pad(head, widths),
    ...rows.map((r) => pad(r, widths)),
    '',
    `outcomes: ${STATUSES.map((s) => `${report.counts[s]} ${s}`).join(', ')}`,
  ];
  for (const o of report.omitted) lines.push(`${metricName(o.k)} not reported: ${o.reason}`);
  if (report.noToolchain.length) {
    const langs = [...new Set(report.noToolchain.map((p) => p.language))];
    lines.push(`no toolchain (excluded from pass@k, not counted as failures): ${langs.map((l) => `${l} (${plural(report.noToolchain.filter((p) => p.language === l).length, 'problem')})`).join(', ')}`);
  }
  return lines.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------------------
// HTML

/** Escapes text for HTML element content and double- or single-quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1b1f24}
h1{font-size:1.4rem;margin:0 0 .25rem}h2{font-size:1.1rem;margin:2rem 0 .5rem}
.sub{color:#57606a;margin:0 0 1.25rem}
.cards{display:flex;flex-wrap:wrap;gap:1rem}
.card{border:1px solid #d0d7de;border-radius:6px;padding:.6rem 1rem;min-width:8rem}
.card b{display:block;font-size:1.8rem;font-variant-numeric:tabular-nums}
.card span{color:#57606a}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right}
.pass{color:#1a7f37}.fail{color:#cf222e}.muted{color:#57606a}
.note{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:.5rem .75rem;margin:.5rem 0}
pre{white-space:pre-wrap;word-break:break-word;background:#f6f8fa;padding:.5rem;border-radius:4px;max-height:20rem;overflow:auto;margin:.25rem 0}
details summary{cursor:pointer}
`;

/** One self-contained page (inline CSS, no scripts, no external assets); every benchmark and completion text is escaped. */
export function renderHtml(report: EvalReport): string {
  const e = escapeHtml;
  const ks = report.ks.map(metricName);
  const cards = ks
    .map((m) => `<div class="card"><b>${report.passAtK[m] === undefined ? '—' : e(report.passAtK[m]!.toFixed(4))}</b><span>${e(m)}</span></div>`)
    .join('');
  const notes = [
    ...report.omitted.map((o) => `<div class="note">${e(metricName(o.k))} not reported: ${e(o.reason)}</div>`),
    ...(report.noToolchain.length ? [`<div class="note">${plural(report.noToolchain.length, 'problem')} excluded from pass@k because their language has no toolchain here (not counted as failures).</div>`] : []),
  ].join('\n');
  const langRows = report.languages
    .map((l) => {
      const g = report.byLanguage[l]!;
      return `<tr><td>${e(l)}</td><td class="n">${g.problems}</td><td class="n">${g.noToolchain}</td>${SCORED_STATUSES.map((s) => `<td class="n">${g.counts[s]}</td>`).join('')}${ks.map((m) => `<td class="n">${e(fmt(g.passAtK[m]))}</td>`).join('')}</tr>`;
    })
    .join('\n');
  const problemRows = report.problems
    .map((p) => {
      const p1 = p.passAtK['pass@1'] ?? (p.n > 0 ? p.c / p.n : undefined);
      const f = p.firstFailure;
      const detail = f && (f.completion !== undefined || f.stderr !== undefined)
        ? `<details><summary>${e(f.reason)}</summary>${f.completion !== undefined ? `<div class="muted">completion</div><pre>${e(f.completion)}</pre>` : ''}${f.stderr !== undefined ? `<div class="muted">stderr</div><pre>${e(f.stderr)}</pre>` : ''}</details>`
        : f ? e(f.reason) : '';
      const status = p.noToolchain ? '<span class="muted">no toolchain</span>' : `${p.c}/${p.n}`;
      const cls = p.noToolchain ? 'muted' : p.c > 0 ? 'pass' : 'fail';
      return `<tr><td>${e(p.id)}</td><td>${e(p.language)}</td><td class="n ${cls}">${status}</td><td class="n">${e(fmt(p1))}</td><td>${detail}</td></tr>`;
    })
    .join('\n');
  const t = report.timing;
  const timing = [t.wallMs !== undefined ? `wall ${(t.wallMs / 1000).toFixed(1)} s` : '', t.generationMs !== undefined ? `generation ${(t.generationMs / 1000).toFixed(1)} s` : '', `execution ${(t.executionMs / 1000).toFixed(1)} s (slowest ${(t.slowestMs / 1000).toFixed(2)} s)`].filter(Boolean).join(' · ');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${e(`${report.suite} — eval report`)}</title>
<style>${CSS}</style></head>
<body>
<h1>${e(report.suite)} <span class="muted">(${e(report.benchmark)})</span></h1>
<p class="sub">${report.model ? `${e(report.model)} · ` : ''}${plural(report.problems.length, 'problem')} · ${plural(report.samplesPerProblem, 'sample')} each · ${e(report.languages.join(', '))}</p>
<div class="cards">${cards}</div>
${notes}
<p class="muted">outcomes: ${STATUSES.map((s) => `${report.counts[s]} ${e(s)}`).join(', ')} · ${e(timing)}</p>
<h2>By language</h2>
<table><thead><tr>${LANGUAGE_COLUMNS.map((h) => `<th>${e(h)}</th>`).join('')}${SCORED_STATUSES.map((s) => `<th>${e(s)}</th>`).join('')}${ks.map((m) => `<th>${e(m)}</th>`).join('')}</tr></thead>
<tbody>
${langRows}
</tbody></table>
<h2>Problems</h2>
<table><thead><tr><th>id</th><th>language</th><th>c/n</th><th>pass@1</th><th>first failure</th></tr></thead>
<tbody>
${problemRows}
</tbody></table>
</body></html>
`;
}

// ---------------------------------------------------------------------------------------------------------
// Metrics, gates, stage summary

/**
 * The report's flat metrics: `pass@<k>` (the suite, what gates read), `pass@<k>.<language>`, and counts:
 * `problems` (all), `problems_scored`, `samples` (all outcomes), `passed`, `failed`, `timeout`, `no_toolchain`
 * (outcomes per status).
 */
export function reportMetrics(report: EvalReport): Record<string, number> {
  const m: Record<string, number> = { ...report.passAtK };
  for (const l of report.languages) for (const [k, v] of Object.entries(report.byLanguage[l]!.passAtK)) m[`${k}.${l}`] = v;
  return {
    ...m,
    problems: report.problems.length,
    problems_scored: report.problems.length - report.noToolchain.length,
    samples: STATUSES.reduce((a, s) => a + report.counts[s], 0),
    passed: report.counts.passed,
    failed: report.counts.failed,
    timeout: report.counts.timeout,
    no_toolchain: report.counts['no-toolchain'],
  };
}

export interface GateCheck {
  readonly expr: string;
  readonly metric: string;
  /** The metric's value; null when the suite did not report it. */
  readonly value: number | null;
  /** null when the value is unknown (the metric was omitted) or the gate does not parse. */
  readonly passed: boolean | null;
  /** Why `passed` is null. */
  readonly reason?: string;
}

/**
 * Reads gates (the spec's `Gate`s, or their text) against a suite's metrics (a report, or flat metrics as
 * `reportMetrics` gives). With `suite`, gates naming another suite are skipped and unqualified gate texts
 * belong to it.
 */
export function gateVerdicts(metrics: EvalReport | Readonly<Record<string, number>>, gates: readonly (Gate | string)[], opts: { readonly suite?: string } = {}): GateCheck[] {
  const report = isReport(metrics) ? metrics : undefined;
  const flat = report ? reportMetrics(report) : (metrics as Readonly<Record<string, number>>);
  const suite = opts.suite ?? report?.suite;
  const out: GateCheck[] = [];
  for (const g of gates) {
    const gate = typeof g === 'string' ? parseGate(g, suite) : g;
    const expr = typeof g === 'string' ? g : g.expr;
    if (!gate) {
      out.push({ expr, metric: '', value: null, passed: null, reason: 'the gate does not parse (expected `<suite>.pass@<k> <op> <number>`)' });
      continue;
    }
    if (suite !== undefined && gate.suite !== '' && gate.suite !== suite) continue;
    const v = flat[gate.metric];
    const passed = gatePasses(gate, v);
    if (passed === null || v === undefined) {
      const omitted = report?.omitted.find((o) => metricName(o.k) === gate.metric);
      out.push({ expr, metric: gate.metric, value: null, passed: null, reason: omitted ? `${gate.metric} was not reported: ${omitted.reason}` : `${gate.metric} was not reported` });
      continue;
    }
    out.push({ expr, metric: gate.metric, value: v, passed });
  }
  return out;
}

function isReport(x: unknown): x is EvalReport {
  return typeof x === 'object' && x !== null && (x as { kind?: unknown }).kind === 'kiln.eval-report';
}

/** The eval stage's summary: the contract's, with the suite, its metrics and artifacts always there. */
export interface EvalSummary extends StageSummary {
  readonly suite: string;
  readonly benchmark: string;
  readonly metrics: Readonly<Record<string, number>>;
  readonly artifacts: readonly Artifact[];
}

/** The controller reads at most 4 KiB of a termination message; the summary stays within this. */
export const SUMMARY_MAX_BYTES = 3072;

const round4 = (v: number) => Math.round(v * 1e4) / 1e4;
const bytes = (s: EvalSummary) => Buffer.byteLength(JSON.stringify(s));

/**
 * The stage's termination-message summary (ARCHITECTURE.md's stage contract, as data-prep's `stage.ts`):
 * `{ suite, benchmark, metrics, artifacts, warnings? }`. `metrics` holds the suite's `pass@<k>` exactly (gates
 * read them), `pass@<k>.<language>` rounded to 4 places, and the counts of `reportMetrics`; the controller
 * stores them as `<stage>.<metric>`. Kept under `maxBytes` (default 3 KiB) however many languages there are:
 * warnings go first, then per-language metrics beyond the smallest k, then all per-language metrics, then
 * trailing artifacts.
 */
export function stageSummary(report: EvalReport, opts: { readonly artifacts?: readonly Artifact[]; readonly maxBytes?: number } = {}): EvalSummary {
  const max = opts.maxBytes ?? SUMMARY_MAX_BYTES;
  const all = reportMetrics(report);
  const perLanguage = (m: string) => /^pass@\d+\./.test(m);
  const metrics = Object.fromEntries(Object.entries(all).map(([k, v]) => [k, perLanguage(k) ? round4(v) : v]));
  const warnings = [
    ...report.omitted.map((o) => `${metricName(o.k)} not reported: ${o.reason}`),
    ...[...new Set(report.noToolchain.map((p) => p.language))].map((l) => `no toolchain for ${l}: its problems are excluded from pass@k`),
  ].map((w) => (w.length > 200 ? `${w.slice(0, 199)}…` : w)).slice(0, 5);
  let s: EvalSummary = { suite: report.suite, benchmark: report.benchmark, metrics, artifacts: opts.artifacts ?? [], ...(warnings.length ? { warnings } : {}) };
  if (bytes(s) <= max) return s;
  s = { suite: s.suite, benchmark: s.benchmark, metrics: s.metrics, artifacts: s.artifacts };
  if (bytes(s) <= max) return s;
  const firstK = report.ks[0];
  s = { ...s, metrics: Object.fromEntries(Object.entries(metrics).filter(([k]) => !perLanguage(k) || k.startsWith(`${metricName(firstK ?? 1)}.`))) };
  if (bytes(s) <= max) return s;
  s = { ...s, metrics: Object.fromEntries(Object.entries(metrics).filter(([k]) => !perLanguage(k))) };
  const artifacts = [...s.artifacts];
  while (artifacts.length && bytes({ ...s, artifacts }) > max) artifacts.pop();
  return { ...s, artifacts };
}
