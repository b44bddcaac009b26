import { runChecks, STANDARD_STACKS, type Path } from './checks.ts';
import type { Code, Severity } from './codes.ts';
import { applyDefaults } from './defaults.ts';
import { diagnostic, hasErrors, sortDiagnostics, type Diagnostic } from './diagnostics.ts';
import { fileLocator, mergedLocator, pointerOf, type Locator } from './locate.ts';
import { completeSpec, resolveSections, SECTIONS, type Section } from './resolve.ts';
import { validateSchema } from './schema.ts';
import { cloneJson, parseSource, readSource, type Json, type ReadResult } from './source.ts';
import { didYouMean } from './suggest.ts';
import type { Spec } from './types.ts';

export interface LoadOptions {
  /** Apply this stack's overlay (from the spec's `stacks` section and/or `overlay`). */
  readonly stack?: string;
  /** Path of an overlay file: a JSON merge patch in YAML, applied after the inline one. */
  readonly overlay?: string;
}

export interface LoadResult {
  /** The typed, fully defaulted spec; present only when there are no errors. */
  readonly spec?: Spec;
  /** Errors and warnings, sorted by position. */
  readonly diagnostics: Diagnostic[];
  /** Text of every file read, for code frames. */
  readonly sources: Map<string, string>;
  /** Stacks the spec declares overlays for. */
  readonly stacks: string[];
}

/** Top-level keys an overlay may not change: they define what the file is and how overlays work. */
const FIXED_KEYS = ['apiVersion', 'kind', 'stacks'];

const isObject = (v: unknown): v is { [k: string]: Json } => v !== null && typeof v === 'object' && !Array.isArray(v);

/** JSON merge patch (RFC 7396): objects merge, `null` deletes, everything else replaces. */
export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return cloneJson(patch);
  const out: { [k: string]: Json } = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** Reads, validates and resolves a spec file, optionally with a stack overlay. Never throws on bad input. */
export function load(path: string, opts: LoadOptions = {}): LoadResult {
  return analyse(readSource(path), opts);
}

/** Like `load`, for spec text that does not come from a file (tests, editors, stdin). */
export function loadText(text: string | Uint8Array, file = 'kiln.yaml', opts: LoadOptions = {}): LoadResult {
  return analyse(parseSource(file, text), opts);
}

function analyse(read: ReadResult, opts: LoadOptions): LoadResult {
  const sources = new Map<string, string>();
  const diagnostics: Diagnostic[] = [...read.diagnostics];
  const source = read.source;
  if (source) sources.set(source.file, source.text);
  const value = source?.value;
  const stacksRaw = isObject(value) && isObject(value.stacks) ? value.stacks : {};
  const stacks = Object.keys(stacksRaw);
  if (!source || !isObject(value) || hasErrors(diagnostics)) return { diagnostics: sortDiagnostics(diagnostics), sources, stacks };

  const baseLocator = fileLocator(source);
  let merged: Json = value;
  let locator: Locator = baseLocator;
  const stack = opts.stack;
  if (stack !== undefined) {
    const known = new Set<string>([...STANDARD_STACKS, ...stacks]);
    if (!known.has(stack) && opts.overlay === undefined) {
      diagnostics.push(
        diagnostic('KL401', `stack "${stack}" is not declared in this spec`, baseLocator.locate(stacks.length ? ['stacks'] : [], 'key'), '/stacks', {
          hint: didYouMean(stack, known) ?? `declared stacks: ${[...known].join(', ')}`,
        }),
      );
      return { diagnostics: sortDiagnostics(diagnostics), sources, stacks };
    }
    const inline = stacksRaw[stack];
    if (isObject(inline)) {
      ({ merged, locator } = overlay(merged, inline, locator, fileLocator(source, ['stacks', stack]), diagnostics, stack));
    }
  }
  if (opts.overlay !== undefined) {
    const o = readSource(opts.overlay);
    diagnostics.push(...o.diagnostics.filter((d) => d.code !== 'KL113'));
    if (o.source) sources.set(o.source.file, o.source.text);
    if (o.diagnostics.some((d) => d.code === 'KL113')) {
      diagnostics.push(diagnostic('KL403', 'an overlay must be a mapping: a JSON merge patch over the spec', fileLocator(o.source!).locate([]), '', { hint: 'e.g. `training: {token_budget: 50M}`' }));
    }
    if (hasErrors(diagnostics) || !o.source || !isObject(o.source.value)) return { diagnostics: sortDiagnostics(diagnostics), sources, stacks };
    ({ merged, locator } = overlay(merged, o.source.value, locator, fileLocator(o.source), diagnostics, stack ?? o.source.file));
  }
  if (hasErrors(diagnostics)) return { diagnostics: sortDiagnostics(diagnostics), sources, stacks };

  const tag = stack !== undefined || opts.overlay !== undefined ? (stack ?? opts.overlay) : undefined;
  const schemaDiags = validateSchema(merged, locator, tag);
  diagnostics.push(...schemaDiags);

  const defaulted = applyDefaults(merged);
  const invalid = new Set(schemaDiags.map((d) => d.pointer.split('/')[1] ?? ''));
  const valid = new Set<Section>(SECTIONS.filter((s) => !invalid.has(s) && isObject(defaulted) && isObject(defaulted[s])));
  const parts = resolveSections(defaulted, valid);
  runChecks(parts, merged, (code: Code, path: Path, message: string, o: { hint?: string; severity?: Severity; target?: 'key' | 'value' } = {}) => {
    diagnostics.push(diagnostic(code, message, locator.locate(path, o.target ?? 'value'), pointerOf(path), { hint: o.hint, severity: o.severity, stack: tag }));
  });
  const spec = hasErrors(diagnostics) ? undefined : completeSpec(parts, stack);
  const result: { -readonly [K in keyof LoadResult]: LoadResult[K] } = { diagnostics: sortDiagnostics(diagnostics), sources, stacks };
  if (spec) result.spec = spec;
  return result;
}

function overlay(
  merged: Json,
  patch: { [k: string]: Json },
  base: Locator,
  patchLocator: Locator,
  diagnostics: Diagnostic[],
  stack: string,
): { merged: Json; locator: Locator } {
  for (const key of FIXED_KEYS) {
    if (key in patch) {
      diagnostics.push(
        diagnostic('KL402', `a stack overlay cannot change ${key}`, patchLocator.locate([key], 'key'), pointerOf([key]), {
          hint: `remove ${key} from the overlay of stack ${stack}`,
          stack,
        }),
      );
    }
  }
  return { merged: mergePatch(merged, patch), locator: mergedLocator(base, patch, patchLocator) };
}

/**
 * Validates a spec file as `kiln validate` does: the base spec and the result of every stack overlay it
 * declares. Problems of an overlay's merged result that the base does not have are tagged with the stack.
 */
export function validateFile(path: string, opts: LoadOptions = {}): LoadResult {
  if (opts.stack !== undefined || opts.overlay !== undefined) return load(path, opts);
  const read = readSource(path); // parsed once, analysed once per stack
  const base = analyse(read, {});
  if (base.stacks.length === 0 || base.diagnostics.some((d) => d.code.startsWith('KL1'))) return base;
  const key = (d: Diagnostic) => `${d.code}|${d.file}|${d.line}|${d.col}|${d.message}`;
  const seen = new Set(base.diagnostics.map(key));
  const diagnostics = [...base.diagnostics];
  for (const stack of base.stacks) {
    for (const d of analyse(read, { stack }).diagnostics) {
      if (!seen.has(key(d))) {
        seen.add(key(d));
        diagnostics.push(d);
      }
    }
  }
  const result: { -readonly [K in keyof LoadResult]: LoadResult[K] } = { ...base, diagnostics: sortDiagnostics(diagnostics) };
  if (hasErrors(diagnostics)) delete result.spec;
  return result;
}
