/** @kiln/promote: promotion between stacks (evidence, gates, the stack config as a git commit, apply, rollout, rollback, history). */
export {};
