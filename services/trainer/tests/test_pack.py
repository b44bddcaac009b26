"""Packing end to end through the module CLI and `pack_inputs`: no token lost, deterministic bytes, bad input."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import stdlib_dir
from kiln_trainer.fim import FimParams
from kiln_trainer.pack import Settings, main, pack_inputs
from kiln_trainer.packed import PackedDataset, interleave, locate, round_blocks, token_dtype
from kiln_trainer.packtok import PackTokenizer, encode_ids
from kiln_trainer.stage import TERMINAL_EXIT, StageConfigError
from kiln_trainer.ul2 import DEFAULT_DENOISERS, Denoiser

UL2 = tuple(Denoiser.of(d) for d in DEFAULT_DENOISERS)


@pytest.fixture(scope="module")
def tok(tokenizer_dir: Path) -> PackTokenizer:
    return PackTokenizer.load(tokenizer_dir)


def shard(path: Path, records: list[Any] | list[bytes]) -> Path:
    """A zstd JSON Lines shard of `records` (objects, or raw lines as bytes)."""
    buf = io.BytesIO()
    for r in records:
        buf.write(r if isinstance(r, bytes) else json.dumps(r).encode())
        buf.write(b"\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(zstandard.ZstdCompressor().compress(buf.getvalue()))
    return path


def pack(tok: PackTokenizer, files: list[Path], out: Path, **kw: Any) -> list[dict[str, Any]]:
    s = Settings(**{"seq_len": 64, "objective": "next-token", "seed": 7, "denoisers": UL2, **kw})
    return pack_inputs([(0, [(f, "jsonl") for f in files])], out, s, tok)


def stdlib_records(part: str = "json", limit: int = 40) -> list[dict[str, Any]]:
    files = sorted((stdlib_dir() / part).rglob("*.py"))[:limit]
    return [{"content": p.read_text(encoding="utf-8"), "path": p.name} for p in files]


TEXTS = st.lists(
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=200)
    | st.just("x = '<|endoftext|>'  # a literal, not the token\n"),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=TEXTS, seq_len=st.integers(2, 90))
def test_given_documents_when_packed_next_token_then_no_token_is_lost_and_documents_join_only_at_eot(
    tok: PackTokenizer, tmp_path_factory: pytest.TempPathFactory, texts: list[str], seq_len: int
) -> None:
    tmp = tmp_path_factory.mktemp("nt")
    [m] = pack(tok, [shard(tmp / "in.jsonl.zst", [{"content": t} for t in texts])], tmp / "out", seq_len=seq_len)

    ds = PackedDataset(tmp / "out")
    flat = np.concatenate([ds[g][0] for g in range(len(ds))]).astype(np.int64)
    expected = [t for ids in encode_ids(tok.tokenizer, texts) for t in [*ids, tok.eot_id]]
    assert flat[: len(expected)].tolist() == expected
    assert np.all(flat[len(expected) :] == tok.pad_id) and len(flat) - len(expected) < seq_len
    assert (flat == tok.eot_id).sum() == len(texts), "a literal <|endoftext|> in text never becomes the token"
    starts = ds.doc_starts(0)
    assert starts.tolist() == [0, *(np.flatnonzero(flat == tok.eot_id)[:-1] + 1).tolist()]
    assert m["tokens"] == len(expected) and m["pad_tokens"] == len(flat) - len(expected)
    assert m["documents"] == len(texts) and m["never_targets"] == [tok.pad_id]
    assert ds.loss_mask(len(ds) - 1).sum() == seq_len - m["pad_tokens"] or len(ds) == 0


def test_given_one_seed_when_packed_with_1_or_2_workers_then_the_bytes_are_identical(
    tok: PackTokenizer, tmp_path: Path
) -> None:
    # Enough text for many chunks, so the workers really share the work.
    records = stdlib_records("email", 60)
    src = shard(tmp_path / "in.jsonl.zst", records)
    cases: list[dict[str, Any]] = [
        {"objective": "next-token"},
        {"objective": "fim", "fim": FimParams(0.5, 0.5, "context", "none")},
        {"objective": "fim", "fim": FimParams(0.7, 0.3, "document", "suffix")},
        {"objective": "ul2", "seq_len": 256},
    ]
    for i, case in enumerate(cases):
        digests: list[list[tuple[str, str]]] = []
        for workers in (1, 2, 1):
            [m] = pack(tok, [src], tmp_path / f"out-{i}-{workers}-{len(digests)}", workers=workers, **case)
            digests.append([(f["path"], f["sha256"]) for f in m["files"]])
        assert digests[0] == digests[1] == digests[2], case
    other = pack(tok, [src], tmp_path / "other-seed", objective="ul2", seq_len=256, seed=8)[0]
    assert other["files"][0]["sha256"] != digests[0][0][1], "another seed, other examples"


def test_given_ul2_when_packed_then_the_mask_file_marks_exactly_the_targets(tok: PackTokenizer, tmp_path: Path) -> None:
    src = shard(tmp_path / "in.jsonl.zst", stdlib_records("json"))
    [m] = pack(tok, [src], tmp_path / "out", objective="ul2", seq_len=128)

    ds = PackedDataset(tmp_path / "out")
    tokens, mask = ds[0]
    assert mask is not None and ds.has_mask and tokens.dtype == np.dtype("<u2")
    sentinels = set(tok.ids_of(tok.roles.ul2_sentinels, "s"))
    paradigms = set(tok.ids_of(["[NLU]", "[S2S]", "[NLG]"], "paradigm"))
    for g in range(len(ds)):
        t, k = ds[g]
        assert k is not None
        assert not k[np.isin(t, [tok.eot_id, tok.pad_id, *paradigms])].any(), "paradigm, eot and pad are never targets"
        targets = t[k.astype(bool)]
        assert targets.size == 0 or targets[0] in sentinels
    assert sum(m["counts"]["per_denoiser"].values()) == m["counts"]["examples"] == ds.doc_starts(0).size
    assert set(m["counts"]["per_denoiser"]) == {d.name for d in UL2}


def test_given_source_weights_when_packed_then_records_are_copied_or_dropped(
    tok: PackTokenizer, tmp_path: Path
) -> None:
    records = [
        {"content": "a = 1\n", "source": "twice"},
        {"content": "b = 2\n", "source": "never"},
        {"content": "c = 3\n"},
        {"content": "d = 4\n", "source": "unnamed"},
    ]
    src = shard(tmp_path / "in.jsonl.zst", records)
    [m] = pack(tok, [src], tmp_path / "out", weights=(("never", 0.0), ("twice", 2.0)))

    assert m["records"] == {"in": 4, "tokenized": 3, "dropped": {"weight-zero": 1}}
    assert m["documents"] == 4
    ds = PackedDataset(tmp_path / "out")
    text = tok.decode([int(t) for t in ds[0][0] if t != tok.pad_id])
    assert text == "a = 1\n<|endoftext|>a = 1\n<|endoftext|>c = 3\n<|endoftext|>d = 4\n<|endoftext|>"


def test_given_a_fractional_weight_when_packed_then_about_that_many_copies_are_made(
    tok: PackTokenizer, tmp_path: Path
) -> None:
    src = shard(tmp_path / "in.jsonl.zst", [{"content": f"x{i}\n", "source": "s"} for i in range(400)])
    [m] = pack(tok, [src], tmp_path / "out", weights=(("s", 1.5),))
    assert 500 < m["documents"] < 700 and m["records"]["tokenized"] == 400


def test_given_an_empty_shard_when_packed_then_it_has_0_sequences_a_warning_and_a_valid_manifest(
    tok: PackTokenizer, tmp_path: Path
) -> None:
    [m] = pack(tok, [shard(tmp_path / "in.jsonl.zst", [])], tmp_path / "out")

    assert m["sequences"] == 0 and m["tokens"] == 0 and m["records"]["in"] == 0
    assert any("no documents" in w for w in m["warnings"])
    ds = PackedDataset(tmp_path / "out")
    assert len(ds) == 0 and ds.verify() == [] and ds.for_rank(0, 4).size == 0


def test_given_invalid_utf8_lines_when_packed_then_they_are_dropped_with_reasons_and_counted(
    tok: PackTokenizer, tmp_path: Path
) -> None:
    lines: list[bytes] = [
        json.dumps({"content": "ok = 1\n"}).encode(),
        b'{"content": "caf\xe9"}',  # Latin-1, not UTF-8
        b"not json",
        json.dumps({"content": "\ud83d"}).encode(),  # a lone surrogate
        json.dumps({"text": "also = 2\n"}).encode(),
        json.dumps({"content": ""}).encode(),
    ]
    [m] = pack(tok, [shard(tmp_path / "in.jsonl.zst", lines)], tmp_path / "out")

    r = m["records"]
    assert r["dropped"] == {"bad-json": 1, "empty": 1, "invalid-utf8": 2}
    assert r["in"] == 6 == r["tokenized"] + sum(r["dropped"].values())
    assert any("invalid-utf8" in w for w in m["warnings"])


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kiln_trainer.pack", *args], capture_output=True, text=True)


def test_given_a_folder_that_is_not_a_tokenizer_when_run_then_it_exits_2_saying_what_is_expected(
    tmp_path: Path,
) -> None:
    src = shard(tmp_path / "in.jsonl.zst", [{"content": "x"}])
    out = run_cli(
        "run", "--tokenizer", str(tmp_path), "--input", str(src), "--output", str(tmp_path / "o"), "--seq-len", "8"
    )
    assert out.returncode == TERMINAL_EXIT
    assert "is not a tokenizer" in out.stderr and "tokenizer.json" in out.stderr and "kiln-tokenizer.json" in out.stderr
    (tmp_path / "tokenizer.json").write_text("{not a tokenizer", encoding="utf-8")
    with pytest.raises(StageConfigError, match="is not a tokenizer"):
        PackTokenizer.load(tmp_path)


@pytest.mark.parametrize(
    ("objective", "seq_len", "says"), [("fim", 5, "too short for FIM"), ("ul2", 6, "too short for a UL2 example")]
)
def test_given_a_seq_len_too_short_for_the_objective_when_run_then_it_is_a_config_error(
    tokenizer_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], objective: str, seq_len: int, says: str
) -> None:
    src = shard(tmp_path / "in.jsonl.zst", [{"content": "x = 1"}])
    argv = ["run", "--tokenizer", str(tokenizer_dir), "--input", str(src), "--output", str(tmp_path / "o")]
    code = main([*argv, "--seq-len", str(seq_len), "--objective", objective])
    assert code == TERMINAL_EXIT and says in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_given_a_tokenizer_without_ul2_tokens_when_packing_ul2_then_the_error_names_them(
    tokenizer_dir: Path, tmp_path: Path
) -> None:
    import shutil

    from kiln_trainer.special import SpecialTokens

    folder = tmp_path / "tok"
    shutil.copytree(tokenizer_dir, folder)
    roles = SpecialTokens.read(folder)
    SpecialTokens(roles.eot, roles.pad, roles.fim, (), roles.special_tokens).write(folder)
    tok = PackTokenizer.load(folder)
    src = shard(tmp_path / "in.jsonl.zst", [{"content": "x = 1"}])
    with pytest.raises(StageConfigError, match="no UL2 sentinels"):
        pack(tok, [src], tmp_path / "o", objective="ul2")
    odd = (*UL2[:1], Denoiser("Z", 3, 0.15, "[NOPE]", False, 1.0))
    with pytest.raises(StageConfigError, match=r"paradigm tokens \[NOPE\]"):
        pack(PackTokenizer.load(tokenizer_dir), [src], tmp_path / "o", objective="ul2", denoisers=odd)


def test_given_a_packed_folder_when_run_and_inspected_by_cli_then_it_reports_and_shows_the_targets(
    tokenizer_dir: Path, tmp_path: Path
) -> None:
    src = shard(tmp_path / "in.jsonl.zst", stdlib_records("json", 3))
    out = tmp_path / "o"
    argv = ["run", "--tokenizer", str(tokenizer_dir), "--input", str(src), "--output", str(out), "--seq-len", "64"]
    ran = run_cli(*argv, "--objective", "ul2", "--seed", "3", "--json")
    assert ran.returncode == 0, ran.stderr
    report = json.loads(ran.stdout)
    assert report["records_in"] == 3 and report["sequences"] > 0 and report["objective"]["type"] == "ul2"

    human = run_cli("inspect", str(out), "--decode", "2", "--verify")
    assert human.returncode == 0, human.stderr
    assert "⟦<extra_id_0>" in human.stdout and any(p in human.stdout for p in ("[NLU]", "[NLG]", "[S2S]"))
    assert "all match their manifests" in human.stdout
    shown = json.loads(run_cli("inspect", str(out), "--decode", "1", "--json").stdout)
    segments = shown["samples"][0]["segments"]
    assert segments[0]["target"] is False and any(s["target"] for s in segments)
    assert sum(s["tokens"] for s in segments) == 64

    (out / "shard-00000.tokens").write_bytes(b"\0" * (out / "shard-00000.tokens").stat().st_size)
    assert run_cli("inspect", str(out), "--verify").returncode == 1


@settings(max_examples=50, deadline=None)
@given(lengths=st.lists(st.integers(0, 30), min_size=1, max_size=6), world=st.integers(1, 9))
def test_given_shards_of_any_lengths_when_interleaved_then_every_sequence_is_read_once_by_one_rank(
    lengths: list[int], world: int
) -> None:
    total = sum(lengths)
    s, r = interleave(lengths, np.arange(total))
    pairs = list(zip(s.tolist(), r.tolist(), strict=True))
    assert sorted(pairs) == [(i, j) for i, n in enumerate(lengths) for j in range(n)]
    assert r.tolist() == sorted(r.tolist()), "round by round"
    ranks = [np.arange(rank, total, world) for rank in range(world)]
    assert sorted(np.concatenate([np.zeros(0, np.int64), *ranks]).tolist()) == list(range(total))


def test_given_a_packed_folder_of_two_shards_when_read_then_items_are_views_and_ranks_interleave(
    tok: PackTokenizer, tmp_path: Path
) -> None:
    s = Settings(seq_len=32, objective="next-token", seed=1)
    a = shard(tmp_path / "a.jsonl.zst", stdlib_records("json", 2))
    b = shard(tmp_path / "b.jsonl.zst", stdlib_records("json", 4)[2:])
    pack_inputs([(0, [(a, "jsonl")]), (1, [(b, "jsonl")])], tmp_path / "out", s, tok)

    ds = PackedDataset(tmp_path / "out")
    n0, n1 = ds.lengths.tolist()
    assert len(ds) == n0 + n1
    t0, mask = ds[0]
    t1, _ = ds[1]
    assert mask is None and np.shares_memory(t0, ds.shard_tokens(0)), "a view into the memory map, not a copy"
    assert np.array_equal(t0, ds.shard_tokens(0)[0]) and np.array_equal(t1, ds.shard_tokens(1)[0])
    assert ds.for_rank(1, 3).tolist() == list(range(1, len(ds), 3))
    with pytest.raises(ValueError, match="rank"):
        ds.for_rank(3, 3)
    assert token_dtype(65536) == np.dtype("<u2") and token_dtype(65537) == np.dtype("<u4")


def test_given_a_containers_cpu_limit_when_counting_workers_then_it_is_rounded_up(tmp_path: Path) -> None:
    from kiln_trainer.pack import _cgroup_cpus

    limit = tmp_path / "cpu.max"
    limit.write_text("150000 100000\n", encoding="utf-8")
    assert _cgroup_cpus(limit) == 2
    limit.write_text("max 100000\n", encoding="utf-8")
    assert _cgroup_cpus(limit) is None
    assert _cgroup_cpus(tmp_path / "absent") is None


def test_given_shards_packed_differently_when_read_together_then_the_reader_refuses_them(
    tok: PackTokenizer, tmp_path: Path
) -> None:
    src = shard(tmp_path / "in.jsonl.zst", stdlib_records("json", 2))
    pack_inputs([(0, [(src, "jsonl")])], tmp_path / "out", Settings(seq_len=32, objective="next-token"), tok)
    pack_inputs([(1, [(src, "jsonl")])], tmp_path / "out", Settings(seq_len=48, objective="next-token"), tok)
    with pytest.raises(ValueError, match="disagree on seq_len"):
        PackedDataset(tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no packed shards"):
        PackedDataset(tmp_path)


def test_given_document_level_fim_with_suffix_truncation_when_packed_then_no_document_grows(
    tok: PackTokenizer, tmp_path: Path
) -> None:
    records = stdlib_records("json", 6)
    src = shard(tmp_path / "in.jsonl.zst", records)
    fim = FimParams(1.0, 0.5, "document", "suffix")
    [plain] = pack(tok, [src], tmp_path / "plain", seq_len=128)
    [m] = pack(tok, [src], tmp_path / "fim", seq_len=128, objective="fim", fim=fim)

    assert m["counts"]["psm"] + m["counts"]["spm"] + m["counts"]["skipped"] == len(records)
    assert m["counts"]["psm"] > 0 and m["counts"]["spm"] > 0
    assert m["sequences"] == plain["sequences"], "every document keeps its length in tokens"
    ds = PackedDataset(tmp_path / "fim")
    assert ds.doc_starts(0).tolist() == PackedDataset(tmp_path / "plain").doc_starts(0).tolist()


@settings(max_examples=30, deadline=None)
@given(lengths=st.lists(st.integers(0, 12), min_size=1, max_size=5))
def test_given_shards_of_any_lengths_when_located_one_by_one_then_it_agrees_with_interleave(lengths: list[int]) -> None:
    blocks = round_blocks(lengths)
    s, r = interleave(lengths, np.arange(sum(lengths)))
    assert [locate(blocks, g) for g in range(sum(lengths))] == list(zip(s.tolist(), r.tolist(), strict=True))
    with pytest.raises(IndexError):
        locate(blocks, sum(lengths))
