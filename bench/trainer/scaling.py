"""Scaling kiln's trainer across the GPUs of one host: bench/trainer/mfu.py under torchrun at 1, 2, 4 and 8 GPUs
(as many as are visible), with DDP and with FSDP2, for one size at sequence 2048; prints tokens/s per GPU, MFU,
peak memory, step time and the scaling efficiency against the same strategy on one GPU (tokens/s per GPU at N over
tokens/s at 1).

    PYTHONPATH=services/trainer/src python3 bench/trainer/scaling.py [--size 1b] [--pe rope] [--gpus 1,2,4,8]
        [--parallel ddp,fsdp2] [--micro-batch 8] [--steps 10] [--json]
    node services/trainer/scripts/env.mjs run -- python bench/trainer/scaling.py --device cpu --size tiny \\
        --gpus 1,2 --micro-batch 2   # smoke run: processes on gloo instead of GPUs

Each run is its own torchrun (`python -m torch.distributed.run --standalone`), so the compile caches and memory of
one do not help the next. NVLink multicast stays off (NCCL_NVLS_ENABLE=0, TORCH_SYMM_MEM_DISABLE_MULTICAST=1,
NVSHMEM_DISABLE_NVLS=1 are set for every run). It asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

MFU = Path(__file__).resolve().with_name("mfu.py")
SAFE = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def one(args: argparse.Namespace, parallel: str, n: int) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n), str(MFU),
        "--sizes", args.size, "--pe", args.pe, "--parallel", parallel, "--micro-batch", str(args.micro_batch),
        "--steps", str(args.steps), "--warmup", str(args.warmup), "--json",
    ]  # fmt: skip
    if args.device:
        cmd += ["--device", args.device]
    if args.seq_len:
        cmd += ["--seq-len", str(args.seq_len)]
    env = {**os.environ, **SAFE, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    rows = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    found = [x for x in rows if "tokens_per_s" in x or "oom" in x]
    if r.returncode != 0 or not found:
        tail = (r.stderr or r.stdout)[-1500:]
        return {"parallel": parallel, "gpus": n, "error": f"exit {r.returncode}", "tail": tail}
    return {"gpus": n, **found[0]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="1b", help="a libs/spec preset, or tiny")
    p.add_argument("--pe", default="rope", help="rope or alibi")
    p.add_argument("--gpus", default="1,2,4,8", help="process counts to run; those above the visible GPUs are left out")
    p.add_argument("--parallel", default="ddp,fsdp2", help="strategies: ddp, fsdp2")
    p.add_argument("--micro-batch", type=int, default=8, help="sequences per GPU per step (the same at every N)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=4)
    p.add_argument("--device", choices=("cuda", "cpu"), help="default: cuda when visible")
    p.add_argument("--seq-len", type=int, help="default: mfu.py's (2048 on cuda)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    args = p.parse_args(argv)
    have = visible_gpus()
    on_cpu = args.device == "cpu" or have == 0
    wanted = [int(x) for x in args.gpus.split(",")]
    counts = wanted if on_cpu else [n for n in wanted if n <= have]
    skipped = [n for n in wanted if n not in counts]
    head = {"visible_gpus": have, "counts": counts, "not_run": skipped, "size": args.size, "pe": args.pe}
    print(json.dumps(head) if args.json else f"{have} GPU(s) visible; running {counts}, not run {skipped or 'none'}")
    for parallel in args.parallel.split(","):
        base: float | None = None
        for n in counts:
            r = one(args, parallel, n)
            if "tokens_per_s" in r:
                base = r["tokens_per_s"] if n == counts[0] and counts[0] == 1 else base
                r["scaling_efficiency_pct"] = round(100 * r["tokens_per_s"] / base, 1) if base else None
            if args.json:
                print(json.dumps(r), flush=True)
            elif "error" in r:
                print(f"{parallel:>5} x{n}: failed ({r['error']}): {r['tail'][-400:]}", flush=True)
            elif "oom" in r:
                print(f"{parallel:>5} x{n}: out of memory at micro-batch {args.micro_batch}", flush=True)
            else:
                eff = r["scaling_efficiency_pct"]
                print(
                    f"{parallel:>5} x{n}: {r['tokens_per_s']:>8} tokens/s per GPU ({r['tokens_per_s_all']} in all)  "
                    f"MFU {r['mfu_pct']}%  step {r['step_ms']} ms  peak {r['peak_mem_GiB']} GiB  "
                    f"efficiency {eff if eff is not None else '-'}%",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
