#!/usr/bin/env node
// The trainer's non-torch wheels for a GPU machine that has PyTorch but no package index (the device tool's
// H200): tokenizers, zstandard, jsonschema and what they need, and sentencepiece for the tokenizer benchmark,
// for CPython 3.10 to 3.13 on manylinux x86_64, into .kiln/device-wheels (ignored by git; about 33 MB). Carry that
// folder and install it there with
//   python3 -m pip install --no-index --no-deps --find-links .kiln/device-wheels --target /tmp/pylib \
//     tokenizers zstandard jsonschema referencing rpds-py attrs jsonschema-specifications sentencepiece
// then run with PYTHONPATH=/tmp/pylib:services/trainer/src. Versions are the lock file's where it pins them.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const lock = readFileSync(fileURLToPath(new URL('../requirements.lock', import.meta.url)), 'utf8');
const NAMES = ['tokenizers', 'zstandard', 'jsonschema', 'referencing', 'rpds-py', 'attrs', 'jsonschema-specifications', 'sentencepiece', 'typing-extensions'];
const pinned = (name) => new RegExp(`^${name}==([^ \\\\\\n]+)`, 'm').exec(lock)?.[1];
const specs = NAMES.map((n) => (pinned(n) ? `${n}==${pinned(n)}` : n));
const dest = `${root}.kiln/device-wheels`;
mkdirSync(dest, { recursive: true });
for (const version of ['3.10', '3.11', '3.12', '3.13']) {
  const args = ['-m', 'pip', 'download', '-q', '--no-deps', '--only-binary', ':all:', '--python-version', version, '--implementation', 'cp', '--platform', 'manylinux2014_x86_64', '--platform', 'manylinux_2_17_x86_64', '--platform', 'manylinux_2_28_x86_64', '-d', dest];
  const r = spawnSync('python3', [...args, ...specs], { stdio: ['ignore', 'inherit', 'pipe'] });
  // A pin with no wheel for an older Python (rpds-py's newest skips 3.10): fetch them unpinned for that one.
  if (r.status !== 0 && spawnSync('python3', [...args, ...NAMES], { stdio: 'inherit' }).status !== 0) process.exit(1);
}
console.log(`wheels in ${dest}`);
