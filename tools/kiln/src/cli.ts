import { parseArgs, type ParseArgsConfig } from 'node:util';
import pkg from '../package.json' with { type: 'json' };
import { EXIT, UsageError, type Io } from './io.ts';

interface Command {
  readonly summary: string;
  readonly usage: string;
  readonly help: string;
  readonly options: NonNullable<ParseArgsConfig['options']>;
  readonly allowPositionals: boolean;
  run(values: Record<string, unknown>, positionals: string[], io: Io): number | Promise<number>;
}

const common = {
  help: { type: 'boolean', short: 'h' },
  debug: { type: 'boolean' },
  'no-color': { type: 'boolean' },
} as const;

const COMMANDS: Record<string, Command> = {
  plan: {
    summary: 'compile a spec into its stage graph, resources and cost estimate',
    usage: 'kiln plan <spec> [--stack NAME] [--mfu 0.4] [--json] [--offline]',
    help: `Compiles the spec (with a stack's overlay) into the plan of one run: the stages in order with their
images, parallelism and resources, the serving targets, the gates, and an estimate before launch
(training FLOPs = (6·N + 12·layers·d_model·seq_len) per token; GPU-hours at the stated MFU; cost from
infra.pricing). The run id is a hash of everything that changes the result.

When a cluster is reachable ($KUBECONFIG, ./.kiln's local cluster, or ~/.kube/config), each GPU request is
checked against its nodes: a pod that asks for more GPUs than any node of that type has is an error now.

Options:
  --stack NAME   apply this stack's overlay
  --mfu X        model FLOPs utilisation assumed by the estimate (default 0.4)
  --json         the plan and the cluster check as JSON
  --offline      do not contact a cluster

Exit codes: 0 ok, 1 invalid spec or a capacity problem, 2 usage error.`,
    options: { ...common, stack: { type: 'string' }, mfu: { type: 'string' }, json: { type: 'boolean' }, format: { type: 'string' }, offline: { type: 'boolean' } },
    allowPositionals: true,
    run: async (...a) => (await import('./plan-cmd.ts')).runPlan(...a),
  },
  data: {
    summary: 'data prep: filter, redact, dedup and decontaminate code into clean shards',
    usage: 'kiln data prep (--input <files or dirs...> | --spec kiln.yaml [--stack S] [--shard i/N]) --output DIR [--json] | --config stage.json\n       kiln data dedup --output DIR [--shards N] [--json] | --config stage.json',
    help: `Reads JSON Lines (plain, .gz, .zst; fields content or text, path, language, repository) and
directories of raw files, and writes one cleaned shard (shard-NNNNN.jsonl.zst) and its manifest
(shard-NNNNN.manifest.json) to --output. Every record read is kept or dropped under one reason (bad JSON,
invalid UTF-8, binary, oversized, line filters, auto-generated, vendored, lock files, exact and near
duplicates, decontamination); the manifest counts them, with bytes in and out, redacted PII and secrets
per kind, languages, and the shard's sha256.

Options:
  --input PATH       a JSON Lines file or a directory (repeat for more)
  --spec FILE        read the spec's local sources and its preprocessing settings instead
  --stack NAME       with --spec: apply this stack's overlay
  --shard i/N        take shard i of N (by a hash of each record's path). With near dedup on, this maps
                     the shard only (candidates and MinHash band keys); near duplicates span shards, so
                     once all N are mapped, \`kiln data dedup --output DIR\` clusters them and writes
                     the cleaned shards and manifests
  --output DIR       where the shard and its manifest go (required)
  --no-pii           do not redact PII and secrets
  --no-near          skip near-duplicate detection
  --json             print the manifest as JSON
  --config FILE      run as the pipeline's data-prep stage: config from FILE (/etc/kiln/stage.json), shard
                     from JOB_COMPLETION_INDEX, output under the run's storage, summary to the termination log

kiln data dedup --output DIR [--shards N] [--json]: the reduce step over every shard mapped in DIR (with
--shards N, refuses to start unless shards 0..N-1 are all there), then each shard's cleaned file, manifest
and report. With --config FILE it is the pipeline's dedup stage.

Exit codes: 0 ok, 1 an input cannot be read, the spec is invalid or shards are missing, 2 usage or stage config error.`,
    options: { ...common, config: { type: 'string' }, shards: { type: 'string' }, input: { type: 'string', multiple: true }, spec: { type: 'string' }, stack: { type: 'string' }, shard: { type: 'string' }, output: { type: 'string' }, 'no-pii': { type: 'boolean' }, 'no-near': { type: 'boolean' }, json: { type: 'boolean' } },
    allowPositionals: true,
    run: async (...a) => (await import('./data-cmd.ts')).runData(...a),
  },
  eval: {
    summary: 'run generated code against benchmark tests in a sandbox: pass@k, reports, gates',
    usage: 'kiln eval score --benchmark FILE --samples FILE [--k 1,10,100] [--json] [--output DIR]\n       kiln eval run (--endpoint URL [--api openai|triton] [--model M] (--benchmark FILE | --spec kiln.yaml [--stack S] [--suite NAME])) [--json] [--output DIR] | --config stage.json\n       kiln eval toolchains [--json]',
    help: `Executes completions against a benchmark's tests, each program in a sandbox (its own process group
and temp dir, a wall-clock timeout, CPU, memory, process, file-size and output limits, no network where the
machine allows a network namespace), and computes pass@k with the unbiased estimator (Chen et al. 2021)
per problem, language and suite. A sample passes only if its program ran the checks to the end.

kiln eval score: completions made elsewhere, in HumanEval's samples format ({"task_id", "completion"} per
line, .jsonl or .jsonl.gz). Benchmarks: HumanEval (jsonl, jsonl.gz), MultiPL-E records, or a custom suite
(docs/eval.md).
kiln eval run: generates completions from an OpenAI-style completions endpoint (/v1/completions) or Triton's
generate endpoint, then scores them. With --spec, runs the spec's eval suites with their sampling settings;
with --stack, also checks that stack's gates (exit 1 if one fails).
kiln eval toolchains: which languages this machine can execute, and how the sandbox is isolated here.

Options:
  --benchmark FILE        a HumanEval, MultiPL-E or custom-suite file or directory
  --format F              humaneval, multipl-e or custom (default: detected)
  --samples FILE          score: the completions
  --k LIST                pass@k to report (score default 1,10,100: each only where every problem has n ≥ k)
  --timeout S             seconds per program (default 3)
  --concurrency N         programs at once (default: the number of cores)
  --endpoint URL          run: the model server
  --api openai|triton     run: its API (default openai)
  --model NAME            run: the served model (default: ensemble for Triton)
  --api-key-env VAR       run: send the key in this environment variable as a bearer token
  --samples-per-problem N, --temperature T, --top-p P, --max-new-tokens N
                          run without --spec: sampling (default 1 sample, greedy, 512 tokens)
  --spec FILE, --stack S, --suite NAME
                          run: the spec's suites (or one of them) and that stack's gates
  --limit N               run: only the first N problems
  --output DIR            write report.json, report.html and results.jsonl (every sample's outcome)
  --json                  the report as JSON on stdout (pass@k per k, per language, per problem)
  --config FILE           run as the pipeline's eval stage: config from FILE, summary to the termination log

Exit codes: 0 ok, 1 bad input, an endpoint that fails, or a gate that fails, 2 usage or stage config error.`,
    options: {
      ...common,
      benchmark: { type: 'string' }, format: { type: 'string' }, samples: { type: 'string' }, k: { type: 'string' }, timeout: { type: 'string' }, concurrency: { type: 'string' },
      endpoint: { type: 'string' }, api: { type: 'string' }, model: { type: 'string' }, 'api-key-env': { type: 'string' }, 'samples-per-problem': { type: 'string' }, temperature: { type: 'string' },
      'top-p': { type: 'string' }, 'max-new-tokens': { type: 'string' }, spec: { type: 'string' }, stack: { type: 'string' }, suite: { type: 'string' }, limit: { type: 'string' },
      output: { type: 'string' }, json: { type: 'boolean' }, config: { type: 'string' },
    },
    allowPositionals: true,
    run: async (...a) => (await import('./eval-cmd.ts')).runEval(...a),
  },
  status: {
    summary: 'show ModelRuns and their stages, progress and gate verdicts',
    usage: 'kiln status [run] [--watch] [--namespace NS] [--format json]',
    help: `Without a run: one line per ModelRun (newest first) with its phase, current stage, progress and
gate verdicts. With a run (its object name, run id, or a unique prefix of either): every stage with its
phase, attempts and time, a progress bar for the running stage where it reports progress (training: tokens
of the budget), each environment's gates with the metric they read, and the artifacts with digests.

Options:
  --watch           redraw on every change; with a run, end when the run does
  --namespace NS    only this namespace (default: all)
  --format json     the ModelRun objects as JSON
  --dir DIR         directory holding .kiln/ (default: current directory)

The cluster is $KUBECONFIG's, else ./.kiln's local cluster, else ~/.kube/config's.
Exit codes: 0 ok, 1 no such run or the run failed, 2 usage error.`,
    options: { ...common, watch: { type: 'boolean', short: 'w' }, namespace: { type: 'string', short: 'n' }, format: { type: 'string', default: 'text' }, json: { type: 'boolean' }, dir: { type: 'string' } },
    allowPositionals: true,
    run: async (...a) => (await import('./runs-cmd.ts')).runStatus(...a),
  },
  logs: {
    summary: "print a stage's log",
    usage: 'kiln logs <run> <stage> [--follow] [--attempt N] [--index N] [--tail N]',
    help: `Prints the log of one pod of a stage: the latest attempt and index 0 (rank 0 of training) unless
told otherwise. When the pod's node cannot serve logs (the local cluster's pods are simulated), says so
and prints the stage's termination message, its summary.

Options:
  -f, --follow      keep streaming until the pod ends
  --attempt N       which attempt (default: the latest)
  --index N         which shard or node (default 0)
  --tail N          only the last N lines
  --namespace NS    where the run is (default: search all)
  --dir DIR         directory holding .kiln/ (default: current directory)

Exit codes: 0 ok, 1 no such run, stage or pod, or no log, 2 usage error.`,
    options: { ...common, follow: { type: 'boolean', short: 'f' }, attempt: { type: 'string' }, index: { type: 'string' }, tail: { type: 'string' }, namespace: { type: 'string', short: 'n' }, dir: { type: 'string' } },
    allowPositionals: true,
    run: async (...a) => (await import('./runs-cmd.ts')).runLogs(...a),
  },
  controller: {
    summary: 'run the ModelRun controller against a cluster (the local one by default)',
    usage: 'kiln controller [--namespace NS | --all-namespaces] [--leader-elect] [--simulate]',
    help: `Runs ModelRuns stage by stage: creates each stage's Job (in dependency order, named per attempt,
owned by the run, by server-side apply), passes each stage's summary and manifest to the next, retries
retryable failures with backoff (training resumes from its checkpoint), stops on a stage's terminal exit
code (2), and writes progress, artifacts, metrics and gate verdicts to the run's status. In a real cluster
it runs as the kiln-controller Deployment; on the local cluster, run it here. Stops on Ctrl-C.

Options:
  --namespace NS        watch one namespace (default: all namespaces)
  --leader-elect        act only while holding the Lease kiln-controller (several replicas)
  --lease-namespace NS  where the Lease lives (default: --namespace, else default)
  --lease-ms N          lease duration (default 15000)
  --workers N           runs reconciled at once (default 8)
  --simulate            end stage pods as kwok simulations (default: on for the local cluster)
  --sim-duration-ms N   how long simulated stages run (default 2000)
  --retry-base-ms N     backoff before attempt 2; doubles per attempt, at most 5 min (default 10000)
  --dir DIR             directory holding .kiln/ (default: current directory)

Logs go to standard error, one line per action, each with its reconcile id.`,
    options: {
      ...common,
      namespace: { type: 'string', short: 'n' },
      'all-namespaces': { type: 'boolean', short: 'A' },
      'leader-elect': { type: 'boolean' },
      'lease-namespace': { type: 'string' },
      'lease-ms': { type: 'string' },
      workers: { type: 'string' },
      simulate: { type: 'boolean' },
      'sim-duration-ms': { type: 'string' },
      'retry-base-ms': { type: 'string' },
      dir: { type: 'string' },
    },
    allowPositionals: false,
    run: async (...a) => (await import('./runs-cmd.ts')).runController(...a),
  },
  cluster: {
    summary: 'run a local Kubernetes control plane with simulated GPU nodes',
    usage: 'kiln cluster <up|down|status|env> [options]',
    help: `A real etcd, kube-apiserver, kube-controller-manager and kube-scheduler on 127.0.0.1 (free ports),
with kwok simulating the nodes and their pods: pods are scheduled against real GPU capacity, go Ready,
and pods of Jobs Succeed after --job-duration-ms. Data, certificates, kubeconfig, logs and pid files live
under .kiln/ of the current directory (or --dir). A local Pulumi file backend lives beside them.

  up       start what is not running (idempotent); prints the KUBECONFIG line
  down     stop exactly the processes up started, and remove the data
  status   each component's pid and health, the nodes; exit 1 when something is down
  env      export lines for kubectl and the pulumi CLI: eval "$(npx kiln cluster env)"

Options for up:
  --gpu-nodes N         simulated GPU nodes (default 4)
  --gpus-per-node N     GPUs on each (default 8)
  --gpu-type TYPE       e.g. h100-80gb (default), a100-40gb: sets the nodes' GPU product label
  --cpu-nodes N         CPU-only nodes (default 2)
  --job-duration-ms N   how long a Job's pod runs before it Succeeds (default 2000)
Common:
  --dir DIR             directory holding .kiln/ (default: current directory)
  --format json         machine-readable output

The binaries come from PATH or are built once into the toolchain cache (see kiln toolchain).`,
    options: {
      ...common,
      dir: { type: 'string' },
      format: { type: 'string', default: 'text' },
      'gpu-nodes': { type: 'string' },
      'gpus-per-node': { type: 'string' },
      'gpu-type': { type: 'string' },
      'cpu-nodes': { type: 'string' },
      'job-duration-ms': { type: 'string' },
    },
    allowPositionals: true,
    run: async (...a) => (await import('./cluster-cmd.ts')).runCluster(...a),
  },
  toolchain: {
    summary: 'build or locate the local-cluster binaries (Pulumi, Kubernetes, etcd, kwok)',
    usage: 'kiln toolchain <build|status|path> [--format json]',
    help: `The local cluster and the Pulumi engine need: pulumi, pulumi-language-nodejs,
pulumi-resource-kubernetes, etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok.
Each is taken from PATH when a matching version is there, and otherwise built from Go modules (pinned in
tools/toolchain/versions.json and the wrapper modules beside it) into a cache keyed by those inputs:
$KILN_TOOLCHAIN_DIR, else $XDG_CACHE_HOME/kiln/toolchain, else ~/.cache/kiln/toolchain.

  build    build what is missing (concurrent runs wait for each other; logs per binary in the cache)
  status   where each binary comes from; exit 1 when something is missing
  path     print the cache directory of this toolchain`,
    options: { ...common, format: { type: 'string', default: 'text' } },
    allowPositionals: true,
    run: async (...a) => (await import('./cluster-cmd.ts')).runToolchain(...a),
  },
  validate: {
    summary: 'check kiln.yaml files and report every problem',
    usage: 'kiln validate <files...> [--stack NAME] [--overlay FILE] [--resolved] [--format text|json]',
    help: `Validates each spec against the schema and the checks the schema cannot express, then validates the
result of every stack overlay the spec declares. Every problem in a file is reported in one run, as
file:line:col with a code frame and a hint. \`-\` (or /dev/stdin) reads a spec from standard input,
reported as <stdin>.

Options:
  --stack NAME       validate only the result of this stack's overlay (dev, staging, prod, ...)
  --overlay FILE     apply this YAML merge patch on top (after the stack's inline overlay)
  --resolved         print the fully defaulted spec of each valid file
  --format FORMAT    text (default) or json, for machines
  --no-color         plain output (also when NO_COLOR is set or output is not a terminal)
  --debug            print stack traces of internal errors

Exit codes: 0 valid (warnings allowed), 1 errors found, 2 usage error, 3 internal error.`,
    options: {
      ...common,
      stack: { type: 'string' },
      overlay: { type: 'string' },
      resolved: { type: 'boolean' },
      format: { type: 'string', default: 'text' },
    },
    allowPositionals: true,
    run: async (...a) => (await import('./validate.ts')).runValidate(...a),
  },
  init: {
    summary: 'write a kiln.yaml to start from, with its editor schema line set',
    usage: 'kiln init [--from tiny] [--output kiln.yaml] [--force] [--schema auto|path|copy] [--json] | kiln init --list',
    help: `Writes one of the example specs of configs/ (default tiny) to --output (default kiln.yaml), with its
\`# yaml-language-server: $schema=...\` line pointing at the schema from where the file is written, so that
editors complete, document and check every field. Inside this kiln checkout, the line is a relative path
to schemas/kiln.schema.json. Outside it, the schema is copied beside the spec as kiln.schema.json and the
line says ./kiln.schema.json: it works on every clone and offline (an absolute path would break on other
machines). Refresh the copy after upgrading kiln with \`kiln schema --out kiln.schema.json\`.

Options:
  --from NAME        the example to start from (kiln init --list shows them)
  --output FILE      where to write it (default kiln.yaml)
  --force            overwrite FILE (and a kiln.schema.json beside it) if it exists
  --schema MODE      auto (default): as above; path: always refer to this checkout's schema file (relative
                     inside it, absolute outside); copy: always copy the schema beside the spec
  --list             list the examples
  --json             say what was written as JSON

Exit codes: 0 written, 1 the file exists (without --force) or cannot be written, 2 usage error.`,
    options: { ...common, from: { type: 'string' }, output: { type: 'string', short: 'o' }, force: { type: 'boolean', short: 'f' }, schema: { type: 'string' }, list: { type: 'boolean' }, json: { type: 'boolean' } },
    allowPositionals: true,
    run: async (...a) => (await import('./init.ts')).runInit(...a),
  },
  schema: {
    summary: 'print the JSON Schema of kiln.yaml',
    usage: 'kiln schema [--out FILE]',
    help: `Prints the JSON Schema (2020-12) that kiln.yaml follows, for editors and other tools. Editors that
use yaml-language-server pick it up from the first line of a spec:
  # yaml-language-server: $schema=<path to>/schemas/kiln.schema.json

Options:
  --out FILE   write it to FILE instead of standard output`,
    options: { ...common, out: { type: 'string' } },
    allowPositionals: false,
    run: async (...a) => (await import('./schema.ts')).runSchema(...a),
  },
  demo: {
    summary: 'validate and summarise every example spec in configs/',
    usage: 'kiln demo [--validate-only] [--format text|json] [--dir DIR]',
    help: `Validates every spec in the repository's configs/ directory, with each stack overlay, and prints
what each one would build: model size, tokens, GPUs, objective, eval gates and serving targets. Then
brings the local cluster up (building the toolchain on first use), runs \`pulumi up\` of the dev stack
(configs/tiny.yaml) against it, and shows what now exists and what to run next.

Options:
  --validate-only   stop after the specs
  --format FORMAT   text (default) or json (the specs only)
  --dir DIR         directory holding .kiln/ (default: current directory)`,
    options: { ...common, format: { type: 'string', default: 'text' }, 'validate-only': { type: 'boolean' }, dir: { type: 'string' } },
    allowPositionals: false,
    run: async (...a) => (await import('./demo.ts')).runDemo(...a),
  },
};

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
    const topic = name === 'help' ? rest[0] : undefined;
    const cmd = topic ? COMMANDS[topic] : undefined;
    io.out(cmd ? `Usage: ${cmd.usage}\n\n${cmd.help}` : mainHelp());
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === '-v' || name === '--version' || name === 'version') {
    io.out(pkg.version);
    return EXIT.ok;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    const near = Object.keys(COMMANDS).find((c) => c.startsWith(name.slice(0, 3)));
    io.err(`kiln: unknown command "${name}"${near ? `; did you mean "${near}"?` : ''}\nRun \`kiln --help\` for the list of commands.`);
    return EXIT.usage;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: cmd.options, allowPositionals: cmd.allowPositionals, strict: true });
  } catch (e) {
    io.err(`kiln ${name}: ${(e as Error).message.replace(/\. To specify a positional.*$/s, '')}\nUsage: ${cmd.usage}`);
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
