/** The second half of `kiln demo`: the local cluster, `pulumi up` of the dev stack, and what now exists. */
import { GROUP, VERSION } from '@kiln/k8s';
import { ClusterError, clusterKubeConfig, DEFAULTS, pulumiOnLocalCluster, STACKS_DIR, ToolchainError, up } from '@kiln/local-cluster';
import { EXIT, type Io } from '../../io.ts';
import { UpReport } from '../../render/pulumi-events.ts';
import { bold as boldIf } from '../../render/table.ts';

const STACK = 'dev';

export async function provisionDemo(values: Record<string, unknown>, io: Io): Promise<number> {
  const root = (values.dir as string | undefined) ?? process.env.KILN_ROOT ?? process.cwd();
  const bold = (s: string) => boldIf(s, io.color);
  io.out(`\n${bold(`Provisioning the ${STACK} stack (configs/tiny.yaml) on a local Kubernetes cluster`)}`);
  try {
    const r = await up({ root, ...DEFAULTS }, (m) => io.err(`  kiln: ${m}`));
    io.out(`  cluster ready in ${r.seconds.toFixed(1)}s${r.started.length ? '' : ' (already running)'}; KUBECONFIG=${r.kubeconfig}`);
  } catch (e) {
    if (e instanceof ClusterError || e instanceof ToolchainError) {
      io.err(`kiln demo: ${e.message}\n${e instanceof ClusterError ? (e.detail ?? '') : `command: ${e.command}\nlog: ${e.log}`}`);
      return EXIT.invalid;
    }
    throw e;
  }
  const t0 = Date.now();
  const select = await pulumiOnLocalCluster(root, ['stack', 'select', '--create', STACK]);
  if (select.code !== 0) {
    io.err(`kiln demo: pulumi stack select failed:\n${select.out}`);
    return EXIT.invalid;
  }
  io.out(`  pulumi up (stack ${STACK}, project ${STACKS_DIR}):`);
  // --refresh: objects removed behind Pulumi's back (a deleted namespace) are noticed and made again.
  // Each resource once with its result, from the engine's events; the CLI's own output only on failure.
  const report = new UpReport((l) => io.out(`    ${l}`));
  const upRes = await pulumiOnLocalCluster(root, ['up', '--yes', '--skip-preview', '--refresh'], { onEvent: (e) => report.event(e) });
  if (upRes.code !== 0) {
    io.err(`kiln demo: pulumi up failed (exit ${upRes.code}); its output:\n${upRes.out.trimEnd().replace(/^/gm, '    | ')}`);
    return EXIT.invalid;
  }
  io.out(`  pulumi up finished in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  const outputs = JSON.parse((await pulumiOnLocalCluster(root, ['stack', 'output', '--json'])).out) as { runId: string; namespace: string; endpoints: Record<string, string> };
  await printWhatExists(root, outputs, io, bold);
  io.out(`\n${bold(`Running ${outputs.runId}`)} stage by stage (the controller that a real cluster runs as the kiln-controller Deployment)`);
  const run = await (await import('./run.ts')).runUntilDone(root, outputs.namespace, outputs.runId, io);
  if (!run) {
    io.err(`kiln demo: run ${outputs.runId} did not finish in time; see \`npx kiln status ${outputs.runId}\``);
    return EXIT.invalid;
  }
  if (run.status?.phase === 'Failed') {
    io.err(`kiln demo: run ${outputs.runId} failed: ${run.status.message}`);
    return EXIT.invalid;
  }
  const workers = await (await import('./workers.ts')).showWorkers(root, io, bold);
  if (workers !== EXIT.ok) {
    io.err('kiln demo: a stage worker failed (output above)');
    return workers;
  }
  io.out(`\n${bold('Next')}
  npx kiln status                              # every run, its stage, progress and gates (--watch to follow)
  npx kiln status ${outputs.runId}                # this run: stages, attempts, gates, artifacts
  npx kiln controller                          # run the controller against the local cluster until Ctrl-C
  eval "$(npx kiln cluster env)"              # kubectl and pulumi against the local cluster
  (cd stacks && pulumi stack output)           # run id, namespace, endpoints, plan summary
  npx kiln plan configs/tiny.yaml --stack dev  # the stage graph and estimate behind the run
  edit configs/tiny.yaml, then npm run demo    # a changed hyperparameter starts a new run beside this one
  npx kiln eval toolchains                     # which languages the eval sandbox can run here, and how it is isolated
  npx kiln cluster down                        # stop the cluster and remove its data`);
  return EXIT.ok;
}

async function printWhatExists(root: string, o: { runId: string; namespace: string; endpoints: Record<string, string> }, io: Io, bold: (s: string) => string): Promise<void> {
  const kc = await clusterKubeConfig(root);
  const { listObjects } = await import('@kiln/cluster');
  const list = async (apiVersion: string, kind: string) => (await listObjects(kc, apiVersion, kind, o.namespace)) as unknown as Record<string, never>[];
  const ns = o.namespace;
  io.out(`\n${bold(`What now exists in namespace ${ns}`)} (run ${o.runId})`);
  for (const r of await list(`${GROUP}/${VERSION}`, 'ModelRun')) {
    const spec = r.spec as unknown as { runId: string; stages: { name: string }[] };
    io.out(`  ModelRun   ${(r.metadata as unknown as { name: string }).name}: stages ${spec.stages.map((s) => s.name).join(' → ')}`);
  }
  for (const d of await list('apps/v1', 'Deployment')) {
    const meta = d.metadata as unknown as { name: string };
    const st = d.status as unknown as { readyReplicas?: number; replicas?: number };
    io.out(`  Deployment ${meta.name}: ${st.readyReplicas ?? 0}/${st.replicas ?? 0} ready`);
  }
  for (const c of await list('v1', 'PersistentVolumeClaim')) {
    io.out(`  Claim      ${(c.metadata as unknown as { name: string }).name}: ${(c.status as unknown as { phase: string }).phase}`);
  }
  for (const [name, url] of Object.entries(o.endpoints)) io.out(`  Endpoint   ${name}: ${url}`);
  io.out('  (pods are simulated by kwok: scheduled on real GPU capacity, never actually run)');
}
