/** stack.ts's name for the engine event type, until stack.ts moves to tools/local-cluster; the report itself is render/pulumi-events.ts. */
export type { EngineEvent } from './render/pulumi-events.ts';
