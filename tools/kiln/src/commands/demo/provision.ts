/**
 * The second half of `kiln demo`: the local cluster (its kwok GPU nodes and the real local node), `pulumi up`
 * of the `local` stack of configs/tiny.yaml, the run executed for real on the local node, a completion through
 * the gateway from the model it trained, and `kiln status` of the run.
 */
import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, lstatSync, mkdirSync, readFileSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KubeConfig } from '@kubernetes/client-node';
import { createIfAbsent, listObjects, requestRaw } from '@kiln/cluster';
import { GATEWAY_PORT, gatewayName, GROUP, LABELS, VERSION } from '@kiln/k8s';
import { ClusterError, clusterKubeConfig, DEFAULTS, pulumiOnLocalCluster, STACKS_DIR, ToolchainError, up } from '@kiln/local-cluster';
import { compileFile, type Plan } from '@kiln/plan';
import { EXIT, type Io } from '../../io.ts';
import { UpReport } from '../../render/pulumi-events.ts';
import { bold as boldIf } from '../../render/table.ts';

const STACK = 'local';
/** The local cluster's real execution node (tools/local-node). */
const LOCAL_NODE = 'kiln-local-0';
/** The gateway's user (libs/k8s gateway.ts GATEWAY_UID). */
const GATEWAY_UID = 65532;
/** The eval sandbox's user (libs/k8s stages.ts hardenSandbox). */
const EVAL_UID = 65532;
/** The checkout: stage pods on the local node run in it, so the spec's relative source paths resolve here. */
const REPO = fileURLToPath(new URL('../../../../../', import.meta.url));
/** The `python-stdlib` source of the local stack (configs/tiny.yaml): a link this demo makes. */
export const STDLIB_LINK = '.kiln/corpora/python-stdlib';

/** Links `.kiln/corpora/python-stdlib` of the checkout to this machine's Python standard library; returns its target. */
export function linkStdlib(repo = REPO): string {
  const link = join(repo, STDLIB_LINK);
  let target: string;
  try {
    target = String(execFileSync('python3', ['-c', 'import sysconfig;print(sysconfig.get_paths()["stdlib"])'], { stdio: ['ignore', 'pipe', 'pipe'] })).trim();
  } catch (e) {
    throw new ClusterError(`cannot find the Python standard library (python3 -c 'import sysconfig; …' failed: ${(e as Error).message.split('\n')[0]}): the local stack reads it as a data source; install python3 or put it on PATH`);
  }
  if (!existsSync(join(target, 'os.py'))) throw new ClusterError(`${target} does not look like a Python standard library (no os.py): set PATH so that python3 is the interpreter to read`);
  mkdirSync(dirname(link), { recursive: true });
  if (existsSync(link) || lstatSync(link, { throwIfNoEntry: false })) {
    if (lstatSync(link).isSymbolicLink()) {
      unlinkSync(link);
    } else throw new ClusterError(`${link} exists and is not a link: remove it, and \`npm run demo\` links it to ${target}`);
  }
  symlinkSync(target, link);
  return target;
}

/** The local stack's plan: the names of its gateway, its API key Secret and its run. */
export function localPlan(repo = REPO): Plan {
  const r = compileFile(join(repo, 'configs/tiny.yaml'), { stack: STACK });
  if (!r.plan) throw new ClusterError(`configs/tiny.yaml --stack ${STACK} does not compile: ${r.diagnostics.map((d) => d.message).join('; ')}`);
  return r.plan;
}

/**
 * The gateway's API keys on the local cluster: a Secret that the spec names and kiln never writes on a real
 * cluster. The demo makes one key (kept in .kiln/demo/api-key, mode 600) and the Secret, once.
 */
async function ensureGatewayKeys(kc: KubeConfig, root: string, plan: Plan): Promise<string | undefined> {
  const g = plan.serving[0]?.gateway;
  const ref = g ? plan.secrets[g.apiKeys] : undefined;
  if (!ref) return undefined;
  const file = join(root, '.kiln', 'demo', 'api-key');
  mkdirSync(dirname(file), { recursive: true });
  if (!existsSync(file)) writeFileSync(file, `kiln-demo-${randomBytes(16).toString('hex')}\n`, { mode: 0o600 });
  const key = readFileSync(file, 'utf8').trim();
  const made = await createIfAbsent(kc, { apiVersion: 'v1', kind: 'Secret', metadata: { name: ref.secret, namespace: plan.namespace }, stringData: { [ref.key]: `${key}\n` } } as never);
  const folder = g?.feedback ? await ensureFeedbackFolder(kc, plan, g.feedback) : false;
  // A gateway pod that started before the Secret (or its feedback folder) existed failed its volume: a new one mounts it.
  if (made || folder) await deletePods(kc, plan.namespace, (p) => p.metadata.labels?.[LABELS.gateway] !== undefined);
  return file;
}

/**
 * The gateway's feedback folder (`pvc://<claim>/feedback/<target>/`, mounted by subPath) made on the local
 * volume the claim is bound to, owned by the gateway's user. The claim is shared by pods of different users (the
 * eval sandbox's 65532, the gateway's), so one pod's fsGroup would take the folder from the other: the folders
 * each writes are made for it up front, as a storage admin would. Returns whether it made it.
 */
async function ensureFeedbackFolder(kc: KubeConfig, plan: Plan, uri: string): Promise<boolean> {
  return ensureOwnedFolder(kc, plan, uri, GATEWAY_UID);
}

/**
 * The folders the eval stage (a sandbox running as uid 65532) writes, made on the run's local volume and owned
 * by that user: its report folder and the run's manifests folder (root-owned folders would fail it with EACCES;
 * on a cluster the storage's own permissions do this).
 */
export async function ensureEvalFolders(kc: KubeConfig, plan: Plan): Promise<void> {
  for (const s of plan.stages) if (s.kind === 'eval') for (const o of s.outputs) await ensureOwnedFolder(kc, plan, o, EVAL_UID);
  await ensureOwnedFolder(kc, plan, `${plan.storagePrefix}/manifests/`, EVAL_UID);
}

async function ensureOwnedFolder(kc: KubeConfig, plan: Plan, uri: string, uid: number): Promise<boolean> {
  const m = /^pvc:\/\/([^/]+)\/?(.*?)\/*$/.exec(uri);
  if (!m) return false;
  const pvc = await requestRaw(kc, 'GET', `/api/v1/namespaces/${plan.namespace}/persistentvolumeclaims/${m[1]}`);
  const volume = (pvc.body as { spec?: { volumeName?: string } } | undefined)?.spec?.volumeName;
  if (!volume) return false;
  const pv = (await requestRaw(kc, 'GET', `/api/v1/persistentvolumes/${volume}`)).body as { spec?: { hostPath?: { path?: string }; local?: { path?: string } } } | undefined;
  const base = pv?.spec?.hostPath?.path ?? pv?.spec?.local?.path;
  if (!base) return false;
  const dir = join(base, m[2]!);
  const made = !existsSync(dir);
  mkdirSync(dir, { recursive: true });
  chownSync(dir, uid, uid);
  return made;
}

type PodLite = { metadata: { name: string; labels?: Record<string, string> }; status?: { podIP?: string; containerStatuses?: { name: string; ready: boolean }[] } };

async function deletePods(kc: KubeConfig, ns: string, which: (p: PodLite) => boolean): Promise<void> {
  for (const p of (await listObjects<PodLite>(kc, 'v1', 'Pod', ns)).filter(which)) await requestRaw(kc, 'DELETE', `/api/v1/namespaces/${ns}/pods/${p.metadata.name}`);
}

/** Waits until every Deployment of the namespace has its replicas ready; false after `timeoutMs`. */
async function deploymentsReady(kc: KubeConfig, ns: string, timeoutMs: number): Promise<string[]> {
  const t0 = Date.now();
  for (;;) {
    const deps = await listObjects<{ metadata: { name: string }; spec?: { replicas?: number }; status?: { readyReplicas?: number } }>(kc, 'apps/v1', 'Deployment', ns);
    const waiting = deps.filter((d) => (d.status?.readyReplicas ?? 0) < (d.spec?.replicas ?? 1) && !d.metadata.name.endsWith('eval-model')).map((d) => d.metadata.name);
    if (!waiting.length || Date.now() - t0 > timeoutMs) return waiting;
    await new Promise((r) => setTimeout(r, 2000));
  }
}

export async function provisionDemo(values: Record<string, unknown>, io: Io): Promise<number> {
  const root = (values.dir as string | undefined) ?? process.env.KILN_ROOT ?? process.cwd();
  const bold = (s: string) => boldIf(s, io.color);
  io.out(`\n${bold(`Provisioning the ${STACK} stack (configs/tiny.yaml) on a local Kubernetes cluster`)}`);
  let plan: Plan;
  try {
    const target = linkStdlib();
    io.out(`  corpus: ${STDLIB_LINK} → ${target} (the Python standard library), beside libs/, services/, tools/`);
    plan = localPlan();
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
  const kc = await clusterKubeConfig(root);
  const keyFile = await ensureGatewayKeys(kc, root, plan);
  await ensureEvalFolders(kc, plan);
  await printWhatExists(root, outputs, io, bold);
  io.out(`\n${bold(`Running ${outputs.runId}`)} stage by stage, every pod a real process on the local node (the controller runs here; a real cluster runs it as the kiln-controller Deployment)`);
  const runMod = await import('./run.ts');
  const run = await runMod.runUntilDone(root, outputs.namespace, outputs.runId, io);
  if (!run) {
    io.err(`kiln demo: run ${outputs.runId} did not finish in 25 minutes; see \`npx kiln status ${outputs.runId}\` and \`npx kiln logs ${outputs.runId}\``);
    return EXIT.invalid;
  }
  if (run.status?.phase === 'Failed') {
    io.out(`\n${bold(`kiln status ${outputs.runId}`)}\n${runMod.statusText(run)}`);
    io.err(`kiln demo: run ${outputs.runId} failed: ${run.status.message}\n  logs: npx kiln logs ${outputs.runId} <stage>`);
    return EXIT.invalid;
  }
  const promoted = await promoteToLocal(root, outputs.runId, io, bold);
  if (promoted !== EXIT.ok) return promoted;
  const served = await serveAndComplete(kc, plan, keyFile, io, bold);
  io.out(`\n${bold(`kiln status ${outputs.runId}`)} (metrics measured by the stages; gates computed from them)\n${runMod.statusText(run)}`);
  if (served !== EXIT.ok) return served;
  io.out(`\n${bold('Next')}
  npx kiln status                              # every run, its stage, progress and gates (--watch to follow)
  npx kiln status ${outputs.runId}                # this run: stages, attempts, gates, artifacts
  npx kiln controller                          # run the controller against the local cluster until Ctrl-C
  eval "$(npx kiln cluster env)"              # kubectl and pulumi against the local cluster
  (cd stacks && pulumi stack output)           # run id, namespace, endpoints, plan summary
  npx kiln plan configs/tiny.yaml --stack local  # the stage graph and estimate behind the run
  npx kiln history local                       # every promotion of the local stack, with its evidence (git log of its config)
  npx kiln rollback local --apply              # back to the previous promotion (a new commit; none yet after the first)
  KILN_API_KEY=$(cat .kiln/demo/api-key) npx kiln complete 'def add(a, b):' --endpoint <gateway URL above>
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
  // A Deployment whose pods kwok plays (no toleration of the local node's taint) is simulated: say so.
  const pods = (await list('v1', 'Pod')) as unknown as { metadata: { ownerReferences?: { name: string }[] }; spec?: { nodeName?: string } }[];
  const simulatedOwners = new Set(pods.filter((p) => p.spec?.nodeName && p.spec.nodeName !== LOCAL_NODE).flatMap((p) => (p.metadata.ownerReferences ?? []).map((o) => o.name.replace(/-[a-z0-9]+$/, ''))));
  for (const d of await list('apps/v1', 'Deployment')) {
    const meta = d.metadata as unknown as { name: string };
    const st = d.status as unknown as { readyReplicas?: number; replicas?: number };
    io.out(`  Deployment ${meta.name}: ${st.readyReplicas ?? 0}/${st.replicas ?? 0} ready${simulatedOwners.has(meta.name) ? ' (simulated: its pods are on kwok nodes and run nothing)' : ''}`);
  }
  for (const c of await list('v1', 'PersistentVolumeClaim')) {
    io.out(`  Claim      ${(c.metadata as unknown as { name: string }).name}: ${(c.status as unknown as { phase: string }).phase}`);
  }
  for (const [name, url] of Object.entries(o.endpoints)) io.out(`  Endpoint   ${name}: ${url}`);
  io.out('  (pods of the local stack run as processes on the local node kiln-local-0; the kwok GPU nodes beside it stay for scale tests and run nothing)');
}

/**
 * `kiln promote <run> --to local --apply`: the run's evidence read against the local stack's gates, its export
 * verified where it lies, the record committed to stacks/Pulumi.local.yaml, and `pulumi up` serving it. A stack
 * already serving the run is left as it is. Where git has no user, the commit is authored as the demo.
 */
async function promoteToLocal(root: string, runId: string, io: Io, bold: (s: string) => string): Promise<number> {
  const { readStackConfig } = await import('@kiln/promote');
  if (readStackConfig(STACKS_DIR, STACK).model?.run === runId) {
    io.out(`\n${bold('Promotion')}: the ${STACK} stack already serves ${runId} (stacks/Pulumi.${STACK}.yaml)`);
    return EXIT.ok;
  }
  const who = (k: string) => {
    try {
      return String(execFileSync('git', ['config', k], { cwd: REPO, stdio: ['ignore', 'pipe', 'ignore'] })).trim();
    } catch {
      return '';
    }
  };
  if (!process.env.GIT_AUTHOR_NAME && (!who('user.name') || !who('user.email'))) {
    Object.assign(process.env, { GIT_AUTHOR_NAME: 'kiln demo', GIT_AUTHOR_EMAIL: 'demo@kiln.invalid', GIT_COMMITTER_NAME: 'kiln demo', GIT_COMMITTER_EMAIL: 'demo@kiln.invalid' });
  }
  io.out(`\n${bold(`kiln promote ${runId} --to ${STACK} --apply`)}: gates, the export verified, a commit of stacks/Pulumi.${STACK}.yaml, pulumi up`);
  const { runPromote } = await import('../promote.ts');
  const code = await runPromote({ to: STACK, apply: true, stacks: STACKS_DIR, dir: root }, [runId], { ...io, out: (t: string) => io.out(t.replace(/^/gm, '  ')) });
  if (code !== EXIT.ok) io.err(`kiln demo: the promotion of ${runId} to the ${STACK} stack failed (above)`);
  return code;
}

/** After the run: the serving Triton and the gateway ready, then one completion through the gateway's Service. */
async function serveAndComplete(kc: KubeConfig, plan: Plan, keyFile: string | undefined, io: Io, bold: (s: string) => string): Promise<number> {
  const target = plan.serving[0];
  if (!target?.gateway || !keyFile) return EXIT.ok;
  io.out(`\n${bold('Serving')}: waiting for the serving Triton (on the promoted model) and the gateway to be ready`);
  const t0 = Date.now();
  const waiting = await deploymentsReady(kc, plan.namespace, 240_000);
  if (waiting.length) {
    io.err(`kiln demo: not ready after 4 minutes: ${waiting.join(', ')}; see \`kubectl -n ${plan.namespace} describe pods\` (eval "$(npx kiln cluster env)")`);
    return EXIT.invalid;
  }
  io.out(`  ready in ${((Date.now() - t0) / 1000).toFixed(1)}s`);
  const name = gatewayName(plan, target);
  const svc = (await listObjects<{ metadata: { name: string }; spec?: { clusterIP?: string } }>(kc, 'v1', 'Service', plan.namespace)).find((s) => s.metadata.name === name);
  const ip = svc?.spec?.clusterIP;
  if (!ip || ip === 'None') {
    io.err(`kiln demo: the gateway Service ${plan.namespace}/${name} has no ClusterIP`);
    return EXIT.invalid;
  }
  const endpoint = `http://${ip}:${GATEWAY_PORT}`;
  const prompt = 'def fibonacci(n):\n';
  io.out(`  POST ${endpoint}/v1/completions (the gateway Service's ClusterIP, through the local node's proxy), prompt ${JSON.stringify(prompt)}:`);
  const { runComplete } = await import('../complete.ts');
  let text = '';
  const code = await runComplete({ endpoint, 'api-key-file': keyFile, 'max-tokens': '48', json: true }, [prompt], { ...io, out: (t: string) => (text += t) });
  if (code !== EXIT.ok) {
    io.err(`kiln demo: the completion through the gateway failed (above)`);
    return code;
  }
  const r = JSON.parse(text) as { model: string; text: string; usage?: { completion_tokens?: number }; seconds?: number };
  io.out(`  model ${r.model}, ${r.usage?.completion_tokens ?? '?'} tokens in ${r.seconds ?? '?'} s:`);
  io.out((prompt + r.text).replace(/^/gm, '    │ '));
  return EXIT.ok;
}
