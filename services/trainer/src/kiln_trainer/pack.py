"""The pack stage: tokenize cleaned shards and pack them into training sequences (next-token, FIM, UL2).

    python -m kiln_trainer.pack --config FILE          the stage (one pod per data-prep shard: JOB_COMPLETION_INDEX)
    python -m kiln_trainer.pack run --tokenizer DIR --input PATH... --output DIR --seq-len N [--objective ...]
    python -m kiln_trainer.pack inspect DIR [--decode N] [--json]

The output format is packed.py's (docs/pack.md). Tokenizing runs in `workers` processes on bounded chunks of
documents, consumed in order; every random decision is seeded from (seed, shard, record / context / example
index), so the same inputs and seed give the same bytes whatever the number of workers. Exit codes: 0 done,
1 failure, 2 usage or config error (`StageConfigError`: the stage's terminal exit).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from .corpus import Ledger, data_prep_shards, input_files, read_documents, shard_index
from .fim import FimContexts, FimCounts, FimIds, FimParams, Splicer, fim_documents
from .packed import PackedDataset, ShardWriter, shard_name, token_dtype
from .packtok import PackTokenizer, TextOfIds, encode_ids
from .stage import (
    TERMINAL_EXIT,
    PackConfig,
    StageConfigError,
    exit_on_config_error,
    read_stage_config,
    storage_path,
    write_summary,
)
from .ul2 import DEFAULT_DENOISERS, MIN_SPACE, Denoiser, Ul2Packer

__all__ = [
    "FIM_MIN_SEQ_LEN",
    "Settings",
    "main",
    "pack_inputs",
    "pack_shard",
    "run_stage",
]

FIM_MIN_SEQ_LEN = 8
"""The shortest sequence FIM packs: its three sentinels, end of text and a few tokens of text."""
CHUNK_CHARS = 1 << 19
"""Text per chunk sent to a tokenizing worker (about 512 KiB), at most `CHUNK_DOCS` documents."""
CHUNK_DOCS = 1024
WRITE_SEQUENCES = 256
"""Whole sequences are written in batches of this many."""
_WEIGHT_DRAW = (1 << 32) - 1  # the generator key of the source weight's extra copy

Ids = npt.NDArray[np.int64]
T = TypeVar("T")
R = TypeVar("R")


# --- settings ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """How to pack: everything the workers and the packer need (picklable)."""

    seq_len: int
    objective: str
    """`next-token`, `fim` or `ul2`."""
    seed: int = 0
    fim: FimParams = field(default_factory=FimParams)
    denoisers: tuple[Denoiser, ...] = ()
    weights: tuple[tuple[str, float], ...] = ()
    """Sampling weight per source name (records without a source, or of a source not named, weigh 1)."""
    workers: int = 1

    @staticmethod
    def of_config(config: PackConfig, workers: int) -> Settings:
        """From the stage config."""
        obj = dict(config.objective)
        return Settings(
            seq_len=config.max_seq_len,
            objective=config.objective_type,
            seed=config.seed,
            fim=FimParams.of(obj),
            denoisers=tuple(Denoiser.of(d) for d in obj.get("denoisers") or DEFAULT_DENOISERS),
            weights=tuple(sorted(config.weights.items())),
            workers=workers,
        )

    def objective_json(self) -> dict[str, Any]:
        """The objective as the manifests record it."""
        if self.objective == "fim":
            f = self.fim
            return {"type": "fim", "rate": f.rate, "spm_rate": f.spm_rate, "level": f.level, "truncation": f.truncation}
        if self.objective == "ul2":
            return {
                "type": "ul2",
                "denoisers": [
                    {
                        "name": d.name,
                        "mean_span": "L/4" if d.prefix_lm else d.mean_span,
                        "corruption_rate": d.rate,
                        "paradigm_token": d.paradigm,
                        "prefix_lm": d.prefix_lm,
                        "weight": d.weight,
                    }
                    for d in self.denoisers
                ],
            }
        return {"type": "next-token"}


@dataclass(frozen=True)
class Specials:
    """The ids the objective inserts, checked against the tokenizer."""

    eot: int
    pad: int
    fim: FimIds | None
    paradigms: tuple[int, ...]
    sentinels: tuple[int, ...]

    @property
    def never_targets(self) -> list[int]:
        """Ids that are never training targets: padding (and FIM's pad)."""
        return sorted({self.pad, *([self.fim.pad] if self.fim else [])})


def check(settings: Settings, tok: PackTokenizer) -> Specials:
    """The special ids the settings need; a `StageConfigError` for a missing token or a seq_len too short."""
    if settings.seq_len < 2:
        raise StageConfigError(f"seq_len {settings.seq_len} is too short: a sequence needs at least 2 tokens")
    fim = None
    paradigms: tuple[int, ...] = ()
    sentinels: tuple[int, ...] = ()
    if settings.objective == "fim":
        p = settings.fim
        if p.level not in ("document", "context") or p.truncation not in ("none", "suffix"):
            raise StageConfigError(f"FIM level {p.level!r} / truncation {p.truncation!r} is not known")
        if settings.seq_len < FIM_MIN_SEQ_LEN:
            raise StageConfigError(
                f"seq_len {settings.seq_len} is too short for FIM: at least {FIM_MIN_SEQ_LEN} tokens "
                "(three sentinels, end of text and text)"
            )
        fim = FimIds(*tok.fim_ids())
    elif settings.objective == "ul2":
        if not settings.denoisers:
            raise StageConfigError("the UL2 objective has no denoisers")
        if settings.seq_len < MIN_SPACE:
            raise StageConfigError(
                f"seq_len {settings.seq_len} is too short for a UL2 example: at least {MIN_SPACE} tokens "
                "(paradigm token, input, sentinel, target, end of text)"
            )
        missing = sorted({d.paradigm for d in settings.denoisers if tok.tokenizer.token_to_id(d.paradigm) is None})
        if missing:
            raise StageConfigError(f"the tokenizer lacks the UL2 paradigm tokens {', '.join(missing)}")
        paradigms = tuple(tok.tokenizer.token_to_id(d.paradigm) or 0 for d in settings.denoisers)
        if not tok.roles.ul2_sentinels:
            raise StageConfigError(
                f"the tokenizer in {tok.folder} has no UL2 sentinels (<extra_id_0>, ...; its roles name none)"
            )
        sentinels = tuple(tok.ids_of(tok.roles.ul2_sentinels, "UL2 sentinel"))
    elif settings.objective != "next-token":
        raise StageConfigError(f"objective {settings.objective!r} is not next-token, fim or ul2")
    return Specials(tok.eot_id, tok.pad_id, fim, paradigms, sentinels)


# --- tokenizing, in worker processes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """Documents sent to a worker: their texts, record indices (in the shard) and copies (source weights)."""

    shard: int
    texts: tuple[str, ...]
    records: tuple[int, ...]
    copies: tuple[int, ...]


@dataclass(frozen=True)
class ChunkTokens:
    """A worker's answer: the documents' ids concatenated, each document's length, FIM counts (document level)."""

    flat: npt.NDArray[np.uint32]
    lengths: npt.NDArray[np.int64]
    fim: FimCounts


@dataclass
class _Worker:
    tok: PackTokenizer
    settings: Settings
    specials: Specials
    text_of: TextOfIds | None = None


_STATE: _Worker | None = None


def _init_worker(folder: str, settings: Settings, loaded: PackTokenizer | None = None) -> None:
    """A worker's set-up: one tokenizing thread, the tokenizer (loaded from `folder` unless given)."""
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    global _STATE
    tok = loaded or PackTokenizer.load(folder)
    _STATE = _Worker(tok, settings, check(settings, tok))


def _splicer(w: _Worker) -> Splicer | None:
    """The worker's FIM splicer when its tokenizer qualifies (PackTokenizer.spliceable)."""
    if not w.tok.spliceable:
        return None
    if w.text_of is None:
        w.text_of = TextOfIds(w.tok)
    lengths = w.text_of.token_bytes()
    return None if lengths is None else Splicer(lengths)


def _flat(ids: Sequence[Sequence[int]]) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int64]]:
    lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    flat = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.uint32, count=int(lengths.sum()))
    return flat, lengths


def _with_eot(flat: npt.NDArray[np.uint32], lengths: npt.NDArray[np.int64], eot: int) -> npt.NDArray[np.uint32]:
    """Each document followed by end of text."""
    ends = np.cumsum(lengths + 1) - 1
    out = np.empty(flat.size + lengths.size, dtype=np.uint32)
    keep = np.ones(out.size, dtype=bool)
    keep[ends] = False
    out[ends] = eot
    out[keep] = flat
    return out


def _tokenize(chunk: Chunk) -> ChunkTokens:
    """Encodes a chunk (and, for document-level FIM, transforms each copy of each document)."""
    w = _STATE
    assert w is not None, "the worker was not initialised"
    s, sp = w.settings, w.specials
    ids = encode_ids(w.tok.tokenizer, chunk.texts)
    counts = FimCounts()
    if s.objective == "fim" and s.fim.level == "document":
        assert sp.fim is not None
        texts: list[str] = []
        originals: list[Ids] = []
        rngs: list[np.random.Generator] = []
        for text, doc, record, copies in zip(chunk.texts, ids, chunk.records, chunk.copies, strict=True):
            for c in range(copies):
                texts.append(text)
                originals.append(np.asarray(doc, dtype=np.int64))
                rngs.append(np.random.default_rng([s.seed, chunk.shard, record, c]))
        encode: Callable[[Sequence[str]], list[list[int]]] = lambda t: encode_ids(w.tok.tokenizer, t)  # noqa: E731
        docs = fim_documents(texts, originals, rngs, s.fim, sp.fim, encode, counts, _splicer(w))
        flat, lengths = _flat(docs)  # type: ignore[arg-type]
    else:
        if any(c != 1 for c in chunk.copies):
            ids = [doc for doc, c in zip(ids, chunk.copies, strict=True) for _ in range(c)]
        flat, lengths = _flat(ids)
    if s.objective != "ul2":
        flat = _with_eot(flat, lengths, sp.eot)
        lengths = lengths + 1
    return ChunkTokens(flat, lengths, counts)


@dataclass(frozen=True)
class Contexts:
    """Packed contexts sent to a worker for context-level FIM: their tokens (k, seq_len or less) and first index."""

    shard: int
    first: int
    tokens: npt.NDArray[Any]


@dataclass(frozen=True)
class ContextsDone:
    """A worker's answer: each context transformed (tokens, fragment starts), and the FIM counts."""

    done: list[tuple[Ids, Ids]]
    fim: FimCounts


def _transform_contexts(task: Contexts) -> ContextsDone:
    """Context-level FIM of a batch of contexts, each with its own generator (seed, shard, context index)."""
    w = _STATE
    assert w is not None, "the worker was not initialised"
    ids = w.specials.fim
    assert ids is not None, "the worker was not initialised for FIM"
    if w.text_of is None:
        w.text_of = TextOfIds(w.tok)
    s = w.settings
    fim = FimContexts(
        s.fim, ids, w.specials.eot, lambda t: encode_ids(w.tok.tokenizer, t), w.text_of, splicer=_splicer(w)
    )
    rows = [row.astype(np.int64) for row in task.tokens]
    rngs = [np.random.default_rng([s.seed, task.shard, task.first + i]) for i in range(len(rows))]
    return ContextsDone(fim.transform(rows, rngs), fim.counts)


class _Ready:
    """An answer computed here, with the interface of a pool's AsyncResult."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def ready(self) -> bool:
        return True

    def get(self) -> Any:
        return self.value


def ordered_map(fn: Callable[[T], R], items: Iterable[T], pool: Any | None, in_flight: int) -> Iterator[R]:
    """`fn` over `items`, in order, in `pool` (None: here) with at most `in_flight` items handed out at once."""
    if pool is None:
        yield from map(fn, items)
        return
    waiting: deque[Any] = deque()
    for item in items:
        waiting.append(pool.apply_async(fn, (item,)))
        if len(waiting) >= in_flight:
            yield waiting.popleft().get()
    while waiting:
        yield waiting.popleft().get()


class Workers:
    """The tokenizing workers: a process pool (`workers` > 1) or this process."""

    def __init__(self, tok: PackTokenizer, settings: Settings) -> None:
        self.pool: Any | None = None
        if settings.workers > 1:
            ctx = multiprocessing.get_context("spawn")
            self.pool = ctx.Pool(settings.workers, _init_worker, (os.fspath(tok.folder), settings))
        else:
            _init_worker(os.fspath(tok.folder), settings, tok)
        self.in_flight = 2 * max(1, settings.workers)

    def map(self, chunks: Iterable[Chunk]) -> Iterator[ChunkTokens]:
        """Tokenized chunks, in order."""
        return ordered_map(_tokenize, chunks, self.pool, self.in_flight)

    def submit(self, fn: Callable[[T], R], item: T) -> Any:
        """`fn(item)` in the pool (an AsyncResult), or here at once."""
        return _Ready(fn(item)) if self.pool is None else self.pool.apply_async(fn, (item,))

    def close(self) -> None:
        """Stops the pool."""
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()


# --- reading and chunking --------------------------------------------------------------------------------------


def _copies(weight: float, seed: int, shard: int, record: int) -> int:
    """floor(w) copies, and one more with probability frac(w) (seeded by the record)."""
    whole = math.floor(weight)
    frac = weight - whole
    if frac > 0 and np.random.default_rng([seed, shard, record, _WEIGHT_DRAW]).random() < frac:
        whole += 1
    return int(whole)


def chunks_of(
    files: Sequence[tuple[Path, str]], shard: int, settings: Settings, ledger: Ledger, stats: dict[str, int]
) -> Iterator[Chunk]:
    """The shard's documents in chunks, with their copies; records weighted to zero copies are dropped."""
    weights = dict(settings.weights)
    texts: list[str] = []
    records: list[int] = []
    copies: list[int] = []
    size = 0
    record = -1
    for doc in read_documents(files, ledger):
        record += 1
        w = weights.get(doc.source, 1.0) if doc.source is not None else 1.0
        n = 1 if w == 1.0 else _copies(w, settings.seed, shard, record)
        if n == 0:
            ledger.drop("weight-zero", doc.path or f"record {record}")
            continue
        stats["records_tokenized"] += 1
        texts.append(doc.text)
        records.append(record)
        copies.append(n)
        size += len(doc.text)
        if size >= CHUNK_CHARS or len(texts) >= CHUNK_DOCS:
            yield Chunk(shard, tuple(texts), tuple(records), tuple(copies))
            texts, records, copies, size = [], [], [], 0
    if texts:
        yield Chunk(shard, tuple(texts), tuple(records), tuple(copies))


# --- packing ---------------------------------------------------------------------------------------------------


class TokenStream:
    """Tokens concatenated and cut into whole sequences; the last partial one padded by `finish`."""

    def __init__(self, seq_len: int, pad: int) -> None:
        self.seq_len = seq_len
        self.pad = pad
        self.pending: list[npt.NDArray[Any]] = []
        self.pending_len = 0
        self.total = 0
        """Tokens pushed so far (the flat offset of the next one)."""

    def push(self, tokens: npt.NDArray[Any]) -> None:
        """Appends tokens."""
        if tokens.size:
            self.pending.append(tokens)
            self.pending_len += tokens.size
            self.total += tokens.size

    def full(self, at_least: int = 1) -> npt.NDArray[Any] | None:
        """The whole sequences pending, (k, seq_len), when there are at least `at_least` of them."""
        k = self.pending_len // self.seq_len
        if k < at_least or k == 0:
            return None
        joined = np.concatenate(self.pending)
        cut = k * self.seq_len
        rest = joined[cut:]
        self.pending = [rest] if rest.size else []
        self.pending_len = rest.size
        return joined[:cut].reshape(k, self.seq_len)

    def finish(self) -> npt.NDArray[Any] | None:
        """The whole sequences left, the last padded; None when nothing is pending."""
        if not self.pending_len:
            return None
        short = -self.pending_len % self.seq_len
        if short:
            self.push(np.full(short, self.pad, dtype=self.pending[0].dtype))
            self.total -= short  # padding is not a pushed token
        return self.full()

    def remainder(self) -> npt.NDArray[Any]:
        """The partial sequence pending (after `full`), taken out."""
        rest = np.concatenate(self.pending) if self.pending else np.zeros(0, np.int64)
        self.pending, self.pending_len = [], 0
        return rest


@dataclass
class ShardStats:
    """Counts of one output shard."""

    documents: int = 0
    pad_tokens: int = 0
    fim: FimCounts = field(default_factory=FimCounts)


class ShardPacker:
    """Turns one shard's tokenized chunks into sequences in a `ShardWriter`, by objective."""

    def __init__(
        self, writer: ShardWriter, settings: Settings, specials: Specials, workers: Workers, shard: int
    ) -> None:
        self.w = writer
        self.workers = workers
        self.waiting: deque[Any] = deque()
        self.s = settings
        self.sp = specials
        self.shard = shard
        self.stats = ShardStats()
        self.never = np.array(specials.never_targets, dtype=np.int64)
        self.stream = TokenStream(settings.seq_len, specials.pad)
        self.ul2: Ul2Packer | None = None
        self.context_fim = FimCounts()
        self.context_in: TokenStream | None = None
        self.context_index = 0
        if settings.objective == "ul2":
            self.ul2 = Ul2Packer(
                settings.seq_len,
                settings.denoisers,
                specials.paradigms,
                np.array(specials.sentinels, dtype=np.int64),
                specials.eot,
                specials.pad,
                settings.seed,
                shard,
            )
        elif settings.objective == "fim" and settings.fim.level == "context":
            self.context_in = TokenStream(settings.seq_len, specials.pad)

    def _write(self, seqs: npt.NDArray[Any] | None, masks: npt.NDArray[np.uint8] | None = None) -> None:
        if seqs is None or seqs.size == 0:
            return
        self.stats.pad_tokens += int(np.isin(seqs, self.never).sum()) if masks is None else 0
        self.w.write(seqs, masks)

    def _starts(self, base: int, lengths: npt.NDArray[np.int64]) -> None:
        self.w.write_doc_starts(base + np.concatenate([[0], np.cumsum(lengths)[:-1]]))

    def add(self, chunk: ChunkTokens) -> None:
        """Packs one tokenized chunk."""
        self.stats.documents += int(chunk.lengths.size)
        self.stats.fim.add(chunk.fim)
        if self.ul2 is not None:
            ends = np.cumsum(chunk.lengths)
            flat = chunk.flat.astype(np.int64)
            for lo, hi in zip(ends - chunk.lengths, ends, strict=True):
                self.ul2.add(flat[lo:hi])
            self._take_ul2()
        elif self.context_in is not None:
            self.context_in.push(chunk.flat)
            self._contexts(self.context_in.full(WRITE_SEQUENCES))
        else:
            self._starts(self.stream.total, chunk.lengths)
            self.stream.push(chunk.flat)
            self._write(self.stream.full(WRITE_SEQUENCES))

    def _take_ul2(self) -> None:
        assert self.ul2 is not None
        done, starts = self.ul2.take()
        if starts:
            self.w.write_doc_starts(np.array(starts, dtype=np.uint64))
        if done:
            self.w.write(np.stack([t for t, _ in done]), np.stack([m for _, m in done]))

    def _contexts(self, contexts: npt.NDArray[Any] | None) -> None:
        """Hands contexts to the workers for FIM; packs the answers that are back, in order."""
        if contexts is not None:
            self.waiting.append(
                self.workers.submit(_transform_contexts, Contexts(self.shard, self.context_index, contexts))
            )
            self.context_index += len(contexts)
        while self.waiting and (len(self.waiting) > self.workers.in_flight or self.waiting[0].ready()):
            self._take_contexts(self.waiting.popleft().get())

    def _take_contexts(self, answer: ContextsDone) -> None:
        self.context_fim.add(answer.fim)
        for tokens, starts in answer.done:
            self.w.write_doc_starts(self.stream.total + starts)
            self.stream.push(tokens)
        self._write(self.stream.full(WRITE_SEQUENCES))

    def finish(self) -> None:
        """Packs what is left and pads the last sequence."""
        if self.ul2 is not None:
            self.ul2.finish()
            self._take_ul2()
            self.stats.pad_tokens = self.ul2.pad_tokens
            return
        if self.context_in is not None:
            self._contexts(self.context_in.full())
            rest = self.context_in.remainder()
            if rest.size:
                self._contexts(rest.reshape(1, -1))
            while self.waiting:
                self._take_contexts(self.waiting.popleft().get())
        self._write(self.stream.full())
        self._write(self.stream.finish())

    def counts(self) -> dict[str, Any]:
        """The objective's counts for the manifest."""
        if self.ul2 is not None:
            return {
                "examples": self.ul2.examples,
                "per_denoiser": dict(self.ul2.per_denoiser),
                "tokens_skipped": self.ul2.tokens_skipped,
            }
        if self.s.objective == "fim":
            counts = FimCounts()
            counts.add(self.stats.fim)
            counts.add(self.context_fim)
            return counts.to_json()
        return {}


def pack_shard(
    files: Sequence[tuple[Path, str]],
    shard: int,
    output: Path,
    settings: Settings,
    tok: PackTokenizer,
    workers: Workers,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Packs the documents of `files` into output shard `shard` of `output`; returns the shard's manifest."""
    specials = check(settings, tok)
    writer = ShardWriter(output, shard, settings.seq_len, token_dtype(tok.vocab_size), settings.objective == "ul2")
    packer = ShardPacker(writer, settings, specials, workers, shard)
    ledger = Ledger()
    stats = {"records_tokenized": 0}
    last = time.monotonic()
    try:
        for result in workers.map(chunks_of(files, shard, settings, ledger, stats)):
            packer.add(result)
            if progress is not None and time.monotonic() - last > 2:
                last = time.monotonic()
                progress(f"shard {shard}: {ledger.records_in} records read, {writer.sequences} sequences")
        packer.finish()
    except BaseException:
        writer.abort()
        raise
    warnings: list[str] = []
    if writer.sequences == 0:
        warnings.append(f"shard {shard} has no documents to pack ({ledger.records_in} records read): 0 sequences")
    dropped = dict(sorted(ledger.dropped.items()))
    if dropped:
        warnings.append(
            f"shard {shard}: dropped "
            + ", ".join(f"{n} {reason} (first at {ledger.examples[reason]})" for reason, n in dropped.items())
        )
    total = writer.sequences * settings.seq_len
    manifest = {
        "shard": shard,
        "objective": settings.objective_json(),
        "tokens": total - packer.stats.pad_tokens,
        "pad_tokens": packer.stats.pad_tokens,
        "documents": packer.stats.documents,
        "records": {
            "in": ledger.records_in,
            "tokenized": stats["records_tokenized"],
            "dropped": dropped,
        },
        "counts": packer.counts(),
        "never_targets": specials.never_targets,
        "special_ids": {"eot": specials.eot, "pad": specials.pad},
        "tokenizer": {"digest": tok.digest, "vocab_size": tok.vocab_size, "path": os.fspath(tok.folder.resolve())},
        "seed": settings.seed,
        "inputs": [os.fspath(p) for p, _ in files][:64],
        "warnings": warnings,
    }
    return writer.close(manifest)


def pack_inputs(
    jobs: Sequence[tuple[int, Sequence[tuple[Path, str]]]],
    output: Path,
    settings: Settings,
    tok: PackTokenizer,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Packs each (output shard, input files) job with one set of workers; the shards' manifests."""
    check(settings, tok)
    workers = Workers(tok, settings)
    try:
        return [pack_shard(files, shard, output, settings, tok, workers, progress) for shard, files in jobs]
    finally:
        workers.close()


# --- reporting ---------------------------------------------------------------------------------------------------


def totals(manifests: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Counts summed over shards."""
    keys = ("sequences", "tokens", "pad_tokens", "documents")
    out = {k: sum(int(m[k]) for m in manifests) for k in keys}
    out["records_in"] = sum(int(m["records"]["in"]) for m in manifests)
    out["records_tokenized"] = sum(int(m["records"]["tokenized"]) for m in manifests)
    out["records_dropped"] = sum(sum(m["records"]["dropped"].values()) for m in manifests)
    out["shards"] = len(manifests)
    return out


def _artifacts(manifests: Sequence[Mapping[str, Any]], output_uri: str) -> list[dict[str, Any]]:
    base = output_uri.rstrip("/")
    arts = []
    for m in manifests:
        for f in m["files"]:
            arts.append(
                {
                    "name": f["path"],
                    "uri": f"{base}/{f['path']}",
                    "digest": f"sha256:{f['sha256']}",
                    "bytes": f["bytes"],
                }
            )
    return arts


def _say(line: str) -> None:
    print(f"pack: {line}", file=sys.stderr, flush=True)


# --- the stage ---------------------------------------------------------------------------------------------------


def _cgroup_cpus(path: Path = Path("/sys/fs/cgroup/cpu.max")) -> int | None:
    """The container's CPU limit (cgroup v2 `cpu.max`: quota and period), rounded up; None without one."""
    try:
        quota, period = path.read_text(encoding="utf-8").split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def _stage_workers() -> int:
    """`KILN_PACK_WORKERS`, else the CPUs this process may use (its affinity, within the container's CPU limit)."""
    given = os.environ.get("KILN_PACK_WORKERS")
    if given:
        return max(1, int(given))
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    limit = _cgroup_cpus()
    return max(1, min(cpus, limit) if limit else cpus)


def _stage_jobs(
    input_dir: Path, env: Mapping[str, str]
) -> tuple[list[tuple[int, list[tuple[Path, str]]]], int, int | None]:
    """(jobs, input shards, the pod's index or None)."""
    if not input_dir.is_dir():
        raise StageConfigError(f"the input {input_dir} is not a folder of data-prep shards")
    shards = data_prep_shards(input_dir)
    index = env.get("JOB_COMPLETION_INDEX")
    if index is not None:
        if not index.isdigit():
            raise StageConfigError(f"JOB_COMPLETION_INDEX {index!r} is not a shard number")
        i = int(index)
        path = input_dir / f"shard-{i:05d}.jsonl.zst"
        if not path.is_file():
            have = ", ".join(p.name for p in shards[:4]) or "none"
            raise StageConfigError(f"no input shard {path.name} for this pod's index {i} in {input_dir} (have: {have})")
        return [(i, [(path, "jsonl")])], len(shards), i
    if not shards:
        raise StageConfigError(f"no data-prep shards (shard-NNNNN.jsonl.zst) in {input_dir}")
    return [(shard_index(p) or 0, [(p, "jsonl")]) for p in shards], len(shards), None


def run_stage(config_file: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The pack stage on its mounted config: packs this pod's shard (or all), writes manifests and the summary."""
    environ = dict(os.environ if env is None else env)
    config = read_stage_config("pack", config_file)
    who = "the pack stage"
    input_dir = Path(storage_path(config.input, who, environ))
    output = Path(storage_path(config.output, who, environ))
    tok = PackTokenizer.load(storage_path(config.tokenizer, who, environ))
    settings = Settings.of_config(config, _stage_workers())
    check(settings, tok)
    jobs, count, index = _stage_jobs(input_dir, environ)
    manifests = pack_inputs(jobs, output, settings, tok, _say)
    warnings = [w for m in manifests for w in m["warnings"]]
    for w in warnings:
        _say(f"warning: {w}")
    counts = totals(manifests)
    artifacts = _artifacts(manifests, config.output)
    env_ = config.envelope
    if env_.manifest and env_.run_id and env_.stage:
        where = storage_path(env_.manifest, who, environ)
        if index is not None and count > 1:
            where = (where[:-5] if where.endswith(".json") else where) + f".{shard_name(index)}.json"
        stage_manifest = {
            "kind": "kiln.stage-manifest/v1",
            "runId": env_.run_id,
            "stage": env_.stage,
            "attempt": env_.attempt,
            "artifacts": artifacts,
            "counts": counts,
            "warnings": warnings,
        }
        Path(where).parent.mkdir(parents=True, exist_ok=True)
        Path(where).write_text(json.dumps(stage_manifest, indent=2) + "\n", encoding="utf-8")
    summary: dict[str, Any] = {"metrics": dict(counts), "artifacts": artifacts}
    if index is not None:
        summary["shard"] = index
    if warnings:
        summary["warnings"] = [w[:300] for w in warnings[:5]]
    write_summary(summary, environ)
    return summary


# --- the human CLI -----------------------------------------------------------------------------------------------


def _run_command(args: argparse.Namespace) -> int:
    tok = PackTokenizer.load(args.tokenizer)
    settings = Settings(
        seq_len=args.seq_len,
        objective=args.objective,
        seed=args.seed,
        fim=FimParams(args.fim_rate, args.spm_rate, args.fim_level, args.fim_truncation),
        denoisers=tuple(Denoiser.of(d) for d in DEFAULT_DENOISERS),
        workers=args.workers,
    )
    check(settings, tok)
    try:
        found = input_files(args.input)
    except FileNotFoundError as e:
        raise StageConfigError(str(e)) from e
    one = Path(args.input[0])
    if len(args.input) == 1 and one.is_dir() and data_prep_shards(one):
        jobs = [(shard_index(p) or 0, [(p, "jsonl")]) for p in data_prep_shards(one)]
    else:
        jobs = [(0, found)]
    started = time.monotonic()
    manifests = pack_inputs(jobs, Path(args.output), settings, tok, _say)
    seconds = time.monotonic() - started
    counts = totals(manifests)
    warnings = [w for m in manifests for w in m["warnings"]]
    for w in warnings:
        _say(f"warning: {w}")
    if args.json:
        print(
            json.dumps(
                {
                    "output": os.fspath(args.output),
                    **counts,
                    "seconds": round(seconds, 3),
                    "objective": settings.objective_json(),
                    "counts": [m["counts"] for m in manifests],
                    "warnings": warnings,
                }
            )
        )
    else:
        print(
            f"packed {counts['records_tokenized']} of {counts['records_in']} records "
            f"({counts['records_dropped']} dropped) "
            f"into {counts['sequences']} sequences of {settings.seq_len} ({counts['tokens']} tokens, "
            f"{counts['pad_tokens']} padding) in {counts['shards']} shard(s) at {args.output}, {seconds:.1f} s"
        )
        for m in manifests:
            if m["counts"]:
                print(f"  shard {m['shard']}: {json.dumps(m['counts'])}")
    return 0


_GREEN, _DIM, _RESET = "\x1b[32;1m", "\x1b[2m", "\x1b[0m"


def _segments(
    tokens: npt.NDArray[Any], target: npt.NDArray[np.bool_], never: set[int]
) -> list[tuple[int, int, bool, bool]]:
    """Runs (start, end, is target, is padding) of a sequence."""
    pad = np.isin(tokens, np.array(sorted(never), dtype=tokens.dtype))
    key = target.astype(np.int8) * 2 + pad.astype(np.int8)
    cuts = np.flatnonzero(np.diff(key)) + 1
    bounds = [0, *cuts.tolist(), int(tokens.size)]
    return [(a, b, bool(target[a]), bool(pad[a])) for a, b in itertools.pairwise(bounds)]


def render(ds: PackedDataset, g: int, tok: PackTokenizer, color: bool) -> tuple[str, list[dict[str, Any]]]:
    """Sequence g decoded with its loss mask shown: targets bracketed ⟦…⟧ (or green), padding collapsed."""
    tokens, _ = ds[g]
    target = ds.loss_mask(g)
    never = set(ds.never_targets)
    out: list[str] = []
    parts: list[dict[str, Any]] = []
    for a, b, is_target, is_pad in _segments(np.asarray(tokens), target, never):
        text = f"{tok.decode([int(tokens[a])])}*{b - a}" if is_pad else tok.decode([int(t) for t in tokens[a:b]])
        parts.append({"text": text, "target": is_target, "tokens": b - a})
        if color:
            out.append(f"{_GREEN}{text}{_RESET}" if is_target else f"{_DIM}{text}{_RESET}")
        else:
            out.append(f"⟦{text}⟧" if is_target else text)
    return "".join(out), parts


def _inspect_command(args: argparse.Namespace) -> int:
    try:
        ds = PackedDataset(args.folder)
    except (FileNotFoundError, ValueError) as e:
        raise StageConfigError(str(e)) from e
    counts = totals(ds.manifests)
    first = ds.manifests[0]
    report: dict[str, Any] = {
        "folder": os.fspath(args.folder),
        **counts,
        "seq_len": ds.seq_len,
        "dtype": first["dtype"],
        "objective": first["objective"],
        "mask": ds.has_mask,
        "never_targets": list(ds.never_targets),
        "per_shard": [{"shard": m["shard"], "sequences": m["sequences"], "counts": m["counts"]} for m in ds.manifests],
    }
    if args.verify:
        report["problems"] = ds.verify()
    samples = []
    texts = []
    n = min(args.decode, len(ds))
    if n:
        folder = args.tokenizer or first["tokenizer"]["path"]
        if not Path(folder, "tokenizer.json").is_file():
            raise StageConfigError(
                f"no tokenizer at {folder} (where these sequences were packed from); give --tokenizer DIR"
            )
        tok = PackTokenizer.load(folder)
        if tok.digest != first["tokenizer"]["digest"]:
            raise StageConfigError(f"the tokenizer in {folder} is not the one these sequences were packed with")
        color = sys.stdout.isatty() and not args.json
        for g in range(n):
            text, parts = render(ds, g, tok, color)
            samples.append({"index": g, "segments": parts})
            texts.append(text)
    if args.json:
        print(json.dumps({**report, "samples": samples}))
    else:
        print(
            f"{args.folder}: {counts['sequences']} sequences of {ds.seq_len} ({first['dtype']}) in {counts['shards']} "
            f"shard(s), objective {json.dumps(first['objective'])}; {counts['tokens']} tokens, "
            f"{counts['pad_tokens']} padding, {counts['documents']} documents; records {counts['records_in']} in, "
            f"{counts['records_tokenized']} tokenized, {counts['records_dropped']} dropped"
        )
        for m in ds.manifests:
            if m["counts"]:
                print(f"  shard {m['shard']}: {json.dumps(m['counts'])}")
        if args.verify:
            print(
                "  files: " + ("all match their manifests" if not report["problems"] else "; ".join(report["problems"]))
            )
        if n:
            how = "loss mask" if ds.has_mask else "every token but padding"
            print(
                f"targets ({how}) are {'green' if sys.stdout.isatty() else 'in ⟦…⟧'}; padding is shown as <pad>*count"
            )
        for g, text in enumerate(texts):
            print(f"--- sequence {g} ---")
            print(text)
    return 1 if args.verify and report["problems"] else 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kiln_trainer.pack", description=__doc__.split("\n")[0])
    p.add_argument("--config", help="the stage's mounted config (the stage: packs the pod's shard)")
    sub = p.add_subparsers(dest="command")
    r = sub.add_parser("run", help="tokenize and pack inputs into a packed folder")
    r.add_argument("--tokenizer", required=True, help="a tokenizer folder (tokenizer.json, kiln-tokenizer.json)")
    r.add_argument(
        "--input",
        required=True,
        nargs="+",
        action="extend",
        help="data-prep shard folders, JSON Lines files, code trees",
    )
    r.add_argument("--output", required=True, help="the packed folder to write")
    r.add_argument("--seq-len", required=True, type=int, help="tokens per sequence")
    r.add_argument("--objective", choices=("next-token", "fim", "ul2"), default="next-token")
    r.add_argument("--fim-rate", type=float, default=0.5, help="share of documents (or fragments) made FIM")
    r.add_argument("--spm-rate", type=float, default=0.5, help="share of FIM examples in SPM order")
    r.add_argument("--fim-level", choices=("document", "context"), default="context")
    r.add_argument("--fim-truncation", choices=("none", "suffix"), default="none")
    r.add_argument("--seed", type=int, default=42, help="seed of every random choice (the spec's default, 42)")
    r.add_argument("--workers", type=int, default=None, help="tokenizing processes (default: the CPUs this may use)")
    r.add_argument("--json", action="store_true", help="one JSON object on stdout")
    i = sub.add_parser("inspect", help="what a packed folder holds, and sequences decoded with their loss masks")
    i.add_argument("folder", type=Path)
    i.add_argument("--decode", type=int, default=2, metavar="N", help="decode the first N sequences (default 2)")
    i.add_argument("--tokenizer", help="the tokenizer folder (default: the one the manifest names)")
    i.add_argument("--verify", action="store_true", help="re-hash every file against its manifest")
    i.add_argument("--json", action="store_true", help="one JSON object on stdout")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The module's entry: the stage (`--config`), `run` or `inspect`."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.config and args.command is None:
        return exit_on_config_error("pack", lambda: (run_stage(args.config), 0)[1])
    if args.command is None:
        parser.print_usage(sys.stderr)
        _say("give --config FILE (the stage), run or inspect")
        return TERMINAL_EXIT
    if args.command == "run" and args.workers is None:
        args.workers = _stage_workers()
    if args.command == "run" and (args.seq_len < 1 or args.workers < 1):
        _say("--seq-len and --workers must be at least 1")
        return TERMINAL_EXIT
    command = _run_command if args.command == "run" else _inspect_command
    try:
        return command(args)
    except StageConfigError as e:
        _say(str(e))
        return TERMINAL_EXIT
    except Exception as e:
        _say(f"failed: {type(e).__name__}: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
