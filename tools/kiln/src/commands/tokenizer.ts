/** `kiln tokenizer train`: train a code tokenizer on cleaned shards, JSON Lines or raw code (the trainer's Python). */
import { suggestion } from '../args.ts';
import { common, type Command } from '../command.ts';
import { UsageError, type Io } from '../io.ts';
import { enumOption, intOption } from '../options.ts';
import { runTrainer, trainerArgs } from '../trainer.ts';

export const command: Command = {
  usage: 'kiln tokenizer train --input <paths...> --output DIR [--algorithm bpe|unigram] [--vocab-size N] [--sample-size 16MiB] [--seed N] [--special-token T ...] [--fim-sentinels] [--ul2-sentinels N] [--json]\n       kiln tokenizer --config stage.json',
  help: `Trains a byte-level BPE or Unigram tokenizer (Hugging Face tokenizers) on a seeded, uniform random sample
of the input, and writes tokenizer.json (loadable by tokenizers and transformers), kiln-tokenizer.json (what
each special token is for) and a manifest: bytes per token on held-out code per language, the share of the
vocabulary used, and the sample's size and digest. Special tokens are single tokens that ordinary text never
produces.

Options:
  --input PATH         data-prep's output directory, a JSON Lines file (plain, .gz, .zst) or a directory
                       of raw code (repeat for more)
  --output DIR         where the tokenizer goes (required)
  --algorithm A        bpe (default) or unigram
  --vocab-size N       tokens in the vocabulary, special tokens included (default 32768)
  --sample-size SIZE   bytes of text to train on, e.g. 16MiB, 1GiB (default 16MiB)
  --seed N             seed of the sample (default 42)
  --special-token T    a special token (repeat for more; default <|endoftext|> and <|padding|>)
  --fim-sentinels      add <fim_prefix>, <fim_middle>, <fim_suffix> and <fim_pad>
  --ul2-sentinels N    add N UL2 span sentinels <extra_id_0> ... (UL2's paradigm tokens go in --special-token)
  --json               print the manifest as JSON
  --config FILE        run as the pipeline's tokenizer stage: config from FILE (/etc/kiln/stage.json),
                       output under the run's storage, summary to the termination log

The first run makes the trainer's Python environment (a few minutes, once per lock file).

Exit codes: 0 ok, 1 an input cannot be read or training failed, 2 usage or stage config error.`,
  options: {
    ...common,
    config: { type: 'string' },
    input: { type: 'string', multiple: true },
    output: { type: 'string' },
    algorithm: { type: 'string' },
    'vocab-size': { type: 'string' },
    'sample-size': { type: 'string' },
    seed: { type: 'string' },
    'special-token': { type: 'string', multiple: true },
    'fim-sentinels': { type: 'boolean' },
    'ul2-sentinels': { type: 'string' },
    json: { type: 'boolean' },
  },
  allowPositionals: true,
  run: runTokenizer,
};

const SUBCOMMANDS = ['train'];

export async function runTokenizer(values: Record<string, unknown>, pos: string[], io: Io): Promise<number> {
  if (values.config !== undefined) {
    if (pos.length) throw new UsageError('--config runs the stage: give no subcommand with it');
    return runTrainer('tokenizer', ['--config', String(values.config)], io);
  }
  if (pos[0] !== 'train' || pos.length !== 1) {
    throw new UsageError(pos.length ? `unknown tokenizer command "${pos.join(' ')}"; the command is: kiln tokenizer train${suggestion(pos[0]!, SUBCOMMANDS)}` : 'missing subcommand: kiln tokenizer train');
  }
  const inputs = (values.input as string[] | undefined) ?? [];
  if (!inputs.length) throw new UsageError('give --input <paths...>: data-prep output, JSON Lines files or directories of code');
  if (values.output === undefined) throw new UsageError('--output DIR is required (tokenizer.json goes there)');
  if (values['sample-size'] !== undefined && !/^[0-9]+(\.[0-9]+)? ?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)?$/.test(String(values['sample-size']))) {
    throw new UsageError(`--sample-size takes a size such as 16MiB, 500MB or 1048576, not "${String(values['sample-size'])}"`);
  }
  const args = trainerArgs(
    ['train'],
    [
      ['input', inputs],
      ['output', values.output],
      ['algorithm', enumOption('algorithm', values.algorithm, ['bpe', 'unigram'])],
      ['vocab-size', intOption('vocab-size', values['vocab-size'], 256)],
      ['sample-size', values['sample-size']],
      ['seed', intOption('seed', values.seed, 0)],
      ['special-token', values['special-token']],
      ['fim-sentinels', values['fim-sentinels']],
      ['ul2-sentinels', intOption('ul2-sentinels', values['ul2-sentinels'], 1)],
      ['json', values.json],
    ],
  );
  return runTrainer('tokenizer', args, io);
}
