"""The stage configs the TypeScript side makes validate from Python, against the same schema files."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from conftest import mounted_config, plan_of, write_json
from kiln_trainer.stage import (
    TERMINAL_EXIT,
    PackConfig,
    StageConfigError,
    TokenizerConfig,
    exit_on_config_error,
    read_stage_config,
    validate_stage_config,
)

SPECS = ["tiny", "fim", "ul2"]


@pytest.mark.parametrize("spec", SPECS)
def test_given_an_example_spec_when_its_tokenizer_config_is_mounted_then_it_reads_as_typed(
    spec: str, tmp_path: Path
) -> None:
    plan = plan_of(spec)
    mounted = mounted_config(plan, "tokenizer")

    config = read_stage_config("tokenizer", write_json(tmp_path / "stage.json", mounted))

    assert isinstance(config, TokenizerConfig)
    assert config.envelope.run_id == plan["runId"]
    assert config.envelope.attempt == 1 and not config.envelope.resume
    assert config.tokenizer.vocab_size == mounted["tokenizer"]["vocab_size"]
    assert config.tokenizer.special_tokens == tuple(mounted["tokenizer"]["special_tokens"])
    assert config.output == mounted["output"]


@pytest.mark.parametrize(("spec", "objective"), [("tiny", "next-token"), ("fim", "fim"), ("ul2", "ul2")])
def test_given_an_example_spec_when_its_pack_config_is_mounted_then_it_reads_as_typed(
    spec: str, objective: str, tmp_path: Path
) -> None:
    plan = plan_of(spec)
    mounted = mounted_config(plan, "pack")

    config = read_stage_config("pack", write_json(tmp_path / "stage.json", mounted))

    assert isinstance(config, PackConfig)
    assert config.objective_type == objective
    assert config.max_seq_len == mounted["max_seq_len"]
    assert config.weights == mounted["weights"]
    assert config.envelope.manifest == mounted["manifest"]


def test_given_a_retry_with_upstream_outputs_when_read_then_the_envelope_says_resume(tmp_path: Path) -> None:
    plan = plan_of("tiny")
    upstream = {
        "tokenizer": {"summary": {"metrics": {"vocab_size": 4096}}, "manifest": "pvc://kiln-artifacts/m.json"},
        "dedup": {"summary": None, "manifest": "pvc://kiln-artifacts/d.json"},
    }
    mounted = mounted_config(plan, "pack", attempt=2, upstream=upstream)

    config = read_stage_config("pack", write_json(tmp_path / "stage.json", mounted))

    assert config.envelope.attempt == 2
    assert config.envelope.resume
    assert set(config.envelope.upstream) == {"tokenizer", "dedup"}


def test_given_a_config_run_by_hand_without_an_envelope_when_read_then_attempt_is_one(tmp_path: Path) -> None:
    stage = next(s for s in plan_of("tiny")["stages"] if s["kind"] == "tokenizer")

    config = read_stage_config("tokenizer", write_json(tmp_path / "stage.json", stage["config"]))

    assert config.envelope.run_id is None
    assert config.envelope.attempt == 1


def _broken(kind: str, change: Any) -> dict[str, Any]:
    config = copy.deepcopy(mounted_config(plan_of("tiny"), kind))
    change(config)
    return config


@pytest.mark.parametrize(
    ("kind", "change", "pointer", "words"),
    [
        ("pack", lambda c: c.pop("seed"), "/", "'seed' is a required property"),
        ("pack", lambda c: c.update(max_seq_len="256"), "/max_seq_len", "is not of type 'integer'"),
        ("pack", lambda c: c["objective"].update(type="mlm"), "/objective/type", "is not one of"),
        ("pack", lambda c: c["weights"].update({"this-repo": -1}), "/weights/this-repo", "less than the minimum"),
        ("tokenizer", lambda c: c["tokenizer"].update(vocab_size=0), "/tokenizer/vocab_size", "less than the minimum"),
        ("tokenizer", lambda c: c.update(output="s4://bucket/x"), "/output", "does not match"),
        ("tokenizer", lambda c: c.update(runId="run-1"), "/runId", "does not match"),
        ("tokenizer", lambda c: c.update(bogus=1), "/", "'bogus' was unexpected"),
    ],
)
def test_given_a_wrong_or_missing_field_when_validated_then_the_error_names_its_pointer(
    kind: Any, change: Any, pointer: str, words: str
) -> None:
    with pytest.raises(StageConfigError) as raised:
        validate_stage_config(kind, _broken(kind, change))

    message = str(raised.value)
    assert f"not a valid {kind} config: {pointer} " in message
    assert words in message


def test_given_many_problems_when_validated_then_five_are_named_and_the_rest_counted() -> None:
    config = {"input": 1, "tokenizer": 2, "output": 3, "max_seq_len": "x", "objective": 4, "weights": 5, "seed": "s"}

    with pytest.raises(StageConfigError, match=r"; and \d+ more$") as raised:
        validate_stage_config("pack", config)

    assert str(raised.value).count("; ") == 5


def test_given_a_file_that_is_not_json_when_read_then_it_is_a_stage_config_error(tmp_path: Path) -> None:
    path = tmp_path / "stage.json"
    path.write_text("{ not json", encoding="utf-8")

    with pytest.raises(StageConfigError, match=r"cannot read the stage config .*stage\.json"):
        read_stage_config("pack", path)


def test_given_a_bad_config_when_the_entry_point_runs_then_it_exits_terminal_with_the_error_as_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "termination-log"
    monkeypatch.setenv("KILN_TERMINATION_LOG", str(log))
    bad = write_json(tmp_path / "stage.json", {"input": "pvc://x/"})

    code = exit_on_config_error("kiln-pack", lambda: (read_stage_config("pack", bad), 0)[1])

    assert code == TERMINAL_EXIT == 2
    assert "kiln-pack: " in capsys.readouterr().err
    assert json.loads(log.read_text(encoding="utf-8"))["error"].startswith(f"{bad} is not a valid pack config")


def test_given_another_error_when_the_entry_point_runs_then_it_propagates() -> None:
    def main() -> int:
        raise RuntimeError("the disk is full")

    with pytest.raises(RuntimeError):
        exit_on_config_error("kiln-pack", main)


def test_given_kiln_schemas_dir_elsewhere_when_validated_then_those_schemas_are_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KILN_SCHEMAS_DIR", str(tmp_path / "none"))

    with pytest.raises(StageConfigError, match=r"no stage schemas at .*none"):
        validate_stage_config("pack", {})
