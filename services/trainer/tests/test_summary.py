"""write_summary keeps Kubernetes' 4096 bytes with libs/stage/src/summary.ts's rules, and always writes valid JSON."""

from __future__ import annotations

import json
import math
import random
import subprocess
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from conftest import REPO, node
from kiln_trainer.stage import TERMINATION_MESSAGE_MAX_BYTES, _registry, fit_summary, schemas_dir, write_summary


def summary_validator() -> Draft202012Validator:
    registry, by_file = _registry(schemas_dir())
    return Draft202012Validator(by_file["summary.schema.json"], registry=registry)


DIGEST = "sha256:" + "ab" * 32
texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=3000)
artifacts = st.lists(
    st.fixed_dictionaries(
        {"name": st.text(min_size=1, max_size=200), "uri": st.text(min_size=1, max_size=400)},
        optional={"digest": st.just(DIGEST), "bytes": st.integers(min_value=0, max_value=2**53)},
    ),
    max_size=40,
)
summaries = st.fixed_dictionaries(
    {},
    optional={
        "metrics": st.dictionaries(
            st.text(max_size=80), st.floats(allow_nan=False, allow_infinity=False), max_size=200
        ),
        "artifacts": artifacts,
        "warnings": st.lists(texts, max_size=6),
        "error": texts,
        "message": texts,
        "shard": st.integers(min_value=0, max_value=64),
    },
)


@settings(max_examples=150, deadline=None)
@given(summaries)
def test_given_any_summary_when_fitted_then_valid_json_within_4096_bytes(summary: dict[str, Any]) -> None:
    text = fit_summary(summary)

    assert len(text.encode("utf-8")) <= TERMINATION_MESSAGE_MAX_BYTES
    fitted = json.loads(text)
    assert list(summary_validator().iter_errors(fitted)) == []
    if len(json.dumps(summary, separators=(",", ":"), ensure_ascii=False).encode()) <= TERMINATION_MESSAGE_MAX_BYTES:
        assert fitted == summary
    else:
        assert fitted["truncated"] is True
        assert "warnings" not in fitted


def test_given_a_small_summary_when_fitted_then_it_is_compact_json_as_it_is() -> None:
    summary = {"metrics": {"sequences": 12, "tokens": 3072.5}, "warnings": ["é"]}

    assert fit_summary(summary) == '{"metrics":{"sequences":12,"tokens":3072.5},"warnings":["é"]}'


def test_given_long_warnings_when_fitted_then_the_warnings_go_first_and_metrics_stay() -> None:
    summary = {"metrics": {"tokens": 1}, "warnings": ["x" * 5000]}

    assert json.loads(fit_summary(summary)) == {"metrics": {"tokens": 1}, "truncated": True}


def test_given_many_artifacts_when_fitted_then_those_from_the_end_are_dropped() -> None:
    summary = {"artifacts": [{"name": f"shard-{i}", "uri": "pvc://c/" + "p" * 100} for i in range(100)]}

    kept = json.loads(fit_summary(summary))["artifacts"]

    assert 0 < len(kept) < 100
    assert [a["name"] for a in kept] == [f"shard-{i}" for i in range(len(kept))]


def test_given_a_long_error_when_fitted_then_its_head_is_kept_with_an_ellipsis() -> None:
    error = "ü" * 5000  # two bytes each in UTF-8: characters and bytes differ

    text = fit_summary({"error": error})

    fitted = json.loads(text)
    assert fitted["error"].endswith("…") and error.startswith(fitted["error"][:-1])
    assert TERMINATION_MESSAGE_MAX_BYTES - 4 <= len(text.encode("utf-8")) <= TERMINATION_MESSAGE_MAX_BYTES


def test_given_non_finite_metrics_when_fitted_then_null_as_json_stringify_writes_them() -> None:
    assert json.loads(fit_summary({"metrics": {"loss": math.nan, "ppl": math.inf}})) == {
        "metrics": {"loss": None, "ppl": None}
    }


def test_given_a_termination_log_when_written_then_the_file_holds_the_fitted_text(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"

    text = write_summary({"metrics": {"tokens": 1}}, {"KILN_TERMINATION_LOG": str(log)})

    assert log.read_text(encoding="utf-8") == text == '{"metrics":{"tokens":1}}'


def test_given_no_pod_when_written_then_no_error(tmp_path: Path) -> None:
    text = write_summary({"error": "x"}, {"KILN_TERMINATION_LOG": str(tmp_path / "no" / "such" / "dir")})

    assert text == '{"error":"x"}'


def _random_summary(rng: random.Random) -> dict[str, Any]:
    # Integers and characters of the Basic Multilingual Plane only: JavaScript writes 3.0 as 3 and slices strings
    # by UTF-16 code units, Python by code points; everything else must come out byte for byte the same.
    def text(n: int) -> str:
        return "".join(rng.choice('aé"\\\n€ü<>&\u2028') for _ in range(rng.randrange(n)))

    summary: dict[str, Any] = {}
    if rng.random() < 0.7:
        summary["metrics"] = {f"m{i}_{text(20)}": rng.randrange(10**12) for i in range(rng.randrange(300))}
    if rng.random() < 0.7:
        summary["artifacts"] = [
            {"name": f"shard-{i}", "uri": "pvc://c/" + text(300), "digest": DIGEST, "bytes": rng.randrange(10**9)}
            for i in range(rng.randrange(40))
        ]
    if rng.random() < 0.5:
        summary["warnings"] = [text(2000) for _ in range(rng.randrange(4))]
    for key in ("error", "message"):
        if rng.random() < 0.4:
            summary[key] = text(6000)
    return summary


def test_given_random_summaries_when_fitted_then_python_writes_what_typescript_writes() -> None:
    rng = random.Random(13)
    cases = [_random_summary(rng) for _ in range(60)]
    script = (
        f"import {{ fitSummary }} from {json.dumps(str(REPO / 'libs/stage/src/summary.ts'))};"
        "const { readFileSync } = await import('node:fs');"
        "const cases = JSON.parse(readFileSync(0, 'utf8'));"
        "console.log(JSON.stringify(cases.map((c) => fitSummary(c))));"
    )
    out = subprocess.run(
        [node(), "--input-type=module", "-e", script],
        input=json.dumps(cases),
        check=True,
        capture_output=True,
        text=True,
    )

    expected = json.loads(out.stdout)
    assert sum(json.loads(t).get("truncated", False) for t in expected) >= 10  # the cases do exercise truncation
    assert [fit_summary(c) for c in cases] == expected
