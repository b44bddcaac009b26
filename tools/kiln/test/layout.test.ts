import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));

interface Constraint {
  sourceTag: string;
  onlyDependOnLibsWithTags: string[];
}

/** The README's repository layout table: path → the layers it may import (`—` for none), for rows naming a project. */
function readmeLayout(): Map<string, string[]> {
  const text = readFileSync(join(root, 'README.md'), 'utf8');
  const start = text.indexOf('| path | contents | may import |');
  if (start < 0) throw new Error('README.md has no "| path | contents | may import |" table');
  const rows = new Map<string, string[]>();
  for (const line of text.slice(start).split('\n').slice(2)) {
    if (!line.startsWith('|')) break;
    const cells = line.split(' | ').map((c) => c.replace(/^\|\s*|\s*\|$/g, '').trim());
    const path = cells[0]!.replace(/`/g, '').replace(/\/$/, '');
    const imports = cells.at(-1)!;
    rows.set(path, imports === '—' ? [] : imports.split(',').map((s) => s.trim().replace(/`/g, '')));
  }
  return rows;
}

/** The `scope:*` tag of the Nx project at `path`, if it is one. */
function scopeOf(path: string): string | undefined {
  const file = join(root, path, 'package.json');
  if (!existsSync(file)) return undefined;
  const tags = (JSON.parse(readFileSync(file, 'utf8')) as { nx?: { tags?: string[] } }).nx?.tags ?? [];
  return tags.find((t) => t.startsWith('scope:'));
}

describe("the README's layout table", () => {
  let constraints: Constraint[];
  beforeAll(async () => {
    const config = (await import(new URL('../../../eslint.config.mjs', import.meta.url).href)).default as { rules?: Record<string, unknown> }[];
    const rule = config.find((c) => c.rules?.['@nx/enforce-module-boundaries'])!.rules!['@nx/enforce-module-boundaries'] as [string, { depConstraints: Constraint[] }];
    constraints = rule[1].depConstraints;
  });

  it('says, for every project, exactly the layers lint lets it import', () => {
    const rows = readmeLayout();
    const projects = [...rows.keys()].filter((p) => scopeOf(p));
    // Every scoped project of the workspace has a row (none is left out of the table).
    expect(projects.length).toBeGreaterThanOrEqual(14);
    for (const path of projects) {
      const scope = scopeOf(path)!;
      const allowed = constraints.find((c) => c.sourceTag === scope)?.onlyDependOnLibsWithTags.map((t) => t.replace(/^scope:/, ''));
      expect(allowed, `${path} (${scope}) has no constraint in eslint.config.mjs`).toBeDefined();
      expect([...rows.get(path)!].sort(), `README row of ${path}`).toEqual([...allowed!].sort());
    }
  });

  it('has a row for every scope that lint constrains', () => {
    const scopes = new Set([...readmeLayout().keys()].map(scopeOf).filter(Boolean));
    for (const c of constraints.filter((x) => x.sourceTag.startsWith('scope:') && x.sourceTag !== 'scope:gateway')) expect(scopes, c.sourceTag).toContain(c.sourceTag);
  });
});
