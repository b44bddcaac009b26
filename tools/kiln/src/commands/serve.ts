/** `kiln serve`: a real Triton server on this machine for an export's model repository (services/trainer/scripts/serve.mjs). */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { common, type Command } from '../command.ts';
import { EXIT, UsageError, type Io } from '../io.ts';
import { intOption } from '../options.ts';

/** services/trainer/scripts/serve.mjs in this checkout. */
export const SERVE_SCRIPT = fileURLToPath(new URL('../../../../services/trainer/scripts/serve.mjs', import.meta.url));

export const command: Command = {
  usage: 'kiln serve --model DIR [--port N] [--target NAME] [--host H] [--threads N] [--json]',
  help: `Serves an exported model with a real Triton Inference Server (tritonserver 2.51 from nvidia-pytriton,
python backend, CPU or GPU) and stays in the foreground until SIGTERM or Ctrl-C. The model answers
POST <endpoint>/v2/models/ensemble/generate and /generate_stream (kiln's protocol: docs/serving.md).

DIR is kiln export's output folder (the repository of its first python target is served, or --target's)
or a model repository itself (a folder of <model>/config.pbtxt). Only the python backend runs here: a vllm
or tensorrtllm repository needs NVIDIA's Triton image with that backend, on a GPU.
The first run makes the serving environment (services/trainer/scripts/serve-env.mjs; about a minute).

Options:
  --model DIR       an export's output folder or a model repository (required)
  --port N          the HTTP port (default: a free one)
  --target NAME     which target's repository of the export (default: the first python one)
  --host H          the address to listen on (default 127.0.0.1)
  --threads N       PyTorch threads per model instance (OMP_NUM_THREADS; default PyTorch's: one per core).
                    On a small, busy CPU machine 1 is many times faster (docs/serving.md)
  --json            print one line: {url, model, repository, target, grpc, metrics, pid}

Exit codes: 0 stopped by SIGTERM or Ctrl-C, 1 the server failed, 2 usage error or a folder it cannot serve.`,
  options: {
    ...common,
    model: { type: 'string' },
    port: { type: 'string' },
    target: { type: 'string' },
    host: { type: 'string' },
    threads: { type: 'string' },
    json: { type: 'boolean' },
  },
  allowPositionals: false,
  run: runServe,
};

interface Triton {
  readonly url: string;
  readonly grpcUrl: string;
  readonly metricsUrl: string;
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: string | null }>;
  stop(): Promise<void>;
}
interface ServeModule {
  startTriton(opts: { repository: string; httpPort?: number; host?: string; threads?: number; log?: (line: string) => void }): Promise<Triton>;
  MODEL_NAME: string;
}

/** The backends of a model repository's models (`backend: "…"` or `platform: "…"` of each config.pbtxt). */
export function repositoryBackends(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names.sort()) {
    const config = join(dir, name, 'config.pbtxt');
    if (!existsSync(config)) continue;
    const text = readFileSync(config, 'utf8');
    const backend = /^\s*backend:\s*"([^"]+)"/m.exec(text)?.[1] ?? /^\s*platform:\s*"([^"]+)"/m.exec(text)?.[1] ?? 'unknown';
    out.set(name, backend);
  }
  return out;
}

const GPU_ONLY = (backends: Iterable<string>) => [...new Set(backends)].filter((b) => b !== 'python' && b !== 'ensemble');

/** The repository to serve: DIR itself, or the export's `--target` / first python target's folder. */
export function pickRepository(dir: string, target: string | undefined): { repository: string; target: string | null } {
  if (!existsSync(dir)) throw new UsageError(`--model ${dir}: no such folder`);
  const own = repositoryBackends(dir);
  if (own.size && target === undefined) {
    const gpu = GPU_ONLY(own.values());
    if (gpu.length) throw new UsageError(`${dir} is a ${gpu.join('/')} repository: this Triton has only the python backend (run it in NVIDIA's Triton image with the ${gpu[0]} backend, on a GPU)`);
    return { repository: dir, target: null };
  }
  const repos = readdirSync(dir)
    .sort()
    .map((name) => ({ name, backends: repositoryBackends(join(dir, name)) }))
    .filter((r) => r.backends.size);
  if (!repos.length) throw new UsageError(`${dir} is neither an export's output (hf/, <target>/) nor a model repository (<model>/config.pbtxt)`);
  if (target !== undefined) {
    const hit = repos.find((r) => r.name === target);
    if (!hit) throw new UsageError(`--target ${target}: ${dir} has the repositories ${repos.map((r) => r.name).join(', ')}`);
    const gpu = GPU_ONLY(hit.backends.values());
    if (gpu.length) throw new UsageError(`target ${target} is a ${gpu.join('/')} repository: this Triton has only the python backend (run it in NVIDIA's Triton image with the ${gpu[0]} backend, on a GPU)`);
    return { repository: join(dir, target), target };
  }
  const python = repos.filter((r) => !GPU_ONLY(r.backends.values()).length);
  const pick = python.find((r) => r.name !== 'eval') ?? python[0];
  if (!pick) {
    const list = repos.map((r) => `${r.name} (${GPU_ONLY(r.backends.values()).join('/')})`).join(', ');
    throw new UsageError(`${dir} has no python-backend repository (${list}): this Triton has only the python backend; vllm and tensorrtllm need NVIDIA's Triton image on a GPU`);
  }
  return { repository: join(dir, pick.name), target: pick.name };
}

export async function runServe(values: Record<string, unknown>, _pos: string[], io: Io): Promise<number> {
  if (values.model === undefined) throw new UsageError('kiln serve needs --model DIR');
  const port = intOption('port', values.port, 0);
  if (port !== undefined && port > 65535) throw new UsageError(`--port takes a port number up to 65535, not ${port}`);
  const threads = intOption('threads', values.threads, 1);
  const { repository, target } = pickRepository(resolve(String(values.model)), values.target as string | undefined);
  const serve = (await import(pathToFileURL(SERVE_SCRIPT).href)) as ServeModule;
  let signalled: (s: string) => void = () => {};
  const signal = new Promise<string>((r) => (signalled = r));
  const onSignal = (s: NodeJS.Signals) => signalled(s);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    let triton: Triton;
    try {
      triton = await serve.startTriton({ repository, httpPort: port, host: values.host as string | undefined, threads, log: values.debug ? (l) => io.err(`tritonserver: ${l}`) : undefined });
    } catch (e) {
      io.err(`kiln serve: ${(e as Error).message}`);
      return EXIT.invalid;
    }
    const model = serve.MODEL_NAME;
    if (values.json) io.out(JSON.stringify({ url: triton.url, model, repository, target, grpc: triton.grpcUrl, metrics: triton.metricsUrl, pid: triton.pid }));
    else {
      io.out(`Triton ready: ${triton.url}  (model ${model}${target ? `, target ${target}` : ''}; ${repository})`);
      io.out(`  curl -s ${triton.url}/v2/models/${model}/generate -d '{"text_input": "def add(a, b):", "max_tokens": 32}'`);
      io.out('Ctrl-C stops it.');
    }
    const r = await Promise.race([triton.exited.then((x) => ({ crashed: x })), signal.then(() => ({ crashed: undefined }))]);
    await triton.stop();
    if (r.crashed) {
      io.err(`kiln serve: tritonserver exited on its own (${r.crashed.signal ?? `code ${r.crashed.code}`}); run with --debug for its log`);
      return EXIT.invalid;
    }
    if (!values.json) io.err('kiln serve: stopped');
    return EXIT.ok;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
