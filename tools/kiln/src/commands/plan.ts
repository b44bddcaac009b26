/** `kiln plan`: compile a spec into the plan of one run and, where a cluster is reachable, check it there. */
import { readFileSync } from 'node:fs';
import { formatDiagnostics, load, type Spec } from '@kiln/spec';
import { checkCapacity, compile, diffRuns, type Plan } from '@kiln/plan';
import type { ClusterFacts } from '@kiln/cluster';
import { kubeconfigPath } from '@kiln/local-cluster';
import { common, type Command } from '../command.ts';
import { EXIT, UsageError, type Io } from '../io.ts';
import { formatClusterCheck, formatPlan, formatPlanMarkdown } from '../render/plan.ts';

export const command: Command = {
  usage: 'kiln plan <spec> [--stack NAME] [--mfu 0.4] [--format text|json|markdown] [--json] [--offline]',
  help: `Compiles the spec (with a stack's overlay) into the plan of one run: the stages in order with their
images, parallelism and resources, the serving targets, the gates, and an estimate before launch
(training FLOPs = (6·N + 12·layers·d_model·seq_len) per token; GPU-hours at the stated MFU; cost from
infra.pricing). The run id is a hash of everything that changes the result.

When a cluster is reachable ($KUBECONFIG, ./.kiln's local cluster, or ~/.kube/config), each GPU request is
checked against its nodes: a pod that asks for more GPUs than any node of that type has is an error now.

Options:
  --stack NAME   apply this stack's overlay
  --mfu X        model FLOPs utilisation assumed by the estimate (default 0.4)
  --format F     text (default), json (as --json), or markdown: the body of a pull request's comment
                 (the stage graph, resources, estimate, gates, and the changes where a cluster was reachable)
  --json         the plan and the cluster check as JSON
  --offline      do not contact a cluster

Exit codes: 0 ok, 1 invalid spec or a capacity problem, 2 usage error.`,
  options: { ...common, stack: { type: 'string' }, mfu: { type: 'string' }, json: { type: 'boolean' }, format: { type: 'string' }, offline: { type: 'boolean' } },
  allowPositionals: true,
  run: runPlan,
};

/** The nodes and the pipeline's runs of the cluster the kubeconfig names; undefined when there is none, an error when it cannot be read. */
async function clusterState(plan: Plan): Promise<ClusterFacts | { error: string } | undefined> {
  const path = kubeconfigPath();
  if (!path) return undefined;
  try {
    readFileSync(path); // a missing or unreadable kubeconfig fails here, before the client is loaded
    // The Kubernetes client loads only when there is a cluster to ask (about 0.5 s): `kiln plan --offline` never pays it.
    const { clusterFacts, kubeConfigFrom } = await import('@kiln/cluster');
    const kc = kubeConfigFrom(path);
    if (!kc.getCurrentCluster()) return { error: `${path} has no current context` };
    return await clusterFacts(kc, plan);
  } catch (e) {
    return { error: (e as Error).message };
  }
}

export async function runPlan(values: Record<string, unknown>, positionals: string[], io: Io): Promise<number> {
  if (positionals.length !== 1) throw new UsageError('name one spec file, e.g. `kiln plan kiln.yaml --stack dev`');
  const mfu = values.mfu === undefined ? undefined : Number(values.mfu);
  if (mfu !== undefined && !(mfu > 0 && mfu <= 1)) throw new UsageError(`--mfu must be a number in (0, 1], not "${String(values.mfu)}"`);
  const format = values.json === true ? 'json' : ((values.format as string | undefined) ?? 'text');
  if (!['text', 'json', 'markdown'].includes(format)) throw new UsageError(`--format must be text, json or markdown, not "${format}"`);
  const json = format === 'json';
  const file = positionals[0]!;
  const stack = values.stack as string | undefined;
  const r = load(file, stack !== undefined ? { stack } : {});
  if (!r.spec) {
    if (json) io.out(JSON.stringify({ valid: false, diagnostics: r.diagnostics }, null, 2));
    else io.err(formatDiagnostics(r.diagnostics, { sources: r.sources, color: io.color }));
    if (format === 'markdown') io.out(`### kiln plan: \`${file}\` is invalid\n\n\`\`\`\n${formatDiagnostics(r.diagnostics, { sources: r.sources, color: false })}\n\`\`\`\n`);
    return EXIT.invalid;
  }
  const plan = compile(r.spec as Spec, mfu !== undefined ? { mfu } : {});
  const live = values.offline ? undefined : await clusterState(plan);
  const problems = live && 'nodes' in live ? checkCapacity(plan, live.nodes) : [];
  const changes = live && 'nodes' in live ? diffRuns(plan, live.runs) : undefined;
  if (json) {
    io.out(JSON.stringify({ plan, cluster: live ? ('nodes' in live ? { context: live.context, nodes: live.nodes.length, problems, changes } : { error: live.error }) : null }, null, 2));
  } else if (format === 'markdown') {
    io.out(formatPlanMarkdown(plan, live && ('nodes' in live ? { context: live.context, nodes: live.nodes.length, problems, changes: changes! } : live)));
    if (live && 'error' in live) io.err(`kiln plan: could not check the cluster: ${live.error}`);
    for (const p of problems) io.err(`error: ${p.message}`);
  } else {
    io.out(formatPlan(plan));
    if (live && 'nodes' in live) {
      io.out(formatClusterCheck(plan, live.context, live.nodes.length, problems, changes!));
    } else if (live) io.err(`kiln plan: could not check the cluster: ${live.error}`);
    for (const p of problems) io.err(`error: ${p.message}`);
  }
  return problems.length ? EXIT.invalid : EXIT.ok;
}
