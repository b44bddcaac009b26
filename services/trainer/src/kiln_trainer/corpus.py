"""Reading code corpora as a stream of documents: data-prep's cleaned shards, JSON Lines files and raw code trees.

Every record read is either yielded as a `Document` or counted in the `Ledger` as dropped under one reason, so
`ledger.records_in == yielded + sum(ledger.dropped.values())` always holds. Reading is streaming (a line at a time,
zstd and gzip decompressed as they are read): memory stays bounded whatever the corpus size.

Inputs (`input_files`):
- a directory holding data-prep shards (`shard-NNNNN.jsonl.zst`): those shards, in shard order;
- a JSON Lines file, plain, `.gz` or `.zst`: one object per line with `content` (or `text`) and optionally
  `language`, `path`, `repository`, `source`;
- any other directory: a tree of raw code files (hidden folders and `node_modules` skipped), in path order; the
  language comes from the extension.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import zstandard

__all__ = [
    "DROP_REASONS",
    "Document",
    "Ledger",
    "data_prep_shards",
    "input_files",
    "language_of",
    "read_documents",
    "read_file",
    "shard_index",
]

_SURROGATE = re.compile("[\ud800-\udfff]")
SHARD_RE = re.compile(r"^shard-(\d{5})\.jsonl\.zst$")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz", ".jsonl.zst", ".json.gz", ".ndjson", ".jsonl.zstd")
RAW_MAX_BYTES = 1 << 20
"""A raw file larger than this is dropped as `oversized` (data-prep's default limit)."""

DROP_REASONS = ("bad-json", "invalid-utf8", "no-content", "empty", "binary", "oversized", "unreadable")
"""Why a record was dropped: a line that is not a JSON object, bytes that are not UTF-8, no `content`/`text` string,
empty content, a raw file with NUL bytes, a raw file over `RAW_MAX_BYTES`, a file that could not be read."""

_EXTENSIONS = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
    ".jsx": "javascript", ".ts": "typescript", ".tsx": "typescript", ".mts": "typescript", ".cts": "typescript",
    ".java": "java", ".go": "go", ".rs": "rust", ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".hpp": "cpp",
    ".cs": "c#", ".rb": "ruby", ".php": "php", ".swift": "swift", ".kt": "kotlin", ".scala": "scala",
    ".sh": "shell", ".bash": "shell", ".lua": "lua", ".r": "r", ".jl": "julia", ".json": "json", ".yaml": "yaml",
    ".yml": "yaml", ".toml": "toml", ".md": "markdown", ".rst": "restructuredtext", ".html": "html", ".css": "css",
    ".sql": "sql", ".txt": "text",
}  # fmt: skip


def language_of(path: str) -> str | None:
    """The language of a file from its extension (lowercase, as data-prep names them), or None."""
    name = path.lower()
    dot = name.rfind(".")
    return _EXTENSIONS.get(name[dot:]) if dot >= 0 else None


@dataclass(frozen=True)
class Document:
    """One record of code."""

    text: str
    """Its content."""
    language: str | None
    """Its language (`python`), when known."""
    path: str | None
    """Its path inside its repository or tree, when known."""
    source: str | None
    """The spec's source it came from, when the record says (`source`)."""


@dataclass
class Ledger:
    """Counts of what was read: every record is yielded or dropped under exactly one reason."""

    records_in: int = 0
    """Records seen (lines of JSON Lines files, files of raw trees)."""
    dropped: Counter[str] = field(default_factory=Counter)
    """Dropped records by reason (`DROP_REASONS`)."""
    examples: dict[str, str] = field(default_factory=dict)
    """Where the first record dropped for each reason was (`file:line`), for error messages."""

    def drop(self, reason: str, where: str) -> None:
        """Counts a dropped record."""
        self.dropped[reason] += 1
        self.examples.setdefault(reason, where)

    @property
    def kept(self) -> int:
        """Records yielded."""
        return self.records_in - sum(self.dropped.values())


def shard_index(path: Path) -> int | None:
    """The shard number of a data-prep shard's file name (`shard-00003.jsonl.zst` is 3), else None."""
    m = SHARD_RE.match(path.name)
    return int(m.group(1)) if m else None


def data_prep_shards(folder: Path) -> list[Path]:
    """data-prep's cleaned shards in `folder`, in shard order (empty when it holds none)."""
    found = [p for p in folder.iterdir() if p.is_file() and shard_index(p) is not None]
    return sorted(found, key=lambda p: shard_index(p) or 0)


def _is_jsonl(path: Path) -> bool:
    return path.name.lower().endswith(JSONL_SUFFIXES)


def input_files(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[Path, str]]:
    """Each input as files to read, with how: `jsonl` (plain, gz or zst) or `raw` (a code file).

    Raises FileNotFoundError naming an input that does not exist.
    """
    out: list[tuple[Path, str]] = []
    for given in paths:
        p = Path(given)
        if not p.exists():
            raise FileNotFoundError(f"input {os.fspath(given)} does not exist")
        if p.is_file():
            out.append((p, "jsonl" if _is_jsonl(p) else "raw"))
            continue
        shards = data_prep_shards(p)
        if shards:
            out.extend((s, "jsonl") for s in shards)
            continue
        for root, dirs, files in os.walk(p):
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "node_modules" and d != "__pycache__")
            for name in sorted(files):
                if name.startswith("."):
                    continue
                f = Path(root) / name
                out.append((f, "jsonl" if _is_jsonl(f) else "raw"))
    return out


def _open_lines(path: Path) -> IO[bytes]:
    """The file as a binary stream, decompressed as it is read (zstd, gzip) or as it is."""
    name = path.name.lower()
    raw = path.open("rb")
    if name.endswith((".zst", ".zstd")):
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
        return io.BufferedReader(reader, buffer_size=1 << 20)
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    return raw


def _jsonl(path: Path, ledger: Ledger) -> Iterator[Document]:
    where = os.fspath(path)
    with _open_lines(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue  # blank lines are not records
            ledger.records_in += 1
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                ledger.drop("invalid-utf8", f"{where}:{n}")
                continue
            try:
                record = json.loads(text)
            except ValueError:
                ledger.drop("bad-json", f"{where}:{n}")
                continue
            if not isinstance(record, dict):
                ledger.drop("bad-json", f"{where}:{n}")
                continue
            content = record.get("content", record.get("text"))
            if not isinstance(content, str):
                ledger.drop("no-content", f"{where}:{n}")
                continue
            if not content:
                ledger.drop("empty", f"{where}:{n}")
                continue
            if _SURROGATE.search(content):
                # JSON may spell lone surrogates (\ud83d); they are not text and do not encode as UTF-8.
                ledger.drop("invalid-utf8", f"{where}:{n}")
                continue
            language = record.get("language")
            path_ = record.get("path")
            source = record.get("source")
            yield Document(
                content,
                language if isinstance(language, str) else None,
                path_ if isinstance(path_, str) else None,
                source if isinstance(source, str) else None,
            )


def _raw(path: Path, ledger: Ledger) -> Iterator[Document]:
    ledger.records_in += 1
    where = os.fspath(path)
    try:
        if path.stat().st_size > RAW_MAX_BYTES:
            ledger.drop("oversized", where)
            return
        data = path.read_bytes()
    except OSError:
        ledger.drop("unreadable", where)
        return
    if b"\0" in data:
        ledger.drop("binary", where)
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        ledger.drop("invalid-utf8", where)
        return
    if not text:
        ledger.drop("empty", where)
        return
    yield Document(text, language_of(path.name), where, None)


def read_file(path: Path, how: str, ledger: Ledger) -> Iterator[Document]:
    """The documents of one input file (`how` from `input_files`), counting what it drops in `ledger`."""
    return _jsonl(path, ledger) if how == "jsonl" else _raw(path, ledger)


def read_documents(files: Iterable[tuple[Path, str]], ledger: Ledger) -> Iterator[Document]:
    """The documents of every file, in order, counting records and drops in `ledger`."""
    for path, how in files:
        yield from read_file(path, how, ledger)
