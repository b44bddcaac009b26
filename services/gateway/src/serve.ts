/**
 * The gateway's two front doors share this: `kiln-gateway` (the image's command) and `kiln gateway` (the CLI).
 * Flags → a config (a --config file, with flags over it), then run until SIGINT or SIGTERM.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, parseConfig, type GatewayConfig, type GatewayConfigFile } from './config.ts';
import { GATEWAY_FLAGS } from './flags.ts';
import { Gateway, type GatewayOptions } from './gateway.ts';
import { KeyFileError } from './keys.ts';

export { GATEWAY_FLAGS };

/** A flag with a bad value; the CLI shows it as a usage error. */
export class OptionError extends Error {}

export const DEFAULT_PORT = 8080;
export const DEFAULT_MODEL = 'completions';

/**
 * One `--upstream` value: `URL`, `name=URL`, `URL@weight` or `name=URL@weight`. An unnamed upstream is `default`
 * when it is the only one, else `upstream-<i>` (1-based).
 */
export function parseUpstreamFlag(value: string, i: number, count: number): GatewayConfigFile['upstreams'][number] {
  let rest = value.trim();
  let name: string | undefined;
  const eq = /^([a-z0-9][a-z0-9._-]*)=(.*)$/.exec(rest);
  if (eq) {
    name = eq[1];
    rest = eq[2]!;
  }
  let weight: number | undefined;
  const at = /^(.*)@([0-9]*\.?[0-9]+)$/.exec(rest);
  if (at) {
    rest = at[1]!;
    weight = Number(at[2]);
  }
  if (!/^https?:\/\/[^/\s]+/.test(rest)) throw new OptionError(`--upstream "${value}": expected URL, name=URL or name=URL@weight, e.g. canary=http://127.0.0.1:8001@0.1`);
  return { name: name ?? (count === 1 ? 'default' : `upstream-${i + 1}`), url: rest, ...(weight !== undefined ? { weight } : {}) };
}

/** The config from flags: a --config file (if any), with --model, --upstream, --api-key-file and --feedback-dir over it. */
export function configFromFlags(values: Record<string, unknown>): GatewayConfig {
  let base: Partial<GatewayConfigFile> = {};
  let where = 'the gateway flags';
  if (values.config !== undefined) {
    const file = String(values.config);
    // loadConfig checks the file on its own first, so its errors name the file's fields.
    const loaded = loadConfig(file);
    base = toFile(loaded);
    where = `the gateway config ${file} with the flags over it`;
  }
  const ups = (values.upstream as string[] | undefined) ?? [];
  if (!ups.length && !base.upstreams) throw new OptionError('no upstream: pass --upstream URL (a Triton server, e.g. http://127.0.0.1:8000), or --config FILE');
  const merged: GatewayConfigFile = {
    ...base,
    model: (values.model as string | undefined) ?? base.model ?? DEFAULT_MODEL,
    upstreams: ups.length ? ups.map((u, i) => parseUpstreamFlag(u, i, ups.length)) : base.upstreams!,
    ...(values['api-key-file'] !== undefined ? { api_keys_file: String(values['api-key-file']) } : {}),
    ...(values['feedback-dir'] !== undefined ? { feedback: { ...(base.feedback ?? {}), dir: String(values['feedback-dir']) } } : {}),
    ...(values['log-level'] !== undefined ? { log: { ...(base.log ?? {}), level: String(values['log-level']) as never } } : {}),
  };
  return parseConfig(merged, where);
}

/** A resolved config back in the file's shape (for merging flags over it). */
function toFile(c: GatewayConfig): GatewayConfigFile {
  return {
    model: c.model,
    upstreams: c.upstreams.map((u) => ({ name: u.name, url: u.url, weight: u.weight, triton_model: u.tritonModel })),
    api_keys_file: c.apiKeysFile,
    limits: {
      requests_per_minute: c.limits.requestsPerMinute,
      tokens_per_minute: c.limits.tokensPerMinute,
      max_body_bytes: c.limits.maxBodyBytes,
      max_prompt_chars: c.limits.maxPromptChars,
      max_tokens: c.limits.maxTokens,
      request_timeout_ms: c.limits.requestTimeoutMs,
    },
    feedback: c.feedback ? { dir: c.feedback.dir, max_file_bytes: c.feedback.maxFileBytes } : null,
    log: { level: c.log.level, prompts: c.log.prompts },
    health: { interval_ms: c.health.intervalMs, timeout_ms: c.health.timeoutMs },
  };
}

export function portOf(v: unknown): number {
  if (v === undefined) return DEFAULT_PORT;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new OptionError(`--port takes a port number 0–65535 (0: a free one), not "${String(v)}"`);
  return n;
}

/** `--drain-ms N`: how long SIGTERM drains; `fallback` when the flag is absent. */
export function drainOf(v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 600_000) throw new OptionError(`--drain-ms takes milliseconds 0–600000, not "${String(v)}"`);
  return n;
}

export interface RunOptions extends GatewayOptions {
  readonly host: string;
  readonly port: number;
  /** Human lines (the URL, warnings, stopping), to standard error. */
  readonly say: (line: string) => void;
  /** Resolves when the gateway should stop. Default: SIGINT or SIGTERM. */
  readonly stopped?: Promise<void>;
  /** Told the URL once listening. */
  readonly onListening?: (url: string) => void;
  /** How long SIGTERM drains before the gateway closes (default DRAIN_MS). */
  readonly drainMs?: number;
}

/**
 * What SIGTERM drains for: long enough for the pod to leave its Service's endpoints and for clients' idle
 * connections to be closed, well inside Kubernetes' default 30 s grace period.
 */
export const DRAIN_MS = 5000;

/** Runs a gateway until SIGINT or SIGTERM (or `stopped`); resolves to the exit code (0 after a clean stop). */
export async function runGateway(config: GatewayConfig, o: RunOptions): Promise<number> {
  const g = await Gateway.create(config, o);
  let url: string;
  try {
    url = await g.listen(o.host, o.port);
  } catch (e) {
    await g.close();
    const code = (e as NodeJS.ErrnoException).code;
    throw new OptionError(code === 'EADDRINUSE' ? `port ${o.port} on ${o.host} is in use: pick another with --port N (0: a free one)` : `cannot listen on ${o.host}:${o.port}: ${(e as Error).message}`);
  }
  if (!config.apiKeysFile) o.say('warning: no API key file: this gateway is open, every request is accepted (pass --api-key-file FILE)');
  const ready = g.router.upstreams.filter((u) => g.router.isReady(u.name)).map((u) => u.name);
  const shares = g.router.shares();
  o.say(
    `gateway: ${url} (model ${config.model}; upstreams ${config.upstreams.map((u) => `${u.name} ${u.url} ${Math.round((shares[u.name] ?? 0) * 1000) / 10}%${ready.includes(u.name) ? '' : ' not ready'}`).join(', ')})`,
  );
  o.onListening?.(url);
  // SIGTERM (Kubernetes stopping the pod in a rolling update) drains first; SIGINT (Ctrl-C) stops at once.
  const why = await (o.stopped?.then(() => 'stopped' as const) ??
    new Promise<'SIGINT' | 'SIGTERM'>((res) => {
      process.once('SIGINT', () => res('SIGINT'));
      process.once('SIGTERM', () => res('SIGTERM'));
    }));
  const drainMs = why === 'SIGTERM' ? (o.drainMs ?? DRAIN_MS) : 0;
  o.say(drainMs ? `gateway: draining for ${drainMs} ms (answers close their connections, /readyz says 503), then stopping` : 'gateway: stopping');
  await g.drain(drainMs);
  return 0;
}

const USAGE = 'Usage: kiln-gateway --config FILE [--host H] [--port N] [--upstream [name=]URL[@weight] ...] [--model NAME] [--api-key-file FILE] [--feedback-dir DIR] [--log-level L] [--drain-ms N]';

/** `kiln-gateway [flags]`: 0 when stopped by a signal, 2 on a usage or config error. */
export async function main(argv: string[]): Promise<number> {
  const say = (l: string) => process.stderr.write(`kiln-gateway: ${l}\n`);
  try {
    const { values } = parseArgs({ args: argv, options: { ...GATEWAY_FLAGS, help: { type: 'boolean', short: 'h' } }, allowPositionals: false, strict: true });
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return 0;
    }
    const config = configFromFlags(values);
    // In a pod, every interface: the Service in front of it decides who reaches it.
    return await runGateway(config, { host: (values.host as string | undefined) ?? '0.0.0.0', port: portOf(values.port), drainMs: drainOf(values['drain-ms'], DRAIN_MS), say });
  } catch (e) {
    if (e instanceof OptionError || e instanceof ConfigError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') || e instanceof KeyFileError) {
      say(`${(e as Error).message}\n${USAGE}`);
      return 2;
    }
    throw e;
  }
}
