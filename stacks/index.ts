// The kiln pipeline of one stack. Config:
//   kiln:spec     path of the kiln.yaml, relative to the repository root (or absolute)
//   kiln:overlay  which of the spec's stack overlays to apply; defaults to the stack's own name
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as pulumi from '@pulumi/pulumi';
import { pipelineFromSpec } from '@kiln/pulumi';

const config = new pulumi.Config('kiln');
const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const out = pipelineFromSpec(resolve(repoRoot, config.require('spec')), config.get('overlay') ?? pulumi.getStack());

export const runId = out.runId;
export const namespace = out.namespace;
export const endpoints = out.endpoints;
export const serving = out.serving;
export const plan = out.plan;
