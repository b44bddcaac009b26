/** @kiln/pulumi: thin Pulumi components over libs/k8s, and the pipeline a stack declares. */
import { compileFile } from '@kiln/plan';
import { pipeline, type PipelineOptions, type PipelineOutputs } from './components.ts';
export type { ServedModel } from '@kiln/plan';

export {
  ModelRun,
  Platform,
  ServingTarget,
  pipeline,
  promotionSource,
  servedModelOutput,
  type ModelRunArgs,
  type PipelineOptions,
  type PipelineOutputs,
  type PlatformArgs,
  type ServedModelOutput,
  type ServingEndpoints,
  type ServingTargetArgs,
} from './components.ts';

/**
 * Compiles a spec file with a stack's overlay and declares its pipeline (options as `pipeline`'s: whether it
 * trains, the model it serves, a canary). Invalid specs fail the Pulumi
 * program with every diagnostic, located in the file.
 */
export function pipelineFromSpec(specPath: string, stack: string, opts: PipelineOptions = {}): PipelineOutputs {
  const r = compileFile(specPath, { stack });
  if (!r.plan) {
    const lines = r.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.file}:${d.line}:${d.col} ${d.code} ${d.message}${d.hint ? ` (${d.hint})` : ''}`);
    throw new Error(`${specPath} is not a valid kiln spec for stack ${stack}; run \`kiln validate ${specPath} --stack ${stack}\`:\n${lines.join('\n')}`);
  }
  return pipeline(r.plan, opts);
}
