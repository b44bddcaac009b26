/**
 * Throughput of the data-prep PII/secrets redactor (`redact` of @kiln/data-prep) on one core: reads every
 * `.py` file under a directory (default: this machine's Python standard library, without site-packages, sorted
 * by path), runs `redact` on each file, and prints MB/s (bytes in / seconds of redact), files, findings per kind
 * and peak RSS. Run: `node bench/data-prep-pii.ts [--dir DIR] [--ext .py] [--repeat N] [--show K] [--json]`.
 * Prints figures; asserts nothing.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PII_KINDS, redact, type PiiKind } from '@kiln/data-prep';

const { values } = parseArgs({ options: { dir: { type: 'string' }, ext: { type: 'string', default: '.py' }, repeat: { type: 'string', default: '1' }, show: { type: 'string', default: '0' }, json: { type: 'boolean' } } });
const dir = values.dir ?? execFileSync('python3', ['-c', "import sysconfig;print(sysconfig.get_paths()['stdlib'])"], { encoding: 'utf8' }).trim();

function walk(d: string, out: string[]): void {
  for (const e of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'site-packages' && e.name !== '__pycache__') walk(p, out);
    } else if (e.isFile() && e.name.endsWith(values.ext)) out.push(p);
  }
}
const paths: string[] = [];
walk(dir, paths);
paths.sort();
const texts = paths.map((p) => readFileSync(p, 'utf8'));
const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0);

const counts = Object.fromEntries(PII_KINDS.map((k) => [k, 0])) as Record<PiiKind, number>;
const show = Number(values.show);
const shown: string[] = [];
let seconds = 0;
for (let r = 0; r < Number(values.repeat); r++) {
  const t0 = performance.now();
  for (let i = 0; i < texts.length; i++) {
    const res = redact(texts[i]!, { findings: show > 0 && r === 0 });
    if (r === 0) for (const k of PII_KINDS) counts[k] += res.counts[k];
    if (res.findings && shown.length < show) for (const f of res.findings) shown.push(`${f.kind}\t${paths[i]!.slice(dir.length + 1)}\t${f.value.slice(0, 80)}`);
  }
  seconds += (performance.now() - t0) / 1000;
}
const mb = (bytes * Number(values.repeat)) / 1e6;
const result = { dir, files: texts.length, mb: +(bytes / 1e6).toFixed(1), seconds: +seconds.toFixed(2), mbPerS: +(mb / seconds).toFixed(1), findings: counts, peakRssMb: +(process.resourceUsage().maxRSS / 1024).toFixed(0) };
if (values.json) console.log(JSON.stringify(result));
else {
  console.log(`corpus    ${dir} (${result.files} files, ${result.mb} MB, repeat ${values.repeat})`);
  console.log(`redact    ${result.seconds} s, ${result.mbPerS} MB/s on one core`);
  console.log(`findings  ${PII_KINDS.map((k) => `${k}=${counts[k]}`).join(' ')}`);
  console.log(`peak RSS  ${result.peakRssMb} MB`);
  for (const s of shown.slice(0, show)) console.log(s);
}
