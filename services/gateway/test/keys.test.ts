import { createHash } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { KeyFileError, KeyStore, parseKeys, sha256 } from '../src/keys.ts';
import { keyFile, until } from './support/harness.ts';

describe('the API key file', () => {
  it('takes keys and sha256 digests, skips blanks and comments, and reports lines that are neither', () => {
    const digest = createHash('sha256').update('sk-two').digest('hex');
    const k = parseKeys(`# keys\nsk-one\n\n  sk-three  \nsha256:${digest}\nsha256:abc\nnot a key\n`);
    expect(k.count).toBe(3);
    expect(k.badLines).toEqual([6, 7]);
  });

  it('keeps only digests, verifies with the key_id (12 hex digits of the sha256)', () => {
    const store = KeyStore.open({ file: keyFile(['sk-one', `sha256:${sha256('sk-two').toString('hex')}`]) });
    try {
      expect(store.verify('sk-one')).toBe(sha256('sk-one').toString('hex').slice(0, 12));
      expect(store.verify('sk-two')).toBe(sha256('sk-two').toString('hex').slice(0, 12));
      expect(store.verify('sk-on')).toBeNull();
      expect(store.verify('')).toBeNull();
      // Only 32-byte digests are held, never the key text.
      const held = [...(store as unknown as { keys: { byId: Map<string, Buffer[]> } }).keys.byId.values()].flat();
      expect(held.map((d) => d.length)).toEqual([32, 32]);
    } finally {
      store.close();
    }
  });

  it('reloads on change, and revokes every key when the file goes away', async () => {
    const file = keyFile(['sk-one']);
    const logs: string[] = [];
    const store = KeyStore.open({ file, pollMs: 50, log: (_l, m) => logs.push(m) });
    try {
      writeFileSync(file, 'sk-two\n');
      await until(() => store.verify('sk-one') === null && store.verify('sk-two') !== null, 3000, 'the edit');
      rmSync(file);
      await until(() => store.verify('sk-two') === null, 3000, 'the removal');
      expect(logs.at(-1)).toMatch(/cannot be read .*every request is refused/);
      writeFileSync(file, 'sk-three\n');
      await until(() => store.verify('sk-three') !== null, 3000, 'the file back');
      expect(logs.join('\n')).not.toMatch(/sk-/);
    } finally {
      store.close();
    }
  });

  it('refuses to start on a file it cannot read', () => {
    expect(() => KeyStore.open({ file: '/nonexistent/keys' })).toThrow(KeyFileError);
    expect(() => KeyStore.open({ file: '/nonexistent/keys' })).toThrow(/cannot read the API key file \/nonexistent\/keys: no such file/);
  });
});
