// The kiln pipeline of one stack. Config (namespace `kiln:`, plain nested YAML maps):
//   kiln:spec     path of the kiln.yaml, relative to the repository root (or absolute)
//   kiln:overlay  which of the spec's stack overlays to apply; defaults to the stack's own name
//   kiln:train    whether the stack trains: declares the platform and the run's ModelRun (default true);
//                 false: a serving-only stack (staging, prod), in the spec's namespace, which must exist
//   kiln:model    the promotion record the stack serves (a ServedModel, written by `kiln promote`); absent: nothing served
//   kiln:canary   the candidate of a canary rollout in progress (a ServedModel); absent: none
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as pulumi from '@pulumi/pulumi';
import { pipelineFromSpec, promotionSource, type ServedModel } from '@kiln/pulumi';

const config = new pulumi.Config('kiln');
const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const served = config.getObject<ServedModel>('model');
const candidate = config.getObject<ServedModel>('canary');
const out = pipelineFromSpec(resolve(repoRoot, config.require('spec')), config.get('overlay') ?? pulumi.getStack(), {
  train: config.getBoolean('train') ?? true,
  ...(served ? { model: served } : {}),
  ...(candidate ? { canary: candidate } : {}),
});

export const runId = out.runId;
export const namespace = out.namespace;
export const train = out.train;
export const model = out.model;
export const canary = out.canary;
export const endpoints = out.endpoints;
export const serving = out.serving;
export const plan = out.plan;
/** The stack the model was promoted from, and what that stack serves now (its `model` output). */
export const source = promotionSource(served) ?? null;
