import type { ErrorObject } from 'ajv';
import schemaJson from '@kiln/schemas/kiln.schema.json' with { type: 'json' };
import validate from './generated/validate.cjs';
import type { Code } from './codes.ts';
import { diagnostic, type Diagnostic } from './diagnostics.ts';
import { pathOf, type Locator } from './locate.ts';
import type { Json } from './source.ts';
import { didYouMean } from './suggest.ts';
import { MAX_DIAGNOSTICS, tooManyProblems } from './source.ts';

/** A JSON Schema node, loosely typed: the schema file is data. */
export interface SchemaNode {
  readonly $ref?: string;
  readonly type?: string | readonly string[];
  readonly properties?: Readonly<Record<string, SchemaNode>>;
  readonly additionalProperties?: SchemaNode | boolean;
  readonly items?: SchemaNode;
  readonly allOf?: readonly SchemaNode[];
  readonly oneOf?: readonly SchemaNode[];
  readonly discriminator?: { readonly propertyName: string };
  readonly default?: unknown;
  readonly enum?: readonly unknown[];
  readonly const?: unknown;
  readonly description?: string;
  readonly required?: readonly string[];
  readonly minProperties?: number;
  readonly maxProperties?: number;
  readonly [k: string]: unknown;
}

export const SCHEMA = schemaJson as unknown as SchemaNode;

// The schema never changes, so resolved nodes are cached.
const derefCache = new WeakMap<SchemaNode, SchemaNode | undefined>();
const propsCache = new WeakMap<SchemaNode, Record<string, SchemaNode>>();

/**
 * Follows a local `$ref` (`#/$defs/x`), repeatedly. Keywords beside a `$ref` (2020-12 allows them, e.g. a
 * `default` or `description` on a use of a shared definition) take precedence over the referenced ones.
 */
export function deref(node: SchemaNode | undefined, hops = 0): SchemaNode | undefined {
  if (!node?.$ref || hops > 20) return node;
  if (derefCache.has(node)) return derefCache.get(node);
  const resolved = derefUncached(node, hops);
  derefCache.set(node, resolved);
  return resolved;
}

function derefUncached(node: SchemaNode, hops: number): SchemaNode | undefined {
  const { $ref, ...rest } = node;
  let cur: unknown = SCHEMA;
  for (const p of $ref!.replace(/^#\//, '').split('/')) cur = (cur as Record<string, unknown> | undefined)?.[p];
  return { ...deref(cur as SchemaNode | undefined, hops + 1), ...rest };
}

/** Every property a schema object declares, including those of its `allOf` parts. */
export function propertiesOf(node: SchemaNode | undefined): Record<string, SchemaNode> {
  const n = deref(node);
  if (!n) return {};
  const cached = propsCache.get(n);
  if (cached) return cached;
  const out: Record<string, SchemaNode> = {};
  for (const part of n.allOf ?? []) Object.assign(out, propertiesOf(part));
  for (const [k, v] of Object.entries(n.properties ?? {})) out[k] = { ...out[k], ...deref(v) };
  propsCache.set(n, out);
  return out;
}

/** The discriminated branch of a `oneOf` for a value, or undefined. */
export function branchFor(node: SchemaNode, value: Json | undefined): SchemaNode | undefined {
  const tag = node.discriminator?.propertyName;
  if (!tag || !node.oneOf || value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const v = value[tag];
  return node.oneOf.map(deref).find((b) => (b?.properties?.[tag] as SchemaNode | undefined)?.const === v);
}

export function humanPath(path: readonly (string | number)[]): string {
  let s = '';
  for (const p of path) s += /^\d+$/.test(String(p)) ? `[${p}]` : s ? `.${p}` : String(p);
  return s || 'the spec';
}

const typeName = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'a mapping' : typeof v === 'string' ? `the string "${v.length > 40 ? v.slice(0, 40) + '…' : v}"` : `${typeof v} ${String(v)}`;

/** The one word a string must be when the schema's `pattern` is that word (`^auto$`), else undefined. */
const literalOf = (node: SchemaNode | undefined): string | undefined => (typeof node?.pattern === 'string' ? /^\^([A-Za-z0-9_-]+)\$$/.exec(node.pattern)?.[1] : undefined);

/** `integer,string` → "an integer or a string"; where the only string allowed is `literal`, it is named instead. */
const expected = (t: unknown, literal?: string): string => {
  const names: Record<string, string> = { object: 'a mapping', array: 'a list', string: 'a string', integer: 'an integer', number: 'a number', boolean: 'true or false', null: 'null' };
  if (literal !== undefined) names.string = `"${literal}"`;
  const list = (Array.isArray(t) ? t : String(t).split(',')).map((x) => names[String(x)] ?? String(x));
  return list.length > 1 ? `${list.slice(0, -1).join(', ')} or ${list.at(-1)}` : list[0]!;
};

/**
 * Errors found inside a stack overlay by `$defs/overlay`. That schema is for editors; `kiln validate` checks
 * each stack's merged result and reports there, at the overlay line and tagged with the stack, so the base
 * spec's report leaves them out (else each would appear twice). An overlay that is not a mapping stays.
 */
const insideOverlay = (e: ErrorObject): boolean =>
  /^\/stacks\/[^/]+\//.test(e.instancePath) || (/^\/stacks\/[^/]+$/.test(e.instancePath) && e.keyword !== 'type');

/** Validates plain spec data against the schema; diagnostics are located through `locator`. */
export function validateSchema(value: Json, locator: Locator, stack?: string): Diagnostic[] {
  if (validate(value)) return [];
  const errors = (validate.errors ?? []).filter((e) => !insideOverlay(e));
  return errors.length ? schemaDiagnostics(errors, locator, stack) : [];
}

export function schemaDiagnostics(errors: readonly ErrorObject[], locator: Locator, stack?: string): Diagnostic[] {
  const out: Diagnostic[] = [];
  const seen = new Set<string>();
  const push = (code: Code, path: (string | number)[], target: 'key' | 'value', message: string, hint?: string) => {
    const key = `${code}|${path.join('/')}|${message}`;
    if (seen.has(key)) return;
    seen.add(key);
    out.push(diagnostic(code, message, locator.locate(path, target), '/' + path.map(String).join('/'), { hint, stack }));
  };

  // Branch errors of a plain `oneOf` are summarised by the oneOf itself (STYLE.md §9).
  const oneOfs = errors.filter((e) => e.keyword === 'oneOf');
  const underOneOf = (e: ErrorObject) =>
    oneOfs.some((o) => o !== e && e.schemaPath.startsWith(o.schemaPath + '/') && e.instancePath === o.instancePath);
  const typeErrorAt = new Set(errors.filter((e) => e.keyword === 'type').map((e) => e.instancePath));

  for (const e of errors) {
    if (out.length >= MAX_DIAGNOSTICS) {
      // Locating and suggesting for each of thousands of errors would take seconds and help nobody.
      out.push(tooManyProblems(locator.locate(pathOf(e.instancePath)), errors.length));
      break;
    }
    const path: (string | number)[] = pathOf(e.instancePath);
    const where = humanPath(path);
    const parent = e.parentSchema as SchemaNode | undefined;
    if (e.keyword === 'if' || e.keyword === 'propertyNames' || underOneOf(e)) continue;
    if (e.keyword !== 'type' && typeErrorAt.has(e.instancePath)) continue;
    if (e.propertyName !== undefined) {
      // A key that breaks `propertyNames` (label keys, GPU types in price tables, stack names).
      const names = deref(e.parentSchema as SchemaNode);
      const hint = names?.enum ? didYouMean(e.propertyName, names.enum.map(String)) ?? `use one of: ${names.enum.join(', ')}` : names?.description;
      push(names?.enum ? 'KL204' : 'KL205', [...path, e.propertyName], 'key', `"${e.propertyName}" is not a valid key in ${where}`, hint);
      continue;
    }
    switch (e.keyword) {
      case 'additionalProperties':
      case 'unevaluatedProperties': {
        const key = String(e.params.additionalProperty ?? e.params.unevaluatedProperty);
        const known = Object.keys(propertiesOf(parent));
        push('KL201', [...path, key], 'key', `unknown key "${key}" in ${where}`, didYouMean(key, known) ?? (known.length ? `known keys: ${known.join(', ')}` : undefined));
        break;
      }
      case 'required': {
        const missing = String(e.params.missingProperty);
        const prop = propertiesOf(parent)[missing];
        push('KL202', path, path.length ? 'key' : 'value', `missing required field "${missing}" in ${where}`, prop?.description ? `${missing}: ${prop.description}` : undefined);
        break;
      }
      case 'type':
        push('KL203', path, 'value', `${where} must be ${expected(e.params.type, literalOf(parent))}, not ${typeName(e.data)}`, parent?.description);
        break;
      case 'enum': {
        const allowed = (e.params.allowedValues as unknown[]).map(String);
        push('KL204', path, 'value', `${where} must be one of ${allowed.join(', ')}; got ${typeName(e.data)}`, typeof e.data === 'string' ? didYouMean(e.data, allowed) : undefined);
        break;
      }
      case 'const': {
        const allowed = String(e.params.allowedValue);
        if (path.length === 1 && path[0] === 'apiVersion') {
          push('KL210', path, 'value', `unsupported apiVersion ${JSON.stringify(e.data)}; this kiln reads ${allowed}`, `set apiVersion: ${allowed}`);
        } else {
          push('KL204', path, 'value', `${where} must be ${allowed}; got ${typeName(e.data)}`);
        }
        break;
      }
      case 'discriminator': {
        const tag = String(e.params.tag);
        const variants = (deref(parent)?.oneOf ?? []).map((b) => (deref(b)?.properties?.[tag] as SchemaNode | undefined)?.const).filter((c): c is string => typeof c === 'string');
        if (e.params.error === 'mapping') {
          const got = String(e.params.tagValue);
          push('KL209', [...path, tag], 'value', `unknown ${tag} "${got}" in ${where}; expected one of ${variants.join(', ')}`, didYouMean(got, variants));
        } else {
          push('KL202', path, path.length ? 'key' : 'value', `missing required field "${tag}" in ${where}`, `set ${tag} to one of ${variants.join(', ')}`);
        }
        break;
      }
      case 'pattern': {
        // A number-or-word field (`micro_batch: 8 | auto`): name the word, as an enum error would.
        const literal = literalOf(parent);
        if (literal !== undefined) {
          push('KL204', path, 'value', `${where} must be ${expected(parent?.type ?? 'string', literal)}; got ${typeName(e.data)}`, didYouMean(String(e.data), [literal]) ?? parent?.description);
          break;
        }
        push('KL205', path, 'value', `${where} has an invalid format: ${typeName(e.data)}`, parent?.description);
        break;
      }
      case 'format':
        push('KL205', path, 'value', `${where} has an invalid format: ${typeName(e.data)}`, parent?.description);
        break;
      case 'minimum':
      case 'maximum':
      case 'exclusiveMinimum':
      case 'exclusiveMaximum':
        push('KL206', path, 'value', `${where} must be ${e.params.comparison} ${e.params.limit}; got ${typeName(e.data)}`, parent?.description);
        break;
      case 'minLength':
      case 'maxLength':
        push('KL211', path, 'value', `${where} must have ${e.keyword === 'minLength' ? 'at least' : 'at most'} ${e.params.limit} characters`, parent?.description);
        break;
      case 'minProperties':
      case 'maxProperties': {
        const names = Object.keys(propertiesOf(parent));
        if (parent?.minProperties === 1 && parent?.maxProperties === 1) {
          const set = Object.keys((e.data as Record<string, unknown>) ?? {});
          push('KL208', path, 'key', set.length > 1 ? `${where} sets ${set.join(' and ')}; set exactly one of them` : `${where} must set exactly one of: ${names.join(', ')}`, parent.description);
        } else {
          push('KL207', path, 'key', `${where} must have ${e.keyword === 'minProperties' ? 'at least' : 'at most'} ${e.params.limit} entries`, parent?.description);
        }
        break;
      }
      case 'minItems':
      case 'maxItems':
        push('KL207', path, 'value', `${where} must have ${e.keyword === 'minItems' ? 'at least' : 'at most'} ${e.params.limit} entries`, parent?.description);
        break;
      case 'uniqueItems':
        push('KL212', [...path, Number(e.params.i)], 'value', `${where} lists the same entry twice (items ${e.params.j} and ${e.params.i})`, 'remove the duplicate');
        break;
      case 'oneOf': {
        const branches = (deref(parent)?.oneOf ?? []).map((b) => deref(b)?.required ?? []).flat();
        if (Array.isArray(e.params.passingSchemas)) {
          push('KL208', path, 'key', `${where} sets ${branches.join(' and ')}; set exactly one of them`, parent?.description);
        } else {
          push('KL208', path, 'key', `${where} must set exactly one of: ${branches.join(', ')}`, parent?.description);
        }
        break;
      }
      default:
        push('KL205', path, 'value', `${where}: ${e.message ?? 'invalid value'}`, parent?.description);
    }
  }
  return out;
}
