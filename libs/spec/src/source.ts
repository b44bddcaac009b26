import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import {
  isAlias,
  isCollection,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseAllDocuments,
  stringify,
  type Alias,
  type Document,
  type Node as YamlNode,
  type Pair,
} from './generated/yaml.js';
import { diagnostic, type Diagnostic, type Location } from './diagnostics.ts';
import { fastParse, type FastLimits } from './fast-yaml.ts';
import type { Json } from './json.ts';

/**
 * A value as YAML (no line folding), with the yaml package copy that parsing uses: a caller that imported
 * `yaml` itself could load a second copy of it (each workspace may have its own), doubling start-up.
 */
export function toYaml(value: unknown): string {
  return stringify(value, { lineWidth: 0 });
}

/**
 * Specs are a few kilobytes (the largest example is 5 KB); anything near this size is a mistake or an
 * attack. The cap bounds the work too: the YAML parser reads about 1 MB/s on a small machine, so at
 * 256 KiB any file validates in a fraction of a second (at 1 MiB it took two).
 */
export const MAX_FILE_BYTES = 256 * 1024;
/** Nodes produced while expanding aliases; caps "billion laughs" documents. */
export const MAX_EXPANDED_NODES = 100_000;
/** Deepest nesting of mappings and lists accepted. */
export const MAX_DEPTH = 64;
/** Problems reported per file and stage (reading, schema); past this, one KL118 says how many there are. */
export const MAX_DIAGNOSTICS = 200;

/** The diagnostic that ends a list cut at MAX_DIAGNOSTICS, placed at the first problem not reported. */
export function tooManyProblems(at: Location, found: number | undefined): Diagnostic {
  const more = found === undefined ? 'more' : `${found - MAX_DIAGNOSTICS} more`;
  return diagnostic('KL118', `over ${MAX_DIAGNOSTICS} problems: ${more} are not reported`, at, '', { hint: 'fix the ones reported (they are often one mistake repeated, such as an anchor used many times) and validate again' });
}

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

export type { Json } from './json.ts';

/** A deep copy of JSON data: several times faster than structuredClone, which serializes and parses. */
export function cloneJson<T extends Json>(value: T): T {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((v) => cloneJson(v)) as T;
  const out: { [key: string]: Json } = {};
  for (const key of Object.keys(value)) {
    const v = cloneJson(value[key]!);
    // A key named __proto__ (refused in specs, possible in data) is an own property, never the prototype.
    if (key === '__proto__') Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
    else out[key] = v;
  }
  return out as T;
}

/** A parsed YAML file: its text, its document (for locating values) and its plain value. */
export interface SourceFile {
  readonly file: string;
  readonly text: string;
  readonly doc: Document.Parsed | undefined;
  readonly lineCounter: LineCounter;
  /** The document as plain JSON data; undefined when it could not be parsed. */
  readonly value: Json | undefined;
  /**
   * What each `*alias` of the document refers to: the last node anchored with its name before it, or
   * undefined when there is none. Built in one pass: `Alias.resolve(doc)` walks the whole document on every
   * call, which made a file with thousands of aliases take a minute to validate.
   */
  readonly aliases: ReadonlyMap<Alias, YamlNode | undefined>;
}

export interface ReadResult {
  readonly source?: SourceFile;
  readonly diagnostics: Diagnostic[];
}

const wholeFile = (file: string): Location => ({ file, line: 1, col: 1, endLine: 1, endCol: 1 });

/** The name `readSource` gives standard input, read when the path is `-`. */
export const STDIN = '<stdin>';
const STDIN_PATHS = new Set(['/dev/stdin', '/dev/fd/0', '/proc/self/fd/0']);

/** Why a file cannot be read, by errno, in words that name the cause. */
function unreadable(file: string, e: unknown): ReadResult {
  const code = (e as NodeJS.ErrnoException).code ?? 'unknown error';
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return fail(file, 'KL101', `${file} does not exist`, 'check the path; specs usually live in configs/ or at the repository root as kiln.yaml');
    case 'ELOOP':
      return fail(file, 'KL116', `${file} cannot be read: it is a loop of symbolic links (ELOOP)`, 'point the link at the spec itself: `ls -l` shows where each link in the chain goes');
    case 'EACCES':
    case 'EPERM':
      return fail(file, 'KL116', `${file} cannot be read: permission denied (${code})`, 'check the file permissions');
    case 'EISDIR':
      return fail(file, 'KL102', `${file} is a directory, not a spec file`, 'pass the YAML file itself, e.g. `kiln validate configs/*.yaml`');
    case 'ENAMETOOLONG':
      return fail(file, 'KL116', `${file} cannot be read: the path is too long (ENAMETOOLONG)`, 'check the path');
    case 'EAGAIN':
      return fail(file, 'KL116', `${file} cannot be read: it is a non-blocking stream with no data yet (EAGAIN)`, 'pipe the spec in (`cat kiln.yaml | kiln validate -`) or pass its path');
    default:
      return fail(file, 'KL116', `${file} cannot be read (${code})`, 'check that the path names a readable YAML file');
  }
}

/**
 * Reads a stream (standard input, a pipe, a terminal, /dev/fd/N) up to one byte past the size cap, so that
 * an endless stream (/dev/zero) ends as "too large" instead of exhausting memory.
 */
function readStream(fd: number): Buffer {
  const chunks: Buffer[] = [];
  let total = 0;
  while (total <= MAX_FILE_BYTES) {
    const chunk = Buffer.alloc(64 * 1024);
    let n: number;
    try {
      n = readSync(fd, chunk, 0, chunk.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EOF') break;
      throw e;
    }
    if (n === 0) break;
    chunks.push(chunk.subarray(0, n));
    total += n;
  }
  return Buffer.concat(chunks);
}

/** `size` undefined: a stream, read only up to the cap, so its size is unknown. */
function tooLarge(file: string, size?: number): ReadResult {
  const limit = `${MAX_FILE_BYTES / 1024} KiB (${MAX_FILE_BYTES.toLocaleString('en')} bytes)`;
  const message = size === undefined ? `${file} is larger than ${limit}, the most a spec may be` : `${file} is ${size.toLocaleString('en')} bytes; a spec may be at most ${limit}`;
  return fail(file, 'KL103', message, 'a spec describes data, it does not contain it: point `data.sources` at the files instead');
}

/**
 * Reads a spec file defensively: every failure becomes a diagnostic, never an exception. `-` reads standard
 * input (reported as `<stdin>`); pipes and character devices such as /dev/stdin are read as streams.
 */
export function readSource(file: string): ReadResult {
  if (file === '-' || STDIN_PATHS.has(file)) {
    // Read the descriptor itself: when standard input is a socket (as Node's child processes get), opening
    // /dev/stdin by name fails (ENXIO).
    const name = file === '-' ? STDIN : file;
    try {
      const bytes = readStream(0);
      return bytes.length > MAX_FILE_BYTES ? tooLarge(name) : parseSource(name, bytes);
    } catch (e) {
      return unreadable(name, e);
    }
  }
  let size: number;
  try {
    const st = statSync(file);
    if (st.isDirectory()) {
      return fail(file, 'KL102', `${file} is a directory, not a spec file`, 'pass the YAML file itself, e.g. `kiln validate configs/*.yaml`');
    }
    if (st.isFIFO() || st.isCharacterDevice()) {
      const fd = openSync(file, 'r');
      try {
        const bytes = readStream(fd);
        return bytes.length > MAX_FILE_BYTES ? tooLarge(file) : parseSource(file, bytes);
      } finally {
        closeSync(fd);
      }
    }
    if (!st.isFile()) return fail(file, 'KL102', `${file} is not a regular file (a ${st.isSocket() ? 'socket' : 'block device'})`, 'pass a YAML file, or `-` to read standard input');
    size = st.size;
  } catch (e) {
    return unreadable(file, e);
  }
  if (size > MAX_FILE_BYTES) return tooLarge(file, size);
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    return unreadable(file, e);
  }
  return parseSource(file, bytes);
}

function fail(file: string, code: 'KL101' | 'KL102' | 'KL103' | 'KL116', message: string, hint: string): ReadResult {
  return { diagnostics: [diagnostic(code, message, wholeFile(file), '', { hint })] };
}

/**
 * Decodes and parses spec bytes (or text); exported for tests and for specs that do not come from files.
 * `fast: false` skips the fast path (the tests compare the two).
 */
export function parseSource(file: string, input: Uint8Array | string, opts: { readonly fast?: boolean } = {}): ReadResult {
  let text: string;
  if (typeof input === 'string') {
    text = input;
  } else {
    const nul = input.indexOf(0);
    if (nul >= 0) {
      const at = locateByte(input, nul, file);
      return { diagnostics: [diagnostic('KL105', `${file} contains a NUL byte at offset ${nul}: it looks like a binary file, not YAML`, at, '', { hint: 'pass the YAML spec, not a compiled or archived file' })] };
    }
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(input);
    } catch {
      const bad = firstInvalidUtf8(input);
      const at = locateByte(input, bad, file);
      return { diagnostics: [diagnostic('KL104', `${file} is not valid UTF-8 (byte 0x${(input[bad] ?? 0).toString(16).padStart(2, '0')} at offset ${bad})`, at, '', { hint: 're-save the file as UTF-8' })] };
    }
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  // Old Mac line ends (CR alone): the yaml package does not break lines on them, so a file whose first line
  // is a comment would read as one long comment. CR -> LF keeps every offset, hence every line and column.
  if (text.includes('\r')) text = text.replace(/\r(?!\n)/g, '\n');
  // The fast path (fast-yaml.ts): a spec in the common subset of YAML is read without building the yaml
  // document, which is built later only if a diagnostic asks where something was written.
  const fast = opts.fast === false ? undefined : fastParse(text, FAST_LIMITS);
  if (fast !== undefined) return { source: lazySource(file, text, fast), diagnostics: [] };
  const lineCounter = new LineCounter();
  const diagnostics: Diagnostic[] = [];
  const loc = (start: number, end: number): Location => rangeLocation(file, lineCounter, start, end);

  let docs: Document.Parsed[];
  try {
    docs = parseYaml(text, lineCounter);
  } catch (e) {
    if (e instanceof RangeError) {
      diagnostics.push(diagnostic('KL115', `${file} is nested too deeply to parse`, wholeFile(file), '', { hint: `specs nest a few levels; at most ${MAX_DEPTH} are accepted` }));
      return { diagnostics };
    }
    throw e;
  }
  const { targets, anchors } = aliasTargets(docs[0]);
  const source: SourceFile = { file, text, doc: docs[0], lineCounter, value: undefined, aliases: targets };

  for (const [i, doc] of docs.entries()) {
    if (i > 0) {
      const start = doc.range[0];
      diagnostics.push(diagnostic('KL112', 'a spec file holds exactly one YAML document; found another one here', loc(start, start + 3), '', { hint: 'remove the `---` separator and what follows, or move it to its own file' }));
      break;
    }
    const exhausted = doc.errors.find((e) => e.code === 'RESOURCE_EXHAUSTION');
    if (exhausted) {
      // The parser caught its own stack overflow on deep nesting; what else it reports (once per level it
      // unwinds, an unclosed bracket each) is noise.
      const [start, end] = exhausted.pos;
      diagnostics.push(diagnostic('KL115', `${file} is nested too deeply to parse`, loc(start, end), '', { hint: `specs nest a few levels; at most ${MAX_DEPTH} are accepted` }));
      break;
    }
    for (const err of doc.errors) {
      const [start, end] = err.pos;
      if (diagnostics.length >= MAX_DIAGNOSTICS) {
        diagnostics.push(tooManyProblems(loc(start, end), doc.errors.length));
        break;
      }
      diagnostics.push(diagnostic('KL107', `YAML syntax error: ${cleanYamlMessage(err.message)}`, loc(start, end), '', { hint: yamlHint(err.code) }));
    }
    for (const warn of doc.warnings) {
      const [start, end] = warn.pos;
      if (warn.code === 'TAG_RESOLVE_FAILED') {
        diagnostics.push(diagnostic('KL110', `unsupported YAML tag: ${cleanYamlMessage(warn.message)}`, loc(start, end), '', { hint: 'kiln specs use plain YAML values; remove the `!tag`' }));
      } else {
        diagnostics.push(diagnostic('KL107', `YAML problem: ${cleanYamlMessage(warn.message)}`, loc(start, end), ''));
      }
    }
  }
  if (diagnostics.length > 0) return { source, diagnostics };

  const doc = docs[0];
  if (!doc || doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) {
    diagnostics.push(diagnostic('KL106', `${file} is empty`, wholeFile(file), '', { hint: 'start from an example: `kiln init` (`kiln init --list` shows them)' }));
    return { source, diagnostics };
  }
  if (!isMap(doc.contents)) {
    const r = doc.contents.range ?? [0, 0, 0];
    diagnostics.push(diagnostic('KL113', 'a spec must be a mapping of sections (apiVersion, metadata, data, ...)', loc(r[0], r[1]), '', { hint: 'start from an example: `kiln init` (`kiln init --list` shows them)' }));
    return { source, diagnostics };
  }
  const converter = new Converter(source.aliases, anchors, file, lineCounter, diagnostics);
  const value = converter.convert(doc.contents, 0);
  if (diagnostics.length > 0) return { source, diagnostics };
  return { source: { ...source, value }, diagnostics };
}

function parseYaml(text: string, lineCounter: LineCounter): Document.Parsed[] {
  const docs = parseAllDocuments(text, {
    lineCounter,
    // Duplicate keys are found by the converter with a set per mapping: the parser's own check compares
    // each key with every earlier one, seconds for a mapping of thousands of keys.
    uniqueKeys: false,
    prettyErrors: false,
    schema: 'core',
    merge: false,
    strict: true,
  }) as Document.Parsed[];
  return Array.isArray(docs) ? docs : [];
}

const FAST_LIMITS: FastLimits = { forbidden: FORBIDDEN_KEYS, maxDepth: MAX_DEPTH, maxNodes: MAX_EXPANDED_NODES };

/**
 * A source read by the fast path: its value is known; the yaml document, line counter and alias targets that
 * locating a value needs are made on first use (the fast path accepts only text that parses with no error).
 */
function lazySource(file: string, text: string, value: Json): SourceFile {
  let full: { doc: Document.Parsed | undefined; lineCounter: LineCounter; aliases: Map<Alias, YamlNode | undefined> } | undefined;
  const parsed = () => {
    if (!full) {
      const lineCounter = new LineCounter();
      const doc = parseYaml(text, lineCounter)[0];
      full = { doc, lineCounter, aliases: aliasTargets(doc).targets };
    }
    return full;
  };
  return {
    file,
    text,
    value,
    get doc() {
      return parsed().doc;
    },
    get lineCounter() {
      return parsed().lineCounter;
    },
    get aliases() {
      return parsed().aliases;
    },
  };
}

/** Plain JSON from the YAML tree, refusing what a spec never needs and an attacker would use. */
class Converter {
  private expanded = 0;
  private aborted = false;
  private alias: YamlNode | undefined;
  private readonly duplicates = new Set<Pair>();
  private readonly aliases: ReadonlyMap<Alias, YamlNode | undefined>;
  /** Every anchor name in the document, to tell an alias before its anchor from one with none. */
  private readonly anchors: ReadonlySet<string>;
  private readonly file: string;
  private readonly lc: LineCounter;
  private readonly out: Diagnostic[];

  constructor(aliases: ReadonlyMap<Alias, YamlNode | undefined>, anchors: ReadonlySet<string>, file: string, lc: LineCounter, out: Diagnostic[]) {
    this.aliases = aliases;
    this.anchors = anchors;
    this.file = file;
    this.lc = lc;
    this.out = out;
  }

  convert(node: unknown, depth: number): Json {
    if (this.aborted) return null;
    if (++this.expanded > MAX_EXPANDED_NODES) {
      this.abort('KL109', `expanding YAML aliases produces more than ${MAX_EXPANDED_NODES} values`, node, 'this looks like an alias bomb; write the values out or use fewer `*alias` references');
      return null;
    }
    if (depth > MAX_DEPTH) {
      this.abort('KL115', `values are nested more than ${MAX_DEPTH} levels deep`, node, 'flatten the structure; specs nest a few levels');
      return null;
    }
    if (isAlias(node)) {
      const target = this.aliases.get(node);
      if (target === undefined) {
        // YAML reads it as null, and in a stack overlay null deletes the setting: refuse it where it is written.
        const later = this.anchors.has(node.source);
        this.report(
          'KL117',
          `the alias *${node.source} refers to no anchor &${node.source}${later ? ' before it' : ''}`,
          node,
          later
            ? `an anchor must come before the aliases that use it: move \`&${node.source}\` above this line`
            : `define it (\`key: &${node.source} value\`) above this line, or write the value out`,
        );
        return null;
      }
      // Report an expansion problem at the outermost alias being expanded, where the user wrote it.
      const outer = this.alias === undefined;
      if (outer) this.alias = node;
      try {
        return this.convert(target, depth + 1);
      } finally {
        if (outer) this.alias = undefined;
      }
    }
    if (isScalar(node)) {
      const v = node.value;
      if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
      if (typeof v === 'number') return Number.isFinite(v) ? v : this.nonFinite(node);
      if (typeof v === 'bigint') return Number(v);
      return String(v);
    }
    if (isMap(node)) {
      const obj: { [key: string]: Json } = {};
      for (const pair of node.items) {
        const key = this.key(pair);
        if (key === undefined) continue;
        if (Object.hasOwn(obj, key)) {
          // An anchored mapping is converted once per alias; report its duplicate once.
          if (!this.duplicates.has(pair)) this.report('KL108', 'duplicate key: this key already appears earlier in the same mapping', pair.key, 'keep one of the entries; YAML keeps neither reliably');
          this.duplicates.add(pair);
          continue;
        }
        // Plain assignment is safe: key() refuses __proto__, the one key that assignment would not store.
        obj[key] = this.convert(pair.value, depth + 1);
      }
      return obj;
    }
    if (isSeq(node)) return node.items.map((item) => this.convert(item, depth + 1));
    if (node === null || node === undefined) return null;
    return null;
  }

  private key(pair: Pair): string | undefined {
    const k = pair.key;
    if (isScalar(k) && (typeof k.value === 'string' || typeof k.value === 'number' || typeof k.value === 'boolean')) {
      const key = String(k.value);
      if (FORBIDDEN_KEYS.has(key)) {
        this.report('KL111', `the key "${key}" is not allowed`, k, 'remove it; keys that name JavaScript object internals are refused');
        return undefined;
      }
      return key;
    }
    if (k === null || (isScalar(k) && k.value === null)) {
      this.report('KL114', 'a mapping key is empty', isPair(pair) ? pair.value : k, 'give the entry a name before the `:`');
      return undefined;
    }
    this.report('KL114', 'mapping keys must be plain strings, not lists, mappings or aliases', k, 'write the key as a plain word');
    return undefined;
  }

  private nonFinite(node: YamlNode): Json {
    this.report('KL203', 'infinite and NaN numbers are not allowed in a spec', node, 'write a finite number');
    return null;
  }

  private abort(code: 'KL109' | 'KL115', message: string, node: unknown, hint: string): void {
    this.aborted = true;
    this.report(code, message, this.alias ?? node, hint);
  }

  private report(code: 'KL108' | 'KL109' | 'KL111' | 'KL114' | 'KL115' | 'KL117' | 'KL203', message: string, node: unknown, hint: string): void {
    const range = (node as YamlNode | null)?.range ?? [0, 0, 0];
    if (this.out.length >= MAX_DIAGNOSTICS) {
      if (this.out.length === MAX_DIAGNOSTICS) this.out.push(tooManyProblems(rangeLocation(this.file, this.lc, range[0], range[1]), undefined));
      return;
    }
    this.out.push(diagnostic(code, message, rangeLocation(this.file, this.lc, range[0], range[1]), '', { hint }));
  }
}

/**
 * The target of every alias in a document, in one pass over it in document order (iteratively: the tree may
 * be deep). As YAML says, an alias refers to the most recent node anchored with its name before it.
 */
function aliasTargets(doc: Document.Parsed | undefined): { targets: Map<Alias, YamlNode | undefined>; anchors: Set<string> } {
  const out = new Map<Alias, YamlNode | undefined>();
  if (!doc) return { targets: out, anchors: new Set() };
  const anchors = new Map<string, YamlNode>();
  const stack: unknown[] = [doc.contents];
  while (stack.length > 0) {
    const node = stack.pop();
    if (isAlias(node)) {
      out.set(node, anchors.get(node.source));
      continue;
    }
    if (isPair(node)) {
      stack.push(node.value, node.key);
      continue;
    }
    if (!isScalar(node) && !isCollection(node)) continue;
    if (node.anchor) anchors.set(node.anchor, node);
    if (isCollection(node)) for (let i = node.items.length - 1; i >= 0; i--) stack.push(node.items[i]);
  }
  return { targets: out, anchors: new Set(anchors.keys()) };
}

export function rangeLocation(file: string, lc: LineCounter, start: number, end: number): Location {
  const a = lc.linePos(start);
  const b = lc.linePos(Math.max(end, start + 1));
  return { file, line: a.line, col: a.col, endLine: b.line, endCol: b.col };
}

function cleanYamlMessage(message: string): string {
  // The yaml package appends "at line X, column Y" and a code frame of its own; we print ours.
  return message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '').replace(/:$/, '');
}

function yamlHint(code: string): string | undefined {
  switch (code) {
    case 'TAB_AS_INDENT':
      return 'indent with spaces, not tabs';
    case 'BAD_INDENT':
    case 'MISSING_CHAR':
      return 'check the indentation: entries of one mapping line up in the same column';
    case 'BLOCK_AS_IMPLICIT_KEY':
    case 'MULTILINE_IMPLICIT_KEY':
      return 'a key must fit on one line and be followed by `: `';
    case 'UNEXPECTED_TOKEN':
      return 'a value containing `: ` or starting with `[`, `{`, `*`, `&`, `!` or `%` must be quoted';
    default:
      return undefined;
  }
}

function firstInvalidUtf8(bytes: Uint8Array): number {
  const dec = new TextDecoder('utf-8', { fatal: true });
  // Binary search on prefixes is unreliable across multi-byte sequences; scan instead (files are capped at MAX_FILE_BYTES).
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i]!;
    const n = b < 0x80 ? 1 : b >= 0xc2 && b < 0xe0 ? 2 : b >= 0xe0 && b < 0xf0 ? 3 : b >= 0xf0 && b < 0xf5 ? 4 : 0;
    if (n === 0) return i;
    try {
      dec.decode(bytes.subarray(i, i + n));
    } catch {
      return i;
    }
    i += n;
  }
  return Math.max(0, bytes.length - 1);
}

function locateByte(bytes: Uint8Array, offset: number, file: string): Location {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset; i++) {
    if (bytes[i] === 0x0a) {
      line++;
      lineStart = i + 1;
    }
  }
  const col = offset - lineStart + 1;
  return { file, line, col, endLine: line, endCol: col + 1 };
}
