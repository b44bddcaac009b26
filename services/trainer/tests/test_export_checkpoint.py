"""`python -m kiln_trainer.export --checkpoint DIR --output DIR` (`kiln export`): a checkpoint alone is enough."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from kiln_trainer.checkpoint import load_step, save
from kiln_trainer.export import main
from kiln_trainer.model import ModelConfig, Transformer
from kiln_trainer.stage import TERMINAL_EXIT, file_digest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

V = 512


def model(seed: int) -> Transformer:
    m = Transformer(ModelConfig(V, 64, 2, 4, 4.0, 64, "rope", "bf16"))
    m.init_weights(seed)
    return m.eval()


def checkpoints(folder: Path, tokenizer: Path) -> dict[int, Transformer]:
    """A checkpoints folder as the train stage leaves it: step 2 and step 4 (other weights), `latest` naming 4."""
    models = {2: model(1), 4: model(2)}
    for step, m in models.items():
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
        meta = {
            "tokens": step * 1024,
            "model_config": m.cfg.to_json(),
            "tokenizer": {
                "uri": f"file://{tokenizer}",
                "path": str(tokenizer),
                "digest": file_digest(tokenizer / "tokenizer.json"),
            },
        }
        save(folder, step, m, opt, meta, keep_last=2)
    return models


def logits_of(folder: Path, idx: torch.Tensor) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    hf: Any = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
    with torch.no_grad():
        out: torch.Tensor = hf.eval()(input_ids=idx).logits
    return out


def test_given_a_checkpoints_folder_or_one_step_when_exported_then_that_steps_weights_and_its_tokenizer_are_written(
    tok512: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokenizer = tok512
    models = checkpoints(tmp_path / "ckpt", tokenizer)
    idx = torch.randint(0, V, (1, 24), generator=torch.Generator().manual_seed(3))

    assert (
        main(
            ["--checkpoint", str(tmp_path / "ckpt"), "--output", str(tmp_path / "latest"), "--dtype", "fp32", "--json"]
        )
        == 0
    )
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["kind"] == "kiln.stage-manifest/v1" and manifest["counts"]["step"] == 4
    assert manifest["counts"]["tokens"] == 4096 and manifest["counts"]["parameters"] == models[4].num_params(
        exclude_embedding=False
    )
    # Written into --output itself (not an hf/ below it), the tokenizer the checkpoint names beside the weights.
    names = {p.name for p in (tmp_path / "latest").iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= names
    assert file_digest(tmp_path / "latest" / "tokenizer.json") == file_digest(tokenizer / "tokenizer.json")
    with torch.no_grad():
        torch.testing.assert_close(logits_of(tmp_path / "latest", idx), models[4](idx), rtol=0, atol=1e-4)

    # One step folder: its own weights, not the latest's. Default dtype: the model's precision (bf16).
    assert main(["--checkpoint", str(tmp_path / "ckpt" / "step-00000002"), "--output", str(tmp_path / "two")]) == 0
    said = capsys.readouterr().out
    assert (
        "exported step 2" in said and "LlamaForCausalLM" in said and "bfloat16" in said and "model.safetensors" in said
    )
    assert json.loads((tmp_path / "two" / "config.json").read_text())["torch_dtype"] == "bfloat16"
    with torch.no_grad():
        torch.testing.assert_close(logits_of(tmp_path / "two", idx), models[2](idx), rtol=0, atol=5e-2)
        assert not torch.allclose(logits_of(tmp_path / "two", idx), models[4](idx), atol=5e-2)


def test_given_the_tokenizer_moved_then_the_checkpoints_own_copy_is_used_and_a_changed_one_is_refused(
    tok512: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tokenizer = tok512
    moving = tmp_path / "tok"
    shutil.copytree(tokenizer, moving)
    ckpt = tmp_path / "ckpt"
    checkpoints(ckpt, moving)
    shutil.rmtree(moving)
    args = ["--checkpoint", str(ckpt), "--output", str(tmp_path / "out")]

    assert main(args) == TERMINAL_EXIT
    err = capsys.readouterr().err
    assert "tokenizer is not found" in err and str(moving) in err and str(ckpt / "tokenizer") in err

    # The train stage's copy at <checkpoints>/tokenizer/ is enough.
    shutil.copytree(tokenizer, ckpt / "tokenizer")
    assert main(args) == 0
    assert (tmp_path / "out" / "tokenizer.json").is_file()

    # A tokenizer that is not the one trained with (another digest) is never exported with the weights.
    tj = ckpt / "tokenizer" / "tokenizer.json"
    tj.write_text(tj.read_text().replace('"<|padding|>"', '"<|pad|>"'))
    assert main(args) == TERMINAL_EXIT
    assert "another tokenizer" in capsys.readouterr().err


def test_given_a_folder_without_a_checkpoint_then_it_exits_2_saying_what_to_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty" / "step-00000001.tmp").mkdir(parents=True)
    assert main(["--checkpoint", str(tmp_path / "empty"), "--output", str(tmp_path / "out")]) == TERMINAL_EXIT
    assert "holds no checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main(["--checkpoint", str(tmp_path / "empty")]) == TERMINAL_EXIT
    assert "give --checkpoint DIR --output DIR" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="not a committed checkpoint"):
        load_step(tmp_path / "empty" / "step-00000001.tmp")
