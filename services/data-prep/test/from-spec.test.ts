import { describe, expect, it } from 'vitest';
import { load } from '@kiln/spec';
import { optionsFrom } from '../src/from-spec.ts';

const spec = load(new URL('../../../configs/tiny.yaml', import.meta.url).pathname).spec!;
const pre = { ...spec.data.preprocessing, decontamination: { ...spec.data.preprocessing.decontamination, enabled: true, suites: ['humaneval', 'other'] } };

describe('optionsFrom: decontamination suites', () => {
  it('decontaminates a humaneval suite without a path against the copy in the repository', () => {
    const r = optionsFrom([], pre, [{ name: 'humaneval', benchmark: 'humaneval' }, { name: 'other', benchmark: 'multipl-e' }], '/nowhere');
    // 164 prompts and 164 canonical solutions.
    expect(r.options.benchmarks).toHaveLength(328);
    expect(r.warnings.filter((w) => w.includes('humaneval'))).toEqual([]);
    // A suite kiln has no copy of, and no path for, is said plainly.
    expect(r.warnings).toContainEqual(expect.stringMatching(/eval suite "other" is not decontaminated against: it has no local path/));
  });

  it('says so when a humaneval suite names a path that is not there', () => {
    const r = optionsFrom([], pre, [{ name: 'humaneval', benchmark: 'humaneval', path: 'missing.jsonl.gz' }], '/nowhere');
    expect(r.options.benchmarks ?? []).toHaveLength(0);
    expect(r.warnings).toContainEqual(expect.stringMatching(/missing\.jsonl\.gz is not a HumanEval-format file here/));
  });
});
