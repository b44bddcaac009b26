"""The tokenizer and pack stages one after the other, as the controller runs them: real data-prep output, the
plan's own mounted configs, the tokenizer stage's output read by the pack stage's pods."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from conftest import Prepared, mounted_config, write_json
from kiln_trainer.packed import PackedDataset
from kiln_trainer.special import SpecialTokens
from kiln_trainer.stage import storage_path

# Small enough that the tokenizer trains in seconds on the 3 MB corpus (the plans ask for 16 MiB to 2 GiB).
SAMPLE_SIZE = {"tiny": 1_500_000, "fim": 1_500_000, "ul2": 500_000}
VOCAB = {"tiny": 4096, "fim": 4096, "ul2": 2048}


def _stage(module: str, config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", f"kiln_trainer.{module}", "--config", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "KILN_PACK_WORKERS": "2", **env},
        timeout=300,
    )


@pytest.mark.parametrize("spec", ["tiny", "fim", "ul2"])
def test_given_data_prep_output_when_the_tokenizer_then_each_pack_pod_runs_then_the_sequences_use_that_tokenizer(
    spec: str, prepared: Callable[[str], Prepared], tmp_path: Path
) -> None:
    prep = prepared(spec)
    # A storage of this test's own, holding only data-prep's shards: nothing another test wrote.
    env = {"KILN_STORAGE_ROOT": str(tmp_path / "artifacts"), "KILN_TERMINATION_LOG": str(tmp_path / "termination-log")}
    shards = Path(storage_path(mounted_config(prep.plan, "tokenizer")["input"], "tests", env))
    shutil.copytree(prep.shards_dir, shards)
    tok_config = mounted_config(prep.plan, "tokenizer")
    tok_config["tokenizer"] |= {"sample_size": SAMPLE_SIZE[spec], "vocab_size": VOCAB[spec]}

    trained = _stage("tokenizer", write_json(tmp_path / "tokenizer.json", tok_config), env)
    assert trained.returncode == 0, trained.stderr
    tok_summary = json.loads(Path(env["KILN_TERMINATION_LOG"]).read_text(encoding="utf-8"))
    pack_config = mounted_config(
        prep.plan,
        "pack",
        upstream={"tokenizer": {"summary": tok_summary, "manifest": tok_config["manifest"]}},
    )
    for index in range(prep.shards):
        packed = _stage(
            "pack", write_json(tmp_path / "pack.json", pack_config), {**env, "JOB_COMPLETION_INDEX": str(index)}
        )
        assert packed.returncode == 0, packed.stderr

    tok_dir = Path(storage_path(tok_config["output"], "tests", env))
    tokenizer = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    roles = SpecialTokens.read(tok_dir)
    ds = PackedDataset(Path(storage_path(pack_config["output"], "tests", env)))
    assert ds.verify() == [] and len(ds) > 0
    tok_manifest = json.loads(Path(storage_path(tok_config["manifest"], "tests", env)).read_text(encoding="utf-8"))
    digest = next(a["digest"] for a in tok_manifest["artifacts"] if a["name"] == "tokenizer.json")
    assert {m["tokenizer"]["digest"] for m in ds.manifests} == {digest}, "every pod packed with the stage's tokenizer"

    ids = [int(t) for t in ds[0][0]]
    eot = tokenizer.token_to_id(roles.eot)
    if spec != "ul2":
        # Every document tokenized ends with the tokenizer's end of text, and nothing else is one.
        eots = sum(int((ds[g][0] == eot).sum()) for g in range(len(ds)))
        assert eots == sum(m["records"]["tokenized"] for m in ds.manifests) > 0
    text = tokenizer.decode(ids, skip_special_tokens=False)
    if spec == "fim":
        assert roles.fim is not None
        assert sum(m["counts"]["psm"] + m["counts"]["spm"] for m in ds.manifests) > 0
        assert any(
            roles.fim.prefix in tokenizer.decode([int(t) for t in ds[g][0]], skip_special_tokens=False)
            for g in range(len(ds))
        )
    if spec == "ul2":
        assert len(roles.ul2_sentinels) == 100
        mask = ds.loss_mask(0)
        assert 0 < int(mask.sum()) < len(ids)
        targets = [i for i, m in zip(ids, mask, strict=True) if m]
        assert tokenizer.token_to_id("<extra_id_0>") in targets
        assert any(p in text for p in ("[NLU]", "[S2S]", "[NLG]"))
