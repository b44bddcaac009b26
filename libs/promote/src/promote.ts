/**
 * `kiln promote` and `kiln rollback` as functions: evidence → the target's plan → gates → verify → under the
 * stack's lock: the stack config written and committed (the commit is the record), then applied (preview, up)
 * and, for a canary, smoke-checked and finished (to 100% or rolled back) with a second commit.
 */
import { isAbsolute, resolve, dirname } from 'node:path';
import { compileFile, repositoryFor, type Plan, type PromotionGate, type ServedModel, type SmokeEvidence } from '@kiln/plan';
import type { ApplyFn, ApplyOptions, ApplyResult } from './apply.ts';
import { gateCheck, gateLine, PromotionRefused, type GateCheck, type RunEvidence } from './evidence.ts';
import { commitFile, gitUser, hasChanges, repoRoot } from './git.ts';
import { nextSeq, promotionHistory, rollbackTarget } from './history.ts';
import { withStackLock } from './lock.ts';
import { readStackConfig, stackConfigFile, writeStackConfig, type StackConfig } from './stack-config.ts';
import type { VerifyResult } from './verify.ts';

/** Verifies the run's export against its manifest and status (verifyExport bound to a cluster and the run's plan, `evidence.plan`). `plan`: the target stack's. */
export type VerifyFn = (evidence: RunEvidence, plan: Plan) => Promise<VerifyResult>;
/** The canary's smoke check against the live endpoint of one serving target, from the stack's outputs after `up`. */
export type SmokeFn = (args: { stack: string; target: string; outputs: Record<string, unknown> }) => Promise<SmokeEvidence>;
/** The run's evidence, by run id or name (runEvidence bound to a cluster). */
export type EvidenceFn = (run: string, namespace?: string) => Promise<RunEvidence>;

/** How to apply a stack: the Automation API's options other than the stack (the CLI's local-cluster env). */
export type ApplySettings = Omit<ApplyOptions, 'stacksDir' | 'stack' | 'onOutput' | 'onWait'>;

interface Common {
  /** The Pulumi project dir holding `Pulumi.<stack>.yaml` (in a git repository). */
  readonly stacksDir: string;
  /** Run preview + up after the commit; false (default): commit only, and say which `pulumi up` to run. */
  readonly apply?: boolean;
  /** Applies the stack; default: apply.ts's applyStack (given by the caller to keep the Automation API out of tests). */
  readonly applyStack?: ApplyFn;
  readonly applySettings?: ApplySettings;
  /** Progress and Pulumi's output, one line at a time. */
  readonly onOutput?: (line: string) => void;
  /** The clock (the record's `at`). */
  readonly now?: () => Date;
}

export interface PromoteOptions extends Common {
  /** The target stack. */
  readonly to: string;
  /** The run to promote (id, ModelRun name or a unique prefix); or `from`. */
  readonly run?: string;
  /** Promote what this stack serves (its `kiln:model`). */
  readonly from?: string;
  /** Where the run is; default: looked up cluster-wide (with `from`: the record's namespace). */
  readonly namespace?: string;
  /** Promote past failing gates, recording why (who: git's user). */
  readonly override?: { readonly reason: string };
  readonly evidence: EvidenceFn;
  readonly verify: VerifyFn;
  /** Needed when the target rolls out as a canary with `apply`. */
  readonly smoke?: SmokeFn;
}

/** A commit this promotion or rollback made. */
export interface PromotionCommit {
  readonly sha: string;
  readonly message: string;
}

export interface PromoteResult {
  /** promoted: the target serves it (or will, once applied); canary-rolled-back: the smoke check failed, the stable model stays; canary-pending: committed as a canary, not applied. */
  readonly outcome: 'promoted' | 'canary-rolled-back' | 'canary-pending';
  readonly stack: string;
  readonly record: ServedModel;
  /** The gates read (with their parts), and whether the override was used. */
  readonly gates: readonly GateCheck[];
  readonly commits: readonly PromotionCommit[];
  readonly applied: boolean;
  /** The stack's outputs after the last up. */
  readonly outputs?: Record<string, unknown>;
  /** Without `apply`: what to run to apply the commit. */
  readonly applyCommand?: string;
}

export interface RollbackOptions extends Common {
  readonly stack: string;
}

export interface RollbackResult {
  readonly stack: string;
  /** The record now served (action `rollback`) and the one rolled back from. */
  readonly record: ServedModel;
  readonly previous: ServedModel;
  readonly commit: PromotionCommit;
  readonly applied: boolean;
  readonly outputs?: Record<string, unknown>;
  readonly applyCommand?: string;
}

const short = (digest: string) => digest.replace(/^sha256:/, '').slice(0, 12);

/** The target's plan: its spec compiled with its overlay (the stack config's). */
export function targetPlan(stacksDir: string, stack: string, cfg: StackConfig = readStackConfig(stacksDir, stack)): Plan {
  const spec = isAbsolute(cfg.spec) ? cfg.spec : resolve(dirname(resolve(stacksDir)), cfg.spec);
  const r = compileFile(spec, { stack: cfg.overlay });
  if (!r.plan) {
    const errors = r.diagnostics.filter((d) => d.severity === 'error').slice(0, 5).map((d) => `${d.file}:${d.line}:${d.col} ${d.code} ${d.message}`);
    throw new PromotionRefused(`stack ${stack}'s spec ${spec} (overlay ${cfg.overlay}) is not valid; see \`kiln validate ${spec} --stack ${cfg.overlay}\``, errors);
  }
  return r.plan;
}

/** The commit message of a promotion (or rollback) record: subject, evidence lines, trailers. */
export function commitMessage(stack: string, r: ServedModel, extra: readonly string[] = [], extraTrailers: readonly string[] = []): string {
  const subject = r.action === 'rollback' ? `kiln: rollback ${stack} to ${r.run}` : `kiln: promote ${r.run} to ${stack}${r.from ? ` (${r.from} → ${stack})` : ''}`;
  const gates = r.evidence.gates.length ? r.evidence.gates.map((g) => gateLine(g as GateCheck)) : ['no gates'];
  const body = [
    ...extra,
    ...gates,
    `digest ${r.digest} (${r.files} files)`,
    `model ${r.export}`,
    ...(r.override ? [`override by ${r.override.by}: ${r.override.reason}`] : []),
    ...(r.evidence.smoke ? [`smoke: ${r.evidence.smoke.passed ? 'pass' : 'FAIL'} ${r.evidence.smoke.passedProblems}/${r.evidence.smoke.problems} problems, p50 ${r.evidence.smoke.p50Ms} ms, p99 ${r.evidence.smoke.p99Ms} ms (objectives ${r.evidence.smoke.objectives.p50Ms}/${r.evidence.smoke.objectives.p99Ms} ms), ${r.evidence.smoke.failedRequests} failed requests`, ...r.evidence.smoke.reasons.map((x) => `  ${x}`)] : []),
  ];
  const trailers = [`Kiln-Run: ${r.run}`, `Kiln-Digest: ${r.digest}`, `Kiln-Stack: ${stack}`, `Kiln-Action: ${r.action}`, ...extraTrailers];
  return `${subject}\n\n${body.join('\n')}\n\n${trailers.join('\n')}\n`;
}

/** The record's gates as stored: expression, value, verdict. */
const stored = (gates: readonly GateCheck[]): PromotionGate[] => gates.map((g) => ({ expr: g.expr, value: g.value, passed: g.passed }));

/** Several targets' smoke checks as one: any failure fails it. */
function mergeSmoke(checks: readonly { target: string; smoke: SmokeEvidence }[]): SmokeEvidence {
  if (checks.length === 1) return checks[0]!.smoke;
  const sum = (f: (s: SmokeEvidence) => number) => checks.reduce((n, c) => n + f(c.smoke), 0);
  return {
    passed: checks.every((c) => c.smoke.passed),
    problems: sum((s) => s.problems),
    passedProblems: sum((s) => s.passedProblems),
    failedRequests: sum((s) => s.failedRequests),
    p50Ms: Math.max(...checks.map((c) => c.smoke.p50Ms)),
    p99Ms: Math.max(...checks.map((c) => c.smoke.p99Ms)),
    objectives: checks[0]!.smoke.objectives,
    reasons: checks.flatMap((c) => c.smoke.reasons.map((r) => `${c.target}: ${r}`)),
  };
}

async function applied(o: Common, stack: string, log: (l: string) => void): Promise<ApplyResult> {
  if (!o.applyStack) throw new Error('apply requested without an applyStack function');
  log(`pulumi preview, then up, of stack ${stack}`);
  return o.applyStack({ ...o.applySettings, stacksDir: o.stacksDir, stack, onOutput: o.onOutput, onWait: log });
}

const applyCommand = (stacksDir: string, stack: string) => `cd ${stacksDir} && pulumi up --stack ${stack}`;

/** Refuses when the stack config has changes git has not committed: the promotion commit would carry them. */
async function clean(repo: string, file: string): Promise<void> {
  if (await hasChanges(repo, file)) throw new PromotionRefused(`${file} has uncommitted changes: commit or stash them first (a promotion commits that file alone, and only what it writes)`);
}

/** Promotes a run (or what `from` serves) to the stack `to`. Throws PromotionRefused with the reasons when it will not. */
export async function promote(o: PromoteOptions): Promise<PromoteResult> {
  const log = o.onOutput ?? (() => {});
  const now = o.now ?? (() => new Date());
  if (!o.run === !o.from) throw new Error('promote: give a run or a source stack (from), one of them');
  if (o.from === o.to) throw new PromotionRefused(`--from and --to are the same stack (${o.to})`);
  const repo = await repoRoot(o.stacksDir);
  const by = await gitUser(repo);
  let runRef = o.run;
  let namespace = o.namespace;
  if (o.from) {
    const src = readStackConfig(o.stacksDir, o.from);
    if (!src.model) throw new PromotionRefused(`stack ${o.from} serves nothing (no kiln:model in ${src.file}): promote a run to it first, or name the run`);
    runRef = src.model.run;
    namespace ??= src.model.namespace;
  }
  const evidence = await o.evidence(runRef!, namespace);
  const cfg = readStackConfig(o.stacksDir, o.to);
  const plan = targetPlan(o.stacksDir, o.to, cfg);
  // The gates of the stack's overlay (which is the stack's name unless kiln:overlay says otherwise), else of its name.
  const gateEnv = plan.gates[cfg.overlay] ? cfg.overlay : o.to;
  const gates = gateCheck(plan, gateEnv, evidence.metrics);
  const failing = gates.filter((g) => g.passed !== true);
  if (failing.length && !o.override) throw new PromotionRefused(`run ${evidence.run} does not pass stack ${o.to}'s gates (eval.gates.${gateEnv})`, gates.map(gateLine));
  if (failing.length) log(`override: promoting past ${failing.length} failing gate(s): ${o.override!.reason}`);
  const targets = plan.serving.map((s) => s.name);
  const repositories: Record<string, string> = {};
  const missing: string[] = [];
  for (const t of targets) {
    const r = repositoryFor(t, evidence.export, evidence.repositories, targets);
    if (r) repositories[t] = r;
    else missing.push(`serving target ${t}: the export has no model repository of that name (it has ${evidence.repositories.join(', ') || 'none'})`);
  }
  if (missing.length) throw new PromotionRefused(`run ${evidence.run}'s export does not serve stack ${o.to}'s targets`, missing);
  // A claim is namespaced: a pvc:// model is readable only by pods of the namespace it was written in.
  if (evidence.export.startsWith('pvc://') && evidence.namespace !== plan.namespace) {
    throw new PromotionRefused(`run ${evidence.run}'s model is on a claim of namespace ${evidence.namespace} (${evidence.export}); stack ${o.to} serves in namespace ${plan.namespace}, whose pods cannot mount it`, [
      'serve it from the namespace it ran in (the target stack\'s infra.namespace), or give the pipeline object storage (infra.storage.uri: s3://… or gs://…), which every stack\'s Triton reads',
    ]);
  }
  log(`verifying the export of ${evidence.run} (${evidence.manifest})`);
  const v = await o.verify(evidence, plan);
  if (!v.ok || v.digest === null) throw new PromotionRefused(`run ${evidence.run}'s export does not match what its status records`, [...v.mismatches, ...v.unverified.map((f) => `${f}: could not be read to verify`)]);
  const digest = v.digest;
  const file = stackConfigFile(o.stacksDir, o.to);

  return withStackLock(
    repo,
    o.to,
    async () => {
      await clean(repo, file);
      // Read again under the lock: a promotion that waited for this one sees its record.
      const current = readStackConfig(o.stacksDir, o.to);
      if (current.model?.digest === digest) throw new PromotionRefused(`stack ${o.to} already serves this model (run ${current.model.run}, digest ${short(digest)}, seq ${current.model.seq}): nothing to promote`);
      const history = await promotionHistory(o.stacksDir, o.to);
      const resumed = current.canary?.digest === digest ? current.canary : undefined;
      const record: ServedModel = resumed ?? {
        action: 'promote',
        seq: nextSeq(history, current),
        run: evidence.run,
        namespace: evidence.namespace,
        export: evidence.export,
        repositories,
        digest,
        files: v.files,
        from: o.from ?? null,
        evidence: { metrics: evidence.metrics, gates: stored(gates) },
        ...(failing.length ? { override: { by, reason: o.override!.reason } } : {}),
        by,
        at: now().toISOString(),
      };
      const canaryTargets = plan.serving.filter((s) => s.canary > 0);
      const asCanary = canaryTargets.length > 0 && current.model !== undefined;
      const commits: PromotionCommit[] = [];
      const commit = async (message: string) => {
        const sha = await commitFile(repo, file, message);
        commits.push({ sha, message });
        log(`committed ${sha.slice(0, 12)} ${message.split('\n')[0]}`);
      };
      const base = { stack: o.to, gates, commits };
      if (!asCanary) {
        writeStackConfig(o.stacksDir, o.to, { model: record, canary: null });
        await commit(commitMessage(o.to, record));
        if (!o.apply) return { ...base, outcome: 'promoted', record, applied: false, applyCommand: applyCommand(o.stacksDir, o.to) };
        const r = await applied(o, o.to, log);
        return { ...base, outcome: 'promoted', record, applied: true, outputs: r.outputs };
      }
      const share = canaryTargets.map((s) => `${s.name} ${Math.round(s.canary * 100)}%`).join(', ');
      if (!resumed) {
        writeStackConfig(o.stacksDir, o.to, { canary: record });
        await commit(commitMessage(o.to, record, [`canary: ${share} of requests to ${record.run}; ${current.model!.run} stays stable until its smoke check passes`]));
      } else log(`resuming the canary of ${record.run} on ${o.to} (committed before)`);
      if (!o.apply) return { ...base, outcome: 'canary-pending', record, applied: false, applyCommand: `${applyCommand(o.stacksDir, o.to)}; then kiln promote ${record.run} --to ${o.to} --apply (the smoke check decides)` };
      if (!o.smoke) throw new Error(`stack ${o.to} rolls out as a canary (${share}): a smoke check is needed and none was given`);
      const first = await applied(o, o.to, log);
      const checks = [];
      for (const t of canaryTargets) {
        log(`smoke check of the canary ${record.run} on ${o.to}/${t.name}`);
        // A check that cannot run (the endpoint never routed, the sandbox failed) fails the canary: the stable model stays.
        const smoke = await o.smoke({ stack: o.to, target: t.name, outputs: first.outputs }).catch((e: unknown): SmokeEvidence => ({ passed: false, problems: 0, passedProblems: 0, failedRequests: 0, p50Ms: 0, p99Ms: 0, objectives: t.latency, reasons: [`the smoke check did not run: ${(e as Error).message}`] }));
        checks.push({ target: t.name, smoke });
      }
      const smoke = mergeSmoke(checks);
      const checked: ServedModel = { ...record, evidence: { ...record.evidence, smoke } };
      if (smoke.passed) {
        writeStackConfig(o.stacksDir, o.to, { model: checked, canary: null });
        await commit(commitMessage(o.to, checked, [`canary passed its smoke check: ${record.run} serves 100%`]));
        const r = await applied(o, o.to, log);
        return { ...base, outcome: 'promoted', record: checked, applied: true, outputs: r.outputs };
      }
      const stable = current.model!;
      writeStackConfig(o.stacksDir, o.to, { canary: null });
      // The message is the rollback's, on the stable record (its config entry stays as it is) with the canary's smoke check.
      await commit(commitMessage(o.to, { ...stable, action: 'rollback', evidence: { ...stable.evidence, smoke } }, [`canary ${record.run} failed its smoke check; ${stable.run} keeps serving`], [`Kiln-Canary: ${record.run}`]));
      const r = await applied(o, o.to, log);
      return { ...base, outcome: 'canary-rolled-back', record: checked, applied: true, outputs: r.outputs };
    },
    { onWait: (pid) => log(`another promotion of ${o.to} is running (process ${pid}); waiting for it`) },
  );
}

/** Returns the stack to the model it served before its current one, as a new commit (history is never rewritten). */
export async function rollback(o: RollbackOptions): Promise<RollbackResult> {
  const log = o.onOutput ?? (() => {});
  const now = o.now ?? (() => new Date());
  const repo = await repoRoot(o.stacksDir);
  const by = await gitUser(repo);
  const file = stackConfigFile(o.stacksDir, o.stack);
  return withStackLock(
    repo,
    o.stack,
    async () => {
      await clean(repo, file);
      const current = readStackConfig(o.stacksDir, o.stack);
      if (!current.model) throw new PromotionRefused(`stack ${o.stack} serves nothing (no kiln:model in ${current.file}): there is nothing to roll back`);
      if (current.canary) throw new PromotionRefused(`stack ${o.stack} has a canary in progress (${current.canary.run}): finish it (kiln promote ${current.canary.run} --to ${o.stack} --apply) before rolling back`);
      const history = await promotionHistory(o.stacksDir, o.stack);
      const target = rollbackTarget(history);
      if (!target) throw new PromotionRefused(`stack ${o.stack} has nothing to roll back to: ${current.model.run} (seq ${current.model.seq}) is the first model in its history (kiln history ${o.stack})`);
      const record: ServedModel = { ...target, action: 'rollback', seq: nextSeq(history, current), by, at: now().toISOString() };
      writeStackConfig(o.stacksDir, o.stack, { model: record });
      const message = commitMessage(o.stack, record, [`rolled back from ${current.model.run} (seq ${current.model.seq}, digest ${short(current.model.digest)}) to seq ${target.seq}`]);
      const sha = await commitFile(repo, file, message);
      log(`committed ${sha.slice(0, 12)} ${message.split('\n')[0]}`);
      const base = { stack: o.stack, record, previous: current.model, commit: { sha, message } };
      if (!o.apply) return { ...base, applied: false, applyCommand: applyCommand(o.stacksDir, o.stack) };
      const r = await applied(o, o.stack, log);
      return { ...base, applied: true, outputs: r.outputs };
    },
    { onWait: (pid) => log(`another promotion of ${o.stack} is running (process ${pid}); waiting for it`) },
  );
}
