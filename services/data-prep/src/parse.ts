/**
 * The parse filter: files in a configured set of languages that do not parse are dropped. Two backends give
 * the same verdicts from the same grammars:
 * - **native**: tree-sitter's C runtime in data-prep's Node-API addon (`native/addon.c`, built by `npm ci`), which
 *   only answers "does the tree have an error?", with the grammar packages' own Node-API builds
 *   (tree-sitter-python, -javascript, -typescript, -json);
 * - **wasm**: `web-tree-sitter` with the WebAssembly build of the same grammar packages, and `tree-sitter-wasms`
 *   for the languages that have no native grammar here.
 * `KILN_PARSE_BACKEND` (or `create`'s `backend`) picks: `auto` (default: native for each language where the
 * addon and its grammar load, wasm for the rest), `native` (an error when a language cannot go native) or
 * `wasm`. `backends` says which one each language got.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Language, Parser } from 'web-tree-sitter';
import { nativeAddon } from './native.ts';

const require = createRequire(import.meta.url);

/** kiln's language names (language.ts) → the grammar file of tree-sitter-wasms. */
export const GRAMMARS: Readonly<Record<string, string>> = {
  python: 'python',
  javascript: 'javascript',
  typescript: 'typescript',
  tsx: 'tsx',
  json: 'json',
  go: 'go',
  rust: 'rust',
  java: 'java',
  c: 'c',
  cpp: 'cpp',
  csharp: 'c_sharp',
  ruby: 'ruby',
  php: 'php',
  shell: 'bash',
  css: 'css',
  html: 'html',
  kotlin: 'kotlin',
  lua: 'lua',
  scala: 'scala',
  swift: 'swift',
  toml: 'toml',
  yaml: 'yaml',
};

/**
 * Languages with a grammar package: its Node-API build (`language`, or `[key].language`) for the native
 * backend and its WebAssembly file for the wasm one, so both backends run one grammar version.
 */
export const GRAMMAR_PACKAGES: Readonly<Record<string, { readonly pkg: string; readonly key?: string; readonly wasm: string }>> = {
  python: { pkg: 'tree-sitter-python', wasm: 'tree-sitter-python.wasm' },
  javascript: { pkg: 'tree-sitter-javascript', wasm: 'tree-sitter-javascript.wasm' },
  typescript: { pkg: 'tree-sitter-typescript', key: 'typescript', wasm: 'tree-sitter-typescript.wasm' },
  tsx: { pkg: 'tree-sitter-typescript', key: 'tsx', wasm: 'tree-sitter-tsx.wasm' },
  json: { pkg: 'tree-sitter-json', wasm: 'tree-sitter-json.wasm' },
};

export type ParseBackend = 'native' | 'wasm';
export type ParseBackendChoice = 'auto' | ParseBackend;

/** A grammar package's native `language`, or why it does not load. */
function nativeLanguage(language: string): { ok: unknown } | { error: string } {
  const g = GRAMMAR_PACKAGES[language];
  if (!g) return { error: `no native grammar for ${language} (native grammars: ${Object.keys(GRAMMAR_PACKAGES).join(', ')})` };
  try {
    const mod = require(g.pkg) as Record<string, unknown> & { language?: unknown };
    const lang = g.key ? (mod[g.key] as { language?: unknown } | undefined)?.language : mod.language;
    if (!lang) return { error: `${g.pkg} has no ${g.key ? `${g.key}.` : ''}language export` };
    return { ok: lang };
  } catch (e) {
    return { error: `${g.pkg}'s native build does not load (${(e as Error).message.split('\n')[0]})` };
  }
}

/** The backend choice from `KILN_PARSE_BACKEND`; anything else is an error that names the choices. */
export function parseBackendChoice(env: NodeJS.ProcessEnv = process.env): ParseBackendChoice {
  const v = env.KILN_PARSE_BACKEND ?? 'auto';
  if (v === 'auto' || v === 'native' || v === 'wasm') return v;
  throw new Error(`KILN_PARSE_BACKEND=${v}: use auto, native or wasm`);
}

let init: Promise<void> | undefined;

/** true: no error in the tree; false: has syntax errors (or tree-sitter gave up). */
type Check = (content: string) => boolean;

export class ParseFilter {
  private readonly checks: ReadonlyMap<string, { readonly check: Check; readonly backend: ParseBackend }>;

  private constructor(checks: ReadonlyMap<string, { check: Check; backend: ParseBackend }>) {
    this.checks = checks;
  }

  /**
   * Loads the grammars of `languages`; a language with no grammar is an error that names the ones there are.
   * `backend` defaults to `KILN_PARSE_BACKEND`, else `auto`.
   */
  static async create(languages: readonly string[], opts: { readonly backend?: ParseBackendChoice } = {}): Promise<ParseFilter> {
    const unknown = languages.filter((l) => !GRAMMARS[l]);
    if (unknown.length) throw new Error(`no grammar for ${unknown.join(', ')} in the parse filter; languages with one: ${Object.keys(GRAMMARS).join(', ')}`);
    const choice = opts.backend ?? parseBackendChoice();
    // TypeScript files may be .tsx: their grammar comes along.
    const wanted = languages.includes('typescript') && !languages.includes('tsx') ? [...languages, 'tsx'] : languages;
    const checks = new Map<string, { check: Check; backend: ParseBackend }>();
    let wasmParser: Parser | undefined;
    let nativeParser: unknown;
    for (const l of wanted) {
      if (choice !== 'wasm') {
        const a = nativeAddon();
        const lang = 'ok' in a ? nativeLanguage(l) : a;
        if ('ok' in a && 'ok' in lang) {
          const native = a.ok;
          nativeParser ??= native.parser();
          const parser = nativeParser;
          const grammar = lang.ok;
          checks.set(l, { backend: 'native', check: (content) => native.hasError(parser, grammar, content) === false });
          continue;
        }
        if (choice === 'native') throw new Error(`KILN_PARSE_BACKEND=native: ${'error' in lang ? lang.error : ''}`);
      }
      init ??= Parser.init();
      await init;
      const parser = (wasmParser ??= new Parser());
      const g = GRAMMAR_PACKAGES[l];
      const file = g ? join(dirname(require.resolve(`${g.pkg}/package.json`)), g.wasm) : require.resolve(`tree-sitter-wasms/out/tree-sitter-${GRAMMARS[l]}.wasm`);
      const language = await Language.load(file);
      checks.set(l, {
        backend: 'wasm',
        check: (content) => {
          parser.setLanguage(language);
          const tree = parser.parse(content);
          if (!tree) return false;
          try {
            return !tree.rootNode.hasError;
          } finally {
            tree.delete();
          }
        },
      });
    }
    return new ParseFilter(checks);
  }

  /** The spec's default `parse_filter.languages`. */
  static readonly DEFAULT_LANGUAGES: readonly string[] = ['python', 'javascript', 'typescript', 'json'];

  /** Languages this filter checks. */
  get checked(): string[] {
    return [...this.checks.keys()];
  }

  /** The backend each checked language runs on. */
  get backends(): Record<string, ParseBackend> {
    return Object.fromEntries([...this.checks].map(([l, c]) => [l, c.backend]));
  }

  /** true: parses; false: has syntax errors; undefined: not a language this filter checks. */
  parses(content: string, language: string | undefined, path = ''): boolean | undefined {
    const c = language === 'typescript' && path.endsWith('.tsx') ? this.checks.get('tsx') : language ? this.checks.get(language) : undefined;
    return c ? c.check(content) : undefined;
  }
}
