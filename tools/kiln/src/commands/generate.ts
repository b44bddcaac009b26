/** `kiln generate`: a completion (or a fill-in-the-middle) from an exported model (the trainer's Python, `kiln_trainer.generate`). */
import { common, type Command } from '../command.ts';
import { UsageError, type Io } from '../io.ts';
import { enumOption, intOption, numberOption } from '../options.ts';
import { runTrainer, trainerArgs } from '../trainer.ts';

export const command: Command = {
  usage: 'kiln generate --model DIR --prompt TEXT [--suffix TEXT] [--max-new-tokens N] [--temperature T] [--top-p P] [--seed N] [--stop S ...] [--device cpu|cuda] [--json]',
  help: `Completes a prompt with a model folder (kiln export's output, or any Hugging Face causal LM folder)
and streams the completion to standard output. With --suffix, fills in the middle between the prompt and the
suffix, using the tokenizer's FIM sentinels.

Options:
  --model DIR           the model folder (required)
  --prompt TEXT         the text to complete (required)
  --suffix TEXT         the text after the gap: fill in the middle
  --max-new-tokens N    at most N tokens (default 64)
  --temperature T       0 (default) is greedy; higher samples more freely
  --top-p P             nucleus sampling: the smallest set of tokens holding share P of the probability
                        (more than 0, at most 1; default 1)
  --seed N              seed of the sampling
  --stop S              stop before this text (repeat for more)
  --device D            cpu or cuda (default: cuda when PyTorch sees a GPU)
  --json                print one object: kind kiln.generate/v1, model, prompt, suffix, text,
                        finish_reason, usage {prompt_tokens, completion_tokens}, seconds, tokens_per_s

Exit codes: 0 ok, 1 generation failed, 2 usage error or a model folder it cannot use.`,
  options: {
    ...common,
    model: { type: 'string' },
    prompt: { type: 'string' },
    suffix: { type: 'string' },
    'max-new-tokens': { type: 'string' },
    temperature: { type: 'string' },
    'top-p': { type: 'string' },
    seed: { type: 'string' },
    stop: { type: 'string', multiple: true },
    device: { type: 'string' },
    json: { type: 'boolean' },
  },
  allowPositionals: false,
  run: runGenerate,
};

export async function runGenerate(values: Record<string, unknown>, _pos: string[], io: Io): Promise<number> {
  const missing = [values.model === undefined ? '--model DIR' : '', values.prompt === undefined ? '--prompt TEXT' : ''].filter(Boolean);
  if (missing.length) throw new UsageError(`kiln generate needs ${missing.join(', ')}`);
  const stops = (values.stop as string[] | undefined) ?? [];
  if (stops.some((s) => s === '')) throw new UsageError('--stop takes a non-empty text');
  // Texts as --flag=TEXT: a prompt that starts with "-" is still the flag's value, not an option of its own.
  const texts = [['prompt', values.prompt] as const, ['suffix', values.suffix] as const, ...stops.map((s) => ['stop', s] as const)];
  const args = trainerArgs(
    texts.filter(([, v]) => v !== undefined).map(([name, v]) => `--${name}=${String(v)}`),
    [
      ['model', values.model],
      ['max-new-tokens', intOption('max-new-tokens', values['max-new-tokens'], 1)],
      ['temperature', numberOption('temperature', values.temperature, { min: 0 })],
      ['top-p', numberOption('top-p', values['top-p'], { min: 0, max: 1, above: true })],
      ['seed', intOption('seed', values.seed, 0)],
      ['device', enumOption('device', values.device, ['cpu', 'cuda'])],
      ['json', values.json],
    ],
  );
  // The completion is streamed as it comes (a line at a time would hold it back until its end); JSON is one object.
  const write = io.write;
  if (values.json || !write) return runTrainer('generate', args, io);
  let last = '';
  const code = await runTrainer('generate', args, io, {
    rawStdout: (text) => {
      if (text) last = text;
      write(text);
    },
  });
  // The module ends its text with a newline only on a terminal, and its stdout is kiln's pipe: kiln's may be one.
  if (io.isTTY && last && !last.endsWith('\n')) write('\n');
  return code;
}
