/**
 * The `local` stack's stage chain, run here without a cluster: compiles configs/tiny.yaml --stack local, writes
 * each stage's mounted config as the controller would (libs/k8s stageConfig, upstream outputs from the previous
 * stages' summaries), and runs each stage's command as its pod would (KILN_STORAGE_ROOT standing for the
 * /artifacts claim, the checkout as working directory, one process per shard). The eval stage queries a
 * tritonserver started on the export's eval repository. Prints each stage's wall time and summary.
 *
 *   node bench/local-chain.ts [--work DIR] [--from STAGE]
 *
 * It asserts nothing; the real thing is the cluster (`npm run demo`). Needs the trainer and serve environments.
 */
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { compileFile, topologicalOrder, type Stage } from '@kiln/plan';
import { stageCommand, stageConfig } from '@kiln/k8s';

/** Where a pod finds a pvc:// artifact (libs/k8s storage.ts podPath). */
const podPath = (uri: string) => uri.replace(/^pvc:\/\/[^/]+\/?/, '/artifacts/');

const REPO = fileURLToPath(new URL('../', import.meta.url));
const { values } = parseArgs({ options: { work: { type: 'string' }, from: { type: 'string' } } });
const work = values.work ?? join(REPO, '.kiln', 'local-chain');

function linkStdlib(): void {
  const link = join(REPO, '.kiln', 'corpora', 'python-stdlib');
  if (existsSync(link)) return;
  mkdirSync(join(REPO, '.kiln', 'corpora'), { recursive: true });
  symlinkSync(String(execFileSync('python3', ['-c', 'import sysconfig;print(sysconfig.get_paths()["stdlib"])'])).trim(), link);
}

const r = compileFile(join(REPO, 'configs/tiny.yaml'), { stack: 'local' });
if (!r.plan) throw new Error(r.diagnostics.map((d) => d.message).join('\n'));
const plan = r.plan;
const root = join(work, 'artifacts');
if (!values.from) rmSync(work, { recursive: true, force: true });
mkdirSync(root, { recursive: true });
linkStdlib();
const trainerEnv = String(execFileSync('node', [join(REPO, 'services/trainer/scripts/env.mjs'), 'path'])).trim();
const host = (p: string) => join(root, podPath(p).replace(/^\/artifacts\/?/, ''));

/** The argv of a stage's pod, with its image's entry point resolved as the local node resolves it. */
function argv(stage: Stage, config: string): string[] {
  const cmd = stageCommand(stage).map((a) => (a.endsWith('stage.json') ? config : a));
  if (cmd[0] === 'python') return [join(trainerEnv, 'bin', 'python'), ...cmd.slice(1)];
  return [join(REPO, 'node_modules/.bin', cmd[0]!), ...cmd.slice(1)];
}

async function run(args: string[], env: Record<string, string>, log: string): Promise<number> {
  return new Promise((res) => {
    const c = spawn(args[0]!, args.slice(1), { cwd: REPO, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d) => (out += d));
    c.stderr.on('data', (d) => (out += d));
    c.on('exit', (code) => {
      writeFileSync(log, out);
      res(code ?? 1);
    });
  });
}

type Summary = Record<string, unknown>;
const summaries = new Map<string, Summary | null>();
let triton: { url: string; stop: () => Promise<void> } | undefined;
let started = !values.from;
const total = Date.now();
for (const stage of topologicalOrder(plan.stages)) {
  if (!started && stage.name === values.from) started = true;
  const dir = join(work, 'stages', stage.name);
  mkdirSync(dir, { recursive: true });
  if (!started) {
    summaries.set(stage.name, JSON.parse(readFileSync(join(dir, 'summary-0.json'), 'utf8')));
    continue;
  }
  const upstream = Object.fromEntries(stage.dependsOn.map((d) => [d, { summary: summaries.get(d) ?? null, manifest: plan.stages.find((s) => s.name === d)!.manifest }]));
  const config = stageConfig(plan, stage, { upstream: upstream as never }) as unknown as Record<string, unknown>;
  if (stage.kind === 'eval') {
    const { startTriton } = await import('../services/trainer/scripts/serve.mjs' as string);
    triton = await startTriton({ repository: host(plan.evalModel.modelRepository), threads: 2 });
    config.endpoint = triton!.url;
  }
  const file = join(dir, 'stage.json');
  writeFileSync(file, JSON.stringify(config, null, 2));
  const shards = stage.parallelism.kind === 'shards' ? stage.parallelism.shards : 1;
  const t0 = Date.now();
  const codes = await Promise.all(
    Array.from({ length: shards }, (_, i) =>
      run(argv(stage, file), { KILN_STORAGE_ROOT: root, KILN_STORAGE_PREFIX: plan.storagePrefix, KILN_RUN_ID: plan.runId, KILN_STAGE: stage.name, KILN_ATTEMPT: '1', JOB_COMPLETION_INDEX: String(i), KILN_TERMINATION_LOG: join(dir, `summary-${i}.json`), PYTHONPATH: join(REPO, 'services/trainer/src') }, join(dir, `log-${i}.txt`)),
    ),
  );
  const secs = (Date.now() - t0) / 1000;
  const text = (() => {
    try {
      return readFileSync(join(dir, 'summary-0.json'), 'utf8');
    } catch {
      return '';
    }
  })();
  const summary = text ? (JSON.parse(text) as Summary) : null;
  summaries.set(stage.name, summary);
  console.log(`${stage.name.padEnd(15)} ${secs.toFixed(1).padStart(7)} s  exit ${codes.join(',')}  ${JSON.stringify((summary as { metrics?: unknown } | null)?.metrics ?? summary).slice(0, 300)}`);
  if (codes.some((c) => c !== 0)) {
    console.log(`  log: ${join(dir, 'log-0.txt')}`);
    break;
  }
}
await triton?.stop();
console.log(`total ${((Date.now() - total) / 1000).toFixed(1)} s; artifacts under ${root}`);
