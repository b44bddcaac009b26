/**
 * `kiln train`: the plan's train stage on this machine (a laptop, one GPU box), on `kiln pack`'s output, with a
 * progress bar drawn from the stage's `kiln.progress/v1` lines. The stage config is the plan's own (libs/plan
 * compiles it from the spec), pointed at local folders; one process, so `python -m kiln_trainer.train` runs
 * without torchrun's launcher.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { compile, stageOf } from '@kiln/plan';
import { formatCount, formatDiagnostics, load } from '@kiln/spec';
import { parseProgressLine, type ProgressLine, type StageSummary, type TrainConfig } from '@kiln/stage';
import { common, type Command } from '../command.ts';
import { EXIT, UsageError, type Io } from '../io.ts';
import { enumOption, intOption } from '../options.ts';
import { progressBar, timeLeft } from '../render/table.ts';
import { runTrainer } from '../trainer.ts';

export const command: Command = {
  usage: 'kiln train --spec kiln.yaml [--stack S] --data DIR --output DIR [--tokenizer DIR] [--max-steps N] [--device cpu|cuda] [--json]',
  help: `Trains the spec's model on kiln pack's output, here: the plan's train stage (the same config the
pipeline's pod would mount, compiled from the spec and its stack) in one process, on the GPU when there is one.
A progress bar shows tokens done of the total, the loss, tokens per second and the time left; the stage's
messages (checkpoints, warnings) are passed through.

Options:
  --spec FILE        the kiln.yaml whose model, objective and training recipe to use (required)
  --stack NAME       apply this stack's overlay first
  --data DIR         kiln pack's output folder (required)
  --output DIR       where checkpoints go (required). Run the same command again with the same --output to
                     resume from its latest checkpoint (keep --max-steps: it shapes the learning-rate schedule)
  --tokenizer DIR    the tokenizer the data was packed with (default: the one its manifest records, when that
                     folder is still there)
  --max-steps N      stop after N optimizer steps: the recipe cut short, its token budget, warmup and checkpoint
                     interval shrunk in the same proportion (default: the plan's steps)
  --device D         cpu or cuda (default: cuda when PyTorch sees a GPU)
  --json             print one JSON object at the end: the loss curve (step, loss, tokens_per_s of every
                     progress line) and the stage's summary

Ctrl-C (or SIGTERM) stops at the end of the step in progress and saves a checkpoint first; the same command
resumes from it. Then: kiln export --checkpoint <output> --output model/

The first run makes the trainer's Python environment (a few minutes, once per lock file).

Exit codes: 0 done, 1 invalid spec or the stage crashed, 2 usage or stage config error (data, tokenizer or
checkpoint it cannot use) or a diverged loss, 3 stopped by a signal after saving a checkpoint.`,
  options: {
    ...common,
    spec: { type: 'string' },
    stack: { type: 'string' },
    data: { type: 'string' },
    output: { type: 'string' },
    tokenizer: { type: 'string' },
    'max-steps': { type: 'string' },
    device: { type: 'string' },
    json: { type: 'boolean' },
  },
  allowPositionals: false,
  run: runTrain,
};

type Training = TrainConfig['training'] & { readonly steps?: number; readonly schedule?: { readonly warmup?: unknown }; readonly checkpoint?: { readonly interval?: unknown } };

/**
 * The plan's training section cut to `maxSteps` optimizer steps: `steps`, and the token counts that scale with the
 * run (budget, warmup, checkpoint interval) in the same proportion, so a short run has the recipe's shape. Unchanged
 * when `maxSteps` is not below the plan's steps.
 */
export function capSteps<T extends Training>(training: T, maxSteps: number | undefined): T {
  const planned = training.steps;
  if (maxSteps === undefined || planned === undefined || maxSteps >= planned) return training;
  const share = maxSteps / planned;
  const scaled = (v: unknown): unknown => (typeof v === 'number' && v > 0 ? Math.max(1, Math.round(v * share)) : v);
  return {
    ...training,
    steps: maxSteps,
    token_budget: scaled(training.token_budget) as number,
    ...(training.schedule ? { schedule: { ...training.schedule, warmup: scaled(training.schedule.warmup) } } : {}),
    ...(training.checkpoint ? { checkpoint: { ...training.checkpoint, interval: scaled(training.checkpoint.interval) } } : {}),
  };
}

const fileUri = (dir: string): string => `file://${resolve(dir).replace(/\/*$/, '/')}`;

/** The train stage's config for a run here: the plan's, its data, tokenizer and checkpoints local folders. */
export function localTrainConfig(plan: TrainConfig, where: { readonly data: string; readonly tokenizer: string; readonly output: string; readonly maxSteps?: number; readonly resume: boolean }): TrainConfig & { readonly resume: boolean } {
  return {
    ...plan,
    training: capSteps(plan.training as Training, where.maxSteps),
    data: fileUri(where.data),
    tokenizer: fileUri(where.tokenizer),
    checkpoints: fileUri(where.output),
    // The envelope's flag: pick up the latest checkpoint even when the spec turns autoresume off.
    resume: where.resume,
  };
}

/** What kiln pack's first shard manifest says of the tokenizer it packed with (the stage checks the rest). */
interface PackedManifest {
  readonly tokenizer?: { readonly path?: string; readonly digest?: string };
}

function packedManifest(dir: string): { file: string; manifest: PackedManifest } | undefined {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /^shard-\d{5}\.json$/.test(n)).sort();
  } catch {
    return undefined;
  }
  const file = names[0] && join(dir, names[0]);
  return file ? { file, manifest: JSON.parse(readFileSync(file, 'utf8')) as PackedManifest } : undefined;
}

/** `step 10/40 [█████░░░░░░░░░░░░░░░] 25% 10.2K/41K tokens  loss 6.980  13.8K tokens/s  ETA 3s` (MFU on a known GPU). */
export function formatProgress(p: ProgressLine): string {
  const loss = p.loss.toFixed(3);
  const mfu = p.mfu === undefined ? '' : `  MFU ${(p.mfu * 100).toFixed(1)}%`;
  return `step ${p.step}/${p.steps} ${progressBar(p.progress)}  loss ${loss}  ${formatCount(Math.round(p.tokens_per_s))} tokens/s  ETA ${timeLeft(p.eta_s)}${mfu}`;
}

function latestStep(output: string): { step: number; path: string } | undefined {
  try {
    const v = JSON.parse(readFileSync(join(output, 'latest'), 'utf8')) as { step: number; path: string };
    return typeof v.step === 'number' ? v : undefined;
  } catch {
    return undefined;
  }
}

export async function runTrain(values: Record<string, unknown>, _pos: string[], io: Io): Promise<number> {
  const missing = [values.spec === undefined ? '--spec FILE' : '', values.data === undefined ? '--data DIR' : '', values.output === undefined ? '--output DIR' : ''].filter(Boolean);
  if (missing.length) throw new UsageError(`kiln train needs ${missing.join(', ')}`);
  const maxSteps = intOption('max-steps', values['max-steps'], 1);
  const device = enumOption('device', values.device, ['cpu', 'cuda']);
  const data = String(values.data);
  const output = String(values.output);
  const specFile = String(values.spec);

  const packed = packedManifest(data);
  if (!packed) throw new UsageError(`--data ${data} holds no packed data (kiln pack's shard-NNNNN.json manifests): run kiln pack --output ${data} first`);
  let tokenizer = values.tokenizer as string | undefined;
  if (tokenizer === undefined) {
    const recorded = packed.manifest.tokenizer?.path;
    if (!recorded || !existsSync(join(recorded, 'tokenizer.json'))) {
      throw new UsageError(`the tokenizer ${data} was packed with (${recorded ?? 'none recorded'}, from ${packed.file}) is not on this machine: give --tokenizer DIR`);
    }
    tokenizer = recorded;
  } else if (!existsSync(join(tokenizer, 'tokenizer.json'))) {
    throw new UsageError(`--tokenizer ${tokenizer} holds no tokenizer.json`);
  }

  const r = load(specFile, values.stack !== undefined ? { stack: String(values.stack) } : {});
  if (!r.spec) {
    io.err(formatDiagnostics(r.diagnostics, { sources: r.sources, color: io.color }));
    return EXIT.invalid;
  }
  // The plan's own train stage: the config a pod of the pipeline would mount, before its storage is pointed here.
  const stage = stageOf(compile(r.spec), 'train');
  if (!stage) throw new Error('the plan has no train stage');
  const resumed = latestStep(output);
  const config = localTrainConfig(stage.config, { data, tokenizer, output, ...(maxSteps !== undefined ? { maxSteps } : {}), resume: resumed !== undefined });
  const json = values.json === true;

  const tmp = mkdtempSync(join(tmpdir(), 'kiln-train-'));
  try {
    const configFile = join(tmp, 'train.json');
    const summaryFile = join(tmp, 'summary.json');
    writeFileSync(configFile, JSON.stringify(config, null, 2) + '\n');
    const steps = (config.training as Training).steps;
    io.err(
      resumed
        ? `kiln train: resuming from step ${resumed.step} (${join(output, resumed.path)})${steps !== undefined ? ` of ${steps}` : ''}${steps !== undefined && resumed.step >= steps ? ': already done (a larger --max-steps trains on)' : ''}`
        : `kiln train: ${r.spec.metadata.name}${r.spec.stack ? ` (stack ${r.spec.stack})` : ''}, ${formatCount(r.spec.model.parameters)} parameters, ${steps ?? '?'} steps${maxSteps !== undefined && steps === maxSteps ? ` (--max-steps; the plan has ${(stage.config.training as Training).steps})` : ''}, checkpoints in ${output}`,
    );

    const curve: { step: number; loss: number | null; tokens_per_s: number }[] = [];
    let bar = '';
    const draw = io.status;
    const code = await runTrainer('train', ['--config', configFile], io, {
      env: { ...process.env, KILN_TERMINATION_LOG: summaryFile, ...(device ? { KILN_DEVICE: device } : {}) },
      onStdout: (line) => {
        const p = parseProgressLine(line);
        if (!p) return io.err(line); // standard output is kept for the result
        curve.push({ step: p.step, loss: p.loss, tokens_per_s: p.tokens_per_s });
        bar = formatProgress(p);
        if (draw) draw(bar);
        else io.err(bar);
      },
      onStderr: (line) => {
        if (draw && bar) draw('');
        io.err(line);
        if (draw && bar) draw(bar);
      },
      forwardSignals: true,
      onSignal: (signal) => {
        if (draw && bar) draw('');
        io.err(`kiln train: ${signal}: stopping at the end of this step, with a checkpoint`);
      },
    });
    if (draw && bar) {
      draw('');
      io.err(bar);
    }
    let summary: StageSummary | null = null;
    try {
      summary = JSON.parse(readFileSync(summaryFile, 'utf8')) as StageSummary;
    } catch {
      summary = null; // a crash writes none
    }
    if (json) {
      io.out(JSON.stringify({ kind: 'kiln.train/v1', exitCode: code, spec: specFile, stack: r.spec.stack ?? null, data: resolve(data), tokenizer: resolve(tokenizer), output: resolve(output), resumedFrom: resumed ? resumed.path : null, curve, summary }, null, 2));
    } else if (code === EXIT.ok && summary?.metrics) {
      const m = summary.metrics;
      const artifact = summary.artifacts?.[0];
      io.out(`trained ${m.steps} steps (${formatCount(m.tokens ?? 0)} tokens${m.steps_this_attempt !== undefined && m.steps_this_attempt !== m.steps ? `, ${m.steps_this_attempt} this run` : ''}): loss ${Number(m.loss).toFixed(3)}${m.steps_this_attempt === 0 ? '' : `, ${formatCount(Math.round(m.tokens_per_s ?? 0))} tokens/s`}`);
      if (artifact) io.out(`checkpoint: ${artifact.uri.replace(/^file:\/\//, '')}`);
      io.out(`next: kiln export --checkpoint ${output} --output <model dir>`);
    }
    if (code === 3) io.err(`kiln train: stopped with a checkpoint; run the same command again to resume`);
    return code;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
