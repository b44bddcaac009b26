/** The text of `kiln plan`: the stages, serving targets, estimate and gates, and what the cluster said. */
import { formatCount } from '@kiln/spec';
import { gatewayUrl } from '@kiln/k8s';
import type { CapacityProblem, Changes, Plan, Stage } from '@kiln/plan';

const hours = (h: number) => (h < 48 ? `${h.toFixed(1)} h` : `${(h / 24).toFixed(1)} days`);

const parallelism = (s: Stage): string =>
  s.parallelism.kind === 'shards'
    ? `${s.parallelism.shards} shards`
    : s.parallelism.kind === 'nodes'
      ? s.parallelism.gpusPerNode === 0
        ? `${s.parallelism.nodes} node${s.parallelism.nodes === 1 ? '' : 's'} on the CPU`
        : `${s.parallelism.nodes} nodes × ${s.parallelism.gpusPerNode} GPUs`
      : '1 pod';

const resources = (s: Stage): string => `${s.resources.cpu} CPU, ${s.resources.memory}${s.resources.gpu ? `, ${s.resources.gpu.count} × ${s.resources.gpu.type}` : ''}`;

const estimateLines = (e: Plan['estimate']): [string, string, string] => [
  `${formatCount(e.parameters)} parameters × ${formatCount(e.tokens)} tokens = ${e.trainingFlops.toExponential(2)} training FLOPs`,
  `${formatCount(e.gpuHours)} GPU-hours of ${e.gpuType} at ${Math.round(e.mfu * 100)}% MFU; ${e.gpus === 0 ? 'training on the CPU: no GPU wall time' : `${hours(e.wallHours)} on ${e.gpus} GPUs`}`,
  e.cost === null ? `cost: no price for ${e.gpuType} in infra.pricing.gpu_hour` : `cost: ${e.cost.toLocaleString('en-US', { maximumFractionDigits: 0 })} ${e.currency} for training`,
];

/** What applying would do to runs: one sentence, the same in text and markdown. */
const changesLine = (plan: Plan, changes: Changes): string =>
  changes.sameRun
    ? `run ${plan.runId} already exists: applying starts no new run`
    : changes.existing.length === 0
      ? `no run of ${plan.name} in namespace ${plan.namespace} yet: applying starts ${plan.runId}`
      : `applying starts ${plan.runId} beside ${changes.existing.join(', ')}; against ${changes.existing.at(-1)}: ${changes.stages.map((s) => `${s.name} ${s.change}`).join(', ') || 'no stage differs (identity only)'}`;

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
    lines.push(`  ${s.name.padEnd(width)}  ${parallelism(s).padEnd(18)} ${resources(s)}${s.dependsOn.length ? `   after ${s.dependsOn.join(', ')}` : ''}`);
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
  lines.push('', 'estimate:', ...estimateLines(e).map((l) => `  ${l}`));
  const gates = Object.entries(plan.gates);
  if (gates.length) lines.push('', 'gates:', ...gates.map(([stack, g]) => `  ${stack}: ${g.join(' and ')}`));
  return lines.join('\n');
}

/** What checking the plan against a cluster found: whether it fits, and what applying would start beside which runs. */
export function formatClusterCheck(plan: Plan, context: string, nodes: number, problems: readonly CapacityProblem[], changes: Changes): string {
  const lines = [`\ncluster (${context}): ${problems.length ? `${problems.length} problem(s)` : `fits on ${nodes} nodes`}`];
  lines.push(`  ${changesLine(plan, changes)}`);
  return lines.join('\n');
}

/** What a cluster said about the plan, as `kiln plan --format markdown` reports it; absent: no cluster was asked. */
export type ClusterReport = { readonly context: string; readonly nodes: number; readonly problems: readonly CapacityProblem[]; readonly changes: Changes } | { readonly error: string };

/** The first line of the comment body, by which a bot finds its own comment again. */
export const PLAN_MARKER = '<!-- kiln-plan -->';

/** A table cell: pipes escaped, new lines folded, so one value never breaks the table. */
const cell = (s: string): string => s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
const code = (s: string): string => `\`${s.replace(/`/g, "'")}\``;
const mdTable = (head: readonly string[], rows: readonly (readonly string[])[]): string[] => [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)];

/**
 * The plan of one run as GitHub-flavoured markdown, the body of a pull request's comment: the stage graph and
 * each stage's resources, the serving targets, the estimate, the gates, and what applying changes where a
 * cluster was reachable. Only names a reviewer needs: no secret references, no kubeconfig, no server address.
 */
export function formatPlanMarkdown(plan: Plan, cluster?: ClusterReport): string {
  const e = plan.estimate;
  const lines = [
    PLAN_MARKER,
    `### kiln plan: ${code(plan.name)}${plan.stack ? ` on stack ${code(plan.stack)}` : ''}`,
    '',
    `Run ${code(plan.runId)} in namespace ${code(plan.namespace)}; artifacts under ${code(plan.storagePrefix)}.`,
    '',
    '#### Stages',
    '',
    ...mdTable(
      ['stage', 'kind', 'after', 'parallelism', 'resources', 'image'],
      plan.stages.map((s) => [code(s.name), s.kind, s.dependsOn.map(code).join(', ') || '—', parallelism(s), resources(s), code(s.image)]),
    ),
  ];
  if (plan.serving.length) {
    lines.push(
      '',
      '#### Serving',
      '',
      ...mdTable(
        ['target', 'backend', 'replicas', 'GPU', 'batching', 'canary', 'gateway'],
        plan.serving.map((t) => [
          code(t.name),
          `${t.backend} ${t.precision}`,
          `${t.replicas.min}–${t.replicas.max}`,
          t.gpu.count === 0 ? 'CPU' : `${t.gpu.count} × ${t.gpu.type}`,
          `up to ${t.maxBatchSize} within ${t.queueDelayUs / 1000} ms, ${t.instances} instance${t.instances === 1 ? '' : 's'}`,
          t.canary > 0 ? `${Math.round(t.canary * 1000) / 10}%` : '—',
          t.gateway ? `${code(gatewayUrl(plan, t))}, ${formatCount(t.gateway.requestsPerMinute)} req/min per key` : '—',
        ]),
      ),
    );
  }
  const [flops, gpuHours, cost] = estimateLines(e);
  lines.push('', '#### Estimate', '', ...mdTable(['estimate', ''], [['training', flops], ['GPU time', gpuHours], ['cost', cost.replace(/^cost: /, '')]]));
  const gates = Object.entries(plan.gates);
  if (gates.length) lines.push('', '#### Gates', '', ...gates.map(([stack, g]) => `- ${code(stack)}: ${g.map(code).join(' and ')}`));
  lines.push('', '#### Changes');
  if (!cluster) lines.push('', '_Not checked against a cluster: none was reachable (or `--offline`)._');
  else if ('error' in cluster) lines.push('', '_The cluster could not be checked; the job log says why._');
  else {
    lines.push('', `Cluster ${code(cluster.context)}: ${cluster.problems.length ? `**${cluster.problems.length} problem(s)**` : `fits on ${cluster.nodes} nodes`}.`, '', `- ${changesLine(plan, cluster.changes)}`);
    for (const p of cluster.problems) lines.push(`- :x: ${p.message}`);
    if (cluster.changes.stages.length) lines.push('', ...mdTable(['stage', 'change'], cluster.changes.stages.map((s) => [code(s.name), s.change])));
  }
  return `${lines.join('\n')}\n`;
}
