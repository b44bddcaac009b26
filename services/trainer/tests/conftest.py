"""Shared fixtures: the repository, and the example specs' plans as the kiln CLI makes them."""

from __future__ import annotations

import json
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[3]


def node() -> str:
    """The workspace's Node 24 (the `node` devDependency), else the first on PATH: the tests run TypeScript."""
    local = REPO / "node_modules" / ".bin" / "node"
    found = str(local) if local.exists() else shutil.which("node")
    if found is None:
        pytest.fail("no node: run `npm ci` at the repository root, or the tests through `nx run @kiln/trainer:test`")
    return found


@cache
def plan_of(spec: str, stack: str = "dev") -> dict[str, Any]:
    """The plan of `kiln plan configs/<spec>.yaml --stack <stack> --json --offline`, from the CLI itself.

    Offline: with a cluster reachable (the integration tests' local one, running beside these
    tests), `kiln plan` also checks GPU capacity against it and exits 1 for a spec whose GPUs
    that cluster lacks (fim's L4).
    """
    out = subprocess.run(
        [
            node(),
            str(REPO / "tools/kiln/bin/kiln.js"),
            "plan",
            f"configs/{spec}.yaml",
            "--stack",
            stack,
            "--json",
            "--offline",
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    )
    plan: dict[str, Any] = json.loads(out.stdout)["plan"]
    return plan


def mounted_config(
    plan: dict[str, Any], kind: str, attempt: int = 1, upstream: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The config the controller mounts for the plan's stage of `kind`: libs/k8s `stageConfig`'s envelope around it."""
    stage = next(s for s in plan["stages"] if s["kind"] == kind)
    return {
        "runId": plan["runId"],
        "stage": stage["name"],
        "attempt": attempt,
        "storagePrefix": plan["storagePrefix"],
        "manifest": stage["manifest"],
        **stage["config"],
        "resume": attempt > 1,
        "upstream": upstream or {},
    }


def write_json(path: Path, value: object) -> Path:
    """`value` as a JSON file at `path`."""
    path.write_text(json.dumps(value), encoding="utf-8")
    return path
