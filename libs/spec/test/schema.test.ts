import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { generateValidatorSource } from '../src/compile.ts';
import { CODES, GPUS, SCHEMA } from '../src/index.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** Every property declared anywhere in the schema, with its JSON path. */
function properties(node: unknown, path: string, out: [string, Record<string, unknown>][] = []): [string, Record<string, unknown>][] {
  if (Array.isArray(node)) node.forEach((n, i) => properties(n, `${path}/${i}`, out));
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === 'properties' && v && typeof v === 'object') {
        for (const [name, prop] of Object.entries(v)) out.push([`${path}/properties/${name}`, prop as Record<string, unknown>]);
      }
      if (k !== 'default' && k !== 'enum' && k !== 'const') properties(v, `${path}/${k}`, out);
    }
  }
  return out;
}

describe('the schema', () => {
  it('is JSON Schema 2020-12 for kiln.dev/v1alpha1', () => {
    expect(SCHEMA.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect((SCHEMA.properties as Record<string, { const?: string }>).apiVersion?.const).toBe('kiln.dev/v1alpha1');
  });

  it('documents every field for the user who sees it in an editor', () => {
    const resolveRef = (p: Record<string, unknown>) => {
      const ref = p.$ref as string | undefined;
      if (!ref) return p;
      return ref.split('/').slice(1).reduce<Record<string, unknown>>((n, k) => n[k] as Record<string, unknown>, SCHEMA as unknown as Record<string, unknown>);
    };
    const undocumented = properties(SCHEMA, '#')
      .filter(([, p]) => !p.description && !resolveRef(p).description)
      // Properties re-declared only to add a default take their description from the shared definition.
      .filter(([, p]) => !(Object.keys(p).length === 1 && 'default' in p))
      .map(([path]) => path);
    expect(undocumented).toEqual([]);
  });

  it('lists exactly the GPU types kiln has hardware facts for', () => {
    const gpuEnum = ((SCHEMA.$defs as Record<string, { enum: string[] }>).gpuType!.enum).slice().sort();
    expect(gpuEnum).toEqual(Object.keys(GPUS).sort());
  });

  it('has a generated validator that is up to date (run `npm run gen -w libs/spec` after editing it)', () => {
    const committed = readFileSync(new URL('../src/generated/validate.cjs', import.meta.url), 'utf8');
    expect(committed === generateValidatorSource()).toBe(true);
  });
});

describe('diagnostic codes', () => {
  const doc = readFileSync(root + 'docs/diagnostics.md', 'utf8');

  it('are each documented in docs/diagnostics.md, and nothing else is', () => {
    const documented = [...doc.matchAll(/^\| (KL\d{3}) \|/gm)].map((m) => m[1]).sort();
    expect(documented).toEqual(Object.keys(CODES).sort());
  });

  it('are each used by the code', () => {
    const src = ['source', 'schema', 'checks', 'load'].map((f) => readFileSync(new URL(`../src/${f}.ts`, import.meta.url), 'utf8')).join('\n');
    const unused = Object.keys(CODES).filter((c) => !src.includes(`'${c}'`));
    expect(unused).toEqual([]);
  });
});
