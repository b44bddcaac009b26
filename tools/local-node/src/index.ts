/**
 * @kiln/local-node: the local cluster's execution node (docs/local-node.md). This file is the project's only
 * public API.
 */
export { main } from './main.ts';
export { Agent, type AgentOptions } from './agent/agent.ts';
export { cleanupNode } from './agent/cleanup.ts';
export { NODE_NAME, LOCAL_TAINT } from './agent/node.ts';
export { IMAGES, Images, imageKind, repository, type ImageEnv } from './agent/images.ts';
export { containerSpec, ConfigError, type TranslateInput, type HostVolume, type EnvSources } from './agent/translate.ts';
export { Runtime, containerId, type ContainerRecord, type ContainerSpec, type ContainerState, type Mount } from './runtime/index.ts';
export { PodNetwork, ServiceProxy, hostsFile, serviceNames, type ProxyService } from './network/index.ts';
