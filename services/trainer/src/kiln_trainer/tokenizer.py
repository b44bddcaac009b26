"""The tokenizer stage: train a byte-level BPE or Unigram tokenizer on a sample of the cleaned shards, or take a
pretrained one, and measure it on held-out code.

As a stage (the controller mounts the config)::

    python -m kiln_trainer.tokenizer --config /etc/kiln/stage.json

By hand (the `kiln tokenizer train` front door calls exactly this)::

    python -m kiln_trainer.tokenizer train --input DIR_OR_FILE... --output DIR [--algorithm bpe|unigram]
        [--vocab-size N] [--sample-size 16MiB] [--seed N] [--special-token T ...] [--fim-sentinels]
        [--ul2-sentinels N] [--json]

What it writes into the output folder: `tokenizer.json` (Hugging Face tokenizers), `kiln-tokenizer.json` (the roles
of the special tokens, kiln_trainer.special), `tokenizer_config.json` and `special_tokens_map.json` (so
`transformers.AutoTokenizer.from_pretrained(folder)` works offline); and the stage manifest at the envelope's
`manifest` location (by hand: `manifest.json` in the output folder). See docs/tokenizer.md.

Held-out documents (1 in `HELD_OUT_EVERY`, by a hash of their content) are never trained on; bytes per token and
the share of the vocabulary used are measured on them, encoding as the pack stage does (special tokens in the text
are ordinary text: `encode_special_tokens = True`).
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import json
import random
import re
import shutil
import sys
import time
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zstandard
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from kiln_trainer.corpus import Document, Ledger, data_prep_shards, input_files, read_documents
from kiln_trainer.special import ROLES_FILE, SpecialTokens
from kiln_trainer.stage import (
    TERMINAL_EXIT,
    StageConfigError,
    TokenizerConfig,
    exit_on_config_error,
    file_digest,
    read_stage_config,
    storage_path,
    write_summary,
)

__all__ = [
    "BYTE_ALPHABET_SIZE",
    "HELD_OUT_EVERY",
    "PRETOKENIZER_PATTERN",
    "Corpus",
    "Measurement",
    "Result",
    "TrainSpec",
    "is_held_out",
    "main",
    "measure",
    "new_tokenizer",
    "parse_size",
    "read_corpus",
    "train_tokenizer",
]

PRETOKENIZER_PATTERN = r"\n?[ \t]*[^\s]+| [^\s]+|\s+"
"""kiln's pre-tokenizer: a line's newline and indentation go with its first run of non-space characters, each later
run keeps the one space before it, and any other whitespace (blank lines, runs of spaces) is a piece of its own.
Pieces are not split at punctuation (`self.assertEqual(` is one piece), which is what lets BPE learn the long,
frequent pieces of code; measured against GPT-2's regex and SentencePiece in docs/tokenizer.md."""

MAX_TOKEN_LENGTH = 32
"""BPE learns no token longer than this many characters: as good held out as no limit, and trains faster."""

BYTE_ALPHABET_SIZE = 256
"""Byte-level: every byte is a token, so any text encodes and decodes exactly."""

HELD_OUT_EVERY = 20
"""One document in this many (by the hash of its content: the same on every run, whatever the seed) is held out."""

HELD_OUT_MAX_BYTES = 32 << 20
"""At most this much held-out code (a seeded random subset of it) is measured."""

DEFAULT_SPECIAL_TOKENS = ("<|endoftext|>", "<|padding|>")
DEFAULT_SAMPLE_SIZE = 16 << 20
DEFAULT_VOCAB_SIZE = 32768
FILES = ("tokenizer.json", ROLES_FILE, "tokenizer_config.json", "special_tokens_map.json")
_PROGRESS_SECONDS = 5.0


# --- the sample ------------------------------------------------------------------------------------------------


def is_held_out(text: str) -> bool:
    """Whether a document is held out: 1 in `HELD_OUT_EVERY` by the sha256 of its content (duplicates agree)."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % HELD_OUT_EVERY == 0


class _Reservoir:
    """A seeded uniform random subset of documents whose bytes fit a budget, kept while streaming.

    Each document gets a random key; the ones with the smallest keys are kept, and the largest are let go while the
    kept bytes exceed the budget (so memory stays within the budget plus one document).
    """

    def __init__(self, budget: int, rng: random.Random) -> None:
        self.budget = budget
        self.rng = rng
        self.bytes = 0
        self.let_go = 0
        self._heap: list[tuple[float, int, Document, int]] = []

    def offer(self, doc: Document) -> None:
        size = len(doc.text.encode("utf-8"))
        heapq.heappush(self._heap, (-self.rng.random(), len(self._heap) + self.let_go, doc, size))
        self.bytes += size
        while self.bytes > self.budget and self._heap:
            _, _, _, gone = heapq.heappop(self._heap)
            self.bytes -= gone
            self.let_go += 1

    def documents(self) -> list[Document]:
        """The kept documents, in the random order of their keys (deterministic for a seed and input)."""
        return [d for _, _, d, _ in sorted(self._heap, key=lambda e: (-e[0], e[1]))]


@dataclass
class Corpus:
    """What was read: the training sample, the held-out documents measured, and the counts of every record."""

    sample: list[Document]
    """The training sample (at most the sample size, in bytes)."""
    held_out: list[Document]
    """The held-out documents measured (at most `HELD_OUT_MAX_BYTES`)."""
    ledger: Ledger
    """Records in and dropped by reason."""
    not_sampled: int = 0
    """Training-side documents left out of the sample."""
    held_out_documents: int = 0
    """Every held-out document (measured or not)."""
    sample_bytes: int = 0
    """UTF-8 bytes of the sample."""
    sample_digest: str = ""
    """sha256 of the sample (each document's length and bytes, in sample order)."""
    files: int = 0
    """Input files read."""

    @property
    def counts(self) -> dict[str, int]:
        """The record counts; records_in = sampled + not_sampled + held_out + dropped always."""
        dropped = sum(self.ledger.dropped.values())
        out = {
            "records_in": self.ledger.records_in,
            "records_kept": self.ledger.kept,
            "records_dropped": dropped,
            "records_sampled": len(self.sample),
            "records_not_sampled": self.not_sampled,
            "records_held_out": self.held_out_documents,
            "files": self.files,
        }
        out.update({f"dropped_{reason}": n for reason, n in sorted(self.ledger.dropped.items())})
        return out


def _digest(docs: Iterable[Document]) -> tuple[str, int]:
    h = hashlib.sha256()
    total = 0
    for d in docs:
        data = d.text.encode("utf-8")
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
        total += len(data)
    return "sha256:" + h.hexdigest(), total


def _progress(stream: Iterator[Document], ledger: Ledger, quiet: bool) -> Iterator[Document]:
    last = time.monotonic()
    read = 0
    for doc in stream:
        read += len(doc.text)
        now = time.monotonic()
        if not quiet and now - last >= _PROGRESS_SECONDS:
            print(f"tokenizer: read {ledger.records_in} records, {read / 1e6:.1f} M characters", file=sys.stderr)
            last = now
        yield doc


def read_corpus(files: Sequence[tuple[Path, str]], sample_size: int | None, seed: int, quiet: bool = True) -> Corpus:
    """Streams `files` once: held-out documents to one seeded reservoir, the rest to the sample's.

    `sample_size` None takes no sample (a pretrained tokenizer is only measured).
    """
    ledger = Ledger()
    rng = random.Random(seed)
    train = _Reservoir(sample_size or 0, random.Random(rng.random()))
    held = _Reservoir(HELD_OUT_MAX_BYTES, random.Random(rng.random()))
    held_count = 0
    for doc in _progress(read_documents(files, ledger), ledger, quiet):
        if is_held_out(doc.text):
            held.offer(doc)
            held_count += 1
        else:
            train.offer(doc)
    sample = train.documents()
    digest, size = _digest(sample)
    return Corpus(sample, held.documents(), ledger, train.let_go, held_count, size, digest, len(files))


# --- training --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainSpec:
    """What tokenizer to train."""

    algorithm: str
    """`bpe` or `unigram`."""
    vocab_size: int
    """Tokens in the vocabulary, special tokens included."""
    special: SpecialTokens
    """The special tokens and their roles."""


def _pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZER_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )


def new_tokenizer(algorithm: str) -> Tokenizer:
    """An untrained byte-level tokenizer of `algorithm` with kiln's pre-tokenizer (no normalizer: exact bytes)."""
    model: models.Model = models.BPE() if algorithm == "bpe" else models.Unigram()
    tok = Tokenizer(model)
    tok.pre_tokenizer = _pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    return tok


def _trainer(spec: TrainSpec) -> trainers.Trainer:
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    specials = list(spec.special.special_tokens)
    if spec.algorithm == "bpe":
        return trainers.BpeTrainer(
            vocab_size=spec.vocab_size,
            special_tokens=specials,
            initial_alphabet=alphabet,
            max_token_length=MAX_TOKEN_LENGTH,
            show_progress=False,
        )
    return trainers.UnigramTrainer(
        vocab_size=spec.vocab_size, special_tokens=specials, initial_alphabet=alphabet, show_progress=False
    )


def _split_at_specials(docs: Iterable[Document], specials: Sequence[str]) -> Iterator[str]:
    """The documents' texts, each cut in the middle of every literal special token it holds.

    A piece of training text never spans two texts, so the trainer never learns a token spelling a special token:
    were it to, that token would share the special token's id, and a literal `<|endoftext|>` in code would encode as
    the end of text even with `encode_special_tokens = True`.
    """
    pattern = re.compile("|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True))) if specials else None
    for d in docs:
        if pattern is None or pattern.search(d.text) is None:
            yield d.text
            continue
        start = 0
        for m in pattern.finditer(d.text):
            cut = m.start() + max(1, (m.end() - m.start()) // 2)
            yield d.text[start:cut]
            start = cut
        yield d.text[start:]


def check_specials(tok: Tokenizer, special: SpecialTokens) -> list[str]:
    """Problems with the special tokens: each must be one token, and ordinary text must never produce one."""
    problems: list[str] = []
    ids = {tok.token_to_id(s): s for s in special.special_tokens}
    for s in special.special_tokens:
        one = tok.encode(s, add_special_tokens=False).ids
        if len(one) != 1 or one[0] not in ids:
            problems.append(f"{s!r} does not encode to one special id ({one})")
    before = tok.encode_special_tokens
    tok.encode_special_tokens = True
    try:
        for s in special.special_tokens:
            for text in (s, f"x = '{s}'\n", f"\n{s}\n", f" {s}"):
                hit = [i for i in tok.encode(text, add_special_tokens=False).ids if i in ids]
                if hit:
                    problems.append(f"the text {text!r} produces the special token {ids[hit[0]]!r}")
    finally:
        tok.encode_special_tokens = before
    return problems


UNREACHABLE_SCORE = -1e6
"""A Unigram piece with this log-probability is never chosen while any other segmentation exists (bytes always do)."""


def _unreachable_specials(tok: Tokenizer, special: SpecialTokens) -> Tokenizer:
    """The Unigram tokenizer with its special pieces' scores at `UNREACHABLE_SCORE`.

    The Unigram trainer puts the special tokens in the model's vocabulary with score 0 (the most likely piece of
    all): with `encode_special_tokens = True` a literal `<|endoftext|>` in code would still be segmented as that
    piece, whose id is the special token's. Their ids and their matching as added tokens do not change.
    """
    data = json.loads(tok.to_str())
    names = set(special.special_tokens)
    for entry in data["model"]["vocab"]:
        if entry[0] in names:
            entry[1] = UNREACHABLE_SCORE
    return Tokenizer.from_str(json.dumps(data))


def train_tokenizer(sample: Sequence[Document], spec: TrainSpec) -> Tokenizer:
    """A tokenizer trained on `sample` (special tokens first, ids 0..k-1 in order); RuntimeError if its specials
    are not sound (see `check_specials`)."""
    tok = new_tokenizer(spec.algorithm)
    texts = _split_at_specials(sample, spec.special.special_tokens)
    tok.train_from_iterator(texts, _trainer(spec), length=len(sample))
    if spec.algorithm == "unigram":
        tok = _unreachable_specials(tok, spec.special)
    problems = check_specials(tok, spec.special)
    if problems:
        raise RuntimeError("the trained tokenizer's special tokens are not sound: " + "; ".join(problems))
    return tok


# --- measuring -------------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    """A tokenizer on held-out code, encoded as the pack stage does (special tokens in text are ordinary text)."""

    documents: int = 0
    bytes: int = 0
    tokens: int = 0
    by_language: dict[str, tuple[int, int]] = field(default_factory=dict)
    """language -> (bytes, tokens)."""
    ids_used: int = 0
    """Distinct token ids produced."""
    roundtrip_failures: int = 0
    """Documents whose decode(encode(text)) differs from the text (0 for kiln's tokenizers)."""

    @property
    def bytes_per_token(self) -> float:
        """Held-out UTF-8 bytes per token."""
        return self.bytes / self.tokens if self.tokens else float("nan")


def measure(tok: Tokenizer, docs: Sequence[Document], batch: int = 256) -> Measurement:
    """Bytes per token (overall and per language), the distinct ids used, and exact round trips, on `docs`."""
    m = Measurement()
    per: dict[str, list[int]] = {}
    used: set[int] = set()
    before = tok.encode_special_tokens
    tok.encode_special_tokens = True
    try:
        for i in range(0, len(docs), batch):
            chunk = docs[i : i + batch]
            encs = tok.encode_batch([d.text for d in chunk], add_special_tokens=False)
            ids = [e.ids for e in encs]
            decoded = tok.decode_batch(ids, skip_special_tokens=False)
            for d, e, back in zip(chunk, ids, decoded, strict=True):
                n = len(d.text.encode("utf-8"))
                m.documents += 1
                m.bytes += n
                m.tokens += len(e)
                slot = per.setdefault(d.language or "unknown", [0, 0])
                slot[0] += n
                slot[1] += len(e)
                used.update(e)
                m.roundtrip_failures += back != d.text
    finally:
        tok.encode_special_tokens = before
    m.by_language = {k: (v[0], v[1]) for k, v in sorted(per.items())}
    m.ids_used = len(used)
    return m


# --- writing ---------------------------------------------------------------------------------------------------


def _transformers_files(folder: Path, special: SpecialTokens) -> None:
    """tokenizer_config.json and special_tokens_map.json: what AutoTokenizer.from_pretrained(folder) reads."""
    named = {"eos_token": special.eot, **({"pad_token": special.pad} if special.pad else {})}
    others = [t for t in special.special_tokens if t not in named.values()]
    tokens_map: dict[str, Any] = {**named, "additional_special_tokens": others}
    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **tokens_map,
        "clean_up_tokenization_spaces": False,
        "add_prefix_space": False,
        "model_max_length": 1 << 30,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(tokens_map, indent=2) + "\n", encoding="utf-8")


def _artifacts(folder: Path, uri: str) -> list[dict[str, Any]]:
    base = uri if uri.endswith("/") else uri + "/"
    return [
        {
            "name": name,
            "uri": base + name,
            "digest": file_digest(folder / name),
            "bytes": (folder / name).stat().st_size,
        }
        for name in FILES
        if (folder / name).is_file()
    ]


@dataclass
class Result:
    """What a run made: the numbers for the manifest and the summary."""

    counts: dict[str, int]
    metrics: dict[str, float]
    artifacts: list[dict[str, Any]]
    warnings: list[str]
    output: Path

    def manifest(self, envelope: Mapping[str, Any]) -> dict[str, Any]:
        """The stage manifest (manifest.schema.json): everything, unabridged."""
        head = {k: envelope[k] for k in ("runId", "stage", "attempt") if envelope.get(k) is not None}
        return {
            "kind": "kiln.stage-manifest/v1",
            **{"stage": "tokenizer", "attempt": 1, **head},
            "artifacts": self.artifacts,
            "counts": self.counts,
            "metrics": self.metrics,
            "warnings": self.warnings,
        }

    def summary(self) -> dict[str, Any]:
        """The summary (at most 4096 bytes; write_summary trims it further if it must)."""
        keep = (
            "bytes_per_token",
            "vocab_used_share",
            "vocab_size",
            "sample_bytes",
            "sample_documents",
            "train_seconds",
        )
        metrics = {k: self.metrics[k] for k in keep if k in self.metrics}
        metrics.update({k: float(self.counts[k]) for k in ("records_in", "records_dropped") if k in self.counts})
        metrics.update({k: v for k, v in self.metrics.items() if k.startswith("bytes_per_token_")})
        artifacts = [a for a in self.artifacts if a["name"] in ("tokenizer.json", ROLES_FILE)]
        return {"metrics": metrics, "artifacts": artifacts, "warnings": self.warnings[:3]}


def _metrics(m: Measurement, vocab_size: int) -> dict[str, float]:
    """The measurement's metrics; bytes per token only where tokens were measured (JSON has no NaN)."""
    out: dict[str, float] = {
        **({"bytes_per_token": m.bytes_per_token} if m.tokens else {}),
        "vocab_size": float(vocab_size),
        "vocab_used_share": m.ids_used / vocab_size if vocab_size else 0.0,
        "heldout_bytes": float(m.bytes),
        "heldout_documents": float(m.documents),
        "heldout_tokens": float(m.tokens),
        "heldout_roundtrip_failures": float(m.roundtrip_failures),
    }
    for lang, (b, t) in m.by_language.items():
        if t:
            out[f"bytes_per_token_{re.sub(r'[^a-z0-9]+', '_', lang.lower())}"] = b / t
    return out


def _measured_warnings(m: Measurement) -> list[str]:
    out = []
    if m.documents == 0:
        out.append("no held-out documents: the input is too small to measure on (1 document in 20 is held out)")
    if m.roundtrip_failures:
        out.append(f"{m.roundtrip_failures} held-out documents do not decode back to their text")
    return out


# --- the two ways in -------------------------------------------------------------------------------------------


def _check_vocab(spec: TrainSpec) -> None:
    need = BYTE_ALPHABET_SIZE + len(spec.special.special_tokens)
    if spec.vocab_size < need:
        raise StageConfigError(
            f"vocab_size {spec.vocab_size} is smaller than the byte alphabet ({BYTE_ALPHABET_SIZE}) plus the "
            f"{len(spec.special.special_tokens)} special tokens ({need}); set vocab_size to at least {need} "
            "(a multiple of 64, e.g. 4096)"
        )
    if spec.algorithm not in ("bpe", "unigram"):
        raise StageConfigError(f"algorithm {spec.algorithm!r} is not one of bpe, unigram")
    short = [s for s in spec.special.special_tokens if len(s.encode("utf-8")) < 2]
    if short:
        raise StageConfigError(f"special tokens {short} are single bytes, which ordinary text always holds")


def _no_documents(corpus: Corpus, where: str) -> StageConfigError:
    reasons = ", ".join(f"{n} {r} (first at {corpus.ledger.examples.get(r)})" for r, n in corpus.ledger.dropped.items())
    dropped = f"; every record was dropped: {reasons}" if reasons else ""
    return StageConfigError(
        f"no usable documents in {where} ({corpus.ledger.records_in} records in {corpus.files} files{dropped}); "
        "point the input at data-prep's output with non-empty shards"
    )


def run_train(files: Sequence[tuple[Path, str]], where: str, spec: TrainSpec, sample_size: int, seed: int,
              output: Path, output_uri: str, quiet: bool = True) -> Result:  # fmt: skip
    """Reads, samples, trains, checks, measures and writes the tokenizer folder."""
    _check_vocab(spec)
    corpus = read_corpus(files, sample_size, seed, quiet)
    if corpus.ledger.kept == 0:
        raise _no_documents(corpus, where)
    if not corpus.sample:
        raise StageConfigError(
            f"the training sample from {where} is empty: every usable document is held out or larger than "
            f"sample_size {sample_size}; raise sample_size or give more input"
        )
    if not quiet:
        print(f"tokenizer: training {spec.algorithm} on {corpus.sample_bytes / 1e6:.1f} MB", file=sys.stderr)
    t0 = time.perf_counter()
    tok = train_tokenizer(corpus.sample, spec)
    seconds = time.perf_counter() - t0
    warnings = []
    got = tok.get_vocab_size(with_added_tokens=True)
    if got != spec.vocab_size:
        warnings.append(
            f"{spec.algorithm} reached {got} of the {spec.vocab_size} tokens asked for: the sample "
            f"({corpus.sample_bytes} bytes) is too small or too repetitive; raise sample_size"
        )
    m = measure(tok, corpus.held_out)
    warnings += _measured_warnings(m)
    _write_folder(tok, spec.special, output)
    metrics = {
        **_metrics(m, got),
        "vocab_size_asked": float(spec.vocab_size),
        "sample_bytes": float(corpus.sample_bytes),
        "sample_documents": float(len(corpus.sample)),
        "train_seconds": seconds,
    }
    artifacts = _artifacts(output, output_uri)
    artifacts.append(
        {"name": "training-sample", "uri": where, "digest": corpus.sample_digest, "bytes": corpus.sample_bytes}
    )
    return Result(corpus.counts, metrics, artifacts, warnings, output)


def _write_folder(tok: Tokenizer, special: SpecialTokens, output: Path) -> None:
    output.mkdir(parents=True, exist_ok=True)
    tok.save(str(output / "tokenizer.json"))
    special.write(output)
    _transformers_files(output, special)


def _load_pretrained(path: Path) -> tuple[Tokenizer, Path]:
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        sp = sorted(path.glob("*.model")) if path.is_dir() else []
        hint = (
            f"; {sp[0].name} looks like a SentencePiece model: convert it to tokenizer.json first "
            "(transformers' convert_slow_tokenizer)"
            if sp
            else ""
        )
        raise StageConfigError(
            f"no tokenizer.json at {path}{hint}; set tokenizer.pretrained.path to a folder holding one, or to the file"
        )
    try:
        return Tokenizer.from_file(str(file)), file
    except Exception as e:  # tokenizers raises a plain Exception for a file it cannot parse
        raise StageConfigError(
            f"{file} is not a Hugging Face tokenizer.json ({str(e)[:200]}); point tokenizer.pretrained.path at one"
        ) from e


def _pretrained_roles(tok: Tokenizer, section: Mapping[str, Any], folder: Path) -> SpecialTokens:
    added = [a.content for _, a in sorted(tok.get_added_tokens_decoder().items()) if a.special]
    listed = section.get("special_tokens") or []
    if not listed and not section.get("fim_sentinels") and not section.get("ul2_sentinels"):
        try:
            return SpecialTokens.read(folder, added)
        except ValueError as e:
            raise StageConfigError(f"the pretrained tokenizer's roles: {e}; list its special_tokens in the spec") from e
    special = SpecialTokens.of_section(section)
    missing = [s for s in special.special_tokens if tok.token_to_id(s) is None]
    if missing:
        raise StageConfigError(
            f"the pretrained tokenizer has no tokens {missing[:5]}; list only special tokens it has in "
            "tokenizer.pretrained.special_tokens"
        )
    return special


def run_pretrained(section: Mapping[str, Any], files: Sequence[tuple[Path, str]], where: str, seed: int,
                   output: Path, output_uri: str, env: Mapping[str, str] | None = None) -> Result:  # fmt: skip
    """Copies a pretrained tokenizer (a folder or a tokenizer.json) and measures it on the held-out code."""
    if section.get("hub"):
        raise StageConfigError(
            f"tokenizer.pretrained.hub {section['hub']!r} cannot be fetched: this stage reads only its storage (no "
            "network). Download the tokenizer's folder, put it in the run's storage and set tokenizer.pretrained.path"
        )
    given = str(section.get("path") or "")
    if not given:
        raise StageConfigError("tokenizer.pretrained needs a path (a folder with tokenizer.json, or the file)")
    path = Path(storage_path(given, "the tokenizer stage", env) if "://" in given else given)
    tok, file = _load_pretrained(path)
    special = _pretrained_roles(tok, section, file.parent)
    got = tok.get_vocab_size(with_added_tokens=True)
    asked = int(section.get("vocab_size") or got)
    if got > asked:
        raise StageConfigError(
            f"the pretrained tokenizer at {file} has {got} tokens, more than tokenizer.pretrained.vocab_size {asked}: "
            f"set vocab_size to at least {got}"
        )
    corpus = read_corpus(files, None, seed)
    if corpus.ledger.kept == 0:
        raise _no_documents(corpus, where)
    output.mkdir(parents=True, exist_ok=True)
    if file.resolve() != (output / "tokenizer.json").resolve():
        shutil.copyfile(file, output / "tokenizer.json")
    special.write(output)
    if not (output / "tokenizer_config.json").is_file():
        _transformers_files(output, special)
    m = measure(tok, corpus.held_out)
    warnings = _measured_warnings(m) + [f"special tokens: {p}" for p in check_specials(tok, special)[:3]]
    if got < asked:
        warnings.append(f"the pretrained tokenizer has {got} tokens; the spec's vocab_size is {asked}")
    counts = {**corpus.counts, "records_not_sampled": corpus.ledger.kept - corpus.held_out_documents}
    return Result(counts, _metrics(m, got), _artifacts(output, output_uri), warnings, output)


# --- the stage -------------------------------------------------------------------------------------------------


def _stage_files(input_dir: str, uri: str) -> list[tuple[Path, str]]:
    folder = Path(input_dir)
    if not folder.is_dir():
        raise StageConfigError(f"the input {uri} ({folder}) is not a folder: run data-prep first, or fix input")
    shards = data_prep_shards(folder)
    if not shards:
        raise StageConfigError(
            f"no data-prep shards (shard-NNNNN.jsonl.zst) in {folder} (input {uri}): run the data-prep and dedup "
            "stages first, or point input at their output"
        )
    return [(s, "jsonl") for s in shards]


def run_stage(config_path: str, env: Mapping[str, str] | None = None) -> int:
    """The stage: reads the mounted config, makes the tokenizer, writes the manifest and the summary."""
    cfg: TokenizerConfig = read_stage_config("tokenizer", config_path)
    raw: dict[str, Any] = json.loads(Path(config_path).read_text(encoding="utf-8"))
    section: dict[str, Any] = raw["tokenizer"]
    output = Path(storage_path(cfg.output, "the tokenizer stage", env))
    files = _stage_files(storage_path(cfg.input, "the tokenizer stage", env), cfg.input)
    if cfg.tokenizer.kind == "pretrained":
        result = run_pretrained(section, files, cfg.input, cfg.seed, output, cfg.output, env)
    else:
        spec = TrainSpec(cfg.tokenizer.algorithm or "bpe", cfg.tokenizer.vocab_size, SpecialTokens.of_section(section))
        sample = cfg.tokenizer.sample_size or DEFAULT_SAMPLE_SIZE
        result = run_train(files, cfg.input, spec, sample, cfg.seed, output, cfg.output, quiet=False)
    manifest = result.manifest(raw)
    target = Path(storage_path(cfg.envelope.manifest, "the tokenizer stage", env)) if cfg.envelope.manifest else None
    target = target or output / "manifest.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    write_summary(result.summary(), env)
    print(_human(result), file=sys.stderr)
    return 0


# --- the human CLI ---------------------------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(i?))?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Bytes of `16MiB`, `8MB`, `1.5GB`, `4096` (kB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024)."""
    m = _SIZE.match(text)
    if m is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size (e.g. 16MiB, 8MB, 1048576)")
    power = "kmgt".index(m.group(2).lower()) + 1 if m.group(2) else 0
    return int(float(m.group(1)) * (1024 if m.group(3) else 1000) ** power)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kiln_trainer.tokenizer", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="the stage's mounted config (the stage); or use the train command")
    sub = p.add_subparsers(dest="command")
    t = sub.add_parser("train", help="train a tokenizer on data-prep output, JSON Lines files or raw code")
    t.add_argument(
        "--input",
        nargs="+",
        action="extend",
        required=True,
        help="data-prep output folders, JSONL files (.gz/.zst), code",
    )
    t.add_argument("--output", required=True, help="the folder to write tokenizer.json and its companions into")
    t.add_argument("--algorithm", choices=("bpe", "unigram"), default="bpe")
    t.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE, help="tokens, special tokens included")
    t.add_argument("--sample-size", type=parse_size, default=DEFAULT_SAMPLE_SIZE, help="bytes to train on (16MiB)")
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--special-token", action="append", dest="special_tokens", metavar="T",
                   help="a special token (repeat; default <|endoftext|> and <|padding|>)")  # fmt: skip
    t.add_argument("--fim-sentinels", action="store_true", help="add <fim_prefix> <fim_middle> <fim_suffix> <fim_pad>")
    t.add_argument("--ul2-sentinels", type=int, default=0, metavar="N", help="add <extra_id_0> .. <extra_id_N-1>")
    t.add_argument("--json", action="store_true", help="print one JSON object instead of the human summary")
    return p


def _human(r: Result) -> str:
    m, c = r.metrics, r.counts
    lines = [
        f"tokenizer written to {r.output}",
        f"  vocabulary      {int(m['vocab_size'])} tokens, {m['vocab_used_share']:.1%} used on held-out code",
        f"  bytes per token {m.get('bytes_per_token', float('nan')):.3f} on {int(m['heldout_bytes'])} held-out bytes "
        f"({int(m['heldout_documents'])} documents)",
    ]
    lines += [
        f"    {k[len('bytes_per_token_') :]:<14}{v:.3f}" for k, v in m.items() if k.startswith("bytes_per_token_")
    ]
    if "sample_bytes" in m:
        lines.append(f"  sample          {int(m['sample_bytes'])} bytes, {int(m['sample_documents'])} documents")
        lines.append(f"  trained in      {m['train_seconds']:.1f} s")
    lines.append(
        f"  records         {c['records_in']} in: {c['records_sampled']} sampled, {c['records_not_sampled']} not "
        f"sampled, {c['records_held_out']} held out, {c['records_dropped']} dropped"
        + "".join(f", {k[8:]} {v}" for k, v in c.items() if k.startswith("dropped_"))
    )
    lines += [f"  warning: {w}" for w in r.warnings]
    return "\n".join(lines)


def _run_cli(args: argparse.Namespace) -> int:
    specials = list(args.special_tokens or DEFAULT_SPECIAL_TOKENS)
    section: dict[str, Any] = {"special_tokens": specials}
    if args.fim_sentinels:
        section["fim_sentinels"] = {}
    if args.ul2_sentinels:
        section["ul2_sentinels"] = {"count": args.ul2_sentinels}
    spec = TrainSpec(args.algorithm, args.vocab_size, SpecialTokens.of_section(section))
    try:
        files = input_files(args.input)
    except FileNotFoundError as e:
        raise StageConfigError(str(e)) from e
    output = Path(args.output)
    where = ", ".join(args.input)
    try:
        result = run_train(files, where, spec, args.sample_size, args.seed, output, output.as_posix(), quiet=False)
    except (OSError, EOFError, zlib.error, zstandard.ZstdError) as e:  # unreadable, or corrupt compression
        print(f"tokenizer train: cannot read the input: {e}", file=sys.stderr)
        return 1
    manifest = result.manifest({})
    (output / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(manifest) if args.json else _human(result))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The module's entry: the stage (`--config`) or the human CLI (`train ...`)."""
    args = _parser().parse_args(argv)
    if args.command == "train":
        try:
            return _run_cli(args)
        except StageConfigError as e:  # by hand: said on stderr only (no termination message)
            print(f"tokenizer train: {e}", file=sys.stderr)
            return TERMINAL_EXIT
    if not args.config:
        _parser().print_usage(sys.stderr)
        print("give --config FILE (the stage) or the train command", file=sys.stderr)
        return TERMINAL_EXIT
    return exit_on_config_error("tokenizer", lambda: run_stage(args.config))


if __name__ == "__main__":
    sys.exit(main())
