/**
 * @kiln/local-node: the local cluster's execution node (docs/local-node.md). This file is the project's only
 * public API.
 */
export { main } from './main.ts';
