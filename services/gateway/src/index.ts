/** @kiln/gateway: the serving gateway (issue #15): OpenAI-compatible completions in front of Triton. */
export { ConfigError, DEFAULTS, loadConfig, parseConfig, type GatewayConfig, type GatewayConfigFile, type LogLevel, type Upstream } from './config.ts';
export { cutAtStop, finishReason, Gateway, PLAYGROUND_CSP, type GatewayOptions } from './gateway.ts';
export { KeyFileError, KeyStore, keyIdOf, parseKeys, sha256 } from './keys.ts';
export { estimateTokens, RateLimiter } from './limits.ts';
export { ApiError, parseCompletionRequest, type CompletionRequest } from './openai.ts';
export { Router } from './router.ts';
export { configFromFlags, DEFAULT_MODEL, DEFAULT_PORT, DRAIN_MS, drainOf, GATEWAY_FLAGS, main, OptionError, parseUpstreamFlag, portOf, runGateway, type RunOptions } from './serve.ts';
export { TritonUpstream, UpstreamError, type TritonInputs, type TritonOutput } from './upstream.ts';
export { FeedbackError, FeedbackLog, parseFeedback, type CompletionContext, type FeedbackInput } from './feedback.ts';
export { sseData } from './sse.ts';
