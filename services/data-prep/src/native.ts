/**
 * data-prep's native addon (`native/addon.c`, built by `npm ci` through `native/build.mjs`): the parse filter's
 * native backend and MinHash's inner loop. Optional: without it the parse filter uses WebAssembly and MinHash
 * its JavaScript loop, with the same results.
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export interface NativeAddon {
  parser(): unknown;
  hasError(parser: unknown, language: unknown, text: string): boolean | null;
  minhash(tokens: Uint32Array, n: number, a: Uint32Array, b: Uint32Array, sig: Uint32Array): Uint32Array;
}

let addon: { ok: NativeAddon } | { error: string } | undefined;

/** The addon, or why it is not there (loaded once per thread). */
export function nativeAddon(): { ok: NativeAddon } | { error: string } {
  if (!addon) {
    try {
      addon = { ok: require('../native/build/kiln-data-prep.node') as NativeAddon };
    } catch (e) {
      addon = { error: `data-prep's native addon is not built (${(e as Error).message.split('\n')[0]}); run \`node services/data-prep/native/build.mjs\` or \`npm ci\`` };
    }
  }
  return addon;
}
