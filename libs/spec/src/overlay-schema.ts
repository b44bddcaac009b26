/**
 * Derives the schema of a stack overlay from the spec's own schema, so the two are never written twice.
 *
 * An overlay is a JSON merge patch (RFC 7396) over the spec: every mapping is partial (nothing required),
 * every key keeps its type and documentation, and `null` is allowed wherever a key may be written, since a
 * patch deletes with it. Lists and scalars replace whole, so the items of a list keep the full schema. A
 * mapping that is one of several variants (the objective) becomes one mapping with all the variants' keys:
 * a patch may change a field without repeating the `type` that selects the variant. The merged result is
 * still validated against the full schema (libs/spec/src/load.ts); this schema serves editors, which can
 * then complete, document and check the keys inside `stacks.<name>`.
 *
 * The result lives at `$defs/overlay` (with the partial copy of each definition it uses under
 * `$defs/overlay/$defs`), and `stacks` refers to it. `npm run gen -w libs/spec` writes it; a test fails
 * while the committed schema is stale.
 */

type Schema = { [k: string]: unknown };

/** Keys an overlay may not set: they say what the file is and hold the overlays themselves. */
export const FIXED_KEYS: readonly string[] = ['apiVersion', 'kind', 'stacks'];

/** Keywords that constrain a whole value, which a patch that only changes part of it need not meet. */
const PARTIAL_DROPS = new Set(['required', 'minProperties', 'maxProperties', 'dependentRequired', 'discriminator', 'if', 'then', 'else']);
/** An overlay leaves out what it does not change: the base's value applies, not the schema's default. */
const ALWAYS_DROPS = new Set(['default']);

const OVERLAY = '#/$defs/overlay';
const isObj = (v: unknown): v is Schema => v !== null && typeof v === 'object' && !Array.isArray(v);

class Deriver {
  readonly defs: Record<string, Schema> = {};
  private readonly root: Schema;

  constructor(root: Schema) {
    this.root = root;
  }

  private def(ref: string): Schema {
    let cur: unknown = this.root;
    for (const p of ref.replace(/^#\//, '').split('/')) cur = (cur as Schema)[p];
    return cur as Schema;
  }

  /** `$ref` to the overlay copy of a definition, derived on first use (definitions may refer to each other). */
  private ref(ref: string): string {
    const name = ref.replace(/^#\/\$defs\//, '');
    if (!(name in this.defs)) {
      this.defs[name] = {}; // placeholder while deriving, for recursive definitions
      this.defs[name] = this.nullable(this.partial(this.def(ref)));
    }
    return `${OVERLAY}/$defs/${name}`;
  }

  /** A value at a place a patch may write: mappings become partial; everything else keeps its schema. */
  partial(node: Schema): Schema {
    const out: Schema = {};
    for (const [k, v] of Object.entries(node)) if (!ALWAYS_DROPS.has(k)) out[k] = v;
    if (typeof node.$ref === 'string') {
      out.$ref = this.ref(node.$ref);
      return out;
    }
    const variants = (node.oneOf ?? node.anyOf) as Schema[] | undefined;
    const objectVariants = variants?.every((b) => isObj(b) && (b.type === 'object' || isObj(b.properties) || typeof b.$ref === 'string'));
    if (variants && objectVariants && (node.discriminator || variants.some((b) => isObj(b.properties)))) return this.mergedVariants(node, variants);
    if (node.type !== 'object' && !isObj(node.properties) && !isObj(node.additionalProperties)) return out;

    for (const k of PARTIAL_DROPS) delete out[k];
    // `oneOf: [{required: [path]}, {required: [hub]}]` only says which keys must be set: not for a patch.
    if (variants?.every((b) => Object.keys(b).every((k) => k === 'required' || k === 'title' || k === 'description'))) {
      delete out.oneOf;
      delete out.anyOf;
    }
    const props: Record<string, Schema> = {};
    for (const part of (node.allOf as Schema[] | undefined) ?? []) {
      const p = typeof part.$ref === 'string' ? this.def(part.$ref) : part;
      for (const [k, v] of Object.entries((p.properties as Record<string, Schema> | undefined) ?? {})) props[k] = v;
    }
    for (const [k, v] of Object.entries((node.properties as Record<string, Schema> | undefined) ?? {})) props[k] = { ...props[k], ...v };
    if (node.allOf) {
      delete out.allOf;
      delete out.unevaluatedProperties;
      out.additionalProperties = false;
    }
    if (Object.keys(props).length > 0) {
      out.properties = Object.fromEntries(Object.entries(props).map(([k, v]) => [k, this.nullable(this.partial(v))]));
    }
    if (isObj(node.additionalProperties)) out.additionalProperties = this.nullable(this.partial(node.additionalProperties));
    return out;
  }

  /** One mapping with every variant's keys; the tag (`type`) lists every variant's value. */
  private mergedVariants(node: Schema, variants: Schema[]): Schema {
    const tag = (node.discriminator as { propertyName?: string } | undefined)?.propertyName;
    const props: Record<string, Schema> = {};
    const tags: unknown[] = [];
    for (const v of variants) {
      const b = typeof v.$ref === 'string' ? this.def(v.$ref) : v;
      for (const [k, p] of Object.entries((b.properties as Record<string, Schema> | undefined) ?? {})) {
        if (k === tag && p.const !== undefined) tags.push(p.const);
        else if (!(k in props)) props[k] = p;
      }
    }
    const out: Schema = {};
    for (const k of ['title', 'description', 'type']) if (node[k] !== undefined) out[k] = node[k];
    out.type = 'object';
    out.additionalProperties = false;
    const properties: Record<string, Schema> = {};
    if (tag) {
      const list = tags.map((t) => `\`${String(t)}\``);
      properties[tag] = { enum: [...tags, null], description: `Which variant: ${list.slice(0, -1).join(', ')} or ${list.at(-1)}.` };
    }
    for (const [k, v] of Object.entries(props)) properties[k] = this.nullable(this.partial(v));
    out.properties = properties;
    return out;
  }

  /** The same schema, also allowing `null` (a patch's "delete"). */
  nullable(node: Schema): Schema {
    const out: Schema = { ...node };
    if (out.const !== undefined) {
      out.enum = [out.const, null];
      delete out.const;
    } else if (Array.isArray(out.enum) && !out.enum.includes(null)) {
      out.enum = [...out.enum, null];
    }
    if (typeof out.type === 'string' && out.type !== 'null') out.type = [out.type, 'null'];
    else if (Array.isArray(out.type) && !out.type.includes('null')) out.type = [...out.type, 'null'];
    return out;
  }
}

/** The `$defs/overlay` schema derived from a spec schema (whatever `$defs/overlay` it already holds is ignored). */
export function deriveOverlay(schema: Schema): Schema {
  const { $defs, ...rest } = schema;
  const { overlay: _old, ...defs } = ($defs ?? {}) as Record<string, Schema>;
  void _old;
  const d = new Deriver({ ...rest, $defs: defs });
  const props: Record<string, Schema> = {};
  for (const [k, v] of Object.entries((schema.properties as Record<string, Schema>) ?? {})) {
    if (FIXED_KEYS.includes(k) || k === '$schema') continue;
    props[k] = d.nullable(d.partial(v));
  }
  const sorted = Object.fromEntries(Object.keys(d.defs).sort().map((k) => [k, d.defs[k]!]));
  return {
    title: 'Stack overlay',
    description:
      'A partial spec merged over this one when the stack is deployed (JSON merge patch, RFC 7396): mappings merge key by key, `null` deletes a key (its default applies again), lists and scalars replace whole. It cannot change apiVersion, kind or stacks. Generated from the spec schema by libs/spec/scripts/gen-schema.ts.',
    type: 'object',
    additionalProperties: false,
    properties: props,
    $defs: sorted,
  };
}

/** The spec schema with `$defs/overlay` derived afresh and `stacks` referring to it. */
export function withOverlay(schema: Schema): Schema {
  const out = structuredClone(schema);
  const defs = out.$defs as Record<string, Schema>;
  defs.overlay = deriveOverlay(schema);
  const stacks = (out.properties as Record<string, Schema>).stacks!;
  stacks.additionalProperties = {
    $ref: OVERLAY,
    description: 'A JSON merge patch over this spec, e.g. `{training: {token_budget: 50M, resources: {nodes: 1}}}`.',
  };
  return out;
}

/**
 * schemas/kiln-overlay.schema.json: the overlay schema as a file of its own, for overlay files
 * (`kiln validate --overlay FILE`). yaml-language-server does not follow a `#/$defs/...` fragment in a
 * `$schema=` line, but it does follow a `$ref` to the sibling file. No `$id`, so the reference resolves
 * beside this file wherever the schemas are, not against kiln's (unserved) URL.
 */
export function overlayFileSchema(): Schema {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'kiln stack overlay',
    description: 'A file of overrides applied over a kiln.yaml (`kiln validate kiln.yaml --overlay FILE`): a JSON merge patch, as an entry of `stacks`. Generated by libs/spec/scripts/gen-schema.ts.',
    $ref: `kiln.schema.json${OVERLAY}`,
  };
}
