/**
 * Language of a source file, from its name (extension or well-known file name) and, when the name says nothing,
 * from a `#!` line. Names are lower-case and match the keys of the spec's `line_filters.overrides`.
 */

/** Extension (lower-case, without the dot) → language. */
export const EXTENSIONS: Readonly<Record<string, string>> = {
  // Python (NeMo code_meta: py, pyw, bzl, gyp, pyde)
  py: 'python', pyw: 'python', pyi: 'python', bzl: 'python', gyp: 'python', pyde: 'python',
  // JavaScript / TypeScript (code_meta: js, es6, jsm, pac, sjs, xsjslib; ts, tsx)
  js: 'javascript', mjs: 'javascript', cjs: 'javascript', jsx: 'javascript', es6: 'javascript', jsm: 'javascript',
  pac: 'javascript', sjs: 'javascript', xsjslib: 'javascript',
  ts: 'typescript', tsx: 'typescript', mts: 'typescript', cts: 'typescript',
  // Data / config
  json: 'json', jsonc: 'json', json5: 'json', geojson: 'json', webmanifest: 'json',
  yaml: 'yaml', yml: 'yaml',
  toml: 'toml',
  xml: 'xml', xsd: 'xml', plist: 'xml', csproj: 'xml', svg: 'xml',
  xsl: 'xslt', xslt: 'xslt',
  ini: 'ini', cfg: 'ini',
  // Systems
  go: 'go', rs: 'rust',
  c: 'c', h: 'c',
  cc: 'cpp', cpp: 'cpp', cxx: 'cpp', 'c++': 'cpp', hh: 'cpp', hpp: 'cpp', hxx: 'cpp', 'h++': 'cpp', inl: 'cpp', ipp: 'cpp',
  cs: 'csharp', csx: 'csharp',
  java: 'java', kt: 'kotlin', kts: 'kotlin', scala: 'scala', sc: 'scala', groovy: 'groovy', gradle: 'groovy',
  swift: 'swift', m: 'objective-c', mm: 'objective-c', dart: 'dart', zig: 'zig', nim: 'nim',
  // Scripting
  rb: 'ruby', rake: 'ruby', gemspec: 'ruby', php: 'php', phtml: 'php', pl: 'perl', pm: 'perl',
  lua: 'lua', r: 'r', jl: 'julia', ex: 'elixir', exs: 'elixir', erl: 'erlang', hrl: 'erlang',
  hs: 'haskell', ml: 'ocaml', mli: 'ocaml', fs: 'fsharp', fsx: 'fsharp', clj: 'clojure', cljs: 'clojure',
  el: 'emacs-lisp', lisp: 'common-lisp', scm: 'scheme', rkt: 'racket', ps1: 'powershell', psm1: 'powershell',
  sh: 'shell', bash: 'shell', zsh: 'shell', ksh: 'shell', fish: 'shell',
  bat: 'batchfile', cmd: 'batchfile',
  // Markup / docs / query
  md: 'markdown', markdown: 'markdown', mdx: 'markdown', rst: 'restructuredtext', txt: 'text',
  tex: 'tex', bib: 'tex', sty: 'tex', cls: 'tex',
  html: 'html', htm: 'html', xhtml: 'html', vue: 'vue', svelte: 'svelte',
  css: 'css', scss: 'scss', sass: 'sass', less: 'less',
  sql: 'sql', graphql: 'graphql', gql: 'graphql', proto: 'protobuf',
  // Other
  cmake: 'cmake', mk: 'makefile', tf: 'hcl', hcl: 'hcl', dockerfile: 'dockerfile', glsl: 'glsl', fsh: 'glsl', vsh: 'glsl',
  v: 'verilog', sv: 'systemverilog', vhd: 'vhdl', vhdl: 'vhdl', asm: 'assembly', s: 'assembly', cu: 'cuda', cuh: 'cuda',
  ipynb: 'jupyter',
};

/** Whole file names (lower-case) that say the language without an extension, or despite one. */
export const FILENAMES: Readonly<Record<string, string>> = {
  dockerfile: 'dockerfile', containerfile: 'dockerfile',
  makefile: 'makefile', gnumakefile: 'makefile',
  'cmakelists.txt': 'cmake',
  rakefile: 'ruby', gemfile: 'ruby', podfile: 'ruby', vagrantfile: 'ruby', brewfile: 'ruby',
  'build.bazel': 'python', 'workspace.bazel': 'python', sconstruct: 'python', sconscript: 'python',
  jenkinsfile: 'groovy',
  '.bashrc': 'shell', '.bash_profile': 'shell', '.zshrc': 'shell', '.profile': 'shell',
  'go.mod': 'go-module', 'cargo.lock': 'toml', 'yarn.lock': 'yarn-lock', 'go.sum': 'go-checksums',
};

/** `#!` interpreter (base name, version digits removed) → language. */
export const INTERPRETERS: Readonly<Record<string, string>> = {
  python: 'python', pypy: 'python',
  node: 'javascript', nodejs: 'javascript', deno: 'typescript', bun: 'javascript', 'ts-node': 'typescript', tsx: 'typescript',
  sh: 'shell', bash: 'shell', zsh: 'shell', dash: 'shell', ksh: 'shell', ash: 'shell', fish: 'shell',
  ruby: 'ruby', perl: 'perl', php: 'php', lua: 'lua', luajit: 'lua', rscript: 'r', julia: 'julia',
  pwsh: 'powershell', groovy: 'groovy', scala: 'scala', kotlin: 'kotlin', swift: 'swift', escript: 'erlang',
  elixir: 'elixir', runhaskell: 'haskell', ocaml: 'ocaml', racket: 'racket', make: 'makefile',
};

/** Base name of a `/`- or `\`-separated path. */
function baseName(path: string): string {
  const i = Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'));
  return i < 0 ? path : path.slice(i + 1);
}

/** Language of a `#!` line's interpreter (`#!/usr/bin/env -S python3 -u`, `#!/bin/bash`), or undefined. */
export function shebangLanguage(head: string): string | undefined {
  if (!head.startsWith('#!')) return undefined;
  let end = head.indexOf('\n');
  if (end < 0) end = head.length;
  const words = head.slice(2, end).trim().split(/\s+/);
  let prog = baseName(words[0] ?? '');
  if (prog === 'env') {
    // `env [-S] [-i] [NAME=value…] prog`
    prog = baseName(words.slice(1).find((w) => !w.startsWith('-') && !w.includes('=')) ?? '');
  }
  prog = prog.toLowerCase().replace(/[\d.]+$/, ''); // python3.11 → python
  return Object.hasOwn(INTERPRETERS, prog) ? INTERPRETERS[prog] : undefined;
}

/**
 * Language of a file: a known file name first (`Dockerfile`, `Makefile`, `Dockerfile.dev`), then the extension;
 * when neither is known (no extension, or one not in the table), the `#!` line of `head` (the file's first bytes).
 */
export function detectLanguage(path: string, head?: string): string | undefined {
  const name = baseName(path).toLowerCase();
  if (Object.hasOwn(FILENAMES, name)) return FILENAMES[name];
  if (name.startsWith('dockerfile.') || name.startsWith('containerfile.')) return 'dockerfile';
  const dot = name.lastIndexOf('.');
  if (dot >= 0) {
    const ext = name.slice(dot + 1);
    if (Object.hasOwn(EXTENSIONS, ext)) return EXTENSIONS[ext];
  }
  return head === undefined ? undefined : shebangLanguage(head);
}

/** Labels other datasets use (The Stack's `lang`: `Python`, `C++`, `C#`…) → the names used here. */
const LABELS: Readonly<Record<string, string>> = {
  'c++': 'cpp', 'c#': 'csharp', 'f#': 'fsharp', 'objective-c++': 'objective-c', 'objc': 'objective-c', js: 'javascript', ts: 'typescript',
  py: 'python', python3: 'python', golang: 'go', rs: 'rust', rb: 'ruby', sh: 'shell', bash: 'shell', 'emacs lisp': 'emacs-lisp',
  'common lisp': 'common-lisp', 'visual basic': 'visual-basic', 'batchfile': 'batchfile', 'jupyter notebook': 'jupyter', 'tsx': 'typescript', 'jsx': 'javascript',
};

/** A source's language label in the names used here (lower case, dataset aliases mapped); undefined for blank. */
export function normalizeLanguage(label: string | undefined | null): string | undefined {
  if (!label) return undefined;
  const l = label.trim().toLowerCase();
  if (!l) return undefined;
  return LABELS[l] ?? l.replace(/\s+/g, '-');
}
