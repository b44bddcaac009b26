/**
 * Compiles schemas/kiln.schema.json into a standalone validator (src/generated/validate.cjs).
 * Compiling the schema at run time costs ~150 ms, most of a cold `kiln validate`; the generated module
 * loads in a few. Run after editing the schema: `npm run gen -w libs/spec`. A test fails while it is stale.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { generateValidatorSource } from '../src/compile.ts';

const out = fileURLToPath(new URL('../src/generated/validate.cjs', import.meta.url));
writeFileSync(out, generateValidatorSource());
console.log(`wrote ${out}`);
