/**
 * The catalogue of diagnostic codes. Codes are stable: tools and people grep for them, so a code is never
 * reused for a different problem. docs/diagnostics.md documents each one (a test keeps the two in step).
 */
export type Severity = 'error' | 'warning';

export interface CodeInfo {
  readonly title: string;
  readonly severity: Severity;
}

export const CODES = {
  // Reading the file and parsing YAML.
  KL101: { title: 'file not found', severity: 'error' },
  KL102: { title: 'not a regular file', severity: 'error' },
  KL103: { title: 'file too large', severity: 'error' },
  KL104: { title: 'not valid UTF-8', severity: 'error' },
  KL105: { title: 'binary content', severity: 'error' },
  KL106: { title: 'empty spec', severity: 'error' },
  KL107: { title: 'YAML syntax error', severity: 'error' },
  KL108: { title: 'duplicate key', severity: 'error' },
  KL109: { title: 'too many alias expansions', severity: 'error' },
  KL110: { title: 'unsupported YAML tag', severity: 'error' },
  KL111: { title: 'forbidden key', severity: 'error' },
  KL112: { title: 'more than one YAML document', severity: 'error' },
  KL113: { title: 'spec is not a mapping', severity: 'error' },
  KL114: { title: 'key is not a plain string', severity: 'error' },
  KL115: { title: 'nesting too deep', severity: 'error' },
  KL116: { title: 'file cannot be read', severity: 'error' },
  KL117: { title: 'alias without an anchor', severity: 'error' },
  KL118: { title: 'too many problems to report', severity: 'error' },
  // Schema violations.
  KL201: { title: 'unknown key', severity: 'error' },
  KL202: { title: 'missing required field', severity: 'error' },
  KL203: { title: 'wrong type', severity: 'error' },
  KL204: { title: 'value not allowed', severity: 'error' },
  KL205: { title: 'badly formatted value', severity: 'error' },
  KL206: { title: 'value out of range', severity: 'error' },
  KL207: { title: 'wrong number of entries', severity: 'error' },
  KL208: { title: 'exactly one of several fields', severity: 'error' },
  KL209: { title: 'unknown variant', severity: 'error' },
  KL210: { title: 'unsupported apiVersion', severity: 'error' },
  KL211: { title: 'string length out of range', severity: 'error' },
  KL212: { title: 'duplicate list entries', severity: 'error' },
  // Checks the schema cannot express.
  KL301: { title: 'd_model not divisible by n_heads', severity: 'error' },
  KL302: { title: 'global batch not divisible', severity: 'error' },
  KL303: { title: 'sentinel token missing from tokenizer', severity: 'error' },
  KL304: { title: 'gate names an unknown suite', severity: 'error' },
  KL305: { title: 'gate names an unavailable metric', severity: 'error' },
  KL306: { title: 'GPUs do not fit on a node', severity: 'error' },
  KL307: { title: 'duplicate name', severity: 'error' },
  KL308: { title: 'secret value inline', severity: 'error' },
  KL309: { title: 'model shape incomplete', severity: 'error' },
  KL310: { title: 'token budget too small', severity: 'error' },
  KL311: { title: 'unknown reference', severity: 'error' },
  KL312: { title: 'model does not fit in GPU memory', severity: 'error' },
  KL313: { title: 'vocabulary size mismatch', severity: 'error' },
  KL314: { title: 'inconsistent serving target', severity: 'error' },
  KL315: { title: 'inconsistent LSH parameters', severity: 'error' },
  KL316: { title: 'schedule does not fit the budget', severity: 'error' },
  KL317: { title: 'inconsistent eval settings', severity: 'error' },
  KL318: { title: 'shape that runs slowly', severity: 'warning' },
  KL319: { title: 'no price for a GPU type', severity: 'warning' },
  KL320: { title: 'node pool cannot hold the job', severity: 'error' },
  KL321: { title: 'custom suite without problems', severity: 'error' },
  KL322: { title: 'gate for an undeclared stack', severity: 'warning' },
  KL323: { title: 'settings with no effect', severity: 'warning' },
  KL324: { title: 'precision not supported by the GPU', severity: 'error' },
  KL325: { title: 'risky setting', severity: 'warning' },
  KL326: { title: 'feedback without a gateway', severity: 'error' },
  KL327: { title: 'feedback needs mounted storage', severity: 'error' },
  KL328: { title: 'request above its limit', severity: 'error' },
  KL329: { title: 'CPU serving needs the python backend', severity: 'error' },
  // Stack overlays.
  KL401: { title: 'unknown stack', severity: 'error' },
  KL402: { title: 'overlay changes a fixed field', severity: 'error' },
  KL403: { title: 'overlay is not a mapping', severity: 'error' },
} as const satisfies Record<string, CodeInfo>;

export type Code = keyof typeof CODES;
