"""Shared fixtures: the repository, and the example specs' plans as the kiln CLI makes them."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
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


def kiln(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Runs the kiln CLI (`tools/kiln/bin/kiln.js`) with Node 24; fails the test with its stderr when it fails."""
    import os

    out = subprocess.run(
        [node(), str(REPO / "tools/kiln/bin/kiln.js"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if out.returncode != 0:
        pytest.fail(f"kiln {' '.join(args)} exited {out.returncode}:\n{out.stderr[-3000:]}")
    return out


def stdlib_dir() -> Path:
    """The Python standard library of this interpreter: a real code corpus on every machine."""
    import sysconfig

    return Path(sysconfig.get_paths()["stdlib"])


# A slice of the standard library small enough for tests (about 3 MB of Python): its packages, not its tests.
STDLIB_PARTS = ("json", "email", "asyncio", "importlib", "logging", "http", "xml", "concurrent", "collections")


@dataclass(frozen=True)
class Prepared:
    """Real data-prep output at a plan's storage location."""

    root: Path
    """KILN_STORAGE_ROOT: the `pvc://kiln-artifacts/` claim's mount."""
    plan: dict[str, Any]
    """The plan (dev stack)."""
    shards_dir: Path
    """Where the cleaned shards are (the plan's data-prep output)."""
    shards: int
    """How many shards data-prep wrote."""

    def env(self) -> dict[str, str]:
        """What a stage process needs to find the storage (and not write the pod's termination log)."""
        return {"KILN_STORAGE_ROOT": str(self.root), "KILN_TERMINATION_LOG": str(self.root / "termination-log")}


def _prepare(spec: str, root: Path) -> Prepared:
    from kiln_trainer.stage import storage_path

    plan = plan_of(spec)
    env = {"KILN_STORAGE_ROOT": str(root), "KILN_TERMINATION_LOG": str(root / "termination-log")}
    shards_dir = Path(
        storage_path(next(s for s in plan["stages"] if s["kind"] == "tokenizer")["config"]["input"], "tests", env)
    )
    shards_dir.mkdir(parents=True, exist_ok=True)
    inputs = [f"--input={stdlib_dir() / part}" for part in STDLIB_PARTS]
    # The spec's own sources are the Hub's (no internet here): the standard library stands in, cleaned by the real
    # data-prep into two shards (map each, then the cross-shard dedup), as the plan's data-prep and dedup stages do.
    for i in range(2):
        kiln("data", "prep", *inputs, f"--output={shards_dir}", f"--shard={i}/2", env=env)
    kiln("data", "dedup", f"--output={shards_dir}", "--shards=2", env=env)
    return Prepared(root, plan, shards_dir, 2)


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Prepared]:
    """`prepared(spec)`: real data-prep output (two shards of the standard library) at the spec's plan's location.

    Made once per spec per session, shared by the tokenizer and pack tests.
    """
    made: dict[str, Prepared] = {}

    def get(spec: str) -> Prepared:
        if spec not in made:
            made[spec] = _prepare(spec, tmp_path_factory.mktemp(f"storage-{spec}"))
        return made[spec]

    return get


# --- tokenizers for the pack tests -------------------------------------------------------------------------------

PACK_SPECIALS = ("<|endoftext|>", "<|padding|>", "[NLU]", "[S2S]", "[NLG]")
"""The listed special tokens of the test tokenizers (the FIM and UL2 sentinels are added after them)."""


def train_tokenizer(folder: Path, vocab_size: int = 2048, parts: tuple[str, ...] = ("json", "email")) -> Path:
    """A small byte-level BPE tokenizer trained on a slice of the standard library, in kiln's folder layout.

    Its special tokens: end of text, padding, the UL2 paradigm tokens, the FIM sentinels, <extra_id_0..99>.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from kiln_trainer.special import SpecialTokens

    roles = SpecialTokens.of_section(
        {"special_tokens": list(PACK_SPECIALS), "fim_sentinels": {}, "ul2_sentinels": {"count": 100}}
    )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(roles.special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    files = sorted(str(p) for part in parts for p in (stdlib_dir() / part).rglob("*.py"))
    tok.train(files, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    roles.write(folder)
    return folder


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained test tokenizer folder (tokenizer.json + kiln-tokenizer.json), made once per session."""
    return train_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def tok512(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 512-token BPE tokenizer of the stdlib's json package (the test tokenizers' special tokens, FIM sentinels
    included), made once per session: the export, generate and Triton repository tests' tokenizer."""
    return train_tokenizer(tmp_path_factory.mktemp("tok512"), vocab_size=512, parts=("json",))


@pytest.fixture(scope="session")
def kiln_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tokenizer folder made by kiln's own tokenizer CLI (its code pre-tokenizer), with the FIM and UL2 tokens."""
    import sys

    out = tmp_path_factory.mktemp("kiln-tokenizer")
    specials = ["<|endoftext|>", "<|padding|>", "[NLU]", "[S2S]", "[NLG]"]
    subprocess.run(
        [sys.executable, "-m", "kiln_trainer.tokenizer", "train", "--output", str(out), "--vocab-size", "2048",
         "--sample-size", "2MB", "--fim-sentinels", "--ul2-sentinels", "100",
         "--input", *(str(stdlib_dir() / p) for p in ("json", "email", "logging", "http")),
         *(a for t in specials for a in ("--special-token", t))],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return out
