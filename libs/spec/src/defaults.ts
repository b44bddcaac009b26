/**
 * Defaults live in one place: the schema's `default` keywords (which editors also show). This module
 * applies them; the few defaults that depend on other fields (model presets, vocabulary size, token budget,
 * namespace) are derived in resolve.ts.
 */
import { branchFor, deref, propertiesOf, SCHEMA, type SchemaNode } from './schema.ts';
import { cloneJson, type Json } from './source.ts';

const isObject = (v: unknown): v is { [k: string]: Json } => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Returns a copy of `value` with every missing field that has a schema default filled in. */
export function applyDefaults(value: Json, schema: SchemaNode = SCHEMA): Json {
  return fill(cloneJson(value), schema);
}

function fill(value: Json, node: SchemaNode | undefined): Json {
  const s = deref(node);
  if (!s) return value;
  if (Array.isArray(value)) {
    const items = deref(s.items);
    return items ? value.map((v) => fill(v, items)) : value;
  }
  if (!isObject(value)) return value;
  for (const part of s.allOf ?? []) fill(value, part);
  const branch = branchFor(s, value);
  if (branch) fill(value, branch);
  const props = propertiesOf(s);
  for (const [key, propSchema] of Object.entries(props)) {
    if (!Object.prototype.hasOwnProperty.call(value, key) && propSchema.default !== undefined) {
      value[key] = cloneJson(propSchema.default as Json);
    }
    if (Object.prototype.hasOwnProperty.call(value, key)) value[key] = fill(value[key] as Json, propSchema);
  }
  const extra = s.additionalProperties;
  if (extra && typeof extra === 'object') {
    for (const key of Object.keys(value)) {
      if (!(key in props)) value[key] = fill(value[key] as Json, extra);
    }
  }
  return value;
}
