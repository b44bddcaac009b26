"""A tiny trained model, exported by the real export stage: the fixture of the serving tests and benches.

`python -m kiln_trainer.tiny --output DIR [--steps N]` trains a 512-token byte-level BPE tokenizer (with the FIM
sentinels) on the standard library's json package, trains a 2-layer, 64-wide Llama-style model on the same code for
a few hundred steps (a quarter of the sequences in PSM infilling form), saves it as a train-stage checkpoint and runs
the export stage on it with one python target (`completions`, max_batch_size 8). DIR then holds what an export's
output holds: `hf/`, `completions/` (a Triton model repository), `eval/`, `checkpoints/`, `tokenizer/`.

About half a minute on 2 busy CPU cores; the weights are seeded (the same DIR contents on every machine of one torch
version, up to floating-point summation order). scripts/serve.mjs's `ensureTinyExport` caches DIR per machine.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import sysconfig
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from kiln_trainer.checkpoint import save
from kiln_trainer.export import run_stage
from kiln_trainer.model import ModelConfig, Transformer
from kiln_trainer.special import SpecialTokens

__all__ = ["TARGET", "main", "train_tokenizer"]

SPECIALS = ("<|endoftext|>", "<|padding|>")
TARGET = {
    "name": "completions",
    "backend": "python",
    "engine": {"precision": "fp32", "tensor_parallel": 1},
    "max_batch_size": 8,
}
"""The export's one serving target."""
SEQ = 128
CONTEXT = 2048
STEPS = 200
BATCH = 8


def _sources() -> list[str]:
    root = Path(sysconfig.get_paths()["stdlib"]) / "json"
    return [p.read_text(encoding="utf-8") for p in sorted(root.rglob("*.py"))]


def train_tokenizer(folder: Path, vocab_size: int = 512) -> Path:
    """A byte-level BPE tokenizer of the json package, end of text, padding and the FIM sentinels, in kiln's layout."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    roles = SpecialTokens.of_section({"special_tokens": list(SPECIALS), "fim_sentinels": {}})
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(roles.special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_sources(), trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    roles.write(folder)
    return folder


def _batches(folder: Path, steps: int, batch: int, seed: int) -> list[torch.Tensor]:
    """`steps` batches of [batch, SEQ + 1] ids: windows of the json package's code, a quarter of them as PSM FIM."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    ids: dict[str, int] = {}
    for name in ("<|endoftext|>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"):
        found = tok.token_to_id(name)
        if found is None:
            raise ValueError(f"the tokenizer in {folder} has no {name}")
        ids[name] = found
    eot = ids["<|endoftext|>"]
    stream: list[int] = []
    for text in _sources():
        stream += [*tok.encode(text, add_special_tokens=False).ids, eot]
    data = torch.tensor(stream, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        rows = []
        for _ in range(batch):
            start = int(torch.randint(0, len(data) - SEQ - 2, (1,), generator=g))
            window = data[start : start + SEQ + 1].tolist()
            if float(torch.rand((), generator=g)) < 0.25:  # PSM: <pre> prefix <suf> suffix <mid> middle
                a, b = sorted(int(x) for x in torch.randint(1, SEQ - 4, (2,), generator=g))
                body = window[: SEQ - 2]
                fim = [ids["<fim_prefix>"], *body[:a], ids["<fim_suffix>"], *body[b:], ids["<fim_middle>"], *body[a:b]]
                window = fim[: SEQ + 1]
            rows.append(window)
        out.append(torch.tensor(rows, dtype=torch.long))
    return out


def train(folder: Path, steps: int, seed: int = 0) -> Transformer:
    """The tiny model trained `steps` steps of AdamW (cosine schedule) on the tokenizer's corpus."""
    torch.manual_seed(seed)
    # Trained on SEQ-token windows, positions up to CONTEXT (rope): long prompts (HumanEval's) still fit.
    cfg = ModelConfig(512, 64, 2, 4, 4.0, CONTEXT, "rope", "fp32")
    model = Transformer(cfg)
    model.init_weights(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    for step, batch in enumerate(_batches(folder, steps, BATCH, seed)):
        for group in opt.param_groups:
            group["lr"] = 3e-3 * 0.5 * (1 + math.cos(math.pi * step / steps))
        logits = model(batch[:, :-1])
        loss: Any = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"tiny: step {step + 1}/{steps} loss {loss.item():.3f}", file=sys.stderr)
    model.eval()
    return model


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kiln_trainer.tiny", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="an empty or new folder")
    parser.add_argument("--steps", type=int, default=STEPS, help=f"training steps (default {STEPS})")
    args = parser.parse_args(argv)
    out = Path(args.output).resolve()
    if out.exists() and any(out.iterdir()):
        print(f"tiny: {out} is not empty; give an empty or new folder", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    torch.set_num_threads(1)  # a model this small: one thread is faster than several on a busy machine
    tok = train_tokenizer(out / "tokenizer")
    model = train(tok, args.steps)
    opt = torch.optim.AdamW(model.parameters())
    meta = {"model_config": model.cfg.to_json(), "tokens": args.steps * BATCH * SEQ}
    save(out / "checkpoints", args.steps, model, opt, meta, keep_last=1)
    config = {
        "checkpoints": f"file://{out}/checkpoints/",
        "tokenizer": f"file://{out}/tokenizer/",
        "output": f"file://{out}/",
        "eval_model": f"file://{out}/eval/",
        "targets": [TARGET],
        "manifest": f"file://{out}/manifest.json",
    }
    (out / "export.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    env = {"KILN_TERMINATION_LOG": str(out / "export-summary.json")}
    code = run_stage(str(out / "export.json"), env)
    print(f"tiny: exported to {out} in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
