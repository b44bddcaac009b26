import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Decontaminator, loadHumanEval } from '../src/decontaminate.ts';
import { walk } from '../src/read.ts';

const HUMANEVAL = fileURLToPath(new URL('../../../data/humaneval/HumanEval.jsonl.gz', import.meta.url));
const texts = loadHumanEval(HUMANEVAL);
const d = new Decontaminator(texts);
const problem = (n: number) => ({ prompt: texts[2 * n]!.text, solution: texts[2 * n + 1]!.text });

describe('decontamination against HumanEval', () => {
  it('loads all 164 problems, prompt and solution each', () => {
    expect(texts).toHaveLength(328);
    expect(texts[0]!.id).toBe('HumanEval/0:prompt');
    // A few canonical solutions are shorter than one n-gram and cannot be recognised.
    expect(d.size).toBeGreaterThan(300);
  });

  it('catches a file that pastes a prompt into other code, and names the problem', () => {
    const file = `import os\n\nCONFIG = {"a": 1}\n\n${problem(0).prompt}${problem(0).solution}\n\nif __name__ == "__main__":\n    print(has_close_elements([1.0, 2.0], 0.5))\n`;
    expect(d.check(file)).toMatchObject({ id: 'HumanEval/0:prompt' });
  });

  it('catches a solution reformatted (different whitespace and names of nothing it matches on)', () => {
    const p = problem(12);
    const file = `# utilities\n${p.prompt.replace(/ {4}/g, '\t')}${p.solution.replace(/\n/g, '\n\n')}`;
    expect(d.check(file)?.id).toMatch(/^HumanEval\/12:/);
  });

  it('leaves ordinary code alone: the Python standard library (real code no one here wrote)', async () => {
    const stdlib = execFileSync('python3', ['-c', "import sysconfig;print(sysconfig.get_paths()['stdlib'])"], { encoding: 'utf8' }).trim();
    let files = 0;
    const flagged: string[] = [];
    for await (const f of walk(stdlib)) {
      if (!f.endsWith('.py')) continue;
      if (++files > 1500) break;
      const hit = d.check(readFileSync(f, 'utf8'));
      if (hit) flagged.push(`${f}: ${hit.id} (${hit.overlap.toFixed(2)})`);
    }
    console.log(`decontamination: ${flagged.length} of ${files - 1} stdlib files flagged${flagged.length ? `:\n  ${flagged.join('\n  ')}` : ''}`);
    expect(files).toBeGreaterThan(1000);
    expect(flagged).toEqual([]);
  });
});
