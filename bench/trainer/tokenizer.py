"""Tokenizer benchmark: kiln's tokenizer against SentencePiece BPE set up for code and a default byte-level BPE.

    node services/trainer/scripts/env.mjs run -- python bench/trainer/tokenizer.py [--vocab-size 8192]
        [--train-bytes 8MB] [--algorithm bpe] [--corpus DIR ...] [--json]

All three train on the same sample (kiln's seeded sample of the corpus, the Python standard library by default) at the
same vocabulary size, and are measured on the same held-out documents (kiln's hash split: never in the sample):
training time, peak RSS of the training process, bytes per token held out. Each trains in a forked process of its
own, so the RSS figures are not mixed up (they include the sample, which each holds). Prints figures; asserts
nothing.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import resource
import sys
import sysconfig
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

import kiln_trainer.tokenizer as kiln_tokenizer
from kiln_trainer.corpus import Document, input_files
from kiln_trainer.special import SpecialTokens
from kiln_trainer.tokenizer import TrainSpec, measure, parse_size, read_corpus, train_tokenizer

EOT = "<|endoftext|>"
Result = dict[str, Any]


def kiln(sample: Sequence[Document], held: Sequence[Document], vocab: int, algorithm: str) -> Result:
    """kiln's tokenizer, as the stage trains it."""
    t0 = time.perf_counter()
    tok = train_tokenizer(sample, TrainSpec(algorithm, vocab, SpecialTokens.of_section({"special_tokens": [EOT]})))
    seconds = time.perf_counter() - t0
    m = measure(tok, held)
    return {"seconds": seconds, "bytes_per_token": m.bytes_per_token, "roundtrip_failures": m.roundtrip_failures,
            "vocab": tok.get_vocab_size()}  # fmt: skip


def hf_default(sample: Sequence[Document], held: Sequence[Document], vocab: int, algorithm: str) -> Result:
    """Hugging Face tokenizers' byte-level BPE with its defaults (GPT-2's pre-tokenizer regex), on whole files."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
    t0 = time.perf_counter()
    tok.train_from_iterator((d.text for d in sample), trainer, length=len(sample))
    seconds = time.perf_counter() - t0
    m = measure(tok, held)
    return {"seconds": seconds, "bytes_per_token": m.bytes_per_token, "roundtrip_failures": m.roundtrip_failures,
            "vocab": tok.get_vocab_size()}  # fmt: skip


def _chunks(sample: Sequence[Document], lines: int = 8) -> Iterator[str]:
    for d in sample:
        parts = d.text.split("\n")
        for i in range(0, len(parts), lines):
            yield "\n".join(parts[i : i + lines]) + ("\n" if i + lines < len(parts) else "")


def sentencepiece_code(sample: Sequence[Document], held: Sequence[Document], vocab: int, algorithm: str) -> Result:
    """SentencePiece BPE set up for code: no split at whitespace, whitespace-only pieces, byte fallback, identity
    normalization, on 8-line chunks."""
    import sentencepiece as spm

    model = io.BytesIO()
    t0 = time.perf_counter()
    spm.SentencePieceTrainer.train(
        sentence_iterator=_chunks(sample), model_writer=model, vocab_size=vocab, model_type="bpe",
        split_by_whitespace=False, allow_whitespace_only_pieces=True, byte_fallback=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=False,
        character_coverage=1.0, max_sentence_length=1 << 20, input_sentence_size=0, num_threads=2, minloglevel=2,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    texts = [d.text for d in held]
    ids = sp.encode(texts)
    tokens = sum(len(i) for i in ids)
    failures = sum(sp.decode(i) != t for i, t in zip(ids, texts, strict=True))
    size = sum(len(t.encode("utf-8")) for t in texts)
    return {"seconds": seconds, "bytes_per_token": size / tokens, "roundtrip_failures": failures,
            "vocab": sp.get_piece_size()}  # fmt: skip


RUNNERS: dict[str, Callable[[Sequence[Document], Sequence[Document], int, str], Result]] = {
    "kiln": kiln,
    "sentencepiece-bpe-code": sentencepiece_code,
    "hf-bytelevel-bpe-default": hf_default,
}


def _child(name: str, sample: Sequence[Document], held: Sequence[Document], vocab: int, algorithm: str,
           conn: Connection) -> None:  # fmt: skip
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = RUNNERS[name](sample, held, vocab, algorithm)
    out["peak_rss_mb"] = max(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024
    conn.send(out)
    conn.close()


def run_forked(name: str, sample: Sequence[Document], held: Sequence[Document], vocab: int, algorithm: str) -> Result:
    """One runner in a forked process; its figures."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(name, sample, held, vocab, algorithm, child))
    p.start()
    result: Result = parent.recv()
    p.join()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Prints the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--train-bytes", type=parse_size, default=parse_size("8MB"))
    ap.add_argument("--algorithm", choices=("bpe", "unigram"), default="bpe", help="kiln's algorithm")
    ap.add_argument("--corpus", nargs="+", default=[sysconfig.get_paths()["stdlib"]], help="default: the stdlib")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--only", nargs="+", choices=sorted(RUNNERS), default=list(RUNNERS))
    ap.add_argument("--pre-tokenizer", metavar="REGEX", help="kiln with this Split pattern instead of its own")
    ap.add_argument("--max-token-length", type=int, help="kiln's BPE with this longest token instead of its own")
    ap.add_argument("--repeat", type=int, default=1, help="train each this many times; the fastest time is shown")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.pre_tokenizer:  # the runners run in forked processes: they see these
        kiln_tokenizer.PRETOKENIZER_PATTERN = args.pre_tokenizer
    if args.max_token_length:
        kiln_tokenizer.MAX_TOKEN_LENGTH = args.max_token_length
    files = [f for f in input_files([Path(c) for c in args.corpus]) if "site-packages" not in f[0].parts]
    corpus = read_corpus(files, args.train_bytes, args.seed)
    held = [d for d in corpus.held_out if d.language == "python"]
    sample = corpus.sample
    report: dict[str, Any] = {
        "vocab_size": args.vocab_size,
        "train_bytes": corpus.sample_bytes,
        "train_documents": len(sample),
        "heldout_bytes": sum(len(d.text.encode()) for d in held),
        "heldout_documents": len(held),
        "results": {},
    }
    for name in args.only:
        print(f"training {name} ...", file=sys.stderr)
        runs = [run_forked(name, sample, held, args.vocab_size, args.algorithm) for _ in range(max(1, args.repeat))]
        best = min(runs, key=lambda r: float(r["seconds"]))
        report["results"][name] = {**best, "seconds_all": [round(float(r["seconds"]), 2) for r in runs]}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    mb, held_mb = report["train_bytes"] / 1e6, report["heldout_bytes"] / 1e6
    print(f"train {mb:.1f} MB ({len(sample)} files), held out {held_mb:.2f} MB ({len(held)} Python files), "
          f"vocabulary {args.vocab_size}")  # fmt: skip
    print(f"{'tokenizer':<28}{'train s':>9}{'peak RSS MB':>13}{'bytes/token':>13}{'round-trip fails':>18}{'vocab':>8}")
    for name, r in report["results"].items():
        print(f"{name:<28}{r['seconds']:>9.1f}{r['peak_rss_mb']:>13.0f}{r['bytes_per_token']:>13.3f}"
              f"{r['roundtrip_failures']:>18}{r['vocab']:>8}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
