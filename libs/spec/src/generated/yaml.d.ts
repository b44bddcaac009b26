// Types of src/generated/yaml.js (the yaml package, bundled by scripts/gen-yaml.ts): those of the package.
export * from 'yaml';
