"""FIM samples reassemble to their source (PSM and SPM, document and context level); pieces never cross splits."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiln_trainer.fim import FimContexts, FimCounts, FimIds, FimParams, assemble, fim_documents, plan_split
from kiln_trainer.packtok import PackTokenizer, TextOfIds, encode_ids

CODE = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(list("def f(x):\n    return x + 1  # é日本🙂<|endoftext|>\t")),
    ),
    min_size=1,
    max_size=300,
)


@pytest.fixture(scope="module", params=["gpt2-regex", "kiln"])
def tok(request: pytest.FixtureRequest, tokenizer_dir: Path, kiln_tokenizer_dir: Path) -> PackTokenizer:
    """Both kinds of byte-level BPE the pack stage splices: behind GPT-2's regex, and kiln's own tokenizer."""
    return PackTokenizer.load(tokenizer_dir if request.param == "gpt2-regex" else kiln_tokenizer_dir)


def test_given_kiln_tokenizer_when_loaded_then_fim_splices_it_and_not_one_split_by_another_pattern(
    kiln_tokenizer_dir: Path, tmp_path: Path
) -> None:
    import json
    import shutil

    assert PackTokenizer.load(kiln_tokenizer_dir).spliceable
    other = tmp_path / "other"
    shutil.copytree(kiln_tokenizer_dir, other)
    spec = json.loads((other / "tokenizer.json").read_text(encoding="utf-8"))
    spec["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {"Regex": r"[^\n]*\n|[^\n]+"}  # whole lines
    (other / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    assert not PackTokenizer.load(other).spliceable


def ids_of(tok: PackTokenizer) -> FimIds:
    return FimIds(*tok.fim_ids())


def split_sample(sample: list[int], ids: FimIds, spm: bool) -> tuple[bool, list[int], list[int], list[int]]:
    """(is SPM, prefix, middle, suffix) of a FIM sample written in order `spm`, read off its sentinels."""
    assert sample[0] == ids.prefix and sample.count(ids.suffix) == 1 and sample.count(ids.middle) == 1
    s, m = sample.index(ids.suffix), sample.index(ids.middle)
    if spm:  # SPM: <PRE> <SUF> suffix <MID> prefix middle: prefix and middle cannot be told apart by tokens
        assert s == 1
        return True, [], sample[m + 1 :], sample[2:m]
    assert s < m
    return False, sample[1:s], sample[m + 1 :], sample[s + 1 : m]


def text_of(tok: PackTokenizer, ids: list[int]) -> str:
    return tok.tokenizer.decode(ids, skip_special_tokens=False)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=CODE, seed=st.integers(0, 2**32 - 1), spm=st.sampled_from([0.0, 1.0]))
def test_given_any_document_when_made_fim_at_document_level_then_it_reassembles_to_the_source(
    tok: PackTokenizer, text: str, seed: int, spm: float
) -> None:
    ids = ids_of(tok)
    original = np.array(encode_ids(tok.tokenizer, [text])[0], dtype=np.int64)
    counts = FimCounts()

    [sample] = fim_documents(
        [text], [original], [np.random.default_rng(seed)], FimParams(1.0, spm, "document"), ids,
        lambda t: encode_ids(tok.tokenizer, t), counts,
    )  # fmt: skip

    is_spm, prefix, middle, suffix = split_sample(sample.tolist(), ids, spm == 1.0)
    assert (counts.spm, counts.psm) == ((1, 0) if is_spm else (0, 1))
    plan = plan_split(text, _after_rate_draw(seed), spm)  # the same draws: the same split
    # Each piece was encoded on its own: tokens never cross the split points.
    assert suffix == encode_ids(tok.tokenizer, [plan.suffix])[0]
    if is_spm:
        assert middle == encode_ids(tok.tokenizer, [plan.prefix])[0] + encode_ids(tok.tokenizer, [plan.middle])[0]
        assert text_of(tok, middle) == plan.prefix + plan.middle
        assert plan.prefix + plan.middle + text_of(tok, suffix) == text
    else:
        assert prefix == encode_ids(tok.tokenizer, [plan.prefix])[0]
        assert middle == encode_ids(tok.tokenizer, [plan.middle])[0]
        assert text_of(tok, prefix) + text_of(tok, middle) + text_of(tok, suffix) == text
    assert tok.eot_id not in sample, "a literal <|endoftext|> in the text is text, never the special id"


def _after_rate_draw(seed: int) -> np.random.Generator:
    rng = np.random.default_rng(seed)
    rng.random()  # fim_documents draws whether to transform first
    return rng


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    texts=st.lists(CODE, min_size=1, max_size=6),
    seq_len=st.integers(8, 200),
    seed=st.integers(0, 2**32 - 1),
    spm=st.sampled_from([0.0, 1.0]),
    truncation=st.sampled_from(["none", "suffix"]),
)
def test_given_packed_contexts_when_made_fim_at_context_level_then_each_fragment_reassembles(
    tok: PackTokenizer, texts: list[str], seq_len: int, seed: int, spm: float, truncation: str
) -> None:
    ids = ids_of(tok)
    stream = np.concatenate([np.array([*d, tok.eot_id], np.int64) for d in encode_ids(tok.tokenizer, texts)])
    contexts = [stream[i : i + seq_len] for i in range(0, stream.size, seq_len)]
    text_of_ids = TextOfIds(tok)
    fim = FimContexts(FimParams(1.0, spm, "context", truncation), ids, tok.eot_id,
                      lambda t: encode_ids(tok.tokenizer, t), text_of_ids)  # fmt: skip

    out = fim.transform(contexts, [np.random.default_rng([seed, i]) for i in range(len(contexts))])

    for context, (tokens, starts) in zip(contexts, out, strict=True):
        if truncation == "suffix":
            assert tokens.size == context.size, "truncation: suffix keeps the context's length"
        originals = _fragments(context, tok.eot_id)
        transformed = _fragments(tokens, tok.eot_id)
        assert len(originals) == len(transformed), "the end-of-text tokens between fragments stay"
        assert starts.tolist() == [
            s for s, f in zip(_fragment_starts(tokens, tok.eot_id), transformed, strict=True) if f.size
        ]
        for before, after in zip(originals, transformed, strict=True):
            _check_fragment(tok, ids, text_of_ids, before, after, truncation, spm == 1.0)
    c = fim.counts
    assert c.untouched == 0 and c.psm + c.spm + c.skipped == sum(
        f.size > 0 for ctx in contexts for f in _fragments(ctx, tok.eot_id)
    )


def _check_fragment(
    tok: PackTokenizer,
    ids: FimIds,
    text_of_ids: TextOfIds,
    before: npt.NDArray[np.int64],
    after: npt.NDArray[np.int64],
    truncation: str,
    spm: bool,
) -> None:
    source = text_of_ids(before)
    if before.size == 0 or source is None or after[:1].tolist() != [ids.prefix]:
        assert after.tolist() == before.tolist(), "an unrecoverable (or too short) fragment is left untouched"
        return
    sample = [int(t) for t in after if t != ids.pad]
    is_spm, prefix, middle, suffix = split_sample(sample, ids, spm)
    head = text_of(tok, middle) if is_spm else text_of(tok, prefix) + text_of(tok, middle)
    tail = text_of(tok, suffix)
    if truncation == "none":
        assert head + tail == source
    else:  # the suffix may have been trimmed: what is left of it is still where it was
        assert source.startswith(head) and (head + tail == source or _is_token_prefix(tok, source[len(head) :], suffix))


def _is_token_prefix(tok: PackTokenizer, text: str, tokens: list[int]) -> bool:
    full = encode_ids(tok.tokenizer, [text])[0]
    return full[: len(tokens)] == tokens


def _fragments(context: npt.NDArray[np.int64], eot: int) -> list[npt.NDArray[np.int64]]:
    cuts = [-1, *np.flatnonzero(context == eot).tolist(), context.size]
    return [context[a + 1 : b] for a, b in itertools.pairwise(cuts)]


def _fragment_starts(context: npt.NDArray[np.int64], eot: int) -> list[int]:
    return [0, *(np.flatnonzero(context == eot) + 1).tolist()]


def test_given_a_fragment_that_starts_inside_a_character_when_made_fim_then_it_is_skipped(tok: PackTokenizer) -> None:
    ids = ids_of(tok)
    emoji = encode_ids(tok.tokenizer, ["🙂🙂🙂 x"])[0]
    assert len(emoji) > 4, "the small test vocabulary spells the emoji in several byte tokens"
    fim = FimContexts(FimParams(1.0, 0.5, "context"), ids, tok.eot_id,
                      lambda t: encode_ids(tok.tokenizer, t), TextOfIds(tok))  # fmt: skip

    [(tokens, _)] = fim.transform([np.array(emoji[1:], np.int64)], [np.random.default_rng(0)])

    assert tokens.tolist() == emoji[1:]
    assert fim.counts.skipped == 1 and fim.counts.psm + fim.counts.spm == 0


def test_given_psm_and_spm_when_assembled_then_the_sentinels_are_in_the_papers_order() -> None:
    ids = FimIds(prefix=1, middle=2, suffix=3, pad=4)
    assert assemble(ids, [10], [20], [30], spm=False) == [1, 10, 3, 30, 2, 20]
    assert assemble(ids, [10], [20], [30], spm=True) == [1, 3, 30, 2, 10, 20]


LINES = st.lists(
    st.text(alphabet=st.sampled_from(list("ab_ (){}:=\t'\"0129é日🙂 \u00a0\u3000")), max_size=30),
    min_size=1,
    max_size=12,
).map("\n".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(LINES, CODE), seed=st.integers(0, 2**32 - 1), start=st.integers(0, 40))
def test_given_a_fragment_when_its_pieces_are_spliced_then_they_equal_encoding_each_piece_whole(
    tok: PackTokenizer, text: str, seed: int, start: int
) -> None:
    from kiln_trainer.fim import Splicer

    assert tok.spliceable, "both test tokenizers are byte-level BPE that the pack stage splices"
    doc = encode_ids(tok.tokenizer, [text])[0]
    fragment = np.array(doc[min(start, len(doc) - 1) :], dtype=np.int64)  # may start mid-word, as at a context cut
    source = TextOfIds(tok)(fragment)
    if source is None:
        return  # a cut inside a character: such a fragment is skipped, never spliced
    plan = plan_split(source, np.random.default_rng(seed), 0.5)
    lengths = TextOfIds(tok).token_bytes()
    assert lengths is not None

    [spliced] = Splicer(lengths).encode_pieces([(fragment, plan)], lambda t: encode_ids(tok.tokenizer, t))

    assert list(spliced) == encode_ids(tok.tokenizer, [plan.prefix, plan.middle, plan.suffix])


def test_given_real_code_when_fim_contexts_are_spliced_then_the_output_is_that_of_encoding_whole(
    tok: PackTokenizer,
) -> None:
    from conftest import stdlib_dir
    from kiln_trainer.fim import Splicer

    texts = [p.read_text(encoding="utf-8") for p in sorted((stdlib_dir() / "email").glob("*.py"))[:12]]
    stream = np.concatenate([np.array([*d, tok.eot_id], np.int64) for d in encode_ids(tok.tokenizer, texts)])
    contexts = [stream[i : i + 256] for i in range(0, stream.size, 256)]
    lengths = TextOfIds(tok).token_bytes()
    assert lengths is not None
    outs = []
    for splicer in (None, Splicer(lengths)):
        fim = FimContexts(FimParams(0.5, 0.5, "context"), ids_of(tok), tok.eot_id,
                          lambda t: encode_ids(tok.tokenizer, t), TextOfIds(tok), splicer=splicer)  # fmt: skip
        out = fim.transform(contexts, [np.random.default_rng([3, i]) for i in range(len(contexts))])
        outs.append(([t.tolist() for t, _ in out], fim.counts))
    assert outs[0] == outs[1] and outs[0][1].psm > 10 and outs[0][1].spm > 10


def test_given_real_code_when_documents_are_made_fim_with_splicing_then_the_output_is_that_of_encoding_whole(
    tok: PackTokenizer,
) -> None:
    from conftest import stdlib_dir
    from kiln_trainer.fim import Splicer

    texts = [p.read_text(encoding="utf-8") for p in sorted((stdlib_dir() / "json").glob("*.py"))]
    originals = [np.array(d, np.int64) for d in encode_ids(tok.tokenizer, texts)]
    lengths = TextOfIds(tok).token_bytes()
    assert lengths is not None
    outs = []
    for splicer in (None, Splicer(lengths)):
        counts = FimCounts()
        rngs = [np.random.default_rng([5, i]) for i in range(len(texts))]
        docs = fim_documents(texts, originals, rngs, FimParams(0.9, 0.5, "document"), ids_of(tok),
                             lambda t: encode_ids(tok.tokenizer, t), counts, splicer)  # fmt: skip
        outs.append(([d.tolist() for d in docs], counts))
    assert outs[0] == outs[1] and outs[0][1].psm + outs[0][1].spm > 2
