/**
 * The eval runner's shared vocabulary. A benchmark (HumanEval, MultiPL-E, a custom suite) is read into
 * Problems; a model (or a samples file) gives Completions; each completion is assembled into one program
 * with the problem's tests and executed in the sandbox, giving an Outcome; outcomes are scored as pass@k.
 */

/** Canonical language names (lower case). MultiPL-E's short names (py, js, ts, rs, cpp…) map onto these. */
export type Language = 'python' | 'javascript' | 'typescript' | 'go' | 'rust' | 'java' | 'cpp' | (string & {});

export interface Problem {
  /** `HumanEval/0`, `HumanEval_0_has_close_elements`, or a custom suite's id. Unique within a suite. */
  readonly id: string;
  readonly language: Language;
  /** The text the model continues. For an infilling problem, the code before the hole. */
  readonly prompt: string;
  /** Infilling problems only: the code after the hole. */
  readonly suffix?: string;
  /** Test code run after the completion (HumanEval: defines `check(candidate)`; MultiPL-E: calls the function). */
  readonly tests: string;
  /** HumanEval: the function `check` is called with. */
  readonly entryPoint?: string;
  /** Generation stops at the first of these. */
  readonly stop: readonly string[];
  /** A reference completion when the benchmark has one (HumanEval's canonical_solution). */
  readonly canonical?: string;
}

/** One generated (or supplied) completion of one problem. */
export interface Completion {
  readonly taskId: string;
  readonly completion: string;
}

/**
 * How one program ended.
 * - passed: exited 0 and the end-of-tests marker was printed (the checks ran to the end)
 * - failed: a test failed, the program crashed, or it ended before the checks finished
 * - timeout: killed at the wall-clock limit
 * - no-toolchain: the language's compiler or runtime is not on this machine (never counted against a model)
 */
export type OutcomeStatus = 'passed' | 'failed' | 'timeout' | 'no-toolchain';

export interface Outcome {
  readonly status: OutcomeStatus;
  /** A short, human-readable reason: `AssertionError`, `exit 1`, `killed after 3000 ms`, `no rustc on PATH`. */
  readonly reason: string;
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly durationMs: number;
  /** The last few KiB of each stream. */
  readonly stdout: string;
  readonly stderr: string;
}
