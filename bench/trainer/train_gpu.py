"""The train stage end to end on whatever device there is (made for the GPU machine): tokenizer, pack, train.

    PYTHONPATH=services/trainer/src python3 bench/trainer/train_gpu.py [--preset 125m] [--steps 200] [--seq-len 1024]
        [--micro-batch N|auto] [--global-batch N] [--pe rope|alibi] [--compare-cpu]
    node services/trainer/scripts/env.mjs run -- python bench/trainer/train_gpu.py --preset tiny --steps 20  # CPU

Trains kiln's tokenizer on the Python standard library, packs it (next-token), writes a train config in the stage
contract's shape (the tiny plan's training recipe, the preset's model) and runs `python -m kiln_trainer.launch
--nproc-per-node=1 -m kiln_trainer.train --config …`, the plan's own command: so the CUDA path (bf16 autocast, fused
AdamW, nccl, the progress line's MFU, checkpoints) runs as the stage runs it. Prints the progress lines and the
summary; asserts nothing. `--compare-cpu` trains the same config (same data, seed and schedule) a second time on
the CPU in fp32, and prints both loss curves step by step: the GPU run's bf16 loss should be no worse.
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

PRESETS = {"tiny": (128, 2, 4), "125m": (768, 12, 12), "350m": (1024, 24, 16), "1b": (2048, 24, 16)}


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
    ap.add_argument("--micro-batch", default="16", help="sequences, or auto (the stage probes the largest that fits)")
    ap.add_argument("--global-batch", type=int, help="sequences per step (default: the micro batch, or 64 with auto)")
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--pe", choices=("rope", "alibi"), default="rope")
    ap.add_argument(
        "--compare-cpu", action="store_true",
        help="then train the same config on the CPU (KILN_DEVICE=cpu, fp32) and print both loss curves",
    )  # fmt: skip
    args = ap.parse_args()
    micro: int | str = args.micro_batch if args.micro_batch == "auto" else int(args.micro_batch)
    sequences = args.global_batch or (64 if micro == "auto" else int(micro))
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
    tokens_per_step = sequences * args.seq_len
    config = {
        "model": {"d_model": d, "n_layers": layers, "n_heads": heads, "mlp_ratio": 4, "vocab_size": args.vocab,
                  "max_seq_len": args.seq_len, "position_encoding": args.pe, "precision": "bf16"},
        "objective": {"type": "next-token"},
        "training": {
            "token_budget": args.steps * tokens_per_step,
            "global_batch": {"sequences": sequences, "tokens": tokens_per_step},
            "micro_batch": micro,
            "checkpoint": {"interval": (args.steps // 2) * tokens_per_step, "keep_last": 2},
            "parallelism": {"strategy": "ddp", "sharding": "full", "activation_checkpointing": False},
            "optimizer": {"type": "adamw", "lr": 0.0006, "betas": [0.9, 0.95], "weight_decay": 0.1, "eps": 1e-8},
            "schedule": {"warmup": 20 * tokens_per_step, "decay": "cosine", "min_lr_ratio": 0.1},
            "gradient_clipping": 1,
            "autoresume": True,
            "seed": 42,
            "steps": args.steps,
        },
        "data": f"file://{work / 'packed'}/",
        "tokenizer": f"file://{work / 'tok'}/",
        "checkpoints": f"file://{work / 'checkpoints'}/",
    }  # fmt: skip
    (work / "train.json").write_text(json.dumps(config), encoding="utf-8")
    curves: dict[str, dict[int, float]] = {}
    for device in ["cuda", "cpu"] if args.compare_cpu else [""]:
        run_config = {**config, "checkpoints": f"file://{work / ('checkpoints-' + (device or 'any'))}/"}
        (work / f"train-{device or 'any'}.json").write_text(json.dumps(run_config), encoding="utf-8")
        env = {
            "KILN_TRAIN_LOG_INTERVAL": str(max(1, args.steps // 20)),
            "KILN_TERMINATION_LOG": str(work / "summary.json"),
        }
        if device:
            env["KILN_DEVICE"] = device
        t1 = time.monotonic()
        out = run([py, "-m", "kiln_trainer.launch", "--nnodes=1", "--nproc-per-node=1", "-m", "kiln_trainer.train",
                   "--config", str(work / f"train-{device or 'any'}.json")], env)  # fmt: skip
        train_s = time.monotonic() - t1
        curve = curves.setdefault(device or "any", {})
        for line in out.stdout.splitlines():
            if line.startswith("{"):
                p = json.loads(line)
                if p.get("kind") == "kiln.progress/v1":
                    keep = ("step", "loss", "lr", "tokens_per_s", "mfu", "eta_s")
                    print(json.dumps({"device": device or "any", **{k: p[k] for k in keep if k in p}}))
                    curve[int(p["step"])] = float(p["loss"])
        said = [ln for ln in out.stderr.splitlines() if "micro_batch auto" in ln]
        summary = json.loads((work / "summary.json").read_text(encoding="utf-8"))
        print(json.dumps({"device": device or "any", "summary": summary, "said": said}))
        print(
            f"preset {args.preset} {args.pe}, seq {args.seq_len}, micro batch {micro}, global {sequences}: tokenizer "
            f"and pack {prep_s:.1f} s, train stage {train_s:.1f} s on {device or 'its device'} (start-up and "
            f"compilation included); work in {work}"
        )
    if args.compare_cpu:
        steps = sorted(set(curves["cuda"]) & set(curves["cpu"]))
        print(json.dumps({"compare": [{"step": s, "cuda": curves["cuda"][s], "cpu": curves["cpu"][s]} for s in steps]}))


if __name__ == "__main__":
    main()
