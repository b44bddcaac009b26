"""storage_path follows libs/stage/src/storage.ts: checked against fixed cases and against the TypeScript itself."""

from __future__ import annotations

import json
import subprocess

import pytest

from conftest import REPO, node
from kiln_trainer.stage import StageConfigError, storage_path


def test_given_file_and_pvc_uris_when_mapped_then_local_paths_under_the_storage_root() -> None:
    assert storage_path("file:///var/lib/kiln/x/", "pack") == "/var/lib/kiln/x/"
    root = {"KILN_STORAGE_ROOT": "/mnt/a"}
    assert storage_path("pvc://kiln-artifacts/tiny/runs/r-1/data/", "pack", root) == "/mnt/a/tiny/runs/r-1/data/"
    assert storage_path("pvc://kiln-artifacts/x", "pack", {}) == "/artifacts/x"
    assert storage_path("pvc://kiln-artifacts", "pack", {}) == "/artifacts"


def test_given_another_scheme_when_mapped_then_a_stage_config_error_names_the_stage() -> None:
    with pytest.raises(StageConfigError) as raised:
        storage_path("s3://bucket/x", "the tokenizer")

    assert str(raised.value) == "storage s3:// is not written by the tokenizer yet; use pvc:// or file://"


URIS = [
    "file:///x/y",
    "file://relative/dir/",
    "pvc://claim",
    "pvc://claim/",
    "pvc://claim/a//b/./c/",
    "pvc://claim/a/../b",
    "pvc://claim//abs/x",
    "pvc://claim/tiny/runs/r-38991ad1d4f8/packed/",
]


def test_given_tricky_uris_when_mapped_then_python_and_typescript_agree() -> None:
    script = (
        f"import {{ storagePath }} from {json.dumps(str(REPO / 'libs/stage/src/storage.ts'))};"
        f"const env = {{ KILN_STORAGE_ROOT: '/r' }};"
        f"console.log(JSON.stringify({json.dumps(URIS)}.map((u) => storagePath(u, 'x', env))));"
    )
    out = subprocess.run([node(), "--input-type=module", "-e", script], check=True, capture_output=True, text=True)

    assert [storage_path(u, "x", {"KILN_STORAGE_ROOT": "/r"}) for u in URIS] == json.loads(out.stdout)
