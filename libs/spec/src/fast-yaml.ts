/**
 * The fast path of spec reading: plain JSON straight from the text, for the YAML that specs are written in —
 * block mappings and sequences, one-line flow collections, one-line quoted and plain scalars, comments.
 *
 * Why: the `yaml` package builds a whole document (every node with its range, comments, tokens), about three
 * quarters of a warm `kiln validate`, and a valid spec needs none of it: positions are only wanted for a
 * diagnostic. So a spec in this subset is read here in one pass, and the full parse runs later, lazily, only
 * when something asks where a value was written (source.ts's lazy SourceFile).
 *
 * The rule that keeps it exact: `fastParse` returns a value only where the full path (yaml's parser with the
 * core schema, then the converter of source.ts) would return the same value with no diagnostic. Anything else
 * — aliases, anchors, tags, block scalars, multi-line scalars, escapes it does not know, numbers in unusual
 * forms, duplicate or refused keys, a depth or size over the limits, indentation it does not expect — returns
 * undefined, and the full path reads the file and reports what it finds. test/fast-yaml.test.ts checks the two
 * paths against each other on every config and on generated and mutated specs.
 */
import type { Json } from './json.ts';

export interface FastLimits {
  /** Keys the converter refuses (KL111). */
  readonly forbidden: ReadonlySet<string>;
  /** The converter's depth limit (KL115): a node deeper than this is refused. */
  readonly maxDepth: number;
  /** The converter's node limit (KL109). */
  readonly maxNodes: number;
}

/** Thrown inside the parser when the text leaves the subset; caught by `fastParse`. */
class Unsupported extends Error {}
const NO = new Unsupported();
const no = (): never => {
  throw NO;
};

interface Line {
  /** Column of the first character that is not a space. */
  readonly indent: number;
  readonly text: string;
}

// Characters the fast path leaves to the full parser wherever they appear: tabs and CR (indentation and line
// breaks of other kinds), C0 and C1 controls, YAML 1.1's line and paragraph separators, a BOM inside the text.
const REFUSED_CHARS = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]/;
/** A plain key: a word of letters, digits and `_ . / + - @`, then `:` and a space or the line's end. */
const KEY = /^[A-Za-z0-9_][A-Za-z0-9_./+@-]*(?=:(?: |$))/;
const MAX_KEY = 1000;

const INT = /^[-+]?[0-9]+$/;
const FLOAT = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/;
// Core-schema forms read here only conservatively: octal, hex, infinities and NaN go to the full path.
const EXOTIC_NUMBER = /^(?:[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|0o[0-7]+|0x[0-9a-fA-F]+)$/;
const NULLS = new Set(['~', 'null', 'Null', 'NULL']);
const TRUES = new Set(['true', 'True', 'TRUE']);
const FALSES = new Set(['false', 'False', 'FALSE']);

/** A plain scalar's value under YAML 1.2's core schema, as yaml resolves it; refuses the forms it leaves. */
function plain(s: string): Json {
  if (NULLS.has(s)) return null;
  if (TRUES.has(s)) return true;
  if (FALSES.has(s)) return false;
  const c = s.charCodeAt(0);
  // Only strings that could be numbers pay for the regular expressions.
  if ((c >= 48 && c <= 57) || c === 43 || c === 45 || c === 46) {
    if (INT.test(s)) {
      // Leading zeros, signed zeros and integers beyond 2^53 are left to the full path.
      if (/^[-+]?0[0-9]/.test(s) || /^[-+]0+$/.test(s) || s.replace(/^[-+]/, '').length > 15) no();
      return Number(s);
    }
    if (FLOAT.test(s)) {
      const n = Number(s);
      if (!Number.isFinite(n) || Object.is(n, -0)) no();
      return n;
    }
    if (EXOTIC_NUMBER.test(s)) no();
  }
  return s;
}

/** Reads one spec; undefined when the text is outside the subset (the full path then reads it). */
export function fastParse(text: string, limits: FastLimits): Json | undefined {
  if (REFUSED_CHARS.test(text)) return undefined;
  try {
    return new FastParser(text, limits).document();
  } catch (e) {
    if (e instanceof Unsupported) return undefined;
    throw e;
  }
}

class FastParser {
  private readonly lines: Line[] = [];
  private i = 0;
  private nodes = 0;
  private readonly limits: FastLimits;

  constructor(text: string, limits: FastLimits) {
    this.limits = limits;
    for (const raw of text.split('\n')) {
      let indent = 0;
      while (raw.charCodeAt(indent) === 32) indent++;
      if (indent === raw.length || raw.charCodeAt(indent) === 35 /* # */) continue; // blank or comment only
      // Directives and document markers are the full parser's.
      if (indent === 0 && (raw.startsWith('%') || /^(?:---|\.\.\.)(?: |$)/.test(raw))) no();
      this.lines.push({ indent, text: raw });
    }
  }

  document(): Json {
    const first = this.lines[0];
    if (!first || first.indent !== 0 || isItem(first.text, 0)) no();
    const value = this.map(0, 0, 0);
    if (this.i !== this.lines.length) no();
    return value;
  }

  private count(depth: number): void {
    if (depth > this.limits.maxDepth || ++this.nodes > this.limits.maxNodes) no();
  }

  /** A block mapping whose entries start at column `col`; the first one on line `this.i`. */
  private map(col: number, depth: number, firstCol: number): { [key: string]: Json } {
    this.count(depth);
    const out: { [key: string]: Json } = {};
    let start = firstCol;
    for (;;) {
      const line = this.lines[this.i]!;
      const rest = line.text.slice(start);
      const m = KEY.exec(rest);
      if (!m) no();
      const key = m![0];
      if (key.length > MAX_KEY || typeof plain(key) !== 'string' || this.limits.forbidden.has(key) || Object.hasOwn(out, key)) no();
      const after = rest.slice(key.length + 1);
      this.i++;
      out[key] = this.value(after, start + key.length + 1, col, depth + 1, line.text, true);
      const next = this.lines[this.i];
      if (!next || next.indent < col) return out;
      if (next.indent > col) no();
      if (isItem(next.text, col)) return out; // a sequence at the key's column belongs to the caller
      start = col;
    }
  }

  /** A block sequence whose dashes are at column `col`, starting on line `this.i`. */
  private seq(col: number, depth: number): Json[] {
    this.count(depth);
    const out: Json[] = [];
    for (;;) {
      const line = this.lines[this.i]!;
      let c = col + 1;
      while (line.text.charCodeAt(c) === 32) c++;
      const rest = line.text.slice(c);
      if (rest.length > 0 && rest[0] !== '#' && KEY.test(rest)) {
        out.push(this.map(c, depth + 1, c)); // `- key: value`: a mapping whose keys are at column c
      } else {
        if (rest.startsWith('-') && (rest.length === 1 || rest[1] === ' ')) no(); // `- - x`
        this.i++;
        out.push(this.value(line.text.slice(col + 1), col + 1, col, depth + 1, line.text, false));
      }
      const next = this.lines[this.i];
      // A line at the dashes' column that is no entry ends the sequence: under a key, the mapping goes on.
      if (!next || next.indent < col || (next.indent === col && !isItem(next.text, col))) return out;
      if (next.indent > col) no();
    }
  }

  /**
   * The value after `key:` or `-`, given the rest of its line (`after`, from column `at`). `col` is the column
   * of the key or dash: a nested block must be indented past it, or, under a key, be a sequence at it.
   */
  private value(after: string, at: number, col: number, depth: number, text: string, underKey: boolean): Json {
    let k = 0;
    while (after.charCodeAt(k) === 32) k++;
    // Both callers leave `after` empty or starting with a space (KEY's look-ahead, isItem).
    if (k === after.length || after[k] === '#') {
      const next = this.lines[this.i];
      if (next && next.indent > col) return isItem(next.text, next.indent) ? this.seq(next.indent, depth) : this.nested(next, depth);
      if (underKey && next && next.indent === col && isItem(next.text, col)) return this.seq(col, depth);
      this.count(depth);
      return null;
    }
    const v = this.inline(text, at + k, depth);
    // A value that goes on, more indented, on the next line is a multi-line scalar: the full parser's.
    const next = this.lines[this.i];
    if (next && next.indent > col) no();
    return v;
  }

  private nested(line: Line, depth: number): Json {
    if (!KEY.test(line.text.slice(line.indent))) no();
    return this.map(line.indent, depth, line.indent);
  }

  /** A value written on the rest of one line, from column `p` of `text`, up to an optional comment. */
  private inline(text: string, p: number, depth: number): Json {
    const ch = text[p]!;
    let value: Json;
    let end: number;
    if (ch === '"' || ch === "'") {
      [value, end] = quoted(text, p);
      this.count(depth);
    } else if (ch === '[' || ch === '{') {
      [value, end] = this.flow(text, p, depth);
    } else {
      if ('&*!|>%@`?:-,#]}'.includes(ch) && !(ch === '-' && text[p + 1] !== ' ' && p + 1 < text.length)) no();
      // The scalar ends at a comment; trailing spaces are not its own.
      const hash = text.indexOf(' #', p);
      const s = (hash < 0 ? text.slice(p) : text.slice(p, hash)).trimEnd();
      if (s.includes(': ') || s.endsWith(':')) no();
      this.count(depth);
      return plain(s);
    }
    const tail = text.slice(end);
    if (!/^(?: +#.*| *)$/.test(tail)) no();
    return value;
  }

  /** A flow collection that opens and closes on one line; returns it and the column after it. */
  private flow(text: string, p: number, depth: number): [Json, number] {
    this.count(depth);
    const seq = text[p] === '[';
    const close = seq ? ']' : '}';
    const items: Json[] = [];
    const entries: { [key: string]: Json } = {};
    p = skip(text, p + 1);
    // Entries up to the closing bracket, separated by commas; one trailing comma is allowed, as in YAML.
    while (text[p] !== close) {
      let v: Json;
      if (seq) {
        [v, p] = this.flowValue(text, p, depth + 1);
        items.push(v);
      } else {
        // KEY requires `: ` after the key (or the line's end, where the value below is then missing).
        const key = KEY.exec(text.slice(p))?.[0] ?? no();
        if (key.length > MAX_KEY || typeof plain(key) !== 'string' || this.limits.forbidden.has(key) || Object.hasOwn(entries, key)) no();
        [v, p] = this.flowValue(text, skip(text, p + key.length + 1), depth + 1);
        entries[key] = v;
      }
      p = skip(text, p);
      if (text[p] === ',') p = skip(text, p + 1);
      else if (text[p] !== close) no();
    }
    return [seq ? items : entries, p + 1];
  }

  private flowValue(text: string, p: number, depth: number): [Json, number] {
    const ch = text[p];
    if (ch === undefined) no();
    if (ch === '[' || ch === '{') return this.flow(text, p, depth);
    this.count(depth);
    if (ch === '"' || ch === "'") return quoted(text, p);
    if ('&*!|>%@`?:-,#]}'.includes(ch!) && !(ch === '-' && /[0-9.]/.test(text[p + 1] ?? ''))) no();
    let e = p;
    while (e < text.length && !',[]{}'.includes(text[e]!) && !(text[e] === ':' && (text[e + 1] === ' ' || text[e + 1] === undefined)) && !(text[e] === '#' && text[e - 1] === ' ')) e++;
    const s = text.slice(p, e).trimEnd();
    if (s.length === 0 || s.includes(':') || s.includes('#')) no();
    return [plain(s), e];
  }
}

function skip(text: string, p: number): number {
  while (text.charCodeAt(p) === 32) p++;
  return p;
}

/** Whether the text at column `col` is a sequence entry: `-` then a space or the line's end. */
function isItem(text: string, col: number): boolean {
  return text.charCodeAt(col) === 45 && (text.length === col + 1 || text.charCodeAt(col + 1) === 32);
}

const ESCAPES: Record<string, string> = { '\\': '\\', '"': '"', '/': '/', n: '\n', t: '\t', r: '\r', '0': '\0', b: '\b', f: '\f' };

/** A quoted scalar that closes on its line; returns its value and the column after the closing quote. */
function quoted(text: string, p: number): [string, number] {
  const q = text[p];
  let out = '';
  let i = p + 1;
  if (q === "'") {
    for (;;) {
      const j = text.indexOf("'", i);
      if (j < 0) no();
      out += text.slice(i, j);
      if (text[j + 1] === "'") {
        out += "'";
        i = j + 2;
        continue;
      }
      return [out, j + 1];
    }
  }
  for (;;) {
    let j = i;
    while (j < text.length && text[j] !== '"' && text[j] !== '\\') j++;
    if (j >= text.length) no();
    out += text.slice(i, j);
    if (text[j] === '"') return [out, j + 1];
    const e = text[j + 1] ?? '';
    if (e === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(j + 2, j + 6))) {
      const code = parseInt(text.slice(j + 2, j + 6), 16);
      if (code >= 0xd800 && code <= 0xdfff) no(); // surrogate halves: the full parser's
      out += String.fromCharCode(code);
      i = j + 6;
      continue;
    }
    const r = ESCAPES[e];
    if (r === undefined) no();
    out += r;
    i = j + 2;
  }
}
