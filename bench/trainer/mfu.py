"""Training throughput (MFU) of kiln's Transformer on one GPU or several: tokens/s, MFU, peak memory, step time.

    PYTHONPATH=services/trainer/src python3 bench/trainer/mfu.py [--sizes 350m,1b] [--pe rope,alibi]
        [--micro-batch N[,N...]] [--compile-mode blocks|model] [--activation-checkpointing] [--steps N] [--json]
        [--parallel none|ddp|fsdp2]
    node services/trainer/scripts/env.mjs run -- python bench/trainer/mfu.py --sizes tiny --device cpu   # smoke run
    torchrun --nproc-per-node 8 bench/trainer/mfu.py --sizes 1b --pe rope --parallel fsdp2 --json   # 8 GPUs

Several GPUs: started by torchrun (WORLD_SIZE, RANK, LOCAL_RANK), one process per GPU on NCCL (gloo on the CPU),
the model wrapped as the train stage wraps it (`--parallel ddp`: DistributedDataParallel; `fsdp2`: fully_shard
per block and the root, resharding after forward), each rank on its own random tokens, `--micro-batch` sequences
per rank. The figures are rank 0's, per GPU: tokens/s per GPU, MFU per GPU, step time; peak memory is the largest
of any rank's. `--parallel` also wraps at world size 1 (the baseline of bench/trainer/scaling.py's efficiency).

The sizes are libs/spec's presets (PRESETS in libs/spec/src/hardware.ts, read from that file), plus `tiny`
(d_model 128, 2 layers, 4 heads) for a CPU smoke run. On the GPU: sequence 2048, vocabulary 32768, bf16 autocast,
fused AdamW, torch.compile as the train stage applies it (`Transformer.compile_blocks`: each block, and the final
norm, head and loss in one graph; `--compile-mode model` compiles the whole module instead), RoPE through SDPA
flash, ALiBi through FlexAttention, the loss summed by the model's forward as the train stage calls it, on random
tokens; without --micro-batch it tries 16, then 8, then 4 on running out of memory.

MFU = flops_per_token * tokens/s / 989.4e12 (H100 SXM / H200 dense bf16). Two figures: `mfu_pct` counts N as
every parameter (the tied embedding once: it is also the output head, whose matmul is real work), the convention
of /work/shared/anchors/anchor_mfu.py and nanoGPT, so it compares with the anchors' figures; `mfu_pct_non_emb`
counts N without the embedding (model.flops_per_token's argument in the train loop's logs). It asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from kiln_trainer.model import ModelConfig, Transformer, autocast_dtype, flops_per_token, loss_targets

PEAK = 989.4e12
HARDWARE_TS = Path(__file__).resolve().parents[2] / "libs" / "spec" / "src" / "hardware.ts"
TINY = (128, 2, 4)


def presets() -> dict[str, tuple[int, int, int]]:
    """libs/spec's size presets, `name -> (d_model, n_layers, n_heads)`, read from hardware.ts; plus `tiny`."""
    found: dict[str, tuple[int, int, int]] = {"tiny": TINY}
    text = HARDWARE_TS.read_text(encoding="utf-8") if HARDWARE_TS.is_file() else ""
    block = re.search(r"PRESETS[^=]*=\s*\{(.*?)\n\};", text, re.DOTALL)
    pattern = r"'([^']+)':\s*\{\s*d_model:\s*(\d+),\s*n_layers:\s*(\d+),\s*n_heads:\s*(\d+)\s*\}"
    for name, d, n_layers, h in re.findall(pattern, block.group(1) if block else ""):
        found[name] = (int(d), int(n_layers), int(h))
    return found


def peak_memory_gib(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    # The process's peak resident set (Linux reports kilobytes).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def check(device: str) -> dict[str, Any]:
    """kiln's model on `device` against the same weights on the CPU (float32; on CUDA, ALiBi through FlexAttention
    against the CPU's explicit mask, RoPE's SDPA against the CPU's): the largest logit difference, per pe."""
    out: dict[str, Any] = {"check": device}
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    for pe in ("rope", "alibi"):
        for heads in (8, 12):
            cfg = ModelConfig(4096, 768, 2, heads, 4.0, 512, pe, "fp32")
            model = Transformer(cfg)
            model.init_weights(1)
            x = torch.randint(0, cfg.vocab_size, (2, cfg.max_seq_len), generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                ref = model(x)
                got = model.to(device)(x.to(device)).cpu()
            out[f"{pe}_h{heads}_max_abs_diff"] = float((got - ref).abs().max())
    torch.backends.cuda.matmul.allow_tf32 = True
    return out


def run(
    size: str, pe: str, mb: int, args: argparse.Namespace, shape: tuple[int, int, int], device: str
) -> dict[str, Any]:
    d, n_layers, h = shape
    precision = "bf16" if device == "cuda" else args.cpu_precision
    cfg = ModelConfig(args.vocab, d, n_layers, h, 4.0, args.seq_len, pe, precision)  # type: ignore[arg-type]
    with torch.device("meta"):  # as the train loop builds it: no weights drawn twice
        bare = Transformer(cfg)
    bare.activation_checkpointing = args.activation_checkpointing
    options: dict[str, Any] = {"mode": args.inductor_mode} if args.inductor_mode else {}
    if args.compile and args.compile_mode == "blocks":
        bare.compile_blocks(**options)  # the train stage's way: each block, and the head with its loss
    elif args.compile:
        bare.compile(**options)  # the whole module in one graph (in place: the same state dict)
    model = wrap(bare, args.parallel, device)  # fsdp2 shards the meta model, then it is materialised
    bare.to_empty(device=device)
    bare.init_weights(0)
    if args.parallel == "ddp":
        model = wrap(bare, "ddp-now", device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=device == "cuda")
    dtype = autocast_dtype(cfg)
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    gen = torch.Generator(device=device).manual_seed(1000 + rank)  # each rank its own tokens
    x = torch.randint(0, cfg.vocab_size, (mb, cfg.max_seq_len), device=device, generator=gen)
    targets, weights = loss_targets(x, None, ())
    loss = torch.zeros(())
    t_first = time.perf_counter()
    t0 = t_first
    for i in range(args.warmup + args.steps):
        if i == args.warmup:
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
            # As the train stage: the forward sums the loss (inside the compiled region); the mean for the step.
            loss = model(x, targets, weights) / weights.sum()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if device == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / args.steps
    tps = mb * cfg.max_seq_len / dt  # per GPU
    n_all = bare.num_params(exclude_embedding=False)
    n_non_emb = bare.num_params()
    if args.parallel != "none":  # FSDP2's parameters are shards: count the whole model
        n_all, n_non_emb = cfg_params(cfg)
    peak = torch.tensor([peak_memory_gib(device)], dtype=torch.float64, device=device)
    step = torch.tensor([dt], dtype=torch.float64, device=device)
    if dist.is_initialized():
        dist.all_reduce(peak, op=dist.ReduceOp.MAX)
        dist.all_reduce(step, op=dist.ReduceOp.MAX)
    result = {
        "impl": "kiln",
        "size": size,
        "pe": pe,
        "attention": "sdpa" if pe == "rope" else ("flex" if device == "cuda" else "sdpa+mask"),
        "device": device,
        "parallel": args.parallel,
        "world_size": world,
        "compiled": args.compile_mode if args.compile else False,
        "inductor_mode": args.inductor_mode or "default",
        "activation_checkpointing": bool(args.activation_checkpointing),
        "precision": precision,
        "seq_len": cfg.max_seq_len,
        "vocab": cfg.vocab_size,
        "params_M": round(n_all / 1e6, 1),
        "params_non_emb_M": round(n_non_emb / 1e6, 1),
        "intermediate_size": cfg.intermediate_size,
        "micro_batch": mb,
        "tokens_per_s": round(tps),
        "tokens_per_s_all": round(tps * world),
        "mfu_pct": round(100 * flops_per_token(cfg, n_all) * tps / PEAK, 1),
        "mfu_pct_non_emb": round(100 * flops_per_token(cfg, n_non_emb) * tps / PEAK, 1),
        "step_ms": round(dt * 1e3, 1),
        "step_ms_slowest_rank": round(float(step) * 1e3, 1),
        "warmup_s": round(t0 - t_first, 1),
        "peak_mem_GiB": round(float(peak), 1),
        "loss": round(float(loss.detach()), 3),
    }
    del model, bare, opt
    return result


def cfg_params(cfg: ModelConfig) -> tuple[int, int]:
    """(all parameters, without the embedding) of the unsharded model, counted on the meta device."""
    with torch.device("meta"):
        m = Transformer(cfg)
    return m.num_params(exclude_embedding=False), m.num_params()


def wrap(model: torch.nn.Module, parallel: str, device: str) -> torch.nn.Module:
    """As the train stage wraps (kiln_trainer.train._wrap): fsdp2 before materialising, DDP after ("ddp-now")."""
    if parallel == "fsdp2":
        from torch.distributed.fsdp import fully_shard

        for block in model.layers:  # type: ignore[union-attr]
            fully_shard(block, reshard_after_forward=True)
        fully_shard(model, reshard_after_forward=True)
    elif parallel == "ddp-now":
        from torch.nn.parallel import DistributedDataParallel

        ids = [torch.cuda.current_device()] if device == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)
    return model


def init_world(parallel: str, device: str) -> str:
    """Joins torchrun's process group when --parallel is given (world size 1 too); returns the device to use."""
    if parallel == "none":
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise SystemExit("started by torchrun with several processes: give --parallel ddp or fsdp2")
        return device
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29511")
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return device


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="350m,1b", help="comma-separated presets (libs/spec) or tiny")
    p.add_argument("--pe", default="rope,alibi", help="comma-separated position encodings: rope, alibi")
    p.add_argument(
        "--micro-batch", type=lambda v: [int(x) for x in v.split(",")],
        help="sequences per step, or a list tried in order until one fits (default: 16,8,4)",
    )  # fmt: skip
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=4, help="untimed steps first (compilation happens here)")
    p.add_argument("--device", choices=("cuda", "cpu"), help="default: cuda when visible")
    p.add_argument("--seq-len", type=int, help="default 2048 (cuda), 256 (cpu)")
    p.add_argument("--vocab", type=int, help="default 32768 (cuda), 4096 (cpu)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, help="torch.compile (default: on cuda)")
    p.add_argument(
        "--compile-mode", choices=("blocks", "model"), default="blocks",
        help="blocks: each block and the loss, as the train stage (default); model: the whole module in one graph",
    )  # fmt: skip
    p.add_argument(
        "--inductor-mode", choices=("default", "max-autotune-no-cudagraphs"),
        help="torch.compile's mode (default: its default); max-autotune-no-cudagraphs also tries Triton GEMM templates",
    )  # fmt: skip
    p.add_argument("--activation-checkpointing", action="store_true", help="recompute the blocks in backward")
    p.add_argument("--cpu-precision", choices=("fp32", "bf16"), default="fp32", help="autocast on the CPU")
    p.add_argument(
        "--parallel", choices=("none", "ddp", "fsdp2"), default="none",
        help="wrap the model as the train stage does (under torchrun for several GPUs; default none: one GPU, bare)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--check", action="store_true", help="first compare the device's logits with the CPU's")
    args = p.parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = device == "cuda"
    args.seq_len = args.seq_len or (2048 if on_gpu else 256)
    args.vocab = args.vocab or (32768 if on_gpu else 4096)
    args.compile = on_gpu if args.compile is None else args.compile
    if on_gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
    init_world(args.parallel, device)
    if dist.is_initialized() and dist.get_world_size() > 1 and len(args.micro_batch or [16, 8, 4]) > 1:
        # One rank out of memory leaves the others waiting in a collective: no fallback list across ranks.
        raise SystemExit("several processes need one --micro-batch (no out-of-memory fallback across ranks)")
    lead = not dist.is_initialized() or dist.get_rank() == 0
    out = print if lead else (lambda *a, **k: None)
    shapes = presets()
    header = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if on_gpu else "cpu",
        "world_size": dist.get_world_size() if dist.is_initialized() else 1,
        "parallel": args.parallel,
    }
    out(json.dumps(header) if args.json else f"torch {header['torch']} on {header['device']}", flush=True)
    if args.check:
        out(json.dumps(check(device)), flush=True)
    for size in args.sizes.split(","):
        if size not in shapes:
            print(f"unknown size {size!r}; known: {', '.join(shapes)}", file=sys.stderr)
            return 2
        for pe in args.pe.split(","):
            for mb in args.micro_batch or [16, 8, 4]:
                try:
                    torch.manual_seed(0)
                    r = run(size, pe, mb, args, shapes[size], device)
                except torch.OutOfMemoryError:
                    r = {"oom": size, "pe": pe, "micro_batch": mb}
                    ok = False
                else:
                    ok = True
                if on_gpu:
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                if args.json:
                    out(json.dumps(r), flush=True)
                elif ok:
                    out(
                        f"{size:>5} {pe:<5} mb {mb:>2} {args.parallel} x{r['world_size']}: "
                        f"{r['tokens_per_s']:>9} tokens/s per GPU  MFU {r['mfu_pct']:>5}% "
                        f"(non-emb {r['mfu_pct_non_emb']}%)  step {r['step_ms']} ms  peak {r['peak_mem_GiB']} GiB  "
                        f"{r['params_M']}M params  loss {r['loss']}",
                        flush=True,
                    )
                else:
                    out(f"{size:>5} {pe:<5} mb {mb:>2}: out of memory", flush=True)
                if ok:
                    break
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
