"""kiln's packed-sequence format (what the pack stage writes, what training reads) and its reader.

A packed folder holds, for each output shard NNNNN (see docs/pack.md):

- `shard-NNNNN.tokens`: raw little-endian token ids, `uint16` when the vocabulary has at most 65,536 ids, else
  `uint32`, shape (sequences, seq_len), C order: `np.memmap`-able without a header;
- `shard-NNNNN.mask`: `uint8`, the same shape, 1 where the token is a training target; only for objectives that
  need one (UL2). Without it every token is a target except the manifest's `never_targets` ids (padding);
- `shard-NNNNN.docs`: little-endian `uint64`, the flat offsets (into sequences * seq_len) where each document or
  example starts;
- `shard-NNNNN.json`: the shard's manifest (`kind: kiln.packed-shard/v1`), written last: a shard without it is
  incomplete.

`PackedDataset` opens every shard of a folder. Its global order interleaves the shards round-robin (sequence 0 of
each shard, then sequence 1 of each, ...; a shard that has run out is left out), and `for_rank(rank, world)` gives
the global indices g with g % world == rank, so any number of data-parallel ranks each read their own part.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from .stage import file_digest

__all__ = [
    "SHARD_KIND",
    "PackedDataset",
    "RoundBlock",
    "ShardFiles",
    "ShardWriter",
    "interleave",
    "locate",
    "round_blocks",
    "shard_name",
    "token_dtype",
]

SHARD_KIND = "kiln.packed-shard/v1"
"""The `kind` of a packed shard's manifest."""


def shard_name(shard: int) -> str:
    """`shard-NNNNN`: the stem of a packed shard's files."""
    return f"shard-{shard:05d}"


def token_dtype(vocab_size: int) -> np.dtype[Any]:
    """Little-endian uint16 when every id fits (vocabulary of at most 65,536), else uint32."""
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


@dataclass(frozen=True)
class ShardFiles:
    """The paths of one packed shard's files."""

    tokens: Path
    mask: Path
    docs: Path
    manifest: Path

    @staticmethod
    def of(folder: Path, shard: int) -> ShardFiles:
        """The files of shard `shard` in `folder`."""
        stem = folder / shard_name(shard)
        return ShardFiles(Path(f"{stem}.tokens"), Path(f"{stem}.mask"), Path(f"{stem}.docs"), Path(f"{stem}.json"))


class _HashedFile:
    """A file written once from start to end, hashed as it is written (written under `.partial`, then renamed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = Path(f"{path}.partial")
        self._f: BinaryIO = self.partial.open("wb")
        self._sha = hashlib.sha256()
        self.bytes = 0

    def write(self, data: bytes | memoryview) -> None:
        self._f.write(data)
        self._sha.update(data)
        self.bytes += len(data)

    def close(self) -> dict[str, Any]:
        self._f.close()
        os.replace(self.partial, self.path)
        return {"path": self.path.name, "sha256": self._sha.hexdigest(), "bytes": self.bytes}

    def abort(self) -> None:
        self._f.close()
        self.partial.unlink(missing_ok=True)


class ShardWriter:
    """Writes one packed shard: whole sequences (tokens and optionally mask) and document starts, then its manifest.

    The data files are written under `.partial` names and renamed when complete; the manifest comes last.
    """

    def __init__(self, folder: Path, shard: int, seq_len: int, dtype: np.dtype[Any], with_mask: bool) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.files = ShardFiles.of(folder, shard)
        self.files.manifest.unlink(missing_ok=True)  # a retry: the old shard is not complete any more
        self.seq_len = seq_len
        self.dtype = dtype
        self.sequences = 0
        self._tokens = _HashedFile(self.files.tokens)
        self._mask = _HashedFile(self.files.mask) if with_mask else None
        self._docs = _HashedFile(self.files.docs)

    def write(self, tokens: npt.NDArray[Any], mask: npt.NDArray[np.uint8] | None = None) -> None:
        """Appends whole sequences: `tokens` of shape (k, seq_len) (or flat, a multiple of seq_len)."""
        flat = np.ascontiguousarray(tokens, dtype=self.dtype).reshape(-1)
        if flat.size % self.seq_len:
            raise ValueError(f"{flat.size} tokens are not whole sequences of {self.seq_len}")
        self._tokens.write(flat.data.cast("B"))
        if self._mask is not None:
            if mask is None or mask.size != flat.size:
                raise ValueError("this shard has a loss mask: every sequence needs one")
            self._mask.write(np.ascontiguousarray(mask, dtype=np.uint8).reshape(-1).data.cast("B"))
        self.sequences += flat.size // self.seq_len

    def write_doc_starts(self, starts: npt.NDArray[Any]) -> None:
        """Appends flat offsets where documents (or examples) start."""
        self._docs.write(np.ascontiguousarray(starts, dtype="<u8").reshape(-1).data.cast("B"))

    def close(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Completes the data files and writes the manifest (`manifest` plus kind, seq_len, dtype, sequences, files)."""
        files = [self._tokens.close(), self._docs.close()]
        if self._mask is not None:
            files.insert(1, self._mask.close())
        whole = {
            "kind": SHARD_KIND,
            **manifest,
            "seq_len": self.seq_len,
            "dtype": self.dtype.name,
            "sequences": self.sequences,
            "mask": self._mask is not None,
            "files": files,
        }
        tmp = Path(f"{self.files.manifest}.partial")
        tmp.write_text(json.dumps(whole, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.files.manifest)
        return whole

    def abort(self) -> None:
        """Removes what was written (after a failure)."""
        for f in (self._tokens, self._mask, self._docs):
            if f is not None:
                f.abort()


def interleave(lengths: npt.ArrayLike, g: npt.ArrayLike) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(shard position, local index) of global indices `g` under the round-robin order over shards of `lengths`.

    Round r lists sequence r of every shard that has more than r sequences, in shard order.
    """
    n = np.asarray(lengths, dtype=np.int64)
    gi = np.asarray(g, dtype=np.int64)
    total = int(n.sum())
    if gi.size and (gi.min() < 0 or gi.max() >= total):
        raise IndexError(f"sequence index out of range (0..{total - 1})")
    # Blocks of rounds with the same active shards: rounds [t[j-1], t[j]) where t are the distinct lengths.
    bounds = np.unique(np.concatenate([[0], n]))
    s_out = np.empty(gi.shape, dtype=np.int64)
    r_out = np.empty(gi.shape, dtype=np.int64)
    start = 0
    for lo, hi in itertools.pairwise(bounds):
        active = np.flatnonzero(n > lo)
        size = int((hi - lo) * active.size)
        sel = (gi >= start) & (gi < start + size)
        off = gi[sel] - start
        r_out[sel] = lo + off // active.size
        s_out[sel] = active[off % active.size]
        start += size
    return s_out, r_out


@dataclass(frozen=True)
class RoundBlock:
    """Rounds [lo, hi) of the interleaved order, in which the same shards are active; they start at global `start`."""

    start: int
    lo: int
    hi: int
    active: tuple[int, ...]


def round_blocks(lengths: list[int]) -> list[RoundBlock]:
    """The interleaved order over shards of `lengths`, as blocks of rounds with the same active shards."""
    blocks: list[RoundBlock] = []
    start = 0
    bounds = sorted({0, *lengths})
    for lo, hi in itertools.pairwise(bounds):
        active = tuple(i for i, n in enumerate(lengths) if n > lo)
        blocks.append(RoundBlock(start, lo, hi, active))
        start += (hi - lo) * len(active)
    return blocks


def locate(blocks: list[RoundBlock], g: int) -> tuple[int, int]:
    """(shard position, local index) of global index `g` in the order of `blocks` (integer arithmetic only)."""
    for b in blocks:
        size = (b.hi - b.lo) * len(b.active)
        if b.start <= g < b.start + size:
            off = g - b.start
            return b.active[off % len(b.active)], b.lo + off // len(b.active)
    raise IndexError(f"sequence {g} is out of range")


class PackedDataset:
    """Every shard of a packed folder, read through memory maps: `len`, `ds[g]`, `for_rank(rank, world)`.

    `ds[g]` is `(tokens, mask)` for global sequence g: views into the memory maps (no copy); `mask` is None for
    objectives without a loss mask (then every token is a target except `never_targets`).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        found = sorted(self.folder.glob("shard-[0-9][0-9][0-9][0-9][0-9].json"))
        self.manifests: list[dict[str, Any]] = []
        for path in found:
            m = json.loads(path.read_text(encoding="utf-8"))
            if m.get("kind") == SHARD_KIND:
                self.manifests.append(m)
        if not self.manifests:
            raise FileNotFoundError(f"no packed shards ({SHARD_KIND} manifests shard-NNNNN.json) in {self.folder}")
        first = self.manifests[0]
        for m in self.manifests[1:]:
            for key in ("seq_len", "dtype", "objective", "mask"):
                if m[key] != first[key]:
                    raise ValueError(f"packed shards in {self.folder} disagree on {key}: {first[key]!r} {m[key]!r}")
            if m["tokenizer"]["digest"] != first["tokenizer"]["digest"]:
                raise ValueError(f"packed shards in {self.folder} were made with different tokenizers")
        self.seq_len: int = int(first["seq_len"])
        self.dtype = np.dtype(first["dtype"]).newbyteorder("<")
        self.objective: str = str(first["objective"]["type"])
        self.has_mask: bool = bool(first["mask"])
        self.never_targets: tuple[int, ...] = tuple(int(i) for i in first["never_targets"])
        self.shards: list[int] = [int(m["shard"]) for m in self.manifests]
        self.lengths = np.array([int(m["sequences"]) for m in self.manifests], dtype=np.int64)
        self._blocks = round_blocks(self.lengths.tolist())
        self._tokens: list[np.ndarray[Any, Any] | None] = [None] * len(self.manifests)
        self._masks: list[np.ndarray[Any, Any] | None] = [None] * len(self.manifests)

    def __len__(self) -> int:
        return int(self.lengths.sum())

    def _map(self, path: Path, dtype: np.dtype[Any], rows: int) -> np.ndarray[Any, Any]:
        if rows == 0:
            return np.empty((0, self.seq_len), dtype=dtype)
        return np.memmap(path, dtype=dtype, mode="r", shape=(rows, self.seq_len))

    def shard_tokens(self, position: int) -> np.ndarray[Any, Any]:
        """The (sequences, seq_len) token array of the `position`-th shard (memory-mapped)."""
        arr = self._tokens[position]
        if arr is None:
            files = ShardFiles.of(self.folder, self.shards[position])
            arr = self._tokens[position] = self._map(files.tokens, self.dtype, int(self.lengths[position]))
        return arr

    def shard_mask(self, position: int) -> np.ndarray[Any, Any] | None:
        """The loss mask of the `position`-th shard (memory-mapped), None without one."""
        if not self.has_mask:
            return None
        arr = self._masks[position]
        if arr is None:
            files = ShardFiles.of(self.folder, self.shards[position])
            arr = self._masks[position] = self._map(files.mask, np.dtype(np.uint8), int(self.lengths[position]))
        return arr

    def locate(self, g: int) -> tuple[int, int]:
        """(shard position, local sequence index) of global sequence `g`."""
        return locate(self._blocks, g)

    def __getitem__(self, g: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
        if g < 0:
            g += len(self)
        s, r = self.locate(g)
        mask = self.shard_mask(s)
        return self.shard_tokens(s)[r], None if mask is None else mask[r]

    def __iter__(self) -> Iterator[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]]:
        for g in range(len(self)):
            yield self[g]

    def loss_mask(self, g: int) -> np.ndarray[Any, Any]:
        """The loss mask of sequence `g` as booleans: the mask file's, else every token not in `never_targets`."""
        tokens, mask = self[g]
        if mask is not None:
            return mask.astype(bool)
        return ~np.isin(tokens, np.array(self.never_targets, dtype=tokens.dtype))

    def for_rank(self, rank: int, world: int) -> npt.NDArray[np.int64]:
        """The global indices this data-parallel rank reads: g with g % world == rank, in order."""
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not one of {world}")
        return np.arange(rank, len(self), world, dtype=np.int64)

    def verify(self) -> list[str]:
        """Problems found re-hashing every file against its manifest (empty when all is well)."""
        problems: list[str] = []
        for m in self.manifests:
            for f in m["files"]:
                path = self.folder / f["path"]
                if not path.is_file():
                    problems.append(f"{f['path']} is missing")
                    continue
                if file_digest(path) != f"sha256:{f['sha256']}" or path.stat().st_size != f["bytes"]:
                    problems.append(f"{f['path']} does not match its manifest")
        return problems

    def doc_starts(self, position: int) -> npt.NDArray[np.uint64]:
        """Flat offsets where each document or example of the `position`-th shard starts."""
        path = ShardFiles.of(self.folder, self.shards[position]).docs
        return np.fromfile(path, dtype="<u8")
