/** `kiln export`: one checkpoint as a Hugging Face model folder (the trainer's Python, `kiln_trainer.export --checkpoint`). */
import { common, type Command } from '../command.ts';
import { UsageError, type Io } from '../io.ts';
import { enumOption } from '../options.ts';
import { runTrainer, trainerArgs } from '../trainer.ts';

export const command: Command = {
  usage: 'kiln export --checkpoint DIR --output DIR [--dtype fp32|fp16|bf16] [--json]',
  help: `Writes a checkpoint as a Hugging Face folder that transformers loads offline with no custom code:
config.json (LlamaForCausalLM for RoPE, MptForCausalLM for ALiBi), generation_config.json, model.safetensors
and the tokenizer's files. A checkpoint records its model config and its tokenizer, so it is all that is needed:
the tokenizer comes from the checkpoints folder's own copy (tokenizer/) or the folder it was trained with,
checked against the digest the checkpoint recorded.

Options:
  --checkpoint DIR   kiln train's --output (its latest checkpoint) or one of its step-NNNNNNNN folders (required)
  --output DIR       where the model folder goes (required); its files are written into DIR itself
  --dtype T          the weights' type: fp32, fp16 or bf16 (default: the spec's model.precision)
  --json             print the manifest (every file with its digest and size, the counts) as JSON

Then: kiln generate --model <output> --prompt 'def fib(n):'

Exit codes: 0 ok, 1 the export failed, 2 usage error, or no checkpoint or tokenizer where it looked.`,
  options: { ...common, checkpoint: { type: 'string' }, output: { type: 'string' }, dtype: { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: false,
  run: runExport,
};

export async function runExport(values: Record<string, unknown>, _pos: string[], io: Io): Promise<number> {
  const missing = [values.checkpoint === undefined ? '--checkpoint DIR' : '', values.output === undefined ? '--output DIR' : ''].filter(Boolean);
  if (missing.length) throw new UsageError(`kiln export needs ${missing.join(', ')}`);
  const args = trainerArgs(
    [],
    [
      ['checkpoint', values.checkpoint],
      ['output', values.output],
      ['dtype', enumOption('dtype', values.dtype, ['fp32', 'fp16', 'bf16'])],
      ['json', values.json],
    ],
  );
  return runTrainer('export', args, io);
}
