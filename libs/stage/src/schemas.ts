/** The stage contract's JSON Schemas (schemas/stages/), compiled once with ajv's draft 2020-12 build. */
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import common from '@kiln/schemas/stages/common.schema.json' with { type: 'json' };
import dataPrep from '@kiln/schemas/stages/data-prep.schema.json' with { type: 'json' };
import dedup from '@kiln/schemas/stages/dedup.schema.json' with { type: 'json' };
import tokenizer from '@kiln/schemas/stages/tokenizer.schema.json' with { type: 'json' };
import pack from '@kiln/schemas/stages/pack.schema.json' with { type: 'json' };
import train from '@kiln/schemas/stages/train.schema.json' with { type: 'json' };
import exportSchema from '@kiln/schemas/stages/export.schema.json' with { type: 'json' };
import evalSchema from '@kiln/schemas/stages/eval.schema.json' with { type: 'json' };
import summary from '@kiln/schemas/stages/summary.schema.json' with { type: 'json' };
import progress from '@kiln/schemas/stages/progress.schema.json' with { type: 'json' };
import progressLine from '@kiln/schemas/stages/progress-line.schema.json' with { type: 'json' };
import manifest from '@kiln/schemas/stages/manifest.schema.json' with { type: 'json' };
import type { StageKind } from './types.ts';

/** A schema file as data. */
export type JsonSchema = { readonly $id: string; readonly [k: string]: unknown };

/** Each stage kind's config schema. */
export const CONFIG_SCHEMAS: Readonly<Record<StageKind, JsonSchema>> = { 'data-prep': dataPrep, dedup, tokenizer, pack, train, export: exportSchema, eval: evalSchema };
/** The schemas every stage shares. */
export const SCHEMAS = { common, summary, progress, 'progress-line': progressLine, manifest } as const satisfies Record<string, JsonSchema>;

export type ContractDocument = StageKind | 'summary' | 'progress' | 'progress-line' | 'manifest';

let ajv: Ajv2020 | undefined;
const compiled = new Map<ContractDocument, ValidateFunction>();

/** The validator of one contract document (a stage kind's config, the summary, progress, the manifest). */
export function validatorOf(doc: ContractDocument): ValidateFunction {
  let v = compiled.get(doc);
  if (v) return v;
  ajv ??= new Ajv2020({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true, schemas: [common, summary, progress, progressLine, manifest, ...Object.values(CONFIG_SCHEMAS)] });
  const schema = doc in CONFIG_SCHEMAS ? CONFIG_SCHEMAS[doc as StageKind] : SCHEMAS[doc as keyof typeof SCHEMAS];
  v = ajv.getSchema(schema.$id)!;
  compiled.set(doc, v);
  return v;
}

/** One problem of a value against its schema: where (a JSON pointer into the value) and what. */
export interface ContractProblem {
  readonly pointer: string;
  readonly message: string;
}

/** The value's problems against a contract document; empty when it conforms. */
export function check(doc: ContractDocument, value: unknown): ContractProblem[] {
  const v = validatorOf(doc);
  if (v(value)) return [];
  return problems(v.errors ?? []);
}

function problems(errors: readonly ErrorObject[]): ContractProblem[] {
  const out: ContractProblem[] = [];
  const seen = new Set<string>();
  // An `anyOf` says only that its branches failed; the branches' own errors say what is wrong.
  for (const e of errors.filter((x) => x.keyword !== 'anyOf' || errors.length === 1)) {
    const p = describe(e);
    const key = `${p.pointer}\0${p.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(p);
  }
  return out;
}

function describe(e: ErrorObject): ContractProblem {
  const at = e.instancePath || '/';
  const child = (name: string) => `${e.instancePath}/${name.replace(/~/g, '~0').replace(/\//g, '~1')}`;
  switch (e.keyword) {
    case 'required':
      return { pointer: child(String(e.params.missingProperty)), message: 'is missing' };
    case 'unevaluatedProperties':
      return { pointer: child(String(e.params.unevaluatedProperty)), message: 'is not a field of this config' };
    case 'additionalProperties':
      return { pointer: child(String(e.params.additionalProperty)), message: 'is not a field here' };
    case 'false schema':
      return { pointer: at, message: 'must not be set' };
    default:
      return { pointer: at, message: e.message ?? e.keyword };
  }
}
