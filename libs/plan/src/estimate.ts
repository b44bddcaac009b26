import { GPUS, type Spec } from '@kiln/spec';
import type { Estimate } from './types.ts';

/** Default model FLOPs utilisation: what well-tuned FSDP training of these sizes reaches on A100/H100. */
export const DEFAULT_MFU = 0.4;

/**
 * Training compute before launch: 6·N FLOPs per token for the dense layers (forward and backward) plus
 * 12·n_layers·d_model·seq_len for attention scores (Kaplan et al. 2020; PaLM appendix B), at a stated MFU.
 */
export function estimate(spec: Spec, mfu = DEFAULT_MFU): Estimate {
  const m = spec.model;
  const t = spec.training;
  const r = t.resources;
  const perToken = 6 * m.parameters + 12 * m.n_layers * m.d_model * m.max_seq_len;
  const flops = perToken * t.token_budget;
  const gpus = r.gpus_per_node * r.nodes;
  const gpuSeconds = flops / (GPUS[r.gpu_type].peakTflops * 1e12 * mfu);
  const gpuHours = gpuSeconds / 3600;
  const price = spec.infra.pricing.gpu_hour[r.gpu_type];
  return {
    parameters: m.parameters,
    tokens: t.token_budget,
    trainingFlops: flops,
    mfu,
    gpus,
    gpuType: r.gpu_type,
    gpuHours,
    // CPU training (no GPUs): the GPU-hours are what the same run would take on the named GPU type; no price.
    wallHours: gpuHours / Math.max(1, gpus),
    cost: price === undefined || gpus === 0 ? null : gpuHours * price,
    currency: spec.infra.pricing.currency,
  };
}
