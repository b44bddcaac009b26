/**
 * API keys (contract §3): the key file (a mounted Kubernetes Secret) holds one key per line, or `sha256:<64 hex>`
 * (the key's hash); blank lines and `#` comments are ignored. Only sha256 digests are kept in memory, and a
 * presented key is compared with `timingSafeEqual`. The file is reloaded when it changes: a watch on its folder (a
 * Secret's update swaps a symlink there) plus a periodic stat, and a full re-read every few seconds whatever the
 * stat says, so a removed line (a revoked key) answers 401 within a few seconds.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';

/** A key's public id in logs, metrics and feedback: the first 12 hex digits of sha256(key). */
export function keyIdOf(digest: Buffer): string {
  return digest.toString('hex', 0, 6);
}

export function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** A key file that cannot be used. */
export class KeyFileError extends Error {}

export interface ParsedKeys {
  /** key_id → the digests with that id (more than one only on a 48-bit collision). */
  readonly byId: Map<string, Buffer[]>;
  readonly count: number;
  /** Lines that are neither a key nor a `sha256:` digest (1-based line numbers): a key never contains a space. */
  readonly badLines: number[];
}

/** The keys of a key file's text. */
export function parseKeys(text: string): ParsedKeys {
  const byId = new Map<string, Buffer[]>();
  const badLines: number[] = [];
  let count = 0;
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    let digest: Buffer;
    const hashed = /^sha256:([0-9a-fA-F]{64})$/.exec(line);
    if (hashed) digest = Buffer.from(hashed[1]!, 'hex');
    else if (/^sha256:/.test(line) || /\s/.test(line)) {
      badLines.push(i + 1);
      return;
    } else digest = sha256(line);
    const id = keyIdOf(digest);
    const list = byId.get(id) ?? [];
    if (!list.some((d) => d.equals(digest))) {
      list.push(digest);
      count++;
    }
    byId.set(id, list);
  });
  return { byId, count, badLines };
}

export interface KeyStoreOptions {
  readonly file: string;
  /** How often the file is stat'ed. Default 1000 ms. */
  readonly pollMs?: number;
  /** How often it is re-read even when its stat has not changed. Default 5000 ms. */
  readonly rereadMs?: number;
  /** Told of every reload and of problems (never a key). */
  readonly log?: (level: 'info' | 'warn', message: string) => void;
}

/** The live set of keys of one key file. */
export class KeyStore {
  readonly file: string;
  private keys: ParsedKeys = { byId: new Map(), count: 0, badLines: [] };
  private stamp = '';
  private lastRead = 0;
  private timer: NodeJS.Timeout | undefined;
  private watcher: FSWatcher | undefined;
  private readonly o: KeyStoreOptions;
  /** How many times the keys were (re)loaded; for tests and the reload metric. */
  loads = 0;

  private constructor(o: KeyStoreOptions) {
    this.o = o;
    this.file = o.file;
  }

  /** Loads the file (a `KeyFileError` when it cannot be read) and starts watching it. */
  static open(o: KeyStoreOptions): KeyStore {
    const s = new KeyStore(o);
    try {
      s.reload(true);
    } catch (e) {
      throw new KeyFileError(`cannot read the API key file ${o.file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
    s.timer = setInterval(() => s.check(), o.pollMs ?? 1000);
    s.timer.unref();
    try {
      // The folder, not the file: a Secret's update replaces the `..data` symlink beside it, and an editor's save
      // replaces the file itself; a watch on the old inode would see neither.
      s.watcher = watch(dirname(o.file), { persistent: false }, (_event, name) => {
        if (name === null || name === basename(o.file) || name.startsWith('..')) s.check(true);
      });
      s.watcher.on('error', () => undefined);
    } catch {
      // No watch (some file systems): the periodic stat still catches every change.
    }
    return s;
  }

  /** How many distinct keys are loaded. */
  get size(): number {
    return this.keys.count;
  }

  /** The key_id of a presented key, or null when it is not (or no longer) in the file. */
  verify(key: string): string | null {
    const digest = sha256(key);
    const id = keyIdOf(digest);
    const candidates = this.keys.byId.get(id);
    if (!candidates) return null;
    let ok = false;
    for (const d of candidates) ok = timingSafeEqual(d, digest) || ok;
    return ok ? id : null;
  }

  close(): void {
    clearInterval(this.timer);
    this.watcher?.close();
  }

  private check(force = false): void {
    try {
      this.reload(force || Date.now() - this.lastRead >= (this.o.rereadMs ?? 5000));
    } catch (e) {
      // A key file that disappears revokes every key: fail closed, and say so once per change.
      if (this.stamp !== 'gone') {
        this.stamp = 'gone';
        this.keys = { byId: new Map(), count: 0, badLines: [] };
        this.loads++;
        this.o.log?.('warn', `API key file ${this.file} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): every request is refused until it is back`);
      }
    }
  }

  private reload(force: boolean): void {
    const st = statSync(this.file);
    const stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
    if (!force && stamp === this.stamp) return;
    const text = readFileSync(this.file, 'utf8');
    this.lastRead = Date.now();
    const next = parseKeys(text);
    const changed = stamp !== this.stamp || !sameKeys(next, this.keys);
    this.stamp = stamp;
    if (!changed) return;
    this.keys = next;
    this.loads++;
    if (next.badLines.length) this.o.log?.('warn', `API key file ${this.file}: lines ${next.badLines.join(', ')} are neither a key nor sha256:<64 hex digits>; ignored`);
    this.o.log?.('info', `API key file ${this.file}: ${next.count} key${next.count === 1 ? '' : 's'} loaded`);
  }
}

function sameKeys(a: ParsedKeys, b: ParsedKeys): boolean {
  if (a.count !== b.count) return false;
  for (const [id, ds] of a.byId) {
    const other = b.byId.get(id);
    if (!other || other.length !== ds.length || !ds.every((d) => other.some((o) => o.equals(d)))) return false;
  }
  return true;
}
