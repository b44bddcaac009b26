"""Export kiln's model, load it with transformers offline (no custom code): the same logits, the same greedy ids."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from jsonschema import Draft202012Validator

from conftest import mounted_config, plan_of, write_json
from kiln_trainer.export import export_checkpoint, hf_state_dict, main, run_stage
from kiln_trainer.model import ModelConfig, Transformer
from kiln_trainer.stage import TERMINAL_EXIT, _registry, schemas_dir, storage_path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

V = 512


def kiln_model(pe: str, seed: int = 7, n_heads: int = 4) -> Transformer:
    d_model = 96 if n_heads == 6 else 64  # 6 heads (not a power of two): MPT's interleaved slopes
    cfg = ModelConfig(V, d_model, 2, n_heads, 4.0, 64, pe, "fp32")  # type: ignore[arg-type]
    m = Transformer(cfg)
    m.init_weights(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("norm.weight"):
                # Away from 1, so a norm mapped to the wrong place (or dropped) shows in the logits.
                p.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(len(name)))
            elif name.startswith("layers."):
                # Larger than init, so the blocks (not the tied embedding's self-similarity) decide the argmax.
                p.mul_(6.0)
    return m.eval()


def load_hf(folder: Path) -> Any:
    from transformers import AutoModelForCausalLM

    model: Any = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
    return model.eval()


def greedy(m: Transformer, prompt: torch.Tensor, steps: int) -> torch.Tensor:
    ids = prompt
    with torch.no_grad():
        for _ in range(steps):
            nxt = m(ids)[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], dim=1)
    return ids


@pytest.mark.parametrize(("pe", "arch", "n_heads"), [("rope", "LlamaForCausalLM", 4), ("alibi", "MptForCausalLM", 4),
                                                     ("alibi", "MptForCausalLM", 2), ("alibi", "MptForCausalLM", 6),
                                                     ("rope", "LlamaForCausalLM", 6)])  # fmt: skip
def test_export_loads_in_transformers_with_the_same_logits(
    pe: str, arch: str, n_heads: int, tok512: Path, tmp_path: Path
) -> None:
    m = kiln_model(pe, n_heads=n_heads)
    out = tmp_path / "hf"
    manifest = export_checkpoint(m.state_dict(), m.cfg, tok512, out)
    hf = load_hf(out)
    assert type(hf).__name__ == arch
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == [arch] and "auto_map" not in config
    idx = torch.randint(0, V, (2, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = m(idx)
        theirs = hf(input_ids=idx).logits
    torch.testing.assert_close(theirs, ours, rtol=0, atol=1e-4)
    assert manifest["counts"]["parameters"] == m.num_params(exclude_embedding=False)


@pytest.mark.parametrize("pe", ["rope", "alibi"])
def test_greedy_generation_gives_the_same_ids(pe: str, tok512: Path, tmp_path: Path) -> None:
    m = kiln_model(pe, seed=11)
    out = tmp_path / "hf"
    export_checkpoint(m, m.cfg, tok512, out)
    hf = load_hf(out)
    prompt = torch.randint(0, V, (1, 10), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        theirs = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=8, do_sample=False,
                             min_new_tokens=8)  # fmt: skip
    assert theirs.tolist() == greedy(m, prompt, 8).tolist()


def test_the_folder_holds_tokenizer_and_generation_ids(tok512: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer, GenerationConfig

    m = kiln_model("rope")
    out = tmp_path / "hf"
    manifest = export_checkpoint(m, m.cfg, tok512, out, uri="pvc://kiln-artifacts/x/export/hf")
    tok = AutoTokenizer.from_pretrained(out, local_files_only=True)
    gen = GenerationConfig.from_pretrained(out, local_files_only=True)
    assert gen.eos_token_id == tok.convert_tokens_to_ids("<|endoftext|>")
    assert gen.pad_token_id == tok.convert_tokens_to_ids("<|padding|>")
    assert gen.eos_token_id != gen.pad_token_id
    names = {a["name"] for a in manifest["artifacts"]}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "kiln-tokenizer.json"} <= (
        names
    )
    for a in manifest["artifacts"]:
        data = (out / a["name"]).read_bytes()
        assert a["digest"] == "sha256:" + hashlib.sha256(data).hexdigest()
        assert a["bytes"] == len(data)
        assert a["uri"] == "pvc://kiln-artifacts/x/export/hf/" + a["name"]
    assert ModelConfig.from_json(json.loads((out / "config.json").read_text())["kiln"]) == m.cfg


def test_wrapped_state_dicts_and_wrong_ones() -> None:
    m = kiln_model("alibi")
    plain = hf_state_dict(m.state_dict(), m.cfg)
    compiled = hf_state_dict({"_orig_mod." + k: v for k, v in m.state_dict().items()}, m.cfg)
    assert plain.keys() == compiled.keys()
    assert all(torch.equal(plain[k], compiled[k]) for k in plain)
    assert hf_state_dict(m.state_dict(), m.cfg, "bf16")["transformer.wte.weight"].dtype == torch.bfloat16
    other = kiln_model("rope")
    with pytest.raises(KeyError, match="not a state dict of this model"):
        hf_state_dict(other.state_dict(), m.cfg)


def test_the_stage_exports_the_latest_checkpoint(tok512: Path, tmp_path: Path) -> None:
    plan = plan_of("tiny")
    config = mounted_config(plan, "export")
    env = {"KILN_STORAGE_ROOT": str(tmp_path), "KILN_TERMINATION_LOG": str(tmp_path / "termination-log")}
    tok_dir = Path(storage_path(config["tokenizer"], "test", env))
    tok_dir.mkdir(parents=True)
    for f in tok512.iterdir():
        (tok_dir / f.name).write_bytes(f.read_bytes())
    train = next(s for s in plan["stages"] if s["kind"] == "train")["config"]["model"]
    cfg = ModelConfig.of({**train, "vocab_size": V, "max_seq_len": 64})
    m = Transformer(cfg)
    m.init_weights(3)
    # A real checkpoint where the plan's train stage writes them, as kiln_trainer.checkpoint commits one.
    from kiln_trainer.checkpoint import save

    ckpt_dir = Path(storage_path(config["checkpoints"], "test", env))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    save(ckpt_dir, 123, m, opt, {"tokens": 500000, "final": True, "model_config": cfg.to_json()}, keep_last=2)
    assert run_stage(str(write_json(tmp_path / "export.json", config)), env) == 0
    out = Path(storage_path(config["output"], "test", env)) / "hf"
    manifest = json.loads(Path(storage_path(config["manifest"], "test", env)).read_text())
    registry, by_file = _registry(schemas_dir())
    Draft202012Validator(by_file["manifest.schema.json"], registry=registry).validate(manifest)
    assert manifest["kind"] == "kiln.stage-manifest/v1" and manifest["runId"] == plan["runId"]
    assert manifest["counts"]["step"] == 123 and "final" not in manifest["counts"]
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "bfloat16"  # tiny trains in bf16
    summary = json.loads((tmp_path / "termination-log").read_text())
    Draft202012Validator(by_file["summary.schema.json"], registry=registry).validate(summary)
    # The summary stays small: the weights, config and tokenizer, and each model repository's ensemble config.
    assert {a["name"] for a in summary["artifacts"]} == {"config.json", "model.safetensors", "tokenizer.json",
                                                         "completions/ensemble/config.pbtxt",
                                                         "eval/ensemble/config.pbtxt"}  # fmt: skip
    hf = load_hf(out)
    idx = torch.randint(0, V, (1, 32), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        # bf16 weights: the logits agree to bf16's rounding of the weights, not to 1e-4.
        torch.testing.assert_close(hf(input_ids=idx).logits, m(idx), rtol=0, atol=5e-2)


def test_a_config_that_is_not_an_export_config_is_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KILN_TERMINATION_LOG", str(tmp_path / "termination-log"))
    bad = write_json(tmp_path / "bad.json", {"checkpoints": "pvc://kiln-artifacts/x/"})
    assert main(["--config", str(bad)]) == TERMINAL_EXIT
    assert "not a valid export config" in json.loads((tmp_path / "termination-log").read_text())["error"]


def test_no_checkpoint_is_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_of("tiny")
    config = mounted_config(plan, "export")
    env = {"KILN_STORAGE_ROOT": str(tmp_path), "KILN_TERMINATION_LOG": str(tmp_path / "termination-log")}
    tok_dir = Path(storage_path(config["tokenizer"], "test", env))
    tok_dir.mkdir(parents=True)
    (tok_dir / "tokenizer.json").write_text("{}")
    # The checkpoints folder the plan names exists and holds nothing committed (a torn attempt's leftovers only).
    (Path(storage_path(config["checkpoints"], "test", env)) / "step-00000001.tmp").mkdir(parents=True)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["--config", str(write_json(tmp_path / "export.json", config))]) == TERMINAL_EXIT
    assert "no committed checkpoint" in json.loads((tmp_path / "termination-log").read_text())["error"]
