import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile, stageOf } from '@kiln/plan';
import { load } from '@kiln/spec';
import { afterAll, describe, expect, it } from 'vitest';
import { parseProgressLine } from '@kiln/stage';
import { capSteps, formatProgress, localTrainConfig } from '../src/commands/train.ts';

const bin = fileURLToPath(new URL('../bin/kiln.js', import.meta.url));
const TINY = fileURLToPath(new URL('../../../configs/tiny.yaml', import.meta.url));
const { FORCE_COLOR: _ignored, ...quiet } = process.env;
const env = (extra: Record<string, string> = {}) => ({ ...quiet, NO_COLOR: '1', KILN_DEVICE: 'cpu', ...extra });
const kiln = (...args: string[]) => {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: env(), timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

const tmp = mkdtempSync(join(tmpdir(), 'kiln-train-cmd-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('kiln train, kiln export and kiln generate: what the CLI checks before Python starts', () => {
  // Packed data whose manifest names a tokenizer that is not on this machine (moved, or packed elsewhere).
  const elsewhere = join(tmp, 'packed-elsewhere');
  mkdirSync(elsewhere, { recursive: true });
  writeFileSync(join(elsewhere, 'shard-00000.json'), JSON.stringify({ kind: 'kiln.packed-shard/v1', seq_len: 64, tokenizer: { path: '/nowhere/tok', digest: 'sha256:0' } }));
  const t = ['train', '--spec', TINY, '--data', elsewhere, '--output', join(tmp, 'o')];
  it.each([
    [['train'], /kiln train needs --spec FILE, --data DIR, --output DIR/],
    [[...t, '--max-steps', '0'], /--max-steps takes a whole number of at least 1, not "0"/],
    [[...t, '--device', 'tpu'], /--device is one of cpu, cuda, not "tpu"/],
    [[...t, '--max-stpes', '3'], /Unknown option '--max-stpes'; did you mean "--max-steps"/],
    [['train', '--spec', TINY, '--data', tmp, '--output', join(tmp, 'o')], /holds no packed data .*run kiln pack/],
    [t, /the tokenizer .* was packed with \(\/nowhere\/tok, from .*shard-00000\.json\) is not on this machine: give --tokenizer DIR/],
    [[...t, '--tokenizer', tmp], /--tokenizer .* holds no tokenizer\.json/],
    [['export', '--output', 'o'], /kiln export needs --checkpoint DIR/],
    [['export', '--checkpoint', 'c', '--output', 'o', '--dtype', 'fp8'], /--dtype is one of fp32, fp16, bf16, not "fp8"/],
    [['generate', '--prompt', 'x'], /kiln generate needs --model DIR/],
    [['generate', '--model', 'm', '--prompt', 'x', '--temperature=-1'], /--temperature takes a number at least 0, not "-1"/],
    [['generate', '--model', 'm', '--prompt', 'x', '--top-p', '0'], /--top-p takes a number above 0 to 1, not "0"/],
    [['generate', '--model', 'm', '--prompt', 'x', '--max-new-tokens', 'many'], /--max-new-tokens takes a whole number of at least 1, not "many"/],
    [['generate', '--model', 'm', '--prompt', 'x', '--device', 'tpu'], /--device is one of cpu, cuda/],
    [['generate', '--model', 'm', '--prompt', 'x', '--stop', ''], /--stop takes a non-empty text/],
  ])('kiln %j is a usage error (exit 2) naming the flag, before Python starts', (args, message) => {
    const r = kiln(...args);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(message);
    expect(r.err).toMatch(/^Usage: kiln (train|export|generate)/m);
  });

  it('--help describes each command and its exit codes', () => {
    for (const cmd of ['train', 'export', 'generate']) {
      const r = kiln(cmd, '--help');
      expect(r.code).toBe(0);
      expect(r.out).toMatch(new RegExp(`^Usage: kiln ${cmd} `));
      expect(r.out).toMatch(/Exit codes: 0 /);
    }
    expect(kiln('--help').out).toMatch(/^ {2}train +train the spec's model here/m);
  });
});

describe("kiln train's stage config: the plan's, pointed here", () => {
  const spec = load(TINY, { stack: 'dev' }).spec!;
  const plan = stageOf(compile(spec), 'train')!.config;
  const training = plan.training as typeof plan.training & { steps: number; schedule: { warmup: number }; checkpoint: { interval: number } };

  it('--max-steps cuts the recipe short: steps, and budget, warmup and checkpoint interval in the same proportion', () => {
    expect(training.steps).toBe(123); // 500K tokens of 16 x 256
    const cut = capSteps(training, 4);
    expect(cut.steps).toBe(4);
    expect(cut.token_budget).toBe(Math.round((500_000 * 4) / 123));
    expect(cut.schedule.warmup).toBe(Math.round((training.schedule.warmup * 4) / 123));
    expect(cut.checkpoint.interval).toBe(Math.round((training.checkpoint.interval * 4) / 123));
    // Everything else is the plan's.
    expect({ ...cut, steps: 0, token_budget: 0, schedule: {}, checkpoint: {} }).toEqual({ ...training, steps: 0, token_budget: 0, schedule: {}, checkpoint: {} });
    expect(capSteps(training, 123)).toBe(training);
    expect(capSteps(training, 1000)).toBe(training);
    expect(capSteps(training, undefined)).toBe(training);
  });

  it('data, tokenizer and checkpoints become file:// folders; resume is the envelope flag', () => {
    const c = localTrainConfig(plan, { data: 'work/packed', tokenizer: '/abs/tok', output: 'ckpt', resume: true });
    expect(c.data).toBe(`file://${join(process.cwd(), 'work/packed')}/`);
    expect(c.tokenizer).toBe('file:///abs/tok/');
    expect(c.checkpoints).toBe(`file://${join(process.cwd(), 'ckpt')}/`);
    expect(c.resume).toBe(true);
    expect(c.model).toEqual(plan.model);
    expect(c.training).toBe(plan.training);
  });

  it('draws a progress line as a bar with loss, speed and time left; other lines are not progress', () => {
    const line = '{"kind": "kiln.progress/v1", "progress": {"done": 5120, "total": 20480, "unit": "tokens"}, "step": 10, "steps": 40, "loss": 6.98, "lr": 0.0028, "grad_norm": 1.9, "tokens_per_s": 13844.7, "eta_s": 95.2}';
    expect(formatProgress(parseProgressLine(line)!)).toBe('step 10/40 [█████░░░░░░░░░░░░░░░] 25% 5.12K/20.5K tokens  loss 6.980  13.8K tokens/s  ETA 2m');
    expect(parseProgressLine('{"kind": "kiln.stage-manifest/v1"}')).toBeUndefined();
    expect(parseProgressLine('train: checkpoint step-00000002')).toBeUndefined();
  });
});

interface TrainResult {
  readonly exitCode: number;
  readonly resumedFrom: string | null;
  readonly curve: { step: number; loss: number; tokens_per_s: number }[];
  readonly summary: { metrics: Record<string, number>; artifacts: { uri: string }[]; resumedFrom: string | null };
}

// Each test runs the trainer's Python (torch and transformers load in 5-15 s each on 2 loaded cores), twice in some.
describe('kiln tokenizer train -> kiln pack -> kiln train -> kiln export -> kiln generate, through the trainer', { timeout: 240_000 }, () => {
  const stdlib = spawnSync('python3', ['-c', 'import sysconfig; print(sysconfig.get_paths()["stdlib"])'], { encoding: 'utf8' }).stdout.trim();
  const ckpt = join(tmp, 'ckpt');
  const packed = join(tmp, 'packed');
  const trainArgs = ['train', '--spec', TINY, '--stack', 'dev', '--data', packed, '--output', ckpt, '--max-steps', '4', '--json'];

  it('trains, stops cleanly on SIGINT with a checkpoint (exit 3), and the same command resumes from it to --max-steps', async () => {
    const tok = kiln('tokenizer', 'train', '--input', join(stdlib, 'json'), '--output', join(tmp, 'tok'), '--vocab-size', '1024', '--sample-size', '1MiB');
    expect(tok.code, tok.err).toBe(0);
    const pack = kiln('pack', '--tokenizer', join(tmp, 'tok'), '--input', join(stdlib, 'json'), '--output', packed, '--seq-len', '64', '--workers', '1');
    expect(pack.code, pack.err).toBe(0);

    // Ctrl-C: the stage (made to wait after step 2) gets the signal through kiln, saves step 2 and exits 3.
    const first = await new Promise<{ code: number | null; out: string; err: string }>((done) => {
      const child = spawn(process.execPath, [bin, ...trainArgs], { env: env({ KILN_TRAIN_HANG_AFTER_STEP: '2' }) });
      let out = '';
      let err = '';
      let sent = false;
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => {
        err += c.toString();
        if (!sent && err.includes('not making progress until a signal')) {
          sent = true;
          child.kill('SIGINT');
        }
      });
      child.on('close', (code) => done({ code, out, err }));
    });
    expect(first.code, first.err).toBe(3);
    expect(first.err).toMatch(/SIGINT: stopping at the end of this step, with a checkpoint/);
    const stopped = JSON.parse(first.out) as TrainResult;
    expect(stopped.exitCode).toBe(3);
    expect(stopped.curve.map((p) => p.step)).toEqual([1, 2]);
    expect(stopped.curve.every((p) => Number.isFinite(p.loss) && p.tokens_per_s > 0)).toBe(true);
    expect(JSON.parse(readFileSync(join(ckpt, 'latest'), 'utf8'))).toMatchObject({ step: 2, path: 'step-00000002' });

    const again = kiln(...trainArgs);
    expect(again.code, again.err).toBe(0);
    expect(again.err).toMatch(/resuming from step 2 \(.*step-00000002\) of 4/);
    const resumed = JSON.parse(again.out) as TrainResult;
    expect(resumed.curve.map((p) => p.step)).toEqual([3, 4]);
    expect(resumed.summary.metrics.steps).toBe(4);
    expect(resumed.summary.metrics.steps_this_attempt).toBe(2);
    expect(resumed.summary.resumedFrom).toBe('step-00000002');
    expect(resumed.summary.artifacts[0]!.uri).toBe(`file://${ckpt}/step-00000004/`);
    expect(existsSync(join(ckpt, 'step-00000004', 'meta.json'))).toBe(true);
  });

  it('exports the checkpoint alone (it names its model and tokenizer) as a Hugging Face folder', () => {
    const r = kiln('export', '--checkpoint', ckpt, '--output', join(tmp, 'model'), '--dtype', 'fp32', '--json');
    expect(r.code, r.err).toBe(0);
    const manifest = JSON.parse(r.out) as { counts: Record<string, number>; artifacts: { name: string }[] };
    expect(manifest.counts.step).toBe(4);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) expect(existsSync(join(tmp, 'model', f)), f).toBe(true);
    expect(JSON.parse(readFileSync(join(tmp, 'model', 'config.json'), 'utf8'))).toMatchObject({ architectures: ['LlamaForCausalLM'], torch_dtype: 'float32', hidden_size: 128 });

    const none = kiln('export', '--checkpoint', join(tmp, 'packed'), '--output', join(tmp, 'm2'));
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/holds no checkpoint/);
    expect(none.err).not.toMatch(/Traceback/);
  });

  it('completes a prompt with the export: --json is one kiln.generate/v1 object, plain mode streams the same text', () => {
    const model = join(tmp, 'model');
    const args = ['generate', '--model', model, '--prompt', 'def main(', '--max-new-tokens', '6', '--device', 'cpu'];
    const r = kiln(...args, '--json');
    expect(r.code, r.err).toBe(0);
    const g = JSON.parse(r.out) as { kind: string; model: string; prompt: string; suffix: string | null; text: string; finish_reason: string; usage: { prompt_tokens: number; completion_tokens: number }; seconds: number };
    expect(g).toMatchObject({ kind: 'kiln.generate/v1', model, prompt: 'def main(', suffix: null });
    expect(g.usage.prompt_tokens).toBeGreaterThan(0);
    expect(g.usage.completion_tokens).toBeGreaterThan(0);
    expect(g.usage.completion_tokens).toBeLessThanOrEqual(6);
    expect(['length', 'stop']).toContain(g.finish_reason);
    // Greedy (temperature 0 by default): the streamed text is the JSON's, byte for byte, nothing added off a terminal.
    const streamed = kiln(...args);
    expect(streamed.code, streamed.err).toBe(0);
    expect(streamed.out).toBe(g.text);

    // This tokenizer has no FIM sentinels: infilling is refused in one line, exit 2.
    const fim = kiln(...args, '--suffix', '    return 0\n');
    expect(fim.code).toBe(2);
    expect(fim.err.trim().split('\n')).toHaveLength(1);
    expect(fim.err).not.toMatch(/Traceback/);
  });
});
