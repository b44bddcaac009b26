import type { GpuType, SizePreset } from './types.ts';

/** What kiln needs to know about an accelerator. Figures are the vendors' datasheet values. */
export interface GpuInfo {
  /** Device memory, GiB. */
  readonly memoryGiB: number;
  /** Peak dense bf16 (fp16 where bf16 is absent) tensor throughput, TFLOP/s. */
  readonly peakTflops: number;
  /** Kubernetes extended resource that schedules it. */
  readonly resource: 'nvidia.com/gpu' | 'amd.com/gpu';
  /** Value of the product label that GPU feature discovery puts on nodes. */
  readonly product: string;
  readonly bf16: boolean;
}

export const GPUS: Readonly<Record<GpuType, GpuInfo>> = {
  t4: { memoryGiB: 16, peakTflops: 65, resource: 'nvidia.com/gpu', product: 'Tesla-T4', bf16: false },
  l4: { memoryGiB: 24, peakTflops: 121, resource: 'nvidia.com/gpu', product: 'NVIDIA-L4', bf16: true },
  a10g: { memoryGiB: 24, peakTflops: 70, resource: 'nvidia.com/gpu', product: 'NVIDIA-A10G', bf16: true },
  l40s: { memoryGiB: 48, peakTflops: 362, resource: 'nvidia.com/gpu', product: 'NVIDIA-L40S', bf16: true },
  'v100-32gb': { memoryGiB: 32, peakTflops: 125, resource: 'nvidia.com/gpu', product: 'Tesla-V100-SXM2-32GB', bf16: false },
  'a100-40gb': { memoryGiB: 40, peakTflops: 312, resource: 'nvidia.com/gpu', product: 'NVIDIA-A100-SXM4-40GB', bf16: true },
  'a100-80gb': { memoryGiB: 80, peakTflops: 312, resource: 'nvidia.com/gpu', product: 'NVIDIA-A100-SXM4-80GB', bf16: true },
  'h100-80gb': { memoryGiB: 80, peakTflops: 989, resource: 'nvidia.com/gpu', product: 'NVIDIA-H100-80GB-HBM3', bf16: true },
  'h200-141gb': { memoryGiB: 141, peakTflops: 989, resource: 'nvidia.com/gpu', product: 'NVIDIA-H200', bf16: true },
  'b200-192gb': { memoryGiB: 180, peakTflops: 2250, resource: 'nvidia.com/gpu', product: 'NVIDIA-B200', bf16: true },
  'mi300x-192gb': { memoryGiB: 192, peakTflops: 1307, resource: 'amd.com/gpu', product: 'AMD-Instinct-MI300X', bf16: true },
};

/** GPUs a node holds when the spec declares no node pools (the common 8-GPU server). */
export const DEFAULT_GPUS_PER_NODE = 8;

/** Model shapes behind `model.preset`. 3b is replit-code-v1-3b's shape. */
export const PRESETS: Readonly<Record<SizePreset, { d_model: number; n_layers: number; n_heads: number }>> = {
  '125m': { d_model: 768, n_layers: 12, n_heads: 12 },
  '350m': { d_model: 1024, n_layers: 24, n_heads: 16 },
  '760m': { d_model: 1536, n_layers: 24, n_heads: 16 },
  '1b': { d_model: 2048, n_layers: 24, n_heads: 16 },
  '3b': { d_model: 2560, n_layers: 32, n_heads: 32 },
  '7b': { d_model: 4096, n_layers: 32, n_heads: 32 },
};

/** Parameters of a decoder-only transformer with tied embeddings: (4 + 2·mlp_ratio)·d²·L + V·d. */
export function parameterCount(m: { d_model: number; n_layers: number; mlp_ratio: number; vocab_size: number }): number {
  return Math.round((4 + 2 * m.mlp_ratio) * m.d_model * m.d_model * m.n_layers + m.vocab_size * m.d_model);
}

/**
 * Bytes per parameter of training state: bf16/fp16 weights and grads, fp32 master weights and two Adam
 * moments (16 B); lion keeps one moment (12 B); pure fp32 keeps weights, grads and two moments (16 B).
 */
export function trainingStateBytesPerParam(optimizer: 'adamw' | 'lion'): number {
  return optimizer === 'lion' ? 12 : 16;
}

/**
 * LSH bands and rows for MinHash with `numPerm` permutations that minimise the (equally weighted) false
 * positive and false negative areas around `threshold`, as BigCode's `optimal_param` does.
 */
export function optimalLsh(threshold: number, numPerm: number): { bands: number; rows: number } {
  const integrate = (f: (s: number) => number, a: number, b: number) => {
    const n = 200;
    const h = (b - a) / n;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += f(a + (i + 0.5) * h) * h;
    return sum;
  };
  let best = { bands: 1, rows: numPerm };
  let bestErr = Infinity;
  for (let b = 1; b <= numPerm; b++) {
    const maxR = Math.floor(numPerm / b);
    for (let r = 1; r <= maxR; r++) {
      const fp = integrate((s) => 1 - (1 - s ** r) ** b, 0, threshold);
      const fn = integrate((s) => 1 - (1 - (1 - s ** r) ** b), threshold, 1);
      const err = 0.5 * fp + 0.5 * fn;
      if (err < bestErr) {
        bestErr = err;
        best = { bands: b, rows: r };
      }
    }
  }
  return best;
}

/** The kinds of pod `infra.stage_resources` sizes (schemas/kiln.schema.json#/$defs/infra). */
export const POD_KINDS = ['data-prep', 'dedup', 'tokenizer', 'pack', 'train', 'export', 'eval', 'triton', 'gateway'] as const;
