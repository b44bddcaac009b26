import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { AJV_OPTIONS, generateValidatorSource } from '../src/compile.ts';
import { generateYamlBundle } from '../src/yaml-bundle.ts';
import { FIXED_KEYS, overlayFileSchema, withOverlay } from '../src/overlay-schema.ts';
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

  it('has a generated yaml bundle that is the installed yaml package (run `npm run gen -w libs/spec` after changing its version)', () => {
    const committed = readFileSync(new URL('../src/generated/yaml.js', import.meta.url), 'utf8');
    const installed = (JSON.parse(readFileSync(createRequire(import.meta.url).resolve('yaml/package.json'), 'utf8')) as { version: string }).version;
    expect(committed.split('\n')[0]).toContain(`yaml ${installed} `);
    expect(committed === generateYamlBundle()).toBe(true);
  });
});

type Node = Record<string, unknown>;
const defs = SCHEMA.$defs as Record<string, Node>;
const deref = (n: Node): Node => (typeof n.$ref === 'string' ? { ...deref(n.$ref.split('/').slice(1).reduce<Node>((o, k) => o[k] as Node, SCHEMA as Node)), ...n, $ref: undefined } : n);
/** Every sub-schema, with its JSON path. */
function nodes(node: unknown, path = '#', out: [string, Node][] = []): [string, Node][] {
  if (Array.isArray(node)) node.forEach((n, i) => nodes(n, `${path}/${i}`, out));
  else if (node && typeof node === 'object') {
    out.push([path, node as Node]);
    for (const [k, v] of Object.entries(node)) if (k !== 'default' && k !== 'enum' && k !== 'const' && k !== 'examples') nodes(v, `${path}/${k}`, out);
  }
  return out;
}

describe('the schema in an editor (yaml-language-server labels completions and hovers from it)', () => {
  it('titles every oneOf/anyOf variant, so labels are not internal $defs names', () => {
    const untitled = nodes(SCHEMA).flatMap(([path, n]) =>
      (['oneOf', 'anyOf'] as const).flatMap((k) => ((n[k] as Node[] | undefined) ?? []).map((v, i) => [`${path}/${k}/${i}`, deref(v)] as const)),
    ).filter(([, v]) => typeof v.title !== 'string' || v.title.length === 0).map(([p]) => p);
    expect(untitled).toEqual([]);
  });

  it('lists each choice of an enum once', () => {
    const dup = nodes(SCHEMA).filter(([, n]) => Array.isArray(n.enum) && new Set((n.enum as unknown[]).map((x) => JSON.stringify(x))).size !== (n.enum as unknown[]).length);
    expect(dup.map(([p]) => p)).toEqual([]);
  });

  it('declares each field of a variant once (not in a shared part and again in the variant), so its choices are offered once', () => {
    const twice: string[] = [];
    for (const [name, d] of Object.entries(defs)) {
      const own = Object.keys((d.properties as Node | undefined) ?? {});
      for (const part of (d.allOf as Node[] | undefined) ?? []) {
        for (const k of Object.keys((deref(part).properties as Node | undefined) ?? {})) if (own.includes(k)) twice.push(`${name}.${k}`);
      }
    }
    expect(twice).toEqual([]);
    const formats = ['huggingfaceSource', 'objectStoreSource', 'gitSource', 'localSource', 'feedbackSource'].map((v) => ((defs[v]!.properties as Node).format as Node).$ref);
    expect(new Set(formats)).toEqual(new Set(['#/$defs/sourceFormat']));
  });

  it('describes the `type` of each variant in its own words', () => {
    for (const [path, n] of nodes(SCHEMA)) {
      const tag = (n.discriminator as { propertyName?: string } | undefined)?.propertyName;
      if (!tag || path.includes('/overlay')) continue;
      const tags = (n.oneOf as Node[]).map((v) => (deref(v).properties as Node)[tag] as Node);
      const descriptions = tags.map((t) => String(t.description));
      expect(new Set(descriptions).size, path).toBe(descriptions.length);
      // Each names the value it documents, so a hover that shows it is never about another variant.
      expect(tags.filter((t) => !String(t.description).startsWith(`\`${String(t.const)}\``)).map((t) => t.const), path).toEqual([]);
    }
  });
});

describe('the schema of a stack overlay', () => {
  const overlay = defs.overlay!;
  const ajv = new Ajv2020({ ...AJV_OPTIONS });
  ajv.addSchema(SCHEMA as object);
  const check = ajv.getSchema(`${SCHEMA.$id as string}#/$defs/overlay`)!;

  it('is generated from the spec schema and up to date (run `npm run gen -w libs/spec` after editing it)', () => {
    expect(JSON.stringify(withOverlay(SCHEMA as Node)) === JSON.stringify(SCHEMA)).toBe(true);
    expect(((SCHEMA.properties as Record<string, Node>).stacks!.additionalProperties as Node).$ref).toBe('#/$defs/overlay');
    expect(JSON.parse(readFileSync(root + 'schemas/kiln-overlay.schema.json', 'utf8'))).toEqual(overlayFileSchema());
    expect(overlayFileSchema().$ref).toBe('kiln.schema.json#/$defs/overlay');
  });

  it('has every section of the spec but none of the fixed keys, and requires nothing', () => {
    const sections = Object.keys(SCHEMA.properties as Node).filter((k) => !FIXED_KEYS.includes(k) && k !== '$schema');
    expect(Object.keys(overlay.properties as Node)).toEqual(sections);
    expect(nodes(overlay).filter(([p, n]) => 'required' in n && !p.includes('/items')).map(([p]) => p)).toEqual([]);
  });

  it('accepts a partial spec with nulls (merge patch deletes) and refuses a mistyped key or a wrong type', () => {
    expect(check({ training: { token_budget: '50M', resources: { nodes: 1 } }, metadata: { labels: null }, objective: { rate: 0.3 } })).toBe(true);
    expect(check({ training: { token_budget: null }, serving: { targets: [] }, tokenizer: { train: null, pretrained: { hub: 'a/b', vocab_size: 32000 } } })).toBe(true);
    expect(check({ training: { tokn_budget: '5M' } })).toBe(false);
    expect(check({ training: { micro_batch: 'four' } })).toBe(false);
    expect(check({ training: { micro_batch: 'auto' } })).toBe(true);
    expect(check({ apiVersion: 'kiln.dev/v1alpha1' })).toBe(false);
    // Lists replace whole, so a list in an overlay must be complete: a serving target still needs its name.
    expect(check({ serving: { targets: [{ replicas: { min: 1 } }] } })).toBe(false);
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
