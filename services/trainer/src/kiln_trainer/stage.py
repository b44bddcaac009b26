"""The stage contract from Python: the twin of @kiln/stage (libs/stage/src).

A stage reads its mounted config with `read_stage_config`, which validates it against the same JSON Schema files
the TypeScript side uses (schemas/stages/, draft 2020-12) and returns a typed config; it reports with
`write_summary` (Kubernetes keeps at most 4096 bytes of the termination message); a config no retry can fix is a
`StageConfigError` and the stage exits `TERMINAL_EXIT`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import posixpath
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeVar, cast, overload

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

__all__ = [
    "TERMINAL_EXIT",
    "TERMINATION_MESSAGE_MAX_BYTES",
    "Envelope",
    "PackConfig",
    "StageConfigError",
    "TokenizerConfig",
    "TokenizerSection",
    "TrainConfig",
    "exit_on_config_error",
    "file_digest",
    "fit_summary",
    "read_stage_config",
    "schemas_dir",
    "storage_path",
    "validate_stage_config",
    "write_summary",
]

TERMINAL_EXIT = 2
"""The exit code that fails the stage's Job at once (the Job's podFailurePolicy); any other non-zero is retried."""

TERMINATION_MESSAGE_MAX_BYTES = 4096
"""Kubernetes keeps at most this many bytes of a container's termination message."""

StageKind = Literal["data-prep", "dedup", "tokenizer", "pack", "train", "export", "eval"]

# At most this many problems are named in a StageConfigError, as in @kiln/stage.
_SHOWN_PROBLEMS = 5


class StageConfigError(Exception):
    """A config (or input) the stage cannot use: no retry fixes it, so the stage exits `TERMINAL_EXIT`."""


def schemas_dir() -> Path:
    """schemas/stages: `KILN_SCHEMAS_DIR` (an image copies it) or the repository's, found from this file."""
    override = os.environ.get("KILN_SCHEMAS_DIR")
    if override:
        return Path(override)
    # src/kiln_trainer/stage.py -> services/trainer/src/kiln_trainer -> the repository root is four folders up.
    return Path(__file__).resolve().parents[4] / "schemas" / "stages"


@cache
def _registry(folder: Path) -> tuple[Registry[Any], dict[str, dict[str, Any]]]:
    """Every schema of the folder, registered under its `$id` so the relative `$ref`s resolve; and each by file."""
    if not folder.is_dir():
        raise StageConfigError(f"no stage schemas at {folder}; set KILN_SCHEMAS_DIR to the schemas/stages folder")
    by_file: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.schema.json")):
        by_file[path.name] = json.loads(path.read_text(encoding="utf-8"))
    registry: Registry[Any] = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in by_file.values()
    )
    return registry, by_file


def _validator(kind: str) -> Draft202012Validator:
    registry, by_file = _registry(schemas_dir())
    schema = by_file.get(f"{kind}.schema.json")
    if schema is None:
        raise StageConfigError(f"no schema for the stage kind {kind!r} in {schemas_dir()}")
    return Draft202012Validator(schema, registry=registry)


def _pointer(error: ValidationError) -> str:
    """The JSON pointer (RFC 6901) of the field an error is about; "" is the whole config."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in error.absolute_path)


def _problems(kind: str, value: object) -> list[tuple[str, str]]:
    errors = sorted(_validator(kind).iter_errors(value), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [(_pointer(e) or "/", e.message) for e in errors]


def validate_stage_config(kind: StageKind, value: object, where: str = "the stage config") -> dict[str, Any]:
    """`value` as a config of `kind`, or a `StageConfigError` naming each problem's field as a JSON pointer."""
    problems = _problems(kind, value)
    if problems:
        shown = "; ".join(f"{pointer} {message}" for pointer, message in problems[:_SHOWN_PROBLEMS])
        more = f"; and {len(problems) - _SHOWN_PROBLEMS} more" if len(problems) > _SHOWN_PROBLEMS else ""
        raise StageConfigError(f"{where} is not a valid {kind} config: {shown}{more}")
    return cast(dict[str, Any], value)


# --- typed configs: only the fields the stages read; the schema is the source of truth -------------------------


@dataclass(frozen=True)
class Envelope:
    """What the controller adds around the plan's config (common.schema.json#/$defs/envelope); absent by hand."""

    run_id: str | None
    """The run's content address (`r-` and 12 hex digits)."""
    stage: str | None
    """The stage's name in the plan."""
    attempt: int
    """1 for the first attempt (also when there is no envelope)."""
    resume: bool
    """True on a retry: pick up where the last attempt stopped."""
    manifest: str | None
    """Where the stage writes its manifest."""
    upstream: Mapping[str, Any]
    """Summaries and manifest locations of the stages this one depends on, by stage name."""

    @staticmethod
    def of(config: Mapping[str, Any]) -> Envelope:
        """The envelope's fields of a validated config, with the defaults of a stage run by hand."""
        return Envelope(
            run_id=config.get("runId"),
            stage=config.get("stage"),
            attempt=int(config.get("attempt", 1)),
            resume=bool(config.get("resume", False)),
            manifest=config.get("manifest"),
            upstream=dict(config.get("upstream", {})),
        )


@dataclass(frozen=True)
class TokenizerSection:
    """The resolved spec's tokenizer section, as far as the tokenizer stage reads it."""

    kind: Literal["train", "pretrained"]
    """Train one on a sample of the shards, or fetch a pretrained one."""
    vocab_size: int
    """Tokens in the vocabulary, special tokens included."""
    special_tokens: tuple[str, ...]
    """Tokens the vocabulary must hold (end of text, padding, FIM sentinels)."""
    algorithm: str | None
    """The training algorithm (`bpe`, `unigram`) when `kind` is `train`."""
    sample_size: int | None
    """Bytes of the shards to train on."""


@dataclass(frozen=True)
class TokenizerConfig:
    """The tokenizer stage's config (tokenizer.schema.json)."""

    envelope: Envelope
    """The controller's envelope."""
    tokenizer: TokenizerSection
    """What tokenizer to make."""
    input: str
    """The cleaned shards (a storage URI)."""
    output: str
    """Where tokenizer.json goes (a storage URI)."""
    seed: int
    """Seed of the sample."""

    @staticmethod
    def of(config: Mapping[str, Any]) -> TokenizerConfig:
        """The typed config of a validated tokenizer config."""
        t = config["tokenizer"]
        return TokenizerConfig(
            envelope=Envelope.of(config),
            tokenizer=TokenizerSection(
                kind=t["kind"],
                vocab_size=t["vocab_size"],
                special_tokens=tuple(t["special_tokens"]),
                algorithm=t.get("algorithm"),
                sample_size=t.get("sample_size"),
            ),
            input=config["input"],
            output=config["output"],
            seed=config["seed"],
        )


@dataclass(frozen=True)
class PackConfig:
    """The pack stage's config (pack.schema.json)."""

    envelope: Envelope
    """The controller's envelope."""
    input: str
    """The cleaned shards (a storage URI)."""
    tokenizer: str
    """The tokenizer stage's output (a storage URI)."""
    output: str
    """Where the packed sequences go (a storage URI)."""
    max_seq_len: int
    """Tokens per sequence."""
    objective: Mapping[str, Any]
    """The resolved spec's objective section; `objective_type` is its `type`."""
    weights: Mapping[str, float]
    """Sampling weight per source name."""
    seed: int
    """Seed of the sampling and of the objective's transforms."""

    @property
    def objective_type(self) -> Literal["next-token", "fim", "ul2"]:
        """The objective: next-token, FIM or UL2."""
        return cast(Literal["next-token", "fim", "ul2"], self.objective["type"])

    @staticmethod
    def of(config: Mapping[str, Any]) -> PackConfig:
        """The typed config of a validated pack config."""
        return PackConfig(
            envelope=Envelope.of(config),
            input=config["input"],
            tokenizer=config["tokenizer"],
            output=config["output"],
            max_seq_len=config["max_seq_len"],
            objective=dict(config["objective"]),
            weights={name: float(w) for name, w in config["weights"].items()},
            seed=config["seed"],
        )


@dataclass(frozen=True)
class TrainConfig:
    """The train stage's config (train.schema.json); `training` is the resolved spec's section as it is."""

    envelope: Envelope
    """The controller's envelope."""
    model: Mapping[str, Any]
    """The resolved spec's model section (`ModelConfig.of` reads it)."""
    objective_type: Literal["next-token", "fim", "ul2"]
    """The objective the packed data was made for."""
    training: Mapping[str, Any]
    """The resolved spec's training section (token_budget, global_batch, micro_batch, optimizer, schedule, ...)."""
    data: str
    """The packed sequences (a storage URI)."""
    tokenizer: str
    """The tokenizer stage's output (a storage URI)."""
    checkpoints: str
    """Where checkpoints go (a storage URI)."""

    @staticmethod
    def of(config: Mapping[str, Any]) -> TrainConfig:
        """The typed config of a validated train config."""
        return TrainConfig(
            envelope=Envelope.of(config),
            model=dict(config["model"]),
            objective_type=config["objective"]["type"],
            training=dict(config["training"]),
            data=config["data"],
            tokenizer=config["tokenizer"],
            checkpoints=config["checkpoints"],
        )


_TYPED: dict[str, Callable[[Mapping[str, Any]], object]] = {
    "tokenizer": TokenizerConfig.of,
    "pack": PackConfig.of,
    "train": TrainConfig.of,
}


@overload
def read_stage_config(kind: Literal["tokenizer"], path: str | os.PathLike[str]) -> TokenizerConfig: ...
@overload
def read_stage_config(kind: Literal["pack"], path: str | os.PathLike[str]) -> PackConfig: ...
@overload
def read_stage_config(kind: Literal["train"], path: str | os.PathLike[str]) -> TrainConfig: ...
def read_stage_config(
    kind: Literal["tokenizer", "pack", "train"], path: str | os.PathLike[str]
) -> TokenizerConfig | PackConfig | TrainConfig:
    """The mounted config of `kind` at `path`, validated against its schema, typed.

    A file that cannot be read or parsed, or does not conform, is a `StageConfigError` naming the file and, for
    each problem (at most five), the field as a JSON pointer and what is wrong with it.
    """
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise StageConfigError(f"cannot read the stage config {os.fspath(path)}: {e}") from e
    config = validate_stage_config(kind, value, os.fspath(path))
    return cast(TokenizerConfig | PackConfig | TrainConfig, _TYPED[kind](config))


# --- storage ---------------------------------------------------------------------------------------------------


def file_digest(path: str | os.PathLike[str]) -> str:
    """An artifact's digest as the contract spells it (common.schema.json#/$defs/digest): `sha256:` and 64 hex digits,
    read in blocks (memory stays bounded whatever the file's size)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return "sha256:" + h.hexdigest()


_PVC = re.compile(r"^pvc://[^/]+/?(.*)$", re.DOTALL)


def storage_path(uri: str, who: str, env: Mapping[str, str] | None = None) -> str:
    """A storage URI as a local path: `file://` as it is, `pvc://claim/p` under the claim's mount.

    The mount is `KILN_STORAGE_ROOT` (default `/artifacts`). Another scheme (`s3://`) is a `StageConfigError`
    naming `who`. The same rules as libs/stage/src/storage.ts.
    """
    environ = os.environ if env is None else env
    if uri.startswith("file://"):
        return uri[len("file://") :]
    pvc = _PVC.match(uri)
    if pvc is None:
        raise StageConfigError(f"storage {uri.split('/')[0]}// is not written by {who} yet; use pvc:// or file://")
    # As Node's path.join: the parts joined by "/" and normalised; a trailing "/" (a folder) is kept.
    rest = pvc.group(1)
    joined = posixpath.normpath(environ.get("KILN_STORAGE_ROOT", "/artifacts") + "/" + rest)
    return joined + "/" if rest.endswith("/") and joined != "/" else joined


# --- the summary -----------------------------------------------------------------------------------------------

_T = TypeVar("_T")


def _json_safe(value: _T) -> _T:
    """Non-finite numbers as null, as JSON.stringify writes them (json.dumps would write invalid `NaN`)."""
    if isinstance(value, float) and not math.isfinite(value):
        return cast(_T, None)
    if isinstance(value, dict):
        return cast(_T, {k: _json_safe(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return cast(_T, [_json_safe(v) for v in value])
    return value


def _dumps(summary: Mapping[str, Any]) -> str:
    # Compact and not ASCII-escaped, as JSON.stringify: the byte counts match the TypeScript side's.
    return json.dumps(summary, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _size(summary: Mapping[str, Any]) -> int:
    return len(_dumps(summary).encode("utf-8"))


def _pop_while_too_big(
    s: dict[str, Any], key: str, items: list[_T], build: Callable[[list[_T]], object], cap: int
) -> None:
    while items and _size({**s, key: build(items)}) > cap:
        items.pop()
    if key in s:
        s[key] = build(items)


def fit_summary(summary: Mapping[str, Any], max_bytes: int = TERMINATION_MESSAGE_MAX_BYTES) -> str:
    """The summary as JSON of at most `max_bytes` bytes, always valid.

    When it is too long, what is least needed goes first: the warnings, then artifacts from the end, then metrics
    from the end, then the tail of long texts (`message`, `error`); whatever was dropped, `truncated: true` says so.
    The same rules as libs/stage/src/summary.ts.
    """
    whole: dict[str, Any] = _json_safe(dict(summary))
    if _size(whole) <= max_bytes:
        return _dumps(whole)
    s: dict[str, Any] = {k: v for k, v in {**whole, "truncated": True}.items() if k != "warnings"}
    _pop_while_too_big(s, "artifacts", list(s.get("artifacts") or []), list, max_bytes)
    _pop_while_too_big(s, "metrics", list((s.get("metrics") or {}).items()), dict, max_bytes)
    for key in ("message", "error"):
        text = s.get(key)
        if not isinstance(text, str) or _size(s) <= max_bytes:
            continue
        # The longest head that fits, found by bisection: JSON escapes and multi-byte characters make bytes and
        # characters differ.
        keep, lo, hi = 0, 0, len(text)
        while lo <= hi:
            mid = (lo + hi) // 2
            if _size({**s, key: text[:mid] + "…"}) <= max_bytes:
                keep, lo = mid, mid + 1
            else:
                hi = mid - 1
        s[key] = text[:keep] + "…"
    return _dumps(s) if _size(s) <= max_bytes else _dumps({"truncated": True})


def write_summary(summary: Mapping[str, Any], env: Mapping[str, str] | None = None) -> str:
    """Writes the summary as the termination message (`KILN_TERMINATION_LOG`, default the pod's), capped.

    Outside a pod there is no such file, and that is fine: the stage's own outputs hold everything. Returns the
    text it wrote.
    """
    environ = os.environ if env is None else env
    text = fit_summary(summary)
    with contextlib.suppress(OSError):  # not in a pod
        Path(environ.get("KILN_TERMINATION_LOG", "/dev/termination-log")).write_text(text, encoding="utf-8")
    return text


def exit_on_config_error(command: str, main: Callable[[], int]) -> int:
    """Runs a stage's `main`; a `StageConfigError` is its terminal exit.

    The error is said on stderr and, as `{"error": ...}`, in the termination message, so the controller fails the
    run with these words and does not retry; anything else propagates (and the stage is retried).
    """
    try:
        return main()
    except StageConfigError as e:
        print(f"{command}: {e}", file=sys.stderr)
        write_summary({"error": str(e)})
        return TERMINAL_EXIT
