/**
 * The data-prep stage's entry, shared by its two doors: the service's own `kiln-data-prep` (what a stage
 * image runs, `bin/kiln-data-prep.js`) and `kiln data prep|dedup --config` (the CLI, for people). Both parse
 * the same arguments into these functions and exit with what they return.
 */
import { parseArgs } from 'node:util';
import { stageConfigFailure, type EntryIo } from '@kiln/stage';
import { runDedupStage, runStage } from './stage.ts';

export type { EntryIo };

/** Exit codes: 0 done; 2 a config the stage cannot use, or bad arguments (terminal: never retried). */
export const EXIT_OK = 0;
export const EXIT_USAGE = 2;


/** `--shard` of a stage run: `i` or `i/N` (the index counts; the count is the config's). Undefined: the Job's completion index. */
export function stageShard(value: unknown): number | undefined {
  return value === undefined ? undefined : Number(String(value).split('/')[0]);
}

/** The data-prep stage from its mounted config; prints the summary on stdout. Returns the exit code. */
export async function prepStage(config: string, opts: { readonly shard?: number; readonly io: EntryIo; readonly command?: string }): Promise<number> {
  const command = opts.command ?? 'kiln-data-prep';
  try {
    const { summary } = await runStage(config, { ...(opts.shard !== undefined ? { shard: opts.shard } : {}), log: (m) => opts.io.err(`${command}: ${m}`) });
    opts.io.out(JSON.stringify(summary));
    return EXIT_OK;
  } catch (e) {
    return stageConfigFailure(command, e, opts.io);
  }
}

/** The near-dedup stage (reduce across shards, then apply) from its mounted config. Returns the exit code. */
export async function dedupStage(config: string, opts: { readonly io: EntryIo; readonly command?: string }): Promise<number> {
  const command = opts.command ?? 'kiln-data-prep dedup';
  try {
    const { summary } = await runDedupStage(config, { log: (m) => opts.io.err(`${command}: ${m}`) });
    opts.io.out(JSON.stringify(summary));
    return EXIT_OK;
  } catch (e) {
    return stageConfigFailure(command, e, opts.io);
  }
}

export const USAGE = `Usage: kiln-data-prep [prep] --config stage.json [--shard i]
       kiln-data-prep dedup --config stage.json

The data-prep stage of a kiln pipeline, as its Job runs it. prep: reads the sources of the config, filters,
redacts, deduplicates and decontaminates them, and writes one cleaned shard (or, with near dedup across
shards, maps it). dedup: clusters near duplicates across every mapped shard and writes the cleaned shards.
A summary goes to stdout and to the termination message. For data prep by hand, use \`kiln data prep\`.

Options:
  --config FILE   the stage config (/etc/kiln/stage.json in the pipeline)
  --shard i       prep: this shard (default: JOB_COMPLETION_INDEX, else 0)
  -h, --help      this help

Exit codes: 0 done; 2 a config the stage cannot use, or bad arguments; 3 an internal error.`;

/** `kiln-data-prep`'s command line. Returns the exit code; an error other than the config's is thrown. */
export async function main(argv: readonly string[], io: EntryIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: { config: { type: 'string' }, shard: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (e) {
    io.err(`kiln-data-prep: ${(e as Error).message.replace(/\. To specify a positional.*$/s, '')}\n${USAGE}`);
    return EXIT_USAGE;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(USAGE);
    return EXIT_OK;
  }
  const sub = positionals[0] ?? 'prep';
  if (positionals.length > 1 || !['prep', 'dedup'].includes(sub)) {
    io.err(`kiln-data-prep: unknown command "${positionals.join(' ')}"; the commands are prep (the default) and dedup\n${USAGE}`);
    return EXIT_USAGE;
  }
  if (values.config === undefined) {
    io.err(`kiln-data-prep: --config FILE is required\n${USAGE}`);
    return EXIT_USAGE;
  }
  if (sub === 'dedup') return dedupStage(values.config, { io });
  return prepStage(values.config, { shard: stageShard(values.shard), io });
}
