"""The tokenizer stage as the controller runs it: the plan's own mounted config, over real data-prep output, and
what it writes (tokenizer.json, the roles, a manifest and a summary that validate); and its bad inputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard
from jsonschema import Draft202012Validator
from tokenizers import Tokenizer

from conftest import Prepared, mounted_config, write_json
from kiln_trainer.special import ROLES_FILE, SpecialTokens
from kiln_trainer.stage import TERMINAL_EXIT, _registry, schemas_dir, storage_path

# Kept small so each stage run trains in seconds: the tests override the plans' sample_size (16 MiB to 2 GiB) and,
# for fim and ul2, their vocab_size (49152, 32768), which the 3 MB corpus could not fill.
SAMPLE_SIZE = {"tiny": 1_500_000, "fim": 1_500_000, "ul2": 500_000}  # ul2's is Unigram, which trains slower
VOCAB = {"tiny": 4096, "fim": 4096, "ul2": 2048}
UL2_SENTINELS = {"count": 100, "template": "<extra_id_{i}>"}


def _validator(name: str) -> Draft202012Validator:
    registry, by_file = _registry(schemas_dir())
    return Draft202012Validator(by_file[name], registry=registry)


def _run(config: dict[str, Any], env: dict[str, str], tmp: Path) -> subprocess.CompletedProcess[str]:
    path = write_json(tmp / "stage.json", config)
    return subprocess.run(
        [sys.executable, "-m", "kiln_trainer.tokenizer", "--config", str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )


def _config(prep: Prepared, spec: str) -> dict[str, Any]:
    config = mounted_config(prep.plan, "tokenizer")
    config["tokenizer"]["sample_size"] = SAMPLE_SIZE[spec]
    config["tokenizer"]["vocab_size"] = VOCAB[spec]
    if spec == "ul2":
        # The spec gives a UL2 objective's trained tokenizer 100 span sentinels; the plan carries them.
        assert config["tokenizer"]["ul2_sentinels"] == UL2_SENTINELS
    return config


@pytest.mark.parametrize("spec", ["tiny", "fim", "ul2"])
def test_stage_from_the_plans_mounted_config(spec: str, prepared: Callable[[str], Prepared], tmp_path: Path) -> None:
    prep = prepared(spec)
    env = prep.env()
    config = _config(prep, spec)
    out = _run(config, env, tmp_path)
    assert out.returncode == 0, out.stderr
    folder = Path(storage_path(config["output"], "tests", env))
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    want = SpecialTokens.of_section(config["tokenizer"])
    assert SpecialTokens.read(folder) == want
    assert [tok.token_to_id(s) for s in want.special_tokens] == list(range(len(want.special_tokens)))
    if spec == "ul2":
        assert len(want.ul2_sentinels) == 100 and tok.token_to_id("<extra_id_99>") is not None
    if spec == "fim":
        assert want.fim is not None and tok.token_to_id("<fim_middle>") is not None

    manifest = json.loads(Path(storage_path(config["manifest"], "tests", env)).read_text())
    assert list(_validator("manifest.schema.json").iter_errors(manifest)) == []
    assert (manifest["runId"], manifest["stage"]) == (config["runId"], config["stage"])
    c, m = manifest["counts"], manifest["metrics"]
    assert (
        c["records_in"]
        == c["records_sampled"] + c["records_not_sampled"] + c["records_held_out"] + c["records_dropped"]
    )
    assert c["records_held_out"] > 0 and c["records_sampled"] > 0
    assert 0 < m["sample_bytes"] <= SAMPLE_SIZE[spec]
    assert m["vocab_size"] == VOCAB[spec] or spec == "ul2"  # Unigram may fall short (then a warning says so)
    assert m["bytes_per_token"] > 2.5 and m["bytes_per_token_python"] > 2.5
    assert 0 < m["vocab_used_share"] <= 1 and m["heldout_roundtrip_failures"] == 0
    names = {a["name"]: a for a in manifest["artifacts"]}
    assert {"tokenizer.json", ROLES_FILE, "training-sample"} <= set(names)
    assert names["training-sample"]["digest"].startswith("sha256:")

    summary_text = Path(env["KILN_TERMINATION_LOG"]).read_text()
    assert len(summary_text.encode()) <= 4096
    summary = json.loads(summary_text)
    assert list(_validator("summary.schema.json").iter_errors(summary)) == []
    assert summary["metrics"]["bytes_per_token"] == m["bytes_per_token"]


def _shards_env(tmp_path: Path, prep: Prepared) -> tuple[dict[str, Any], dict[str, str], Path]:
    """The tiny plan's config over a storage root of the test's own (an empty shards folder)."""
    config = _config(prep, "tiny")
    env = {"KILN_STORAGE_ROOT": str(tmp_path / "root"), "KILN_TERMINATION_LOG": str(tmp_path / "termination-log")}
    shards = Path(storage_path(config["input"], "tests", env))
    shards.mkdir(parents=True)
    return config, env, shards


def _error(out: subprocess.CompletedProcess[str], env: dict[str, str]) -> str:
    assert out.returncode == TERMINAL_EXIT, out.stderr
    error: str = json.loads(Path(env["KILN_TERMINATION_LOG"]).read_text())["error"]
    return error


def test_no_shards(prepared: Callable[[str], Prepared], tmp_path: Path) -> None:
    config, env, shards = _shards_env(tmp_path, prepared("tiny"))
    error = _error(_run(config, env, tmp_path), env)
    assert "no data-prep shards" in error and str(shards.as_posix()).rstrip("/") in error


def test_all_shards_empty(prepared: Callable[[str], Prepared], tmp_path: Path) -> None:
    config, env, shards = _shards_env(tmp_path, prepared("tiny"))
    for i in range(2):
        (shards / f"shard-{i:05d}.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(b""))
    error = _error(_run(config, env, tmp_path), env)
    assert "no usable documents" in error and "0 records in 2 files" in error


def test_invalid_utf8_lines_are_dropped_with_a_reason(prepared: Callable[[str], Prepared], tmp_path: Path) -> None:
    prep = prepared("tiny")
    config, env, shards = _shards_env(tmp_path, prep)
    good = (prep.shards_dir / "shard-00000.jsonl.zst").read_bytes()
    lines = zstandard.ZstdDecompressor().stream_reader(good).read().splitlines(keepends=True)
    bad = [b'{"content": "caf\xe9"}\n', b"not json\n", b'{"content": "\xff\xfe"}\n']
    mixed = b"".join(lines) + b"".join(bad)
    (shards / "shard-00000.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(mixed))
    out = _run(config, env, tmp_path)
    assert out.returncode == 0, out.stderr
    counts = json.loads(Path(storage_path(config["manifest"], "tests", env)).read_text())["counts"]
    assert counts["dropped_invalid-utf8"] == 2 and counts["dropped_bad-json"] == 1
    assert counts["records_in"] == len(lines) + 3 and counts["records_dropped"] == 3


def test_too_small_vocabulary(prepared: Callable[[str], Prepared], tmp_path: Path) -> None:
    prep = prepared("tiny")
    config = _config(prep, "tiny")
    config["tokenizer"]["vocab_size"] = 257
    env = {**prep.env(), "KILN_TERMINATION_LOG": str(tmp_path / "termination-log")}
    error = _error(_run(config, env, tmp_path), env)
    assert "vocab_size 257" in error and "at least 258" in error


def _pretrained(prep: Prepared, path: str) -> dict[str, Any]:
    config = _config(prep, "tiny")
    config["tokenizer"] = {"kind": "pretrained", "path": path, "vocab_size": 4096, "special_tokens": []}
    config["output"] = config["output"].rstrip("/") + "-copy/"
    return config


def test_pretrained_path_that_is_not_a_tokenizer(prepared: Callable[[str], Prepared], tmp_path: Path) -> None:
    prep = prepared("tiny")
    env = {**prep.env(), "KILN_TERMINATION_LOG": str(tmp_path / "termination-log")}
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "tokenizer.json").write_text('{"not": "a tokenizer"}')
    error = _error(_run(_pretrained(prep, str(junk)), env, tmp_path), env)
    assert "is not a Hugging Face tokenizer.json" in error and str(junk) in error
    error = _error(_run(_pretrained(prep, str(tmp_path)), env, tmp_path), env)
    assert "no tokenizer.json at" in error
    config = _pretrained(prep, str(junk))
    config["tokenizer"] = {**config["tokenizer"], "hub": "org/model"}
    del config["tokenizer"]["path"]
    assert "cannot be fetched" in _error(_run(config, env, tmp_path), env)


def test_pretrained_is_copied_and_measured(prepared: Callable[[str], Prepared], tmp_path: Path) -> None:
    prep = prepared("tiny")
    env = {**prep.env(), "KILN_TERMINATION_LOG": str(tmp_path / "termination-log")}
    made = _config(prep, "tiny")
    out = _run(made, env, tmp_path)
    assert out.returncode == 0, out.stderr
    source = tmp_path / "given"
    shutil.copytree(Path(storage_path(made["output"], "tests", env)), source)
    (source / ROLES_FILE).unlink()  # a folder made elsewhere: the roles are inferred from the usual names
    config = _pretrained(prep, str(source / "tokenizer.json"))
    out = _run(config, env, tmp_path)
    assert out.returncode == 0, out.stderr
    folder = Path(storage_path(config["output"], "tests", env))
    assert (folder / "tokenizer.json").read_bytes() == (source / "tokenizer.json").read_bytes()
    assert SpecialTokens.read(folder).eot == "<|endoftext|>"
    manifest = json.loads(Path(storage_path(config["manifest"], "tests", env)).read_text())
    assert list(_validator("manifest.schema.json").iter_errors(manifest)) == []
    assert manifest["metrics"]["bytes_per_token"] > 2.5
