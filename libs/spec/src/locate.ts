import { isAlias, isMap, isScalar, isSeq, type Node as YamlNode, type Pair, type YAMLMap } from './generated/yaml.js';
import type { Location } from './diagnostics.ts';
import { rangeLocation, type Json, type SourceFile } from './source.ts';

/** `key` points at a mapping key (unknown keys); `value` at the value under it. */
export type Target = 'key' | 'value';

/** Maps a JSON path in the spec to a place in the user's file (STYLE.md §8: the YAML, not re-serialised JSON). */
export interface Locator {
  locate(path: readonly (string | number)[], target?: Target): Location;
}

export function pointerOf(path: readonly (string | number)[]): string {
  return path.map((p) => '/' + String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

export function pathOf(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
}

interface Found {
  /** Deepest node reached. */
  readonly node: YamlNode | null;
  /** The key node of the pair holding it, when it is a mapping value. */
  readonly key: YamlNode | null;
  /** Whether the whole path was found. */
  readonly complete: boolean;
}

// Pairs of a mapping by key, built on first use: locating thousands of diagnostics in one wide mapping
// (a label table) would otherwise scan it once per diagnostic.
const pairIndex = new WeakMap<YAMLMap, Map<string, Pair>>();

function pairOf(map: YAMLMap, key: string): Pair | undefined {
  let index = pairIndex.get(map);
  if (!index) {
    index = new Map();
    for (const p of map.items as Pair[]) {
      const k = isScalar(p.key) ? String(p.key.value) : undefined;
      if (k !== undefined && !index.has(k)) index.set(k, p);
    }
    pairIndex.set(map, index);
  }
  return index.get(key);
}

function walk(source: SourceFile, base: readonly (string | number)[], path: readonly (string | number)[]): Found {
  const doc = source.doc;
  if (!doc) return { node: null, key: null, complete: false };
  let node: YamlNode | null = doc.contents as YamlNode | null;
  let key: YamlNode | null = null;
  for (const seg of [...base, ...path]) {
    let n: unknown = node;
    for (let hops = 0; isAlias(n) && hops < 100; hops++) n = source.aliases.get(n);
    if (isMap(n)) {
      const pair = pairOf(n, String(seg));
      if (!pair) return { node, key, complete: false };
      key = pair.key as YamlNode;
      node = (pair.value as YamlNode | null) ?? null;
      if (node === null) return { node: key, key, complete: true };
    } else if (isSeq(n) && /^\d+$/.test(String(seg))) {
      const item = n.items[Number(seg)] as YamlNode | undefined;
      if (!item) return { node, key, complete: false };
      key = null;
      node = item;
    } else {
      return { node, key, complete: false };
    }
  }
  return { node, key, complete: true };
}

/** Locates paths within one YAML file, optionally under a sub-tree (an inline overlay). */
export function fileLocator(source: SourceFile, base: readonly (string | number)[] = []): Locator {
  return {
    locate(path, target = 'value') {
      const found = walk(source, base, path);
      // A value that is absent (defaulted) is reported at the key of its nearest written ancestor.
      const pick = !found.complete ? (found.key ?? found.node) : target === 'key' && found.key ? found.key : (found.node ?? found.key);
      const range = pick?.range;
      if (!range) return rangeLocation(source.file, source.lineCounter, 0, 0);
      // For block collections, underline only the first line: the whole block would be noise.
      const end = isMap(pick) || isSeq(pick) ? firstLineEnd(source.text, range[0], range[1]) : range[1];
      return rangeLocation(source.file, source.lineCounter, range[0], end);
    },
  };
}

function firstLineEnd(text: string, start: number, end: number): number {
  const nl = text.indexOf('\n', start);
  return nl < 0 || nl > end ? end : nl;
}

/**
 * Locates paths in a spec merged from a base and a JSON merge patch: a value that came from the patch is
 * reported where the patch wrote it, anything else where the base did.
 */
export function mergedLocator(base: Locator, patch: Json, patchLocator: Locator): Locator {
  return {
    locate(path, target = 'value') {
      let cur: Json = patch;
      for (const seg of path) {
        if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) {
          // The patch replaced this whole sub-tree (a list or a scalar), so it owns the path.
          return patchLocator.locate(path, target);
        }
        if (!Object.prototype.hasOwnProperty.call(cur, String(seg))) return base.locate(path, target);
        cur = cur[String(seg)] as Json;
      }
      return patchLocator.locate(path, target);
    },
  };
}
