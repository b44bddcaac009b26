/**
 * @kiln/stage: the stage contract (schemas/stages/) in TypeScript. The typed configs of every stage kind, the
 * summary, progress and manifest; reading the mounted config against its schema, writing the summary within the
 * termination message's limit, storage URIs as paths, the exit codes; and the few values every layer shares
 * (the artifact, canonical JSON).
 */
export type * from './types.ts';
export { STAGE_KINDS } from './types.ts';
export { readStageConfig, parseStageConfig } from './config.ts';
export { StageConfigError, stageConfigFailure, TERMINAL_EXIT, type EntryIo } from './errors.ts';
export { check, validatorOf, CONFIG_SCHEMAS, SCHEMAS, type ContractDocument, type ContractProblem, type JsonSchema } from './schemas.ts';
export { fitSummary, writeSummary, TERMINATION_MESSAGE_MAX_BYTES } from './summary.ts';
export { storagePath } from './storage.ts';
export { PROGRESS_KIND, parseProgressLine, lastProgressLine, progressOfLine } from './progress.ts';
export { canonicalJson } from './json.ts';
export { BUNDLED_HUMANEVAL } from './humaneval.ts';
