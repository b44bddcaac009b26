"""Where the trainer computes: the GPU when there is one, else the CPU, with the same code.

PyTorch comes from PyPI's default Linux wheel, a CUDA build that also runs on a machine without a GPU (see
services/trainer/docs/environment.md). `python -m kiln_trainer.device [--json]` says what this machine offers and
runs a small training step there, so an image or a node can be checked before a run is scheduled on it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["DeviceInfo", "check_step", "device_info", "main", "pick_device"]


@dataclass(frozen=True)
class DeviceInfo:
    """What this machine offers the trainer."""

    torch: str
    """PyTorch's version."""
    cuda_build: str | None
    """The CUDA version PyTorch was built for (None for a CPU-only build)."""
    device: str
    """`cuda` or `cpu`: where `pick_device` puts the model."""
    gpus: int
    """GPUs visible."""
    gpu_name: str | None
    """The first GPU's name."""
    bf16: bool
    """Whether bfloat16 matmuls are supported there."""
    cpu_threads: int
    """Threads PyTorch uses on the CPU."""


def pick_device(prefer: str | None = None) -> str:
    """`cuda` when a GPU is visible, else `cpu`; `prefer` (or KILN_DEVICE) forces one, `cuda` failing without a GPU."""
    import torch

    wanted = prefer or os.environ.get("KILN_DEVICE") or None
    if wanted == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("KILN_DEVICE=cuda, but PyTorch sees no GPU (check the driver and CUDA_VISIBLE_DEVICES)")
    if wanted in ("cuda", "cpu"):
        return wanted
    return "cuda" if torch.cuda.is_available() else "cpu"


def device_info() -> DeviceInfo:
    """This machine's devices as PyTorch sees them."""
    import torch

    device = pick_device()
    on_gpu = device == "cuda"
    return DeviceInfo(
        torch=str(torch.__version__),
        cuda_build=torch.version.cuda,
        device=device,
        gpus=torch.cuda.device_count() if torch.cuda.is_available() else 0,
        gpu_name=torch.cuda.get_device_name(0) if on_gpu else None,
        bf16=bool(torch.cuda.is_bf16_supported()) if on_gpu else True,
        cpu_threads=torch.get_num_threads(),
    )


def check_step(device: str, steps: int = 20, seed: int = 0) -> dict[str, Any]:
    """Trains a two-layer MLP on a fixed regression problem for `steps` steps on `device`.

    Returns the first and last loss (the last must be lower) and the seconds taken: proof that forward, backward and
    the optimizer run there.
    """
    import torch

    torch.manual_seed(seed)
    x = torch.randn(256, 64, device=device)
    y = x @ torch.randn(64, 1, device=device)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.GELU(), torch.nn.Linear(128, 1)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses: list[float] = []
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        losses.append(float(loss.detach()))
    if device == "cuda":
        torch.cuda.synchronize()
    return {
        "device": str(next(model.parameters()).device),
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "seconds": round(time.perf_counter() - t0, 4),
    }


def main(argv: list[str] | None = None) -> int:
    """`python -m kiln_trainer.device [--json]`: the devices, and a training step on the chosen one."""
    parser = argparse.ArgumentParser(
        prog="python -m kiln_trainer.device",
        description="Say where the trainer computes (GPU if visible, else CPU) and run a small training step there.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        info = device_info()
        step = check_step(info.device)
    except RuntimeError as e:
        print(f"kiln_trainer.device: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({**asdict(info), "step": step}))
    else:
        where = f"{info.gpus} x {info.gpu_name}" if info.device == "cuda" else f"CPU, {info.cpu_threads} threads"
        print(f"torch {info.torch} (CUDA build {info.cuda_build or 'none'}): computing on {info.device}: {where}")
        print(f"training step: loss {step['first_loss']:.4f} -> {step['last_loss']:.4f} in {step['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
