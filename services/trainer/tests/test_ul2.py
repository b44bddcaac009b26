"""UL2 examples: their targets, read through the loss mask, restore the corrupted spans; packing loses nothing."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln_trainer.ul2 import (
    DEFAULT_DENOISERS,
    MIN_SPACE,
    Denoiser,
    Ul2Packer,
    build_example,
    example_length,
    fit_length,
    noise_mask,
    span_counts,
)

DENOISERS = [Denoiser.of(d) for d in DEFAULT_DENOISERS]
SENTINELS = np.arange(10**6, 10**6 + 100, dtype=np.int64)  # ids outside the documents' alphabet below
PARADIGM, EOT, PAD = 2 * 10**6, 2 * 10**6 + 1, 2 * 10**6 + 2


def restore(ids: npt.NDArray[np.int64], mask: npt.NDArray[np.uint8]) -> tuple[list[int], list[int]]:
    """(the source restored from an example, the example's targets): sentinels in the input replaced by spans."""
    assert ids[0] == PARADIGM and ids[-1] == EOT and mask[0] == 0 and mask[-1] == 0
    targets_at = np.flatnonzero(mask)
    assert targets_at.size and np.all(np.diff(targets_at) == 1), "the targets are one run"
    inputs = ids[1 : targets_at[0]].tolist()
    targets = ids[targets_at].tolist()
    assert targets_at[-1] == ids.size - 2, "end of text follows the targets"
    spans: dict[int, list[int]] = {}
    current: int | None = None
    for t in targets:
        if t in SENTINELS:
            current = int(t)
            assert current not in spans
            spans[current] = []
        else:
            assert current is not None, "the targets start with a sentinel"
            spans[current].append(int(t))
    out: list[int] = []
    for t in inputs:
        out.extend(spans.pop(int(t)) if t in SENTINELS else [int(t)])
    assert not spans, "every target span has its sentinel in the input"
    return out, targets


@settings(max_examples=200, deadline=None)
@given(
    doc=st.lists(st.integers(0, 999), min_size=2, max_size=600),
    which=st.integers(0, len(DENOISERS) - 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_given_any_document_when_made_a_ul2_example_then_its_masked_targets_restore_the_source(
    doc: list[int], which: int, seed: int
) -> None:
    d = DENOISERS[which]
    tokens = np.array(doc, dtype=np.int64)
    noise = noise_mask(tokens.size, d, np.random.default_rng(seed))

    ids, mask = build_example(tokens, noise, PARADIGM, SENTINELS, EOT)

    restored, _ = restore(ids, mask)
    assert restored == doc
    assert ids.size == example_length(tokens.size, d)
    n_noise, n_spans = span_counts(tokens.size, d)
    assert int(noise.sum()) == n_noise
    starts = np.flatnonzero(noise & ~np.concatenate([[False], noise[:-1]]))
    assert starts.size == n_spans and not noise[0], "spans alternate, starting with non-noise"
    if d.prefix_lm:
        assert noise[-n_noise:].all() and n_spans == 1, "the S-denoiser's one span is the suffix"


@given(n=st.integers(2, 5000), which=st.integers(0, len(DENOISERS) - 1))
def test_given_a_length_when_counting_spans_then_they_follow_t5s_rules(n: int, which: int) -> None:
    d = DENOISERS[which]
    noise, spans = span_counts(n, d)
    assert noise == min(max(round(n * d.rate), 1), n - 1)
    assert 1 <= spans <= min(noise, n - noise)
    if not d.prefix_lm and round(noise / d.mean_span) <= min(noise, n - noise):
        assert spans == max(1, round(noise / d.mean_span))


@given(
    space=st.integers(MIN_SPACE, 4096),
    available=st.integers(2, 5000),
    which=st.integers(0, len(DENOISERS) - 1),
    sentinels=st.integers(1, 100),
)
def test_given_the_space_left_when_choosing_a_length_then_it_is_the_longest_that_fits(
    space: int, available: int, which: int, sentinels: int
) -> None:
    d = DENOISERS[which]
    n = fit_length(space, available, d, sentinels)
    assert n >= 2, "at least the shortest example fits in MIN_SPACE"
    assert n <= available and example_length(n, d) <= space and span_counts(n, d)[1] <= sentinels
    if n < available:
        assert example_length(n + 1, d) > space or span_counts(n + 1, d)[1] > sentinels


@settings(max_examples=40, deadline=None)
@given(
    docs=st.lists(st.lists(st.integers(0, 999), min_size=1, max_size=700), min_size=1, max_size=8),
    seq_len=st.integers(MIN_SPACE, 300),
    seed=st.integers(0, 1000),
)
def test_given_documents_when_packed_as_ul2_then_every_example_fits_and_restores_its_piece(
    docs: list[list[int]], seq_len: int, seed: int
) -> None:
    packer = Ul2Packer(seq_len, DENOISERS, [PARADIGM] * len(DENOISERS), SENTINELS, EOT, PAD, seed, 0)
    docs = [[1000 * i + t for t in doc] for i, doc in enumerate(docs)]  # every document's tokens its own
    for doc in docs:
        packer.add(np.array(doc, dtype=np.int64))
    packer.finish()
    done, starts = packer.take()

    tokens = np.concatenate([np.zeros(0, np.int64), *(t for t, _ in done)])
    mask = np.concatenate([np.zeros(0, np.uint8), *(m for _, m in done)])
    bounds = [*starts, tokens.size]
    pieces: list[int] = []
    for lo, hi in itertools.pairwise(bounds):
        example = tokens[lo:hi]
        end = int(np.flatnonzero(example == EOT)[0]) + 1  # the example, then padding up to the next start
        assert lo // seq_len == (lo + end - 1) // seq_len, "an example never crosses a sequence boundary"
        assert np.all(example[end:] == PAD) and not mask[lo + end : hi].any()
        restored, _ = restore(example[:end], mask[lo : lo + end])
        pieces.extend(restored)
    at, skipped = 0, 0
    for doc in docs:  # each document's pieces in order; only a last lone token may be left out
        if pieces[at : at + len(doc)] == doc:
            at += len(doc)
        else:
            assert pieces[at : at + len(doc) - 1] == doc[:-1]
            at, skipped = at + len(doc) - 1, skipped + 1
    assert at == len(pieces) and skipped == packer.tokens_skipped
    assert len(done) == packer.sequences and sum(packer.per_denoiser.values()) == len(starts)
