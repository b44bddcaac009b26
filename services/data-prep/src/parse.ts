/**
 * The parse filter: files in a configured set of languages that do not parse are dropped. Grammars are
 * tree-sitter's, compiled to WebAssembly and shipped in npm packages (`web-tree-sitter` runs them,
 * `tree-sitter-wasms` carries them), so nothing is compiled on the machine.
 */
import { createRequire } from 'node:module';
import { Language, Parser } from 'web-tree-sitter';

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

let init: Promise<void> | undefined;

export class ParseFilter {
  private readonly parser: Parser;
  private readonly languages: ReadonlyMap<string, Language>;

  private constructor(parser: Parser, languages: ReadonlyMap<string, Language>) {
    this.parser = parser;
    this.languages = languages;
  }

  /** Loads the grammars of `languages`; a language with no grammar is an error that names the ones there are. */
  static async create(languages: readonly string[]): Promise<ParseFilter> {
    const unknown = languages.filter((l) => !GRAMMARS[l]);
    if (unknown.length) throw new Error(`no grammar for ${unknown.join(', ')} in the parse filter; languages with one: ${Object.keys(GRAMMARS).join(', ')}`);
    init ??= Parser.init();
    await init;
    const loaded = new Map<string, Language>();
    // TypeScript files may be .tsx: their grammar comes along.
    const wanted = languages.includes('typescript') && !languages.includes('tsx') ? [...languages, 'tsx'] : languages;
    for (const l of wanted) loaded.set(l, await Language.load(require.resolve(`tree-sitter-wasms/out/tree-sitter-${GRAMMARS[l]}.wasm`)));
    return new ParseFilter(new Parser(), loaded);
  }

  /** The spec's default `parse_filter.languages`. */
  static readonly DEFAULT_LANGUAGES: readonly string[] = ['python', 'javascript', 'typescript', 'json'];

  /** Languages this filter checks. */
  get checked(): string[] {
    return [...this.languages.keys()];
  }

  /** true: parses; false: has syntax errors; undefined: not a language this filter checks. */
  parses(content: string, language: string | undefined, path = ''): boolean | undefined {
    const lang = language === 'typescript' && path.endsWith('.tsx') ? this.languages.get('tsx') : language ? this.languages.get(language) : undefined;
    if (!lang) return undefined;
    this.parser.setLanguage(lang);
    const tree = this.parser.parse(content);
    if (!tree) return false;
    try {
      return !tree.rootNode.hasError;
    } finally {
      tree.delete();
    }
  }
}
