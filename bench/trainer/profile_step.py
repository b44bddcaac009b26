"""Where a training step's GPU time goes: the top CUDA kernels of kiln's Transformer, beside a baseline's.

    PYTHONPATH=services/trainer/src python3 bench/trainer/profile_step.py [--size 350m] [--pe rope]
        [--micro-batch 16] [--anchor PATH/anchor_mfu.py] [--top 25]

Builds the model as bench/trainer/mfu.py does (bf16 autocast, fused AdamW, `compile_blocks`), runs a few warm-up
steps, then profiles three steps with torch.profiler and prints the kernels by total CUDA time (milliseconds per
step and share). With `--anchor`, the same for that file's plain GPT (its `GPT` class) at the same size. Made for
the GPU machine; asserts nothing.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mfu import presets

from kiln_trainer.model import ModelConfig, Transformer, loss_targets

STEPS = 3


def profiled(name: str, step: Callable[[], None], top: int) -> None:
    for _ in range(4):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(STEPS):
            step()
        torch.cuda.synchronize()
    events: list[Any] = [e for e in prof.key_averages() if e.device_time_total > 0]
    total = sum(e.self_device_time_total for e in events)
    print(f"== {name}: {total / 1e3 / STEPS:.1f} ms of kernels a step")
    for e in sorted(events, key=lambda e: -e.self_device_time_total)[:top]:
        ms = e.self_device_time_total / 1e3 / STEPS
        print(f"{ms:8.2f} ms {100 * e.self_device_time_total / total:5.1f}%  x{e.count // STEPS:<4} {e.key[:110]}")
    sys.stdout.flush()


def kiln_profile(args: argparse.Namespace, x: torch.Tensor, shape: tuple[int, int, int]) -> None:
    """kiln's model, as the train stage compiles it (its memory is freed on return)."""
    d, n_layers, h = shape
    cfg = ModelConfig(args.vocab, d, n_layers, h, 4.0, args.seq_len, args.pe, "bf16")
    with torch.device("meta"):
        model = Transformer(cfg)
    model.to_empty(device="cuda")
    model.init_weights(0)
    model.compile_blocks()
    kopt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    targets, weights = loss_targets(x, None, ())

    def kiln_step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x, targets, weights) / weights.sum()
        loss.backward()
        kopt.step()
        kopt.zero_grad(set_to_none=True)

    profiled(f"kiln {args.size} {args.pe}", kiln_step, args.top)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="350m")
    p.add_argument("--pe", default="rope", choices=("rope", "alibi"))
    p.add_argument("--micro-batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--vocab", type=int, default=32768)
    p.add_argument("--anchor", help="a baseline file with a GPT(d, L, h) class (anchor_mfu.py)")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    d, n_layers, h = presets()[args.size]
    x = torch.randint(0, args.vocab, (args.micro_batch, args.seq_len), device="cuda")

    kiln_profile(args, x, (d, n_layers, h))
    torch.cuda.empty_cache()
    if args.anchor:
        spec = importlib.util.spec_from_file_location("anchor", args.anchor)
        assert spec is not None and spec.loader is not None
        anchor = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(anchor)
        plain: Any = anchor.GPT(d, n_layers, h).cuda()
        gpt: Any = torch.compile(plain)
        aopt = torch.optim.AdamW(plain.parameters(), lr=1e-4, fused=True)

        def anchor_step() -> None:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = gpt(x, x)
            loss.backward()
            aopt.step()
            aopt.zero_grad(set_to_none=True)

        profiled(f"anchor {args.size}", anchor_step, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
