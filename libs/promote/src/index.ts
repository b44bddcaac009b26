/** @kiln/promote: promotion between stacks (evidence, gates, the stack config as a git commit, apply, rollout, rollback, history). */
export { readStackConfig, parseStackConfig, writeStackConfig, applyStackConfig, stackConfigFile, type StackConfig, type StackConfigChange } from './stack-config.ts';
export { repoRoot, gitCommonDir, gitUser, hasChanges, commitFile, fileHistory, trailers, GitError, type FileCommit } from './git.ts';
export { promotionHistory, rollbackTarget, servedStack, nextSeq, type HistoryEntry } from './history.ts';
export { runEvidence, evidenceOf, gateCheck, gateLine, suiteMetrics, PromotionRefused, type RunEvidence, type VerifyResult, type GateCheck } from './evidence.ts';
