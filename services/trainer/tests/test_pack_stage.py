"""The pack stage from the plan's own mounted configs, on real data-prep output, one pod per shard."""

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
from jsonschema import Draft202012Validator

from conftest import Prepared, mounted_config, write_json
from kiln_trainer.packed import PackedDataset
from kiln_trainer.stage import TERMINAL_EXIT, _registry, schemas_dir, storage_path


def validator(name: str) -> Draft202012Validator:
    registry, by_file = _registry(schemas_dir())
    return Draft202012Validator(by_file[name], registry=registry)


def stage(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kiln_trainer.pack", "--config", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, "KILN_PACK_WORKERS": "1", **env},
    )


def set_up(prep: Prepared, tokenizer_dir: Path, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """The mounted pack config of the plan, with the test tokenizer where the plan's tokenizer stage writes."""
    mounted = mounted_config(prep.plan, "pack")
    target = Path(storage_path(mounted["tokenizer"], "tests", prep.env()))
    if not target.exists():
        shutil.copytree(tokenizer_dir, target)
    return write_json(tmp_path / "pack.json", mounted), mounted


@pytest.mark.parametrize(("spec", "objective"), [("tiny", "next-token"), ("fim", "fim"), ("ul2", "ul2")])
def test_given_a_plan_when_each_pod_packs_its_shard_then_shards_manifests_and_summaries_are_valid(
    prepared: Callable[[str], Prepared], tokenizer_dir: Path, tmp_path: Path, spec: str, objective: str
) -> None:
    prep = prepared(spec)
    config, mounted = set_up(prep, tokenizer_dir, tmp_path)
    out = Path(storage_path(mounted["output"], "tests", prep.env()))
    base = storage_path(mounted["manifest"], "tests", prep.env())
    for index in range(prep.shards):
        ran = stage(config, {**prep.env(), "JOB_COMPLETION_INDEX": str(index)})
        assert ran.returncode == 0, ran.stderr

        summary = json.loads((prep.root / "termination-log").read_text(encoding="utf-8"))
        validator("summary.schema.json").validate(summary)
        assert summary["shard"] == index and summary["metrics"]["sequences"] > 0
        manifest_path = Path(base[: -len(".json")] + f".shard-{index:05d}.json")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        validator("manifest.schema.json").validate(manifest)
        assert manifest["runId"] == prep.plan["runId"] and manifest["stage"] == mounted["stage"]
        own = json.loads((out / f"shard-{index:05d}.json").read_text(encoding="utf-8"))
        assert own["shard"] == index and own["seq_len"] == mounted["max_seq_len"]
        assert own["objective"]["type"] == objective
        assert own["records"]["in"] == own["records"]["tokenized"] + sum(own["records"]["dropped"].values())
        assert {a["name"] for a in manifest["artifacts"]} == {f["path"] for f in own["files"]}
    assert not Path(base).exists(), "with several shards, each pod writes its own stage manifest"

    ds = PackedDataset(out)
    assert ds.shards == [0, 1] and ds.verify() == [] and ds.objective == objective
    assert ds.has_mask == (objective == "ul2")
    if objective == "fim":
        counts = ds.manifests[0]["counts"]
        assert counts["psm"] > 0 and counts["spm"] > 0 and counts["untouched"] > 0


def test_given_no_pod_index_when_the_stage_runs_by_hand_then_it_packs_every_shard(
    prepared: Callable[[str], Prepared], tokenizer_dir: Path, tmp_path: Path
) -> None:
    prep = prepared("tiny")
    config, mounted = set_up(prep, tokenizer_dir, tmp_path)
    mounted["output"] = mounted["output"].rstrip("/") + "-by-hand/"
    ran = stage(write_json(config, mounted), prep.env())
    assert ran.returncode == 0, ran.stderr
    ds = PackedDataset(storage_path(mounted["output"], "tests", prep.env()))
    assert ds.shards == [0, 1]
    manifest = json.loads(Path(storage_path(mounted["manifest"], "tests", prep.env())).read_text(encoding="utf-8"))
    validator("manifest.schema.json").validate(manifest)
    assert manifest["counts"]["shards"] == 2 and manifest["counts"]["sequences"] == len(ds)


def test_given_a_pod_index_without_its_input_shard_when_the_stage_runs_then_it_fails_for_good(
    prepared: Callable[[str], Prepared], tokenizer_dir: Path, tmp_path: Path
) -> None:
    prep = prepared("tiny")
    config, _ = set_up(prep, tokenizer_dir, tmp_path)
    ran = stage(config, {**prep.env(), "JOB_COMPLETION_INDEX": "7"})
    assert ran.returncode == TERMINAL_EXIT
    assert "no input shard shard-00007.jsonl.zst for this pod's index 7" in ran.stderr
    summary = json.loads((prep.root / "termination-log").read_text(encoding="utf-8"))
    validator("summary.schema.json").validate(summary)
    assert "shard-00007" in summary["error"]


def test_given_a_tokenizer_location_that_holds_no_tokenizer_when_the_stage_runs_then_it_exits_2(
    prepared: Callable[[str], Prepared], tmp_path: Path
) -> None:
    prep = prepared("tiny")
    mounted = mounted_config(prep.plan, "pack")
    mounted["tokenizer"] = f"file://{tmp_path / 'empty'}/"
    (tmp_path / "empty").mkdir()
    ran = stage(write_json(tmp_path / "pack.json", mounted), {**prep.env(), "JOB_COMPLETION_INDEX": "0"})
    assert ran.returncode == TERMINAL_EXIT and "is not a tokenizer" in ran.stderr
