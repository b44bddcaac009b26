/** `kiln promote`: a run's model into a stack, on its evidence, as a git commit of the stack's config; `--apply` runs preview and up. */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { paths, pulumiEnv, resolveToolchain, STACKS_DIR } from '@kiln/local-cluster';
import type { Plan } from '@kiln/plan';
import { applyStack, GitError, promote, PromotionRefused, repoRoot, runEvidence, targetPlan, verifyExport, type ApplySettings, type PromoteResult, type SmokeFn } from '@kiln/promote';
import { common, type Command } from '../command.ts';
import { EXIT, UsageError, type Io } from '../io.ts';
import { kubeconfig, withCluster } from '../kube.ts';
import { intOption } from '../options.ts';
import { gatewaySmoke } from '../promote-smoke.ts';
import { bold, mark } from '../render/table.ts';

export const command: Command = {
  usage: 'kiln promote <run> --to STACK | --from STACK --to STACK [--apply] [--override --reason "…"] [--json]',
  help: `Promotes a run's model into a stack. Reads the run's evidence (its ModelRun: Succeeded, eval metrics,
the export's artifacts), checks the target stack's gates (eval.gates.<stack> of its spec with its overlay),
verifies the export's digests against what the run's status records, then writes the promotion record into
stacks/Pulumi.<stack>.yaml (kiln:model, or kiln:canary when the target has a canary share and a stable model)
and commits that file alone: the commit names the evidence and is the promotion's record.

With --apply: pulumi preview (shown), then pulumi up, through the Automation API; a canary is then smoke-checked
against the live endpoint and either goes to 100% (a second commit) or is rolled back (a rollback commit).
Without --apply: the commit only, and the pulumi up to run.

Options:
  --to STACK            the stack to promote into (required)
  --from STACK          promote what that stack serves (its kiln:model) instead of a named run
  --apply               run pulumi preview and up after the commit
  --override            promote past failing gates (needs --reason; recorded with git's user)
  --reason TEXT         why (with --override)
  --stacks DIR          the Pulumi project (default: the repository's stacks/)
  --namespace NS        where the run is (default: looked up cluster-wide)
  --api-key-file FILE   a gateway API key for the canary's smoke check
  --smoke-problems N    HumanEval problems the smoke check sends (default 5)
  --smoke-endpoint URL  the gateway's /v1 URL for the smoke check (default: the stack's endpoints output)
  --json                the result as JSON
  --dir DIR             directory holding .kiln/ (default: current directory)

The cluster is $KUBECONFIG's, else ./.kiln's local cluster, else ~/.kube/config's. Pulumi runs against
PULUMI_BACKEND_URL when set, else the local cluster's backend.
Exit codes: 0 promoted, 1 refused (a gate failed, digests mismatch, the run has not succeeded, the canary was
rolled back), 2 usage error.

Examples:
  kiln promote r-0123456789ab --to staging
  kiln promote --from staging --to prod --apply
  kiln promote r-0123456789ab --to staging --override --reason "eval flake, rerun pending"`,
  options: {
    ...common,
    to: { type: 'string' },
    from: { type: 'string' },
    apply: { type: 'boolean' },
    override: { type: 'boolean' },
    reason: { type: 'string' },
    stacks: { type: 'string' },
    namespace: { type: 'string', short: 'n' },
    'api-key-file': { type: 'string' },
    'smoke-problems': { type: 'string' },
    'smoke-endpoint': { type: 'string' },
    json: { type: 'boolean' },
    dir: { type: 'string' },
  },
  allowPositionals: true,
  run: runPromote,
};

/** The Pulumi project dir: --stacks, else the repository's stacks/, else kiln's own. */
export async function stacksDir(values: Record<string, unknown>): Promise<string> {
  if (values.stacks) return resolve(String(values.stacks));
  try {
    const own = join(await repoRoot(process.cwd()), 'stacks');
    if (existsSync(join(own, 'Pulumi.yaml'))) return own;
  } catch {
    /* not in a git repository: kiln's own stacks */
  }
  return STACKS_DIR;
}

/** How Pulumi runs: PULUMI_BACKEND_URL's backend when set, else the local cluster's (its env, its Pulumi binary, its kubeconfig). */
export function applySettings(values: Record<string, unknown>): ApplySettings {
  if (process.env.PULUMI_BACKEND_URL) return {};
  const root = values.dir ? resolve(String(values.dir)) : process.cwd();
  const p = paths(root);
  if (!existsSync(p.kubeconfig)) return {};
  const tc = resolveToolchain();
  return { envVars: { ...pulumiEnv(p, tc), KUBECONFIG: p.kubeconfig }, ...(tc.bins.pulumi ? { pulumi: tc.bins.pulumi } : {}) };
}

/**
 * The canary's smoke check of one serving target: the live gateway (the stack's `endpoints` output, or
 * --smoke-endpoint), `<target>@canary`, a few HumanEval problems and the target's latency objectives
 * (promote-smoke.ts, over @kiln/eval-runner's smokeCheck).
 */
export function smokeFor(values: Record<string, unknown>, kc: KubeConfig, stacks: string, log: (l: string) => void): SmokeFn {
  const problems = intOption('smoke-problems', values['smoke-problems'], 1) ?? 5;
  const apiKeyFile = values['api-key-file'] as string | undefined;
  const endpoint = values['smoke-endpoint'] as string | undefined;
  return async ({ stack, target, outputs }) => {
    const endpoints = (outputs.endpoints ?? {}) as Record<string, unknown>;
    const stackEndpoint = typeof endpoints[target] === 'string' ? endpoints[target] : undefined;
    return gatewaySmoke(target, { kc, plan: targetPlan(stacks, stack), problems, log, ...(stackEndpoint ? { stackEndpoint } : {}), ...(endpoint ? { endpoint } : {}), ...(apiKeyFile ? { apiKeyFile } : {}) });
  };
}

/** A refusal's lines: the message, then each reason. */
export function refusal(name: string, e: PromotionRefused, io: Io, json: boolean): number {
  if (json) io.out(JSON.stringify({ refused: true, message: e.message, reasons: e.reasons }, null, 2));
  else io.err(`kiln ${name}: refused: ${e.message}${e.reasons.map((r) => `\n  ${r}`).join('')}`);
  return EXIT.invalid;
}

/** Runs `fn`; a refusal is exit 1 with its reasons, a git problem exit 1 with git's message. */
export async function refusals(name: string, io: Io, json: boolean, fn: () => Promise<number>): Promise<number> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof PromotionRefused) return refusal(name, e, io, json);
    if (e instanceof GitError) {
      io.err(`kiln ${name}: ${e.message}`);
      return EXIT.invalid;
    }
    throw e;
  }
}

function render(r: PromoteResult, io: Io): string {
  const c = io.color;
  const lines = [
    `${mark(r.outcome !== 'canary-rolled-back', c)} ${bold(r.outcome === 'promoted' ? `promoted ${r.record.run} to ${r.stack}` : r.outcome === 'canary-pending' ? `${r.record.run} committed as the canary of ${r.stack}` : `canary ${r.record.run} on ${r.stack} failed its smoke check: rolled back`, c)}`,
    `  digest ${r.record.digest} (${r.record.files} files), seq ${r.record.seq}`,
    ...(r.gates.length ? r.gates.map((g) => `  ${mark(g.passed === true, c)} ${g.metric} = ${g.value ?? 'none'} (gate ${g.op} ${g.threshold})`) : ['  no gates']),
    ...(r.record.override ? [`  override by ${r.record.override.by}: ${r.record.override.reason}`] : []),
    ...(r.record.evidence.smoke ? [`  smoke: ${r.record.evidence.smoke.passedProblems}/${r.record.evidence.smoke.problems} problems, p50 ${r.record.evidence.smoke.p50Ms} ms, p99 ${r.record.evidence.smoke.p99Ms} ms${r.record.evidence.smoke.reasons.map((x) => `\n    ${x}`).join('')}`] : []),
    ...r.commits.map((k) => `  commit ${k.sha.slice(0, 12)} ${k.message.split('\n')[0]}`),
    ...(r.applyCommand ? [`  not applied; to apply: ${r.applyCommand} (or again with --apply)`] : []),
  ];
  return lines.join('\n');
}

export async function runPromote(values: Record<string, unknown>, pos: string[], io: Io): Promise<number> {
  if (pos.length > 1) throw new UsageError(`expected at most one run, got ${pos.length}`);
  const to = values.to as string | undefined;
  if (!to) throw new UsageError('--to STACK is required');
  if (pos[0] && values.from) throw new UsageError('give a run or --from STACK, not both');
  if (!pos[0] && !values.from) throw new UsageError('give the run to promote, or --from STACK');
  if (values.override && !String(values.reason ?? '').trim()) throw new UsageError('--override needs --reason "why": the reason is recorded in the commit and the stack outputs');
  if (values.reason !== undefined && !values.override) throw new UsageError('--reason goes with --override');
  const json = values.json === true;
  intOption('smoke-problems', values['smoke-problems'], 1);
  const { kc } = kubeconfig(values);
  const dir = await stacksDir(values);
  const log = (l: string) => (json ? io.err(l) : io.out(l));
  const smoke = smokeFor(values, kc, dir, log);
  return withCluster('promote', kc, io, () =>
    refusals('promote', io, json, async () => {
      const r = await promote({
        stacksDir: dir,
        to,
        ...(pos[0] ? { run: pos[0] } : { from: String(values.from) }),
        ...(values.namespace ? { namespace: String(values.namespace) } : {}),
        ...(values.override ? { override: { reason: String(values.reason).trim() } } : {}),
        apply: values.apply === true,
        evidence: (run, ns) => runEvidence(kc, run, ns),
        // The pod runs in the run's namespace with the run's storage: the run's own plan, not the target's.
        verify: (e) => verifyExport(kc, { apiVersion: 'kiln.dev/v1alpha1', ...e.plan } as Plan, e.artifacts, { log }),
        smoke,
        applyStack,
        applySettings: values.apply ? applySettings(values) : {},
        onOutput: log,
      });
      io.out(json ? JSON.stringify(r, null, 2) : render(r, io));
      return r.outcome === 'canary-rolled-back' ? EXIT.invalid : EXIT.ok;
    }),
  );
}
