/** The text of `kiln plan`: the stages, serving targets, estimate and gates, and what the cluster said. */
import { formatCount } from '@kiln/spec';
import { gatewayUrl } from '@kiln/k8s';
import type { CapacityProblem, Changes, Plan } from '@kiln/plan';

const hours = (h: number) => (h < 48 ? `${h.toFixed(1)} h` : `${(h / 24).toFixed(1)} days`);

/** The plan of one run, as a person reads it. */
export function formatPlan(plan: Plan): string {
  const e = plan.estimate;
  const lines = [
    `run ${plan.runId} of ${plan.name}${plan.stack ? ` (stack ${plan.stack})` : ''} in namespace ${plan.namespace}`,
    `artifacts under ${plan.storagePrefix}`,
    '',
    'stages:',
  ];
  const width = Math.max(...plan.stages.map((s) => s.name.length));
  for (const s of plan.stages) {
    const par = s.parallelism.kind === 'shards' ? `${s.parallelism.shards} shards` : s.parallelism.kind === 'nodes' ? (s.parallelism.gpusPerNode === 0 ? `${s.parallelism.nodes} node${s.parallelism.nodes === 1 ? '' : 's'} on the CPU` : `${s.parallelism.nodes} nodes × ${s.parallelism.gpusPerNode} GPUs`) : '1 pod';
    const gpu = s.resources.gpu ? `, ${s.resources.gpu.count} × ${s.resources.gpu.type}` : '';
    lines.push(`  ${s.name.padEnd(width)}  ${par.padEnd(18)} ${s.resources.cpu} CPU, ${s.resources.memory}${gpu}${s.dependsOn.length ? `   after ${s.dependsOn.join(', ')}` : ''}`);
  }
  if (plan.serving.length) {
    lines.push('', 'serving:');
    for (const t of plan.serving) {
      const batching = `batches of up to ${t.maxBatchSize} within ${t.queueDelayUs / 1000} ms, ${t.instances} instance${t.instances === 1 ? '' : 's'}`;
      const canary = t.canary > 0 ? `; canary: ${Math.round(t.canary * 1000) / 10}% of requests to this run's model` : '';
      lines.push(`  ${t.name}: ${t.backend} ${t.precision}, ${t.replicas.min}–${t.replicas.max} replicas${t.gpu.count === 0 ? ' on the CPU' : ` × ${t.gpu.count} ${t.gpu.type}`}; ${batching}${canary}`);
      const g = t.gateway;
      if (g) {
        const key = plan.secrets[g.apiKeys];
        lines.push(
          `    gateway ${gatewayUrl(plan, t)}: ${g.replicas.min}–${g.replicas.max} replicas; per key ${formatCount(g.requestsPerMinute)} requests and ${formatCount(g.tokensPerMinute)} tokens a minute${g.maxTokens !== undefined ? `, max_tokens ${g.maxTokens}` : ''}`,
          `    API keys from secret ${key ? `${key.secret}, key ${key.key}` : g.apiKeys}; feedback ${g.feedback ? `to ${g.feedback}` : 'not recorded (object storage)'}`,
        );
      }
    }
  }
  lines.push(
    '',
    'estimate:',
    `  ${formatCount(e.parameters)} parameters × ${formatCount(e.tokens)} tokens = ${e.trainingFlops.toExponential(2)} training FLOPs`,
    `  ${formatCount(e.gpuHours)} GPU-hours of ${e.gpuType} at ${Math.round(e.mfu * 100)}% MFU; ${e.gpus === 0 ? 'training on the CPU: no GPU wall time' : `${hours(e.wallHours)} on ${e.gpus} GPUs`}`,
    `  ${e.cost === null ? `cost: no price for ${e.gpuType} in infra.pricing.gpu_hour` : `cost: ${e.cost.toLocaleString('en-US', { maximumFractionDigits: 0 })} ${e.currency} for training`}`,
  );
  const gates = Object.entries(plan.gates);
  if (gates.length) lines.push('', 'gates:', ...gates.map(([stack, g]) => `  ${stack}: ${g.join(' and ')}`));
  return lines.join('\n');
}

/** What checking the plan against a cluster found: whether it fits, and what applying would start beside which runs. */
export function formatClusterCheck(plan: Plan, context: string, nodes: number, problems: readonly CapacityProblem[], changes: Changes): string {
  const lines = [`\ncluster (${context}): ${problems.length ? `${problems.length} problem(s)` : `fits on ${nodes} nodes`}`];
  if (changes.sameRun) lines.push(`  run ${plan.runId} already exists: applying starts no new run`);
  else if (changes.existing.length === 0) lines.push(`  no run of ${plan.name} in namespace ${plan.namespace} yet: applying starts ${plan.runId}`);
  else lines.push(`  applying starts ${plan.runId} beside ${changes.existing.join(', ')}; against ${changes.existing.at(-1)}: ${changes.stages.map((s) => `${s.name} ${s.change}`).join(', ') || 'no stage differs (identity only)'}`);
  return lines.join('\n');
}
