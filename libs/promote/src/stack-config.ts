/**
 * A stack's config file (`stacks/Pulumi.<stack>.yaml`, namespace `kiln:`): what kiln promote reads and writes.
 * Writes go through the `yaml` Document API so that comments, key order and every other key stay as they were.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isMap, parseDocument, Scalar, visit, type Document } from 'yaml';
import type { ServedModel } from '@kiln/plan';

/** The kiln keys of one stack's config. */
export interface StackConfig {
  /** Path of the config file. */
  readonly file: string;
  /** `kiln:spec`: the kiln.yaml, relative to the repository root (the stacks dir's parent) or absolute. */
  readonly spec: string;
  /** `kiln:overlay`: the spec's stack overlay to apply; defaults to the stack's name. */
  readonly overlay: string;
  /** `kiln:train`: false for a serving-only stack; defaults to true. */
  readonly train: boolean;
  /** `kiln:model`: the model the stack serves (its stable Triton). */
  readonly model?: ServedModel;
  /** `kiln:canary`: the candidate while a canary rollout is in progress. */
  readonly canary?: ServedModel;
}

/** What `writeStackConfig` changes: a record sets the key, `null` deletes it, absent leaves it alone. */
export interface StackConfigChange {
  readonly model?: ServedModel | null;
  readonly canary?: ServedModel | null;
}

/** The config file of a stack in a Pulumi project dir. */
export const stackConfigFile = (stacksDir: string, stack: string): string => join(stacksDir, `Pulumi.${stack}.yaml`);

const KEYS = { spec: 'kiln:spec', overlay: 'kiln:overlay', train: 'kiln:train', model: 'kiln:model', canary: 'kiln:canary' } as const;

function parse(text: string, file: string): Document {
  const doc = parseDocument(text);
  if (doc.errors.length) throw new Error(`${file}: not valid YAML: ${doc.errors[0]!.message}`);
  const config = doc.get('config');
  if (config !== undefined && config !== null && !isMap(config)) throw new Error(`${file}: \`config\` must be a map of keys to values`);
  return doc;
}

/** A served-model record as read back: `from` is written only when it names a stack, so its absence is null. */
function record(v: unknown, file: string, key: string): ServedModel | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) throw new Error(`${file}: \`${key}\` must be a map (a promotion record written by kiln promote)`);
  const r = v as Partial<ServedModel>;
  for (const k of ['run', 'digest', 'action'] as const) if (typeof r[k] !== 'string') throw new Error(`${file}: \`${key}\` has no \`${k}\`: it is not a promotion record written by kiln promote`);
  return { ...(r as ServedModel), from: r.from ?? null, repositories: r.repositories ?? {}, evidence: { metrics: r.evidence?.metrics ?? {}, gates: r.evidence?.gates ?? [], ...(r.evidence?.smoke ? { smoke: r.evidence.smoke } : {}) } };
}

/** The kiln keys of a config file's text (`stack` gives the overlay's default). */
export function parseStackConfig(text: string, file: string, stack: string): StackConfig {
  const js = (parse(text, file).toJS() ?? {}) as { config?: Record<string, unknown> };
  const c = js.config ?? {};
  const spec = c[KEYS.spec];
  if (typeof spec !== 'string' || !spec) throw new Error(`${file}: no \`${KEYS.spec}\`: the stack's config must name its kiln.yaml`);
  const overlay = c[KEYS.overlay];
  const train = c[KEYS.train];
  if (train !== undefined && typeof train !== 'boolean' && train !== 'true' && train !== 'false') throw new Error(`${file}: \`${KEYS.train}\` must be true or false`);
  const model = record(c[KEYS.model], file, KEYS.model);
  const canary = record(c[KEYS.canary], file, KEYS.canary);
  return {
    file,
    spec,
    overlay: typeof overlay === 'string' && overlay ? overlay : stack,
    // Pulumi writes `pulumi config set kiln:train false` as the string "false".
    train: train === undefined ? true : train === true || train === 'true',
    ...(model ? { model } : {}),
    ...(canary ? { canary } : {}),
  };
}

/** Reads `stacks/Pulumi.<stack>.yaml`; an Error names the file when it is missing or not a stack config. */
export function readStackConfig(stacksDir: string, stack: string): StackConfig {
  const file = stackConfigFile(stacksDir, stack);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new Error(`no stack "${stack}": ${file} does not exist (a stack's config names its spec: \`kiln:spec: configs/<name>.yaml\`)`);
  }
  return parseStackConfig(text, file, stack);
}

/** Drops null fields: Pulumi's structured config has no null, and a missing `from` reads back as null. */
function plain(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null && x !== undefined).map(([k, x]) => [k, plain(x)]));
  return v;
}

/** The config text with `change` applied: comments, order and other keys kept. Pure. */
export function applyStackConfig(text: string, file: string, change: StackConfigChange): string {
  const doc = parse(text, file);
  if (!doc.get('config')) doc.set('config', doc.createNode({}));
  for (const k of ['model', 'canary'] as const) {
    const v = change[k];
    if (v === undefined) continue;
    if (v === null) doc.deleteIn(['config', KEYS[k]]);
    else {
      const node = doc.createNode(plain(v));
      // YAML 1.1 readers (Pulumi's Go one) take an unquoted ISO date for a timestamp, not the string it is.
      visit(node, { Scalar: (_, n) => void (typeof n.value === 'string' && /^\d{4}-\d\d-\d\d/.test(n.value) && (n.type = Scalar.QUOTE_DOUBLE)) });
      doc.setIn(['config', KEYS[k]], node);
    }
  }
  return doc.toString({ lineWidth: 0 });
}

/** Writes `kiln:model` / `kiln:canary` into the stack's config file (a record sets, null deletes); returns its path. */
export function writeStackConfig(stacksDir: string, stack: string, change: StackConfigChange): string {
  const file = stackConfigFile(stacksDir, stack);
  writeFileSync(file, applyStackConfig(readFileSync(file, 'utf8'), file, change));
  return file;
}
