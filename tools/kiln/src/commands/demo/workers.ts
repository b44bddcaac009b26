/**
 * The last part of `kiln demo`: on the local cluster the stage pods are simulated, so the demo also runs two
 * stage workers for real on this machine: data prep over this repository's own TypeScript (two shards, near
 * dedup across them), and the eval runner's sandbox on HumanEval samples (right, wrong and early-exiting).
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { EXIT, type Io } from '../../io.ts';

const REPO = fileURLToPath(new URL('../../../../../', import.meta.url));
const HUMANEVAL = join(REPO, 'data/humaneval/HumanEval.jsonl.gz');

/** Standard output indented, standard error (progress) and hints for people running it by hand dropped. */
function quiet(io: Io): Io {
  const out = (t: string) => {
    const kept = t.split('\n').filter((l) => !l.includes('near dedup spans shards'));
    if (kept.some((l) => l.trim())) io.out(kept.join('\n').replace(/^/gm, '    '));
  };
  return { out, err: () => {}, isTTY: io.isTTY, color: io.color };
}

export async function showWorkers(root: string, io: Io, bold: (s: string) => string): Promise<number> {
  const dir = join(root, '.kiln', 'demo');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const q = quiet(io);
  const { runData } = await import('../data.ts');
  const { runEval } = await import('../eval.ts');

  io.out(`\n${bold('The stage workers, for real on this machine')} (the cluster above only simulates its pods)`);
  io.out(`  kiln data prep --input libs services --shard i/2, then kiln data dedup: this repository's own code`);
  const data = join(dir, 'data');
  for (const i of [0, 1]) {
    const code = await runData({ input: [join(REPO, 'libs'), join(REPO, 'services')], shard: `${i}/2`, output: data }, ['prep'], q);
    if (code !== EXIT.ok) return code;
  }
  const dedup = await runData({ output: data, shards: '2' }, ['dedup'], q);
  if (dedup !== EXIT.ok) return dedup;
  io.out(`    reports: ${join(data, 'shard-00000.report.html')}, ${join(data, 'shard-00001.report.html')}`);

  // Four samples per problem: the canonical solution twice, a wrong answer, and one that exits 0 before the checks.
  const problems = gunzipSync(readFileSync(HUMANEVAL)).toString('utf8').trim().split('\n').slice(0, 20).map((l) => JSON.parse(l) as { task_id: string; canonical_solution: string });
  const samples = join(dir, 'samples.jsonl');
  writeFileSync(samples, problems.flatMap((p) => [p.canonical_solution, '    return None\n', '    import sys; sys.exit(0)\n', p.canonical_solution].map((completion) => JSON.stringify({ task_id: p.task_id, completion }))).join('\n') + '\n');
  io.out(`\n  kiln eval score: HumanEval's first 20 problems, 4 samples each (2 right, 1 wrong, 1 exiting before its checks), sandboxed`);
  const ev = await runEval({ benchmark: HUMANEVAL, samples, k: '1,2', output: join(dir, 'eval') }, ['score'], q);
  if (ev !== EXIT.ok) return ev;
  io.out(`    report: ${join(dir, 'eval', 'report.html')}`);
  return EXIT.ok;
}
