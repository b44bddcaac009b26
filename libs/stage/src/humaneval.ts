import { fileURLToPath } from 'node:url';

/** HumanEval as this repository ships it (`data/humaneval`, MIT): what a `humaneval` suite without a path means. */
export const BUNDLED_HUMANEVAL = fileURLToPath(new URL('../../../data/humaneval/HumanEval.jsonl.gz', import.meta.url));
