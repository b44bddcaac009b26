import { createHash } from 'node:crypto';
import type { Spec } from '@kiln/spec';
import { canonicalJson } from '@kiln/stage';

/**
 * What determines a run's result: the data and its cleaning, the tokenizer, the model, the objective, the
 * training recipe and the images that run it, and the evaluation that judges it. Left out on purpose:
 * labels, owner and description; where pods run and how many there are (resources, queue, priority:
 * the global batch is fixed, so GPU count changes speed, not the model); promotion gates (policy, not
 * evidence); serving; the namespace and the stack name.
 */
export function runIdentity(spec: Spec): unknown {
  const t = spec.training;
  return {
    name: spec.metadata.name,
    data: spec.data,
    tokenizer: spec.tokenizer,
    model: spec.model,
    objective: spec.objective,
    training: {
      token_budget: t.token_budget,
      global_batch: t.global_batch,
      // As written: an integer, or the string "auto" (which micro batch the trainer then picks is its own).
      micro_batch: t.micro_batch,
      optimizer: t.optimizer,
      schedule: t.schedule,
      gradient_clipping: t.gradient_clipping,
      parallelism: t.parallelism,
      seed: t.seed,
    },
    eval: spec.eval.suites,
    images: { data_prep: spec.infra.images.data_prep, trainer: spec.infra.images.trainer, eval: spec.infra.images.eval },
    storage: spec.infra.storage.uri,
  };
}

export function runId(spec: Spec): string {
  return 'r-' + createHash('sha256').update(canonicalJson(runIdentity(spec))).digest('hex').slice(0, 12);
}
