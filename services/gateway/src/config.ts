/**
 * The gateway's config (schemas/gateway-config.schema.json, contract §3): read, validated with ajv, defaulted in
 * one place. A file that cannot be read or parsed, or that does not conform, is a `ConfigError` naming the file
 * and, for each problem, the field as a JSON pointer and what is wrong with it.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import schema from '@kiln/schemas/gateway-config.schema.json' with { type: 'json' };

/** The config file as written (the schema's shape). */
export interface GatewayConfigFile {
  readonly model: string;
  readonly upstreams: readonly { readonly name: string; readonly url: string; readonly weight?: number; readonly triton_model?: string }[];
  readonly api_keys_file?: string | null;
  readonly limits?: {
    readonly requests_per_minute?: number | null;
    readonly tokens_per_minute?: number | null;
    readonly max_body_bytes?: number;
    readonly max_prompt_chars?: number;
    readonly max_tokens?: number;
    readonly request_timeout_ms?: number;
  };
  readonly feedback?: { readonly dir: string; readonly max_file_bytes?: number } | null;
  readonly log?: { readonly level?: LogLevel; readonly prompts?: boolean };
  readonly health?: { readonly interval_ms?: number; readonly timeout_ms?: number };
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Upstream {
  readonly name: string;
  /** The origin and base path, without a trailing slash. */
  readonly url: string;
  /** Not normalised: the router normalises over the ready upstreams. */
  readonly weight: number;
  readonly tritonModel: string;
}

/** The config with every default applied. */
export interface GatewayConfig {
  readonly model: string;
  readonly upstreams: readonly Upstream[];
  /** Null: an open gateway (no keys checked). */
  readonly apiKeysFile: string | null;
  readonly limits: {
    /** Null: unlimited. */
    readonly requestsPerMinute: number | null;
    readonly tokensPerMinute: number | null;
    readonly maxBodyBytes: number;
    readonly maxPromptChars: number;
    readonly maxTokens: number;
    readonly requestTimeoutMs: number;
  };
  readonly feedback: { readonly dir: string; readonly maxFileBytes: number } | null;
  readonly log: { readonly level: LogLevel; readonly prompts: boolean };
  readonly health: { readonly intervalMs: number; readonly timeoutMs: number };
}

export const DEFAULTS = {
  weight: 1,
  tritonModel: 'ensemble',
  maxBodyBytes: 65_536,
  maxPromptChars: 32_000,
  maxTokens: 1024,
  requestTimeoutMs: 60_000,
  feedbackMaxFileBytes: 64 << 20,
  logLevel: 'info',
  healthIntervalMs: 2000,
  healthTimeoutMs: 1000,
} as const;

/** A config that cannot be used: the message says where and how to fix it. */
export class ConfigError extends Error {}

let validator: ValidateFunction | undefined;

/** Reads and validates a config file. */
export function loadConfig(file: string): GatewayConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read the gateway config ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`the gateway config ${file} is not JSON: ${(e as Error).message}`);
  }
  return parseConfig(value, `the gateway config ${file}`);
}

/** Validates a config value (`where` names it in errors) and applies the defaults. */
export function parseConfig(value: unknown, where = 'the gateway config'): GatewayConfig {
  validator ??= new Ajv2020({ allErrors: true, strict: true, strictRequired: false, allowUnionTypes: true }).compile(schema);
  if (!validator(value)) {
    const problems = describeErrors(validator.errors ?? []);
    const shown = problems.slice(0, 5);
    const more = problems.length > shown.length ? `; and ${problems.length - shown.length} more` : '';
    throw new ConfigError(`${where} is not valid: ${shown.join('; ')}${more}`);
  }
  const c = value as GatewayConfigFile;
  const names = new Set<string>();
  c.upstreams.forEach((u, i) => {
    if (names.has(u.name)) throw new ConfigError(`${where} is not valid: /upstreams/${i}/name "${u.name}" is used by an earlier upstream; names must be unique`);
    names.add(u.name);
  });
  if (!c.upstreams.some((u) => (u.weight ?? DEFAULTS.weight) > 0)) {
    throw new ConfigError(`${where} is not valid: /upstreams every weight is 0, so no request could be routed; give at least one upstream a weight above 0`);
  }
  const l = c.limits ?? {};
  return {
    model: c.model,
    upstreams: c.upstreams.map((u) => ({ name: u.name, url: u.url.replace(/\/+$/, ''), weight: u.weight ?? DEFAULTS.weight, tritonModel: u.triton_model ?? DEFAULTS.tritonModel })),
    apiKeysFile: c.api_keys_file ?? null,
    limits: {
      requestsPerMinute: l.requests_per_minute ?? null,
      tokensPerMinute: l.tokens_per_minute ?? null,
      maxBodyBytes: l.max_body_bytes ?? DEFAULTS.maxBodyBytes,
      maxPromptChars: l.max_prompt_chars ?? DEFAULTS.maxPromptChars,
      maxTokens: l.max_tokens ?? DEFAULTS.maxTokens,
      requestTimeoutMs: l.request_timeout_ms ?? DEFAULTS.requestTimeoutMs,
    },
    feedback: c.feedback ? { dir: c.feedback.dir, maxFileBytes: c.feedback.max_file_bytes ?? DEFAULTS.feedbackMaxFileBytes } : null,
    log: { level: c.log?.level ?? DEFAULTS.logLevel, prompts: c.log?.prompts ?? false },
    health: { intervalMs: c.health?.interval_ms ?? DEFAULTS.healthIntervalMs, timeoutMs: c.health?.timeout_ms ?? DEFAULTS.healthTimeoutMs },
  };
}

/** One line per problem: the field as a JSON pointer and what is wrong, with ajv's noise cut. */
function describeErrors(errors: readonly ErrorObject[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const child = (e: ErrorObject, name: string) => `${e.instancePath}/${name.replace(/~/g, '~0').replace(/\//g, '~1')}`;
  // A type error of a `["x", "null"]` field is one error; `required` beats the branches around it.
  for (const e of errors) {
    const at = e.instancePath || '/';
    let line: string;
    switch (e.keyword) {
      case 'required':
        line = `${child(e, String(e.params.missingProperty))} is missing`;
        break;
      case 'additionalProperties':
        line = `${child(e, String(e.params.additionalProperty))} is not a field here`;
        break;
      case 'enum':
        line = `${at} must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
        break;
      case 'pattern':
        line = `${at} ${patternHint(e.instancePath)}`;
        break;
      default:
        line = `${at} ${e.message ?? 'is not valid'}`;
    }
    if (!seen.has(line)) {
      seen.add(line);
      out.push(line);
    }
  }
  return out;
}

function patternHint(pointer: string): string {
  if (/\/url$/.test(pointer)) return 'must be an http:// or https:// URL, e.g. http://kiln-demo-completions:8000';
  if (/\/name$/.test(pointer)) return 'must be lower-case letters, digits, ".", "_" or "-" (at most 63, starting and ending with a letter or digit)';
  if (pointer === '/model') return 'must be letters, digits, ".", "_", ":" or "-", starting with a letter or digit (no "@": it pins an upstream)';
  return 'is not in the expected form';
}
