import { describe, expect, it } from 'vitest';
import { detectLanguage, normalizeLanguage, shebangLanguage } from '../src/language.ts';

describe('detectLanguage by file name', () => {
  it.each([
    ['pkg/mod.py', 'python'],
    ['a/b/index.js', 'javascript'],
    ['esm.mjs', 'javascript'],
    ['src/app.ts', 'typescript'],
    ['ui/App.tsx', 'typescript'],
    ['package.json', 'json'],
    ['ci/.github/workflows/x.yml', 'yaml'],
    ['chart/values.yaml', 'yaml'],
    ['cmd/main.go', 'go'],
    ['src/lib.rs', 'rust'],
    ['Main.java', 'java'],
    ['x.c', 'c'],
    ['x.h', 'c'],
    ['x.cc', 'cpp'],
    ['x.hpp', 'cpp'],
    ['Program.cs', 'csharp'],
    ['app.rb', 'ruby'],
    ['index.php', 'php'],
    ['run.sh', 'shell'],
    ['README.md', 'markdown'],
    ['index.html', 'html'],
    ['site.css', 'css'],
    ['schema.sql', 'sql'],
    ['Main.kt', 'kotlin'],
    ['App.swift', 'swift'],
    ['Main.scala', 'scala'],
    ['init.lua', 'lua'],
    ['analysis.R', 'r'],
    ['model.jl', 'julia'],
    ['Cargo.toml', 'toml'],
    ['paper.tex', 'tex'],
    ['Dockerfile', 'dockerfile'],
    ['docker/Dockerfile.dev', 'dockerfile'],
    ['Makefile', 'makefile'],
    ['C:\\src\\Main.JAVA', 'java'],
  ])('GIVEN %s WHEN detected THEN it is %s', (path, lang) => {
    expect(detectLanguage(path)).toBe(lang);
  });

  it('GIVEN an unknown extension or none, and no head WHEN detected THEN it is undefined', () => {
    expect(detectLanguage('data.unknownext')).toBeUndefined();
    expect(detectLanguage('bin/tool')).toBeUndefined();
  });

  it('GIVEN a known extension and a contradicting shebang WHEN detected THEN the extension wins', () => {
    expect(detectLanguage('tool.rb', '#!/usr/bin/env python3\n')).toBe('ruby');
  });
});

describe('detectLanguage by shebang', () => {
  it.each([
    ['#!/usr/bin/env python3\nprint(1)\n', 'python'],
    ['#!/usr/bin/python3.11 -u\n', 'python'],
    ['#!/bin/bash\nset -e\n', 'shell'],
    ['#!/bin/sh\n', 'shell'],
    ['#! /usr/bin/env node\n', 'javascript'],
    ['#!/usr/bin/env -S deno run --allow-read\n', 'typescript'],
    ['#!/usr/bin/env ruby\n', 'ruby'],
    ['#!/usr/bin/perl -w\n', 'perl'],
    ['#!/usr/bin/env Rscript\n', 'r'],
    ['#!/usr/bin/env julia\n', 'julia'],
  ])('GIVEN an extension-less file starting %j WHEN detected THEN it is %s', (head, lang) => {
    expect(detectLanguage('scripts/tool', head)).toBe(lang);
  });

  it('GIVEN an unknown interpreter, or no #! at all WHEN detected THEN it is undefined', () => {
    expect(shebangLanguage('#!/usr/bin/env frobnicate\n')).toBeUndefined();
    expect(detectLanguage('scripts/tool', 'echo hi\n')).toBeUndefined();
    expect(shebangLanguage('#!/usr/bin/env constructor\n')).toBeUndefined();
  });
});

describe('normalizeLanguage', () => {
  it("maps other datasets' labels to the names the filters use", () => {
    expect(['Python', 'C++', 'C#', 'JavaScript', 'TypeScript', 'Go', ' Rust ', 'Jupyter Notebook', 'Emacs Lisp'].map((l) => normalizeLanguage(l))).toEqual(['python', 'cpp', 'csharp', 'javascript', 'typescript', 'go', 'rust', 'jupyter', 'emacs-lisp']);
    expect(normalizeLanguage('')).toBeUndefined();
    expect(normalizeLanguage(null)).toBeUndefined();
  });
});
