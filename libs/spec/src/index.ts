/** @kiln/spec: read kiln.yaml into a typed, defaulted Spec, with diagnostics located in the user's file. */
export { load, loadText, mergePatch, validateFile, type LoadOptions, type LoadResult } from './load.ts';
export { CODES, type Code, type CodeInfo, type Severity } from './codes.ts';
export { formatDiagnostic, formatDiagnostics, hasErrors, sortDiagnostics, type Diagnostic, type FormatOptions } from './diagnostics.ts';
export { SCHEMA } from './schema.ts';
export { didYouMean } from './suggest.ts';
export { GPUS, PRESETS, DEFAULT_GPUS_PER_NODE, optimalLsh, parameterCount, type GpuInfo } from './hardware.ts';
export { formatCount, parseBytes, parseK8sQuantity, parseTokens } from './quantity.ts';
export { POD_KINDS } from './hardware.ts';
export { MAX_FILE_BYTES, STDIN, toYaml } from './source.ts';
export { DEFAULT_UL2_SENTINELS, TOKENS_PER_PARAMETER, parseGate, ul2SentinelNames } from './resolve.ts';
export type * from './types.ts';
export { GATE_OPS, gatePasses } from './gates.ts';
