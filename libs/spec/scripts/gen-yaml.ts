/**
 * Bundles the `yaml` package into src/generated/yaml.js (src/yaml-bundle.ts says why).
 * Run after changing the `yaml` version: `npm run gen -w libs/spec`. A test fails while it is stale.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { generateYamlBundle } from '../src/yaml-bundle.ts';

const out = fileURLToPath(new URL('../src/generated/yaml.js', import.meta.url));
writeFileSync(out, generateYamlBundle());
console.log(`wrote ${out}`);
