// Lint rules for the whole workspace. The module-boundary rule enforces ARCHITECTURE.md's layout table on two
// axes: `scope:*` (which layer may import which; arrows only point down) and `type:*` (libraries never import
// services, stacks or tools). Every project tags itself in its package.json under "nx".
import nx from '@nx/eslint-plugin';
import tseslint from 'typescript-eslint';

const scopes = {
  'scope:schema': [],
  'scope:spec': ['scope:schema'],
  // The stage contract: only its schemas, so every layer above may use it.
  'scope:stage': ['scope:schema'],
  'scope:plan': ['scope:spec', 'scope:stage'],
  'scope:k8s': ['scope:plan', 'scope:stage'],
  'scope:pulumi': ['scope:k8s', 'scope:plan'],
  'scope:cluster': ['scope:k8s', 'scope:plan', 'scope:stage'],
  'scope:controller': ['scope:cluster', 'scope:k8s', 'scope:plan', 'scope:stage'],
  'scope:data-prep': ['scope:spec', 'scope:stage'],
  'scope:eval-runner': ['scope:spec', 'scope:stage'],
  'scope:gateway': ['scope:schema', 'scope:spec', 'scope:stage'],
  // Python: it imports no TypeScript project; it reads schemas/stages as data.
  'scope:trainer': [],
  'scope:stacks': ['scope:pulumi', 'scope:spec'],
  // Promotion between stacks: reads runs through the cluster helpers, writes stack config and git, runs Pulumi.
  'scope:promote': ['scope:spec', 'scope:stage', 'scope:plan', 'scope:k8s', 'scope:cluster'],
  // The local cluster hands the controller its simulation through hooks (a @kiln/cluster contract): it never
  // imports the controller, another service or the CLI.
  'scope:local-node': ['scope:cluster', 'scope:k8s'],
  'scope:local-cluster': ['scope:local-node', 'scope:cluster', 'scope:k8s', 'scope:plan', 'scope:spec', 'scope:stage'],
  // Benchmarks measure the packages as their users do, through each one's public API; nothing imports them.
  'scope:bench': ['scope:spec', 'scope:trainer', 'scope:plan', 'scope:k8s', 'scope:cluster', 'scope:data-prep', 'scope:eval-runner', 'scope:gateway', 'scope:local-cluster', 'scope:local-node'],
  'scope:cli': ['scope:schema', 'scope:spec', 'scope:stage', 'scope:plan', 'scope:k8s', 'scope:pulumi', 'scope:cluster', 'scope:promote', 'scope:controller', 'scope:data-prep', 'scope:eval-runner', 'scope:gateway', 'scope:local-cluster', 'scope:local-node'],
};

const types = {
  'type:schema': [],
  'type:lib': ['type:lib', 'type:schema'],
  'type:service': ['type:lib', 'type:schema'],
  'type:stack': ['type:lib'],
  // The CLI hosts services' entry points (`kiln controller`) and the local cluster's commands; which tool may
  // import which is the scopes' business (the local cluster may not import the CLI).
  'type:tool': ['type:lib', 'type:schema', 'type:service', 'type:tool'],
};

export default [
  { ignores: ['**/node_modules/**', '**/dist/**', '**/generated/**', '.nx/**', '.kiln/**', 'coverage/**'] },
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.js', '**/*.mjs'],
    plugins: { '@nx': nx },
    rules: {
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: false,
          allowCircularSelfDependency: false,
          depConstraints: [
            ...Object.entries(scopes).map(([sourceTag, allowed]) => ({ sourceTag, onlyDependOnLibsWithTags: allowed })),
            ...Object.entries(types).map(([sourceTag, allowed]) => ({ sourceTag, onlyDependOnLibsWithTags: allowed })),
          ],
        },
      ],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      eqeqeq: ['error', 'always'],
    },
  },
  {
    // Test support (a project's test/, `@kiln/<project>/test-support`) is for tests: production code never loads it.
    files: ['**/src/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ regex: '(^@kiln/[^/]+/test-support$)|(^\\.{1,2}/(.+/)?test/)', message: 'test support is for tests; src/ may not import it' }] }],
    },
  },
  {
    // A bench is a user of the packages it measures: it imports `@kiln/<project>` (the project's src/index.ts),
    // never a relative path into another project's files (which would also bypass the boundary rule above), nor tests.
    files: ['bench/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { regex: '^(\\.\\./)+(libs|services|tools|schemas|stacks)(/|$)', message: 'a bench imports a package through its public API (`@kiln/<name>`), not a relative path into another project' },
            { regex: '^@kiln/[^/]+/test-support$', message: 'test support is for tests; a bench may not import it' },
          ],
        },
      ],
    },
  },
];
