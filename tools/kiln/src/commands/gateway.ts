/** `kiln gateway`: the serving gateway (@kiln/gateway) here, in front of one or more Triton servers. */
import { GATEWAY_FLAGS } from '@kiln/gateway/flags';
import { common, type Command } from '../command.ts';
import { UsageError, type Io } from '../io.ts';

export const command: Command = {
  usage: 'kiln gateway --upstream URL [--upstream name=URL@weight ...] [--port N] [--host H] [--api-key-file FILE] [--config FILE] [--feedback-dir DIR] [--model NAME] [--drain-ms N]',
  help: `Serves an OpenAI-compatible completions API (POST /v1/completions, GET /v1/models, POST /v1/feedback)
in front of Triton servers (kiln serve's), with API keys, per-key rate limits, canary routing, Prometheus
metrics (/metrics) and the playground page (/). Prints its URL on standard output, logs one JSON line per
request on standard error, and runs until Ctrl-C or SIGTERM (exit 0).

Options:
  --upstream U          a Triton server: URL, name=URL or name=URL@weight (repeat for a canary, e.g.
                        --upstream stable=http://127.0.0.1:8000@9 --upstream canary=http://127.0.0.1:8001@1);
                        weights are normalised over the ready upstreams, each key sticks to one
  --model NAME          the model name clients send (default completions; NAME@<upstream> pins one)
  --port N              port to listen on (default 8080; 0: a free one)
  --host H              address to listen on (default 127.0.0.1)
  --api-key-file FILE   one key per line (or sha256:<hex>); reloaded when it changes. Without one the
                        gateway is open (a warning says so)
  --config FILE         a gateway config (schemas/gateway-config.schema.json): limits, feedback, logging;
                        the flags above override it
  --feedback-dir DIR    record POST /v1/feedback here (feedback-*.jsonl)
  --log-level L         fatal, error, warn, info (default), debug, trace or silent
  --drain-ms N          on SIGTERM, answer for N ms more with Connection: close and /readyz 503, then stop
                        (default 0 here; the pod's kiln-gateway drains 5000)

Exit codes: 0 stopped by Ctrl-C or SIGTERM, 2 usage or config error (a bad flag, a config or key file it cannot use, a port in use).`,
  options: {
    ...common,
    ...GATEWAY_FLAGS,
  },
  allowPositionals: false,
  run: runGatewayCommand,
};

export async function runGatewayCommand(values: Record<string, unknown>, _pos: string[], io: Io): Promise<number> {
  const { configFromFlags, drainOf, runGateway, portOf, OptionError, ConfigError, KeyFileError } = await import('@kiln/gateway');
  const usage = (e: unknown) => e instanceof OptionError || e instanceof ConfigError || e instanceof KeyFileError;
  try {
    const config = configFromFlags(values);
    return await runGateway(config, {
      host: (values.host as string | undefined) ?? '127.0.0.1',
      port: portOf(values.port),
      drainMs: drainOf(values['drain-ms'], 0),
      say: (l) => io.err(`kiln gateway: ${l}`),
      onListening: (url) => io.out(url),
      // Standard output carries the URL; the request log goes beside the messages.
      logStream: process.stderr,
    });
  } catch (e) {
    if (usage(e)) throw new UsageError((e as Error).message);
    throw e;
  }
}
