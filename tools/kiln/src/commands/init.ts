/**
 * `kiln init`: writes an example spec to start from, with the editor's schema line made right for where it
 * is written.
 *
 * The examples in configs/ say `# yaml-language-server: $schema=../schemas/kiln.schema.json`, a path that
 * is only right from configs/. The line written here is:
 *   - inside this checkout: the relative path from the new file to schemas/kiln.schema.json, so it keeps
 *     working when the checkout moves and is the same for everyone who clones it;
 *   - outside it (the usual case for a team's own repository): `./kiln.schema.json`, with the schema copied
 *     beside the spec. An absolute path into this checkout would break on every other machine and whenever
 *     the checkout moves, and kiln's $id URL is not served; a copy works offline and on every clone. It may
 *     fall behind a newer kiln; `kiln validate` always uses its own schema, and `kiln schema --out
 *     kiln.schema.json` refreshes the copy. `--schema path` asks for the absolute path instead.
 */
import { closeSync, constants, existsSync, openSync, readdirSync, readFileSync, realpathSync, statSync, writeSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { didYouMean, SCHEMA } from '@kiln/spec';
import { common, type Command } from '../command.ts';
import { EXIT, UsageError, type Io } from '../io.ts';

export const command: Command = {
  usage: 'kiln init [--from tiny] [--output kiln.yaml] [--force] [--schema auto|path|copy] [--json] | kiln init --list',
  help: `Writes one of the example specs of configs/ (default tiny) to --output (default kiln.yaml), with its
\`# yaml-language-server: $schema=...\` line pointing at the schema from where the file is written, so that
editors complete, document and check every field. Inside this kiln checkout, the line is a relative path
to schemas/kiln.schema.json. Outside it, the schema is copied beside the spec as kiln.schema.json and the
line says ./kiln.schema.json: it works on every clone and offline (an absolute path would break on other
machines). Refresh the copy after upgrading kiln with \`kiln schema --out kiln.schema.json\`.

Options:
  --from NAME        the example to start from (kiln init --list shows them)
  --output FILE      where to write it (default kiln.yaml)
  --force            overwrite FILE (and a kiln.schema.json beside it) if it exists
  --schema MODE      auto (default): as above; path: always refer to this checkout's schema file (relative
                   inside it, absolute outside); copy: always copy the schema beside the spec
  --list             list the examples
  --json             say what was written as JSON

Exit codes: 0 written, 1 the file exists (without --force) or cannot be written, 2 usage error.`,
  options: { ...common, from: { type: 'string' }, output: { type: 'string', short: 'o' }, force: { type: 'boolean', short: 'f' }, schema: { type: 'string' }, list: { type: 'boolean' }, json: { type: 'boolean' } },
  allowPositionals: true,
  run: runInit,
};

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const CONFIGS = join(ROOT, 'configs');
const SCHEMA_FILE = join(ROOT, 'schemas', 'kiln.schema.json');
/** What the copy beside a spec outside this checkout is called. */
export const SCHEMA_COPY = 'kiln.schema.json';
const MODELINE = /^# yaml-language-server: \$schema=.*$/m;

export interface Example {
  readonly name: string;
  readonly file: string;
  /** The first sentence of the example's header comment. */
  readonly summary: string;
}

/** The example specs in configs/, by name (file name without `.yaml`). */
export function examples(): Example[] {
  return readdirSync(CONFIGS)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => {
      const file = join(CONFIGS, f);
      const comment = readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('#') && !MODELINE.test(l))
        .map((l) => l.replace(/^#\s?/, ''))
        .join(' ')
        .trim();
      return { name: f.replace(/\.yaml$/, ''), file, summary: shorten(/^(.*?[.!?])(\s+[A-Z]|$)/.exec(comment)?.[1] ?? comment, 90) };
    });
}

/** At most `max` characters, cut at a word. */
function shorten(text: string, max: number): string {
  if (text.length <= max) return text;
  const cut = text.slice(0, max - 1);
  return `${cut.slice(0, Math.max(cut.lastIndexOf(' '), max / 2)).replace(/[,;:(]$/, '')}…`;
}

export interface SchemaRef {
  readonly mode: 'relative' | 'copy' | 'absolute';
  /** What goes after `$schema=`. */
  readonly ref: string;
  /** Where the schema was copied, in mode `copy`. */
  readonly copied?: string;
}

/** Whether `dir` (an existing directory) is inside this checkout, symbolic links resolved. */
function insideCheckout(dir: string): boolean {
  const rel = relative(realpathSync(ROOT), realpathSync(dir));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** The `$schema` reference for a spec written in `dir`, by the rules at the top of this file. */
export function schemaRef(dir: string, choice: 'auto' | 'path' | 'copy'): Omit<SchemaRef, 'copied'> {
  const inside = insideCheckout(dir);
  if (choice === 'copy' || (choice === 'auto' && !inside)) return { mode: 'copy', ref: `./${SCHEMA_COPY}` };
  if (inside) return { mode: 'relative', ref: relative(realpathSync(dir), realpathSync(SCHEMA_FILE)).split(sep).join('/') };
  return { mode: 'absolute', ref: realpathSync(SCHEMA_FILE) };
}

/** The example's text with its schema line replaced (or added, for an example without one). */
export function withSchemaLine(text: string, ref: string): string {
  const line = `# yaml-language-server: $schema=${ref}`;
  return MODELINE.test(text) ? text.replace(MODELINE, line) : `${line}\n${text}`;
}

/** Writes `text` to `file`; without `force`, only if nothing is there (checked and created in one step). */
function writeNew(file: string, text: string, force: boolean): void {
  const fd = openSync(file, force ? 'w' : constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}

class Refused extends Error {}

export function runInit(values: Record<string, unknown>, positionals: string[], io: Io): number {
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"; name the file with --output`);
  const all = examples();
  if (values.list) {
    if (values.json) {
      io.out(JSON.stringify({ examples: all.map((e) => ({ name: e.name, file: e.file, summary: e.summary })) }, null, 2));
      return EXIT.ok;
    }
    const width = Math.max(...all.map((e) => e.name.length));
    io.out(`Examples (kiln init --from NAME):\n${all.map((e) => `  ${e.name.padEnd(width)}  ${e.summary}`).join('\n')}`);
    return EXIT.ok;
  }
  const from = String(values.from ?? 'tiny').replace(/\.ya?ml$/, '');
  const example = all.find((e) => e.name === from);
  if (!example) {
    const names = all.map((e) => e.name);
    const hint = didYouMean(from, names);
    throw new UsageError(`no example named "${from}"${hint ? `; ${hint}` : ''}\nExamples: ${names.join(', ')} (kiln init --list describes them)`);
  }
  const choice = String(values.schema ?? 'auto');
  if (choice !== 'auto' && choice !== 'path' && choice !== 'copy') throw new UsageError(`--schema must be auto, path or copy, not "${choice}"`);
  const output = String(values.output ?? 'kiln.yaml');
  const force = Boolean(values.force);
  const dir = dirname(resolve(output));

  try {
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Refused(`cannot write ${output}: the directory ${dirname(output)} does not exist`);
    if (existsSync(output) && statSync(output).isDirectory()) throw new Refused(`cannot write ${output}: it is a directory`);
    const ref: { -readonly [K in keyof SchemaRef]: SchemaRef[K] } = schemaRef(dir, choice);
    const text = withSchemaLine(readFileSync(example.file, 'utf8'), ref.ref);
    try {
      writeNew(output, text, force);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new Refused(`${output} already exists; pass --force to overwrite it`);
      throw e;
    }
    if (ref.mode === 'copy') {
      const copy = join(dirname(output), SCHEMA_COPY);
      const schemaText = JSON.stringify(SCHEMA, null, 2) + '\n';
      // A copy that is already current is left alone; another file of that name only goes with --force.
      if (!existsSync(copy) || readFileSync(copy, 'utf8') !== schemaText) {
        try {
          writeNew(copy, schemaText, force);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new Refused(`wrote ${output}, but ${copy} already exists and is not this kiln's schema; pass --force to replace it (or --schema path)`);
          throw e;
        }
      }
      ref.copied = copy;
    }
    if (values.json) io.out(JSON.stringify({ written: output, from: example.name, example: example.file, schema: ref }, null, 2));
    else {
      io.err(`wrote ${output} from configs/${example.name}.yaml${ref.copied ? `, and the schema beside it (${ref.copied}) for your editor` : ''}`);
      io.err(`next: edit it (your editor completes and documents every field), then \`kiln validate ${output}\``);
    }
    return EXIT.ok;
  } catch (e) {
    if (e instanceof Refused) {
      io.err(`kiln init: ${e.message}`);
      return EXIT.invalid;
    }
    const code = (e as NodeJS.ErrnoException).code;
    if (code) {
      io.err(`kiln init: cannot write ${output} (${code})`);
      return EXIT.invalid;
    }
    throw e;
  }
}
