/**
 * Derives `$defs/overlay` (the schema of a stack overlay: a partial spec) from the rest of
 * schemas/kiln.schema.json and writes the file back, with schemas/kiln-overlay.schema.json beside it. Run by `npm run gen -w libs/spec`, before the
 * validator is generated; edit the spec's schema, never `$defs/overlay`. A test fails while it is stale.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { overlayFileSchema, withOverlay } from '../src/overlay-schema.ts';

const file = fileURLToPath(new URL('../../../schemas/kiln.schema.json', import.meta.url));
const schema = JSON.parse(readFileSync(file, 'utf8'));
writeFileSync(file, JSON.stringify(withOverlay(schema), null, 2) + '\n');
console.log(`wrote ${file}`);
const overlayFile = fileURLToPath(new URL('../../../schemas/kiln-overlay.schema.json', import.meta.url));
writeFileSync(overlayFile, JSON.stringify(overlayFileSchema(), null, 2) + '\n');
console.log(`wrote ${overlayFile}`);
