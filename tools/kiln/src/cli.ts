import pkg from '../package.json' with { type: 'json' };
import type { Command } from './command.ts';
import { EXIT, UsageError, type Io } from './io.ts';

// node:util without its ES module facade: importing it evaluates every export, and its TextDecoder getter
// loads node:worker_threads, several milliseconds of every cold start.
const { parseArgs } = process.getBuiltinModule('node:util');

/** A top-level command: its line in `kiln --help`, and its module, loaded only when it runs (start-up stays fast). */
interface Entry {
  readonly summary: string;
  load(): Promise<{ readonly command: Command }>;
}

const COMMANDS: Record<string, Entry> = {
  plan: { summary: 'compile a spec into its stage graph, resources and cost estimate', load: () => import('./commands/plan.ts') },
  data: { summary: 'data prep: filter, redact, dedup and decontaminate code into clean shards', load: () => import('./commands/data.ts') },
  tokenizer: { summary: 'train a code tokenizer (byte-level BPE or Unigram) on cleaned shards or code', load: () => import('./commands/tokenizer.ts') },
  pack: { summary: 'tokenize code into training sequences for next-token, FIM or UL2; inspect them', load: () => import('./commands/pack.ts') },
  train: { summary: "train the spec's model here (a laptop, one GPU) on kiln pack's output, with a progress bar; resumable", load: () => import('./commands/train.ts') },
  export: { summary: 'export a checkpoint as a Hugging Face model folder (transformers loads it, no custom code)', load: () => import('./commands/export.ts') },
  generate: { summary: 'complete a prompt (or fill in the middle) with an exported model', load: () => import('./commands/generate.ts') },
  serve: { summary: 'serve an exported model with a real Triton server here (python backend), until Ctrl-C', load: () => import('./commands/serve.ts') },
  gateway: { summary: 'serve an OpenAI-compatible completions API in front of Triton: keys, limits, canary, metrics', load: () => import('./commands/gateway.ts') },
  complete: { summary: 'complete a prompt through a gateway (OpenAI completions API), streamed', load: () => import('./commands/complete.ts') },
  eval: { summary: 'run generated code against benchmark tests in a sandbox: pass@k, reports, gates', load: () => import('./commands/eval.ts') },
  status: { summary: 'show ModelRuns and their stages, progress and gate verdicts', load: () => import('./commands/status.ts') },
  promote: { summary: "promote a run's model into a stack on its evidence (gates, digests), as a git commit; --apply runs pulumi up", load: () => import('./commands/promote.ts') },
  rollback: { summary: 'return a stack to the model it served before, as a new commit', load: () => import('./commands/rollback.ts') },
  history: { summary: "every promotion and rollback of a stack, from git", load: () => import('./commands/history.ts') },
  logs: { summary: "print a stage's log", load: () => import('./commands/logs.ts') },
  controller: { summary: 'run the ModelRun controller against a cluster (the local one by default)', load: () => import('./commands/controller.ts') },
  cluster: { summary: 'run a local Kubernetes control plane with simulated GPU nodes', load: () => import('./commands/cluster.ts') },
  toolchain: { summary: 'build or locate the local-cluster binaries (Pulumi, Kubernetes, etcd, kwok)', load: () => import('./commands/toolchain.ts') },
  validate: { summary: 'check kiln.yaml files and report every problem', load: () => import('./commands/validate.ts') },
  init: { summary: 'write a kiln.yaml to start from, with its editor schema line set', load: () => import('./commands/init.ts') },
  schema: { summary: 'print the JSON Schema of kiln.yaml', load: () => import('./commands/schema.ts') },
  demo: { summary: 'the whole path here: every example spec, a local cluster, pulumi up, a run, the real stage workers', load: () => import('./commands/demo.ts') },
};

/** "; did you mean "x"?" from edit distance; loaded (with @kiln/spec) only on this error path. */
const suggestion = async (word: string, known: Iterable<string>): Promise<string> => (await import('./args.ts')).suggestion(word, known);

/** parseArgs' own message, with a suggestion for an unknown option. */
async function parseError(e: unknown, cmd: Command): Promise<string> {
  const message = (e as Error).message.replace(/\. To specify a positional.*$/s, '');
  const unknown = (e as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /'(--[^'=]+)'/.exec(message)?.[1] : undefined;
  return unknown ? message + (await suggestion(unknown, Object.keys(cmd.options).map((o) => `--${o}`))) : message;
}

function mainHelp(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length));
  return `kiln ${pkg.version}: one kiln.yaml from raw code to a served code model.

Usage: kiln <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`)
  .join('\n')}

Options:
  -h, --help     help for kiln or a command (kiln <command> --help)
  -v, --version  print the version

Examples:
  kiln init
  kiln validate kiln.yaml
  kiln validate configs/*.yaml --format json
  kiln validate kiln.yaml --stack dev --resolved`;
}

export async function main(argv: string[], io: Io): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    const entry = name === 'help' && rest[0] !== undefined ? COMMANDS[rest[0]] : undefined;
    const cmd = entry && (await entry.load()).command;
    io.out(cmd ? `Usage: ${cmd.usage}\n\n${cmd.help}` : mainHelp());
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '-v' || name === '--version' || name === 'version') {
    io.out(pkg.version);
    return EXIT.ok;
  }
  const entry = COMMANDS[name];
  if (!entry) {
    io.err(`kiln: unknown command "${name}"${await suggestion(name, Object.keys(COMMANDS))}\nRun \`kiln --help\` for the list of commands.`);
    return EXIT.usage;
  }
  const cmd = (await entry.load()).command;
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: cmd.options, allowPositionals: cmd.allowPositionals, strict: true });
  } catch (e) {
    io.err(`kiln ${name}: ${await parseError(e, cmd)}\nUsage: ${cmd.usage}`);
    return EXIT.usage;
  }
  if (parsed.values.help) {
    io.out(`Usage: ${cmd.usage}\n\n${cmd.help}`);
    return EXIT.ok;
  }
  const color = io.isTTY && !parsed.values['no-color'] && !process.env.NO_COLOR;
  const ioc: Io = { ...io, color };
  try {
    return await cmd.run(parsed.values, parsed.positionals, ioc);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`kiln ${name}: ${e.message}\nUsage: ${cmd.usage}`);
      return EXIT.usage;
    }
    if (parsed.values.debug) io.err((e as Error).stack ?? String(e));
    else io.err(`kiln ${name}: internal error: ${(e as Error).message}\nThis is a bug in kiln; run again with --debug for details and report it.`);
    return EXIT.internal;
  }
}
