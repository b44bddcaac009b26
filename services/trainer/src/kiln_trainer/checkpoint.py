"""Training checkpoints through torch.distributed.checkpoint (DCP), committed atomically, with retention.

Layout of a checkpoints folder (docs/train.md):

    <checkpoints>/
      latest                      {"step": N, "path": "step-0000000N", "digest": "sha256:…", ...} (JSON)
      step-0000000N/              a committed checkpoint
        .metadata, __0_0.distcp…  DCP: {"model": the model's state, "optim": the optimizer's} (resharded on load)
        rng-rank-R.pt             each rank's RNG states (torch, numpy, python; CUDA when on a GPU)
        meta.json                 step, tokens seen, data position, world size, the ModelConfig's JSON, the
                                  tokenizer's folder and digest, the trainer's own state (loss running mean)
      step-0000000M.tmp/          one being written (or torn by a crash: never `latest`, removed on the next start)

A checkpoint is written under `step-NNNNNNNN.tmp/`, then renamed to `step-NNNNNNNN/`, then `latest` is replaced
(written to `latest.tmp`, renamed): whatever kills the writer, `latest` names a whole checkpoint. `keep_last`
committed checkpoints are kept. `load_latest(dir)` gives the export stage the model's plain CPU tensors, the
ModelConfig JSON and the meta without a process group; `load_step(folder)` the same of one `step-NNNNNNNN` folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.filesystem import FileSystemReader
from torch.distributed.checkpoint.metadata import TensorStorageMetadata
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.checkpoint.state_dict_loader import load as dcp_load
from torch.distributed.checkpoint.state_dict_saver import save as dcp_save

__all__ = [
    "LATEST",
    "META",
    "CheckpointInfo",
    "capture_rng",
    "clean_torn",
    "digest_of",
    "latest_pointer",
    "load_latest",
    "load_step",
    "restore",
    "restore_rng",
    "save",
    "step_name",
]

LATEST = "latest"
"""The pointer file naming the newest committed checkpoint."""
META = "meta.json"
"""The checkpoint's own description (step, tokens, config), in each committed checkpoint folder."""
META_KIND = "kiln.checkpoint/v1"

_STEP = re.compile(r"^step-(\d{8})$")

CheckpointInfo = dict[str, Any]
"""What `save` returns and `latest` holds: step, path (the folder's name), digest, bytes, tokens."""


def step_name(step: int) -> str:
    """The folder name of the checkpoint after `step` optimizer steps."""
    return f"step-{step:08d}"


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def digest_of(folder: Path) -> tuple[str, int]:
    """`sha256:` over every file of a checkpoint folder (relative path and content, in path order), and its bytes."""
    sha = hashlib.sha256()
    total = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        sha.update(rel.encode("utf-8") + b"\0")
        with path.open("rb") as fh:
            while block := fh.read(1 << 20):
                sha.update(block)
                total += len(block)
        sha.update(b"\0")
    return f"sha256:{sha.hexdigest()}", total


def capture_rng() -> dict[str, Any]:
    """This process's RNG states: torch (CPU, and CUDA when present), numpy, python."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Puts back what `capture_rng` took."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def latest_pointer(directory: str | os.PathLike[str]) -> CheckpointInfo | None:
    """What `latest` says (None when there is no committed checkpoint)."""
    pointer = Path(directory) / LATEST
    try:
        info: CheckpointInfo = json.loads(pointer.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    if not (Path(directory) / str(info["path"]) / META).is_file():
        raise FileNotFoundError(f"{pointer} names {info['path']}, which is not a committed checkpoint")
    return info


def clean_torn(directory: str | os.PathLike[str]) -> list[str]:
    """Removes checkpoints torn by a crash (`*.tmp` folders, a stray `latest.tmp`); rank 0 only. Their names."""
    folder = Path(directory)
    removed: list[str] = []
    if _rank() != 0 or not folder.is_dir():
        return removed
    for path in sorted(folder.glob("*.tmp")):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(path.name)
    return removed


def _retain(folder: Path, keep_last: int, newest: str) -> list[str]:
    committed = sorted(p.name for p in folder.iterdir() if p.is_dir() and _STEP.match(p.name))
    drop = [name for name in committed[: max(0, len(committed) - max(1, keep_last))] if name != newest]
    for name in drop:
        shutil.rmtree(folder / name, ignore_errors=True)
    return drop


def save(
    directory: str | os.PathLike[str],
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    meta: Mapping[str, Any],
    keep_last: int,
) -> CheckpointInfo:
    """Writes the checkpoint after `step` steps (every rank calls it), commits it and applies retention.

    `meta` must hold what resuming and exporting need besides the tensors (tokens, data position, `model_config`
    JSON, `tokenizer`); the world size and step are added. Returns what `latest` now says (on every rank).
    """
    folder = Path(directory)
    rank = _rank()
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    name = step_name(step)
    tmp = folder / f"{name}.tmp"
    if rank == 0:
        folder.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    _barrier()
    model_sd, optim_sd = get_state_dict(model, optimizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dcp_save({"model": model_sd, "optim": optim_sd}, checkpoint_id=tmp, no_dist=not _distributed())
    torch.save(capture_rng(), tmp / f"rng-rank-{rank}.pt")
    _barrier()
    info: CheckpointInfo = {}
    if rank == 0:
        whole = {"kind": META_KIND, **meta, "step": step, "world_size": world}
        with (tmp / META).open("w", encoding="utf-8") as fh:
            fh.write(json.dumps(whole, indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        final = folder / name
        if final.exists():  # a commit whose `latest` never followed (a crash in between): superseded
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync_dir(folder)
        digest, size = digest_of(final)
        info = {"step": step, "path": name, "digest": digest, "bytes": size, "tokens": meta.get("tokens")}
        _write_atomic(folder / LATEST, json.dumps(info) + "\n")
        _retain(folder, keep_last, name)
    if dist.is_available() and dist.is_initialized():
        shared = [info]
        dist.broadcast_object_list(shared, src=0)
        info = shared[0]
    return info


def restore(
    directory: str | os.PathLike[str], model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
    """Loads the latest checkpoint into `model` and `optimizer` (every rank; DCP reshards to this world size).

    Returns (its meta, this rank's RNG states or None when the checkpoint was written by fewer ranks), or None when
    there is no committed checkpoint.
    """
    info = latest_pointer(directory)
    if info is None:
        return None
    path = Path(directory) / str(info["path"])
    meta: dict[str, Any] = json.loads((path / META).read_text(encoding="utf-8"))
    model_sd, optim_sd = get_state_dict(model, optimizer)
    state: dict[str, Any] = {"model": model_sd, "optim": optim_sd}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dcp_load(state, checkpoint_id=path, no_dist=not _distributed())
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    rng_file = path / f"rng-rank-{_rank()}.pt"
    rng = torch.load(rng_file, weights_only=False) if rng_file.is_file() else None
    return meta, rng


def load_latest(
    directory: str | os.PathLike[str],
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]] | None:
    """The newest committed checkpoint's model state (plain CPU tensors, the bare model's names), the ModelConfig
    JSON and the meta; None when there is none. No process group is needed (the export stage's single process)."""
    info = latest_pointer(directory)
    if info is None:
        return None
    state, model_config, meta = _load_model(Path(directory) / str(info["path"]))
    return state, model_config, {**meta, "checkpoint": info}


def load_step(
    folder: str | os.PathLike[str],
) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """`load_latest` for one committed checkpoint folder (`step-NNNNNNNN`, not necessarily the latest).

    The meta's `checkpoint` is `{"step", "path"}` (the folder's name). FileNotFoundError when `folder` is not a
    committed checkpoint (no meta.json: a `.tmp` folder, or another folder).
    """
    path = Path(folder)
    if not _STEP.match(path.name) or not (path / META).is_file():
        raise FileNotFoundError(f"{path} is not a committed checkpoint (step-NNNNNNNN with {META})")
    state, model_config, meta = _load_model(path)
    return state, model_config, {**meta, "checkpoint": {"step": meta["step"], "path": path.name}}


def _load_model(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """The model state (plain CPU tensors), the ModelConfig JSON and the meta.json of the checkpoint at `path`."""
    meta: dict[str, Any] = json.loads((path / META).read_text(encoding="utf-8"))
    reader = FileSystemReader(path)
    metadata = reader.read_metadata()
    template: dict[str, torch.Tensor] = {}
    for key, item in metadata.state_dict_metadata.items():
        if key.startswith("model.") and isinstance(item, TensorStorageMetadata):
            template[key[len("model.") :]] = torch.empty(item.size, dtype=item.properties.dtype)
    wrapped = {"model": template}
    with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
        warnings.simplefilter("ignore", UserWarning)
        dcp_load(wrapped, storage_reader=reader, no_dist=True)
    return wrapped["model"], dict(meta["model_config"]), meta
