/** @kiln/pulumi: thin Pulumi components over libs/k8s, and the pipeline a stack declares. */
import { compileFile } from '@kiln/plan';
import { pipeline, type PipelineOutputs } from './components.ts';

export { ModelRun, Platform, ServingTarget, pipeline, stableDeploymentOptions, type ModelRunArgs, type PipelineOutputs, type PlatformArgs, type ServingEndpoints, type ServingTargetArgs } from './components.ts';

/**
 * Compiles a spec file with a stack's overlay and declares its pipeline. Invalid specs fail the Pulumi
 * program with every diagnostic, located in the file.
 */
export function pipelineFromSpec(specPath: string, stack: string, opts: { readonly controllerImage?: string } = {}): PipelineOutputs {
  const r = compileFile(specPath, { stack });
  if (!r.plan) {
    const lines = r.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.file}:${d.line}:${d.col} ${d.code} ${d.message}${d.hint ? ` (${d.hint})` : ''}`);
    throw new Error(`${specPath} is not a valid kiln spec for stack ${stack}; run \`kiln validate ${specPath} --stack ${stack}\`:\n${lines.join('\n')}`);
  }
  return pipeline(r.plan, opts);
}
