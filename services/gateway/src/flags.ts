/** kiln-gateway's flags, without the gateway: `kiln gateway` reads them for its --help before loading fastify. */

/** The flags both front doors share, as parseArgs options. */
export const GATEWAY_FLAGS = {
  config: { type: 'string' },
  upstream: { type: 'string', multiple: true },
  model: { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  'api-key-file': { type: 'string' },
  'feedback-dir': { type: 'string' },
  'log-level': { type: 'string' },
  'drain-ms': { type: 'string' },
} as const;
