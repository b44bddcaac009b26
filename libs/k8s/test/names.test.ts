import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { LABELS, labelSelector, priorityClassName, serviceUrl, stageSelector, TRITON_PORTS } from '../src/index.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const k8s = fileURLToPath(new URL('../', import.meta.url));

/** Spellings only libs/k8s may write out: the labels the controller and the CLI select by, and Service URLs. */
const OWNED = ['kiln.dev/run-id', 'kiln.dev/stage', 'kiln.dev/attempt', '.svc:'];

/** Source files of libs/, services/, tools/ and stacks/ outside libs/k8s; tests (and their support) excluded. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return ['node_modules', 'dist', 'test', 'tests', '__snapshots__', 'generated', '.venv'].includes(e.name) || path === k8s.replace(/\/$/, '') ? [] : sources(path);
    return /\.(ts|mts|js|mjs|py)$/.test(e.name) && !/\.(test|spec)\.[a-z]+$/.test(e.name) ? [path] : [];
  });
}

/** `file:line: spelling` for each owned spelling in the files. */
const spellings = (files: readonly string[]) =>
  files.flatMap((f) =>
    readFileSync(f, 'utf8')
      .split('\n')
      .flatMap((line, i) => OWNED.filter((s) => line.includes(s)).map((s) => `${relative(root, f)}:${i + 1}: ${s}`)),
  );

describe("libs/k8s owns kiln's Kubernetes spellings", () => {
  it('GIVEN the sources outside libs/k8s WHEN scanned THEN none spells a run, stage or attempt label or a Service URL (import them from @kiln/k8s)', () => {
    const files = ['libs', 'services', 'tools', 'stacks'].flatMap((d) => sources(join(root, d)));
    expect(files.length).toBeGreaterThan(50);
    expect(spellings(files)).toEqual([]);
  });

  it('GIVEN the same scan WHEN it reads libs/k8s/src THEN it finds them there (the scan can fail)', () => {
    const found = spellings(sources(join(k8s, 'src'))).join('\n');
    for (const s of OWNED) expect(found).toContain(s);
  });
});

describe('names', () => {
  it('spell selectors, PriorityClasses and Service URLs from one set of keys and ports', () => {
    expect(labelSelector(stageSelector('r-0123456789ab', 'train'))).toBe(`${LABELS.runId}=r-0123456789ab,${LABELS.stage}=train`);
    expect(priorityClassName('high')).toBe('kiln-high');
    expect(serviceUrl('m', 'ns')).toBe(`http://m.ns.svc:${TRITON_PORTS.http}`);
    expect(serviceUrl('m', 'ns', TRITON_PORTS.grpc)).toBe('http://m.ns.svc:8001');
  });
});
