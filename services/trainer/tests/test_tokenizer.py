"""The trained tokenizer itself, on a real corpus (a slice of the standard library): exact round trips on held-out
files, special tokens that are single tokens and never produced by ordinary text, loading through tokenizers and
transformers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer

from conftest import stdlib_dir
from kiln_trainer.corpus import Document, input_files, read_documents
from kiln_trainer.corpus import Ledger as CorpusLedger
from kiln_trainer.special import ROLES_FILE, SpecialTokens
from kiln_trainer.tokenizer import (
    TrainSpec,
    is_held_out,
    main,
    measure,
    parse_size,
    read_corpus,
    run_train,
    train_tokenizer,
)

TRAIN_PARTS = ("json", "email", "asyncio", "logging", "http")
HELD_PARTS = ("xml", "concurrent", "importlib")
"""Files of other packages than those trained on: held out by construction."""
SECTION = {"special_tokens": ["<|endoftext|>", "<|padding|>"], "fim_sentinels": {}, "ul2_sentinels": {"count": 8}}
SPECIAL = SpecialTokens.of_section(SECTION)


def _docs(parts: tuple[str, ...]) -> list[Document]:
    files = input_files([stdlib_dir() / p for p in parts])
    return [d for d in read_documents(files, CorpusLedger()) if d.language == "python"]


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BPE tokenizer (vocabulary 4096, FIM and 8 UL2 sentinels) trained on about 2 MB, written by run_train."""
    folder = tmp_path_factory.mktemp("tok")
    files = input_files([stdlib_dir() / p for p in TRAIN_PARTS])
    run_train(files, "stdlib", TrainSpec("bpe", 4096, SPECIAL), 2_000_000, 7, folder, folder.as_posix())
    return folder


@pytest.fixture(scope="module")
def tok(out: Path) -> Tokenizer:
    return Tokenizer.from_file(str(out / "tokenizer.json"))


@pytest.fixture(scope="module")
def held() -> list[Document]:
    docs = _docs(HELD_PARTS)
    assert len(docs) > 50
    return docs


def test_exact_vocabulary_size_and_special_ids_first(tok: Tokenizer) -> None:
    assert tok.get_vocab_size(with_added_tokens=True) == 4096
    assert [tok.token_to_id(s) for s in SPECIAL.special_tokens] == list(range(len(SPECIAL.special_tokens)))


def test_round_trip_every_held_out_file(tok: Tokenizer, held: list[Document]) -> None:
    tok.encode_special_tokens = True
    bad = [d.path for d in held if tok.decode(tok.encode(d.text).ids, skip_special_tokens=False) != d.text]
    assert bad == []


def test_held_out_compresses_code(tok: Tokenizer, held: list[Document]) -> None:
    m = measure(tok, held)
    assert m.roundtrip_failures == 0
    assert m.bytes == sum(len(d.text.encode()) for d in held)
    assert m.bytes_per_token > 3.0  # byte level would be 1.0; any learned vocabulary of code is far above 3
    assert set(m.by_language) == {"python"}


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_round_trip_any_text(tok: Tokenizer, text: str) -> None:
    tok.encode_special_tokens = True
    assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == text


def test_each_special_token_is_one_token(tok: Tokenizer) -> None:
    tok.encode_special_tokens = False
    for i, s in enumerate(SPECIAL.special_tokens):
        assert tok.encode(s, add_special_tokens=False).ids == [i]


CODE_WITH_LITERALS = [
    'EOT = "<|endoftext|>"\n',
    "<|endoftext|>",
    "\n<fim_prefix>\n",
    "x = '<fim_middle>' + '<fim_suffix>'  # <fim_pad>\n",
    "    return <extra_id_0>, <extra_id_7>\n",
    "<|padding|><|endoftext|>",
]


@pytest.mark.parametrize("code", CODE_WITH_LITERALS)
def test_literal_special_tokens_in_code_are_ordinary_text(tok: Tokenizer, code: str) -> None:
    specials = set(range(len(SPECIAL.special_tokens)))
    tok.encode_special_tokens = True
    ids = tok.encode(code, add_special_tokens=False).ids
    assert not specials & set(ids)
    assert tok.decode(ids, skip_special_tokens=False) == code
    tok.encode_special_tokens = False  # the library's default: matched in text (what the pack stage avoids)
    assert specials & set(tok.encode(code, add_special_tokens=False).ids)


def test_a_corpus_full_of_the_literal_still_never_learns_it(tmp_path: Path) -> None:
    # Without the sample being cut at literal special tokens, BPE learns `<|endoftext|>` as a merge, and that merge's
    # token is the special id: encode_special_tokens = True would then still produce it.
    docs = [Document(f"<|endoftext|>\nx{i} = '<fim_prefix>'\n", "python", None, None) for i in range(300)]
    special = SpecialTokens.of_section({"special_tokens": ["<|endoftext|>"], "fim_sentinels": {}})
    t = train_tokenizer(docs, TrainSpec("bpe", 400, special))
    t.encode_special_tokens = True
    assert not set(range(5)) & set(t.encode(docs[0].text).ids)


def test_loads_in_transformers(out: Path, held: list[Document]) -> None:
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_file=str(out / "tokenizer.json"))  # type: ignore[no-untyped-call]
    auto = AutoTokenizer.from_pretrained(str(out), local_files_only=True)
    raw = Tokenizer.from_file(str(out / "tokenizer.json"))
    raw.encode_special_tokens = True
    text = held[0].text + "\n# <|endoftext|>\n"
    want = raw.encode(text, add_special_tokens=False).ids
    assert auto(text, add_special_tokens=False, split_special_tokens=True)["input_ids"] == want
    assert fast(text, add_special_tokens=False, split_special_tokens=True)["input_ids"] == want
    assert auto.decode(want) == text
    assert auto.eos_token == "<|endoftext|>" and auto.pad_token == "<|padding|>"
    assert auto.convert_tokens_to_ids("<fim_prefix>") == SPECIAL.special_tokens.index("<fim_prefix>")


def test_roles_file(out: Path) -> None:
    roles = SpecialTokens.from_json(json.loads((out / ROLES_FILE).read_text()))
    assert roles == SPECIAL
    assert roles.ul2_sentinels == tuple(f"<extra_id_{i}>" for i in range(8))


def test_unigram_trains_and_round_trips(held: list[Document]) -> None:
    sample = _docs(("json", "logging"))
    t = train_tokenizer(sample, TrainSpec("unigram", 1024, SPECIAL))
    assert 900 <= t.get_vocab_size() <= 1024
    m = measure(t, held[:40])
    assert m.roundtrip_failures == 0 and m.bytes_per_token > 2.0


def test_held_out_split_is_by_content_and_never_sampled() -> None:
    files = input_files([stdlib_dir() / "json", stdlib_dir() / "email"])
    corpus = read_corpus(files, 300_000, seed=1)
    assert all(not is_held_out(d.text) for d in corpus.sample)
    assert all(is_held_out(d.text) for d in corpus.held_out)
    assert corpus.sample_bytes <= 300_000
    c = corpus.counts
    assert (
        c["records_in"]
        == c["records_sampled"] + c["records_not_sampled"] + c["records_held_out"] + c["records_dropped"]
    )
    again = read_corpus(files, 300_000, seed=1)
    other = read_corpus(files, 300_000, seed=2)
    assert again.sample_digest == corpus.sample_digest
    assert other.sample_digest != corpus.sample_digest


def test_parse_size() -> None:
    assert parse_size("16MiB") == 16 << 20
    assert parse_size("8MB") == 8_000_000
    assert parse_size("4096") == 4096
    assert parse_size("1.5GiB") == 3 << 29


def test_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["train", "--input", str(stdlib_dir() / "json"), "--output", str(tmp_path / "o"), "--vocab-size", "512",
         "--sample-size", "1MB", "--ul2-sentinels", "3", "--special-token", "<|endoftext|>", "--json"]
    )  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kind"] == "kiln.stage-manifest/v1"
    assert report["metrics"]["vocab_size"] == 512
    roles = json.loads((tmp_path / "o" / ROLES_FILE).read_text())
    assert roles["special_tokens"] == ["<|endoftext|>", "<extra_id_0>", "<extra_id_1>", "<extra_id_2>"]


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = str(stdlib_dir() / "json")
    assert main(["train", "--input", src, "--output", str(tmp_path / "o"), "--vocab-size", "200"]) == 2
    assert "at least 258" in capsys.readouterr().err
    assert main(["train", "--input", str(tmp_path / "missing"), "--output", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["train", "--output", str(tmp_path / "o")])
    assert e.value.code == 2


def test_a_corpus_too_small_to_hold_any_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    texts = [t for t in (f"def f{i}(x):\n    return x + {i}\n" for i in range(40)) if not is_held_out(t)][:5]
    src = tmp_path / "code.jsonl"
    src.write_text("".join(json.dumps({"content": t, "language": "python"}) + "\n" for t in texts))
    code = main(["train", "--input", str(src), "--output", str(tmp_path / "o"), "--vocab-size", "300", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert "bytes_per_token" not in report["metrics"]
    assert any("no held-out documents" in w for w in report["warnings"])
    assert report["counts"]["records_sampled"] == 5


def test_cli_unreadable_input_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00 not really gzip")
    assert main(["train", "--input", str(broken), "--output", str(tmp_path / "o"), "--vocab-size", "300"]) == 1
    assert "cannot read the input" in capsys.readouterr().err
