import { CODES, type Code, type Severity } from './codes.ts';

/** One problem found in a spec, located in the user's file (STYLE.md §7). */
export interface Diagnostic {
  readonly code: Code;
  readonly severity: Severity;
  readonly message: string;
  /** Path of the file the problem is in, as the user gave it. */
  readonly file: string;
  /** JSON pointer of the offending value in the (merged) spec, e.g. `/model/n_heads`; `` for the whole file. */
  readonly pointer: string;
  /** 1-based line and column of the start of the offending text. */
  readonly line: number;
  readonly col: number;
  /** 1-based line and column just past the end of the offending text (on `line` when it spans lines). */
  readonly endLine: number;
  readonly endCol: number;
  /** How to fix it, e.g. `did you mean "d_model"?`. */
  readonly hint?: string;
  /** The stack overlay whose merged result has the problem, when it only appears there. */
  readonly stack?: string;
}

/** Where a diagnostic points, before it has a code and a message. */
export interface Location {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  readonly endLine: number;
  readonly endCol: number;
}

export function diagnostic(
  code: Code,
  message: string,
  at: Location,
  pointer: string,
  extra: { hint?: string | undefined; stack?: string | undefined; severity?: Severity } = {},
): Diagnostic {
  const d: { -readonly [K in keyof Diagnostic]: Diagnostic[K] } = {
    code,
    severity: extra.severity ?? CODES[code].severity,
    message,
    file: at.file,
    pointer,
    line: at.line,
    col: at.col,
    endLine: at.endLine,
    endCol: at.endCol,
  };
  if (extra.hint !== undefined) d.hint = extra.hint;
  if (extra.stack !== undefined) d.stack = extra.stack;
  return d;
}

/** Sorts diagnostics by file, then position, then code, so output is stable. */
export function sortDiagnostics(list: readonly Diagnostic[]): Diagnostic[] {
  return [...list].sort(
    (a, b) =>
      a.file.localeCompare(b.file) ||
      a.line - b.line ||
      a.col - b.col ||
      a.code.localeCompare(b.code) ||
      a.message.localeCompare(b.message),
  );
}

export function hasErrors(list: readonly Diagnostic[]): boolean {
  return list.some((d) => d.severity === 'error');
}

export interface FormatOptions {
  /** ANSI colours. */
  readonly color?: boolean;
  /** Source text per file, for code frames; files without text print no frame. */
  readonly sources?: ReadonlyMap<string, string>;
}

const ansi = (on: boolean) => ({
  red: (s: string) => (on ? `\x1b[31m${s}\x1b[39m` : s),
  yellow: (s: string) => (on ? `\x1b[33m${s}\x1b[39m` : s),
  dim: (s: string) => (on ? `\x1b[2m${s}\x1b[22m` : s),
  bold: (s: string) => (on ? `\x1b[1m${s}\x1b[22m` : s),
  cyan: (s: string) => (on ? `\x1b[36m${s}\x1b[39m` : s),
});

/**
 * Human format: `file:line:col severity CODE message`, a two-line code frame with a caret under the
 * offending text, then the hint.
 */
export function formatDiagnostic(d: Diagnostic, opts: FormatOptions = {}): string {
  const c = ansi(opts.color ?? false);
  const sev = d.severity === 'error' ? c.red('error') : c.yellow('warning');
  const where = d.stack ? ` ${c.dim(`(stack ${d.stack})`)}` : '';
  const out = [`${c.bold(`${d.file}:${d.line}:${d.col}`)} ${sev} ${c.dim(d.code)} ${d.message}${where}`];
  const text = opts.sources?.get(d.file);
  if (text !== undefined) out.push(...codeFrame(text, d, c));
  if (d.hint) out.push(`  ${c.cyan('hint:')} ${d.hint}`);
  return out.join('\n');
}

function codeFrame(text: string, d: Diagnostic, c: ReturnType<typeof ansi>): string[] {
  const lines = text.split(/\r\n|\r|\n/);
  const idx = d.line - 1;
  if (idx < 0 || idx >= lines.length) return [];
  const first = Math.max(0, idx - 1);
  const width = String(idx + 1).length;
  const frame: string[] = [];
  for (let i = first; i <= idx; i++) {
    const marker = i === idx ? '>' : ' ';
    frame.push(`${marker} ${String(i + 1).padStart(width)} | ${printable(lines[i] ?? '')}`);
  }
  const line = lines[idx] ?? '';
  const start = Math.min(d.col - 1, line.length);
  const end = d.endLine === d.line ? Math.min(Math.max(d.endCol - 1, start + 1), line.length) : line.length;
  const caret = '^'.repeat(Math.max(1, end - start));
  frame.push(`  ${' '.repeat(width)} | ${' '.repeat(start)}${c.red(caret)}`);
  return frame;
}

/** Keeps control characters from reaching the terminal in a code frame. */
function printable(line: string): string {
  return line.length > 200 ? `${line.slice(0, 200).replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '?')}…` : line.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '?');
}

export function formatDiagnostics(list: readonly Diagnostic[], opts: FormatOptions = {}): string {
  return sortDiagnostics(list)
    .map((d) => formatDiagnostic(d, opts))
    .join('\n\n');
}
