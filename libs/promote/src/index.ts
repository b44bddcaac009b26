/** @kiln/promote: promotion between stacks (evidence, gates, the stack config as a git commit, apply, rollout, rollback, history). */
export { readStackConfig, parseStackConfig, writeStackConfig, applyStackConfig, stackConfigFile, type StackConfig, type StackConfigChange } from './stack-config.ts';
export { repoRoot, gitCommonDir, gitUser, hasChanges, commitFile, fileHistory, trailers, GitError, type FileCommit } from './git.ts';
export { promotionHistory, rollbackTarget, servedStack, nextSeq, type HistoryEntry } from './history.ts';
export { runEvidence, evidenceOf, gateCheck, gateLine, suiteMetrics, PromotionRefused, type RunEvidence, type GateCheck } from './evidence.ts';
export { withStackLock, type LockOptions } from './lock.ts';
export { applyStack, type ApplyFn, type ApplyOptions, type ApplyResult } from './apply.ts';
export { promote, rollback, targetPlan, commitMessage, type PromoteOptions, type PromoteResult, type RollbackOptions, type RollbackResult, type PromotionCommit, type VerifyFn, type SmokeFn, type EvidenceFn, type ApplySettings } from './promote.ts';
export { verifyExport, VerifyError, type VerifyResult, type VerifyOptions } from './verify.ts';
