"""The train stage end to end on whatever device there is (made for the GPU machine): tokenizer, pack, train.

    PYTHONPATH=services/trainer/src python3 bench/trainer/train_gpu.py [--preset 125m] [--steps 200] [--seq-len 1024]
    node services/trainer/scripts/env.mjs run -- python bench/trainer/train_gpu.py --preset tiny --steps 20  # CPU

Trains kiln's tokenizer on the Python standard library, packs it (next-token), writes a train config in the stage
contract's shape (the tiny plan's training recipe, the preset's model) and runs `python -m kiln_trainer.launch
--nproc-per-node=1 -m kiln_trainer.train --config …`, the plan's own command: so the CUDA path (bf16 autocast, fused
AdamW, nccl, the progress line's MFU, checkpoints) runs as the stage runs it. Prints the progress lines and the
summary; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

PRESETS = {"tiny": (128, 2, 4), "125m": (768, 12, 12), "350m": (1024, 24, 16)}


def run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Runs a step, failing loudly with its stderr."""
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})})
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} ... exited {out.returncode}:\n{out.stderr[-4000:]}")
    return out


def main() -> None:
    """Tokenizer, pack, train; prints what the train stage printed."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="125m")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--micro-batch", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=8192)
    args = ap.parse_args()
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    work = Path(tempfile.mkdtemp(prefix="kiln-train-gpu-"))
    py = sys.executable
    t0 = time.monotonic()
    run([py, "-m", "kiln_trainer.tokenizer", "train", "--input", str(stdlib), "--output", str(work / "tok"),
         "--vocab-size", str(args.vocab), "--sample-size", "8MB"])  # fmt: skip
    run([py, "-m", "kiln_trainer.pack", "run", "--tokenizer", str(work / "tok"), "--input", str(stdlib),
         "--output", str(work / "packed"), "--seq-len", str(args.seq_len), "--workers", "4"])  # fmt: skip
    prep_s = time.monotonic() - t0
    d, layers, heads = PRESETS[args.preset]
    tokens_per_step = args.micro_batch * args.seq_len
    config = {
        "model": {"d_model": d, "n_layers": layers, "n_heads": heads, "mlp_ratio": 4, "vocab_size": args.vocab,
                  "max_seq_len": args.seq_len, "position_encoding": "rope", "precision": "bf16"},
        "objective": {"type": "next-token"},
        "training": {
            "token_budget": args.steps * tokens_per_step,
            "global_batch": {"sequences": args.micro_batch, "tokens": tokens_per_step},
            "micro_batch": args.micro_batch,
            "checkpoint": {"interval": (args.steps // 2) * tokens_per_step, "keep_last": 2},
            "parallelism": {"strategy": "ddp", "sharding": "full", "activation_checkpointing": False},
            "optimizer": {"type": "adamw", "lr": 0.0006, "betas": [0.9, 0.95], "weight_decay": 0.1, "eps": 1e-8},
            "schedule": {"warmup": 20 * tokens_per_step, "decay": "cosine", "min_lr_ratio": 0.1},
            "gradient_clipping": 1,
            "autoresume": True,
            "seed": 42,
            "gradient_accumulation": 1,
            "steps": args.steps,
        },
        "data": f"file://{work / 'packed'}/",
        "tokenizer": f"file://{work / 'tok'}/",
        "checkpoints": f"file://{work / 'checkpoints'}/",
    }  # fmt: skip
    (work / "train.json").write_text(json.dumps(config), encoding="utf-8")
    log_every = str(max(1, args.steps // 10))
    t1 = time.monotonic()
    out = run([py, "-m", "kiln_trainer.launch", "--nnodes=1", "--nproc-per-node=1", "-m", "kiln_trainer.train",
               "--config", str(work / "train.json")],
              {"KILN_TRAIN_LOG_INTERVAL": log_every, "KILN_TERMINATION_LOG": str(work / "summary.json")})  # fmt: skip
    train_s = time.monotonic() - t1
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            p = json.loads(line)
            if p.get("kind") == "kiln.progress/v1":
                keep = ("step", "loss", "lr", "tokens_per_s", "mfu", "eta_s")
                print(json.dumps({k: p[k] for k in keep if k in p}))
    print(json.dumps({"summary": json.loads((work / "summary.json").read_text(encoding="utf-8"))}))
    print(
        f"preset {args.preset}, seq {args.seq_len}, micro batch {args.micro_batch}: tokenizer and pack {prep_s:.1f} s,"
        f" train stage {train_s:.1f} s (start-up and compilation included); work in {work}"
    )


if __name__ == "__main__":
    main()
