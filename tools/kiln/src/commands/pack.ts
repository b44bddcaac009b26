/** `kiln pack`: tokenize cleaned code into training sequences for next-token, FIM or UL2; `kiln pack inspect`: look at them. */
import { common, type Command } from '../command.ts';
import { UsageError, type Io } from '../io.ts';
import { enumOption, fractionOption, intOption } from '../options.ts';
import { runTrainer, trainerArgs } from '../trainer.ts';

export const command: Command = {
  usage: 'kiln pack --tokenizer DIR --input <paths...> --output DIR --seq-len N [--objective next-token|fim|ul2] [--fim-rate R] [--spm-rate R] [--fim-level document|context] [--fim-truncation none|suffix] [--seed N] [--workers N] [--json]\n       kiln pack inspect DIR [--decode N] [--tokenizer DIR] [--verify] [--json]\n       kiln pack --config stage.json',
  help: `Tokenizes the input (in several processes, streaming) and writes sequences of --seq-len tokens in kiln's
memory-mappable format: token ids, a loss mask where the objective needs one, an index of where each
document starts, and a manifest with counts and digests. The same inputs and seed give the same bytes.

Objectives:
  next-token   documents joined by the end-of-text token, cut into sequences
  fim          fill-in-the-middle (Bavarian et al. 2022): a share of documents (or packed contexts) split
               into prefix, middle and suffix, written PSM or SPM with the tokenizer's FIM sentinels
  ul2          UL2's mixture of denoisers (Tay et al. 2022), decoder-only: paradigm token, the input with
               corrupted spans replaced by sentinels, then each sentinel and its span; the loss mask covers
               exactly those targets

Options:
  --tokenizer DIR      a tokenizer folder (kiln tokenizer train's output, or one with tokenizer.json)
  --input PATH         data-prep's output directory, a JSON Lines file or a directory of code (repeat for more)
  --output DIR         where the packed shards go
  --seq-len N          tokens per sequence
  --objective O        next-token (default), fim or ul2 (UL2 uses the paper's mixture of denoisers)
  --fim-rate R         share of documents turned into FIM examples (default 0.5)
  --spm-rate R         share of FIM examples in SPM order (default 0.5)
  --fim-level L        document or context (default context)
  --fim-truncation T   none (default: a longer context flows into the next) or suffix (trim the suffix so
                       the context keeps its length, as bigcode's Megatron-LM does)
  --seed N             seed of every random choice (default 42)
  --workers N          tokenizing processes (default: the CPUs)
  --json               print the manifest as JSON
  --config FILE        run as the pipeline's pack stage: config from FILE (/etc/kiln/stage.json), shard
                       from JOB_COMPLETION_INDEX, output under the run's storage, summary to the termination log

kiln pack inspect DIR [--decode N] [--tokenizer DIR] [--verify] [--json]: what the folder holds (shards,
sequences, counts) and its first N sequences (default 2) decoded, the tokens the loss is computed on marked
⟦like this⟧ (green on a terminal), sentinels spelt out, so you can see what the model will learn from.
--tokenizer names the tokenizer when the one the manifest records has moved; --verify re-hashes every
file against its manifest (exit 1 on a mismatch).

The first run makes the trainer's Python environment (a few minutes, once per lock file).

Exit codes: 0 ok, 1 an input cannot be read or packing failed, 2 usage or stage config error.`,
  options: {
    ...common,
    config: { type: 'string' },
    tokenizer: { type: 'string' },
    input: { type: 'string', multiple: true },
    output: { type: 'string' },
    'seq-len': { type: 'string' },
    objective: { type: 'string' },
    'fim-rate': { type: 'string' },
    'spm-rate': { type: 'string' },
    'fim-level': { type: 'string' },
    'fim-truncation': { type: 'string' },
    verify: { type: 'boolean' },
    seed: { type: 'string' },
    workers: { type: 'string' },
    decode: { type: 'string' },
    json: { type: 'boolean' },
  },
  allowPositionals: true,
  run: runPack,
};

const PACK_ONLY = ['input', 'output', 'seq-len', 'objective', 'fim-rate', 'spm-rate', 'fim-level', 'fim-truncation', 'seed', 'workers'];

function inspect(values: Record<string, unknown>, pos: string[], io: Io): Promise<number> {
  if (pos.length !== 2) throw new UsageError(pos.length < 2 ? 'kiln pack inspect needs the packed folder: kiln pack inspect DIR' : `kiln pack inspect takes one folder, not ${pos.length - 1}`);
  const stray = PACK_ONLY.filter((o) => values[o] !== undefined);
  if (stray.length) throw new UsageError(`kiln pack inspect does not take ${stray.map((o) => `--${o}`).join(', ')}`);
  const args = trainerArgs(['inspect', pos[1]!], [
    ['decode', intOption('decode', values.decode, 0)],
    ['tokenizer', values.tokenizer],
    ['verify', values.verify],
    ['json', values.json],
  ]);
  return runTrainer('pack', args, io);
}

export async function runPack(values: Record<string, unknown>, pos: string[], io: Io): Promise<number> {
  if (pos[0] === 'inspect') return inspect(values, pos, io);
  if (pos.length) throw new UsageError(`unknown pack command "${pos.join(' ')}"; the commands are: kiln pack --tokenizer ..., kiln pack inspect DIR`);
  const inspectOnly = ['decode', 'verify'].filter((o) => values[o] !== undefined);
  if (inspectOnly.length) throw new UsageError(`${inspectOnly.map((o) => `--${o}`).join(', ')} ${inspectOnly.length === 1 ? 'goes' : 'go'} with kiln pack inspect DIR`);
  if (values.config !== undefined) return runTrainer('pack', ['--config', String(values.config)], io);
  const inputs = (values.input as string[] | undefined) ?? [];
  const missing = [
    values.tokenizer === undefined ? '--tokenizer DIR' : '',
    inputs.length ? '' : '--input <paths...>',
    values.output === undefined ? '--output DIR' : '',
    values['seq-len'] === undefined ? '--seq-len N' : '',
  ].filter(Boolean);
  if (missing.length) throw new UsageError(`kiln pack needs ${missing.join(', ')}`);
  const objective = enumOption('objective', values.objective, ['next-token', 'fim', 'ul2']);
  const fim = ['fim-rate', 'spm-rate', 'fim-level', 'fim-truncation'].filter((o) => values[o] !== undefined);
  if (fim.length && objective !== 'fim') throw new UsageError(`${fim.map((o) => `--${o}`).join(', ')} ${fim.length === 1 ? 'goes' : 'go'} with --objective fim`);
  const args = trainerArgs(
    ['run'],
    [
      ['tokenizer', values.tokenizer],
      ['input', inputs],
      ['output', values.output],
      ['seq-len', intOption('seq-len', values['seq-len'], 1)],
      ['objective', objective],
      ['fim-rate', fractionOption('fim-rate', values['fim-rate'])],
      ['spm-rate', fractionOption('spm-rate', values['spm-rate'])],
      ['fim-level', enumOption('fim-level', values['fim-level'], ['document', 'context'])],
      ['fim-truncation', enumOption('fim-truncation', values['fim-truncation'], ['none', 'suffix'])],
      ['seed', intOption('seed', values.seed, 0)],
      ['workers', intOption('workers', values.workers, 1)],
      ['json', values.json],
    ],
  );
  return runTrainer('pack', args, io);
}
