"""UL2's mixture of denoisers (Tay et al. 2022, arXiv 2205.05131) in decoder-only form, as llm-foundry's
denoising collator writes it, packed into sequences with a loss mask.

An example of raw length n is

    paradigm token, the input with each corrupted span replaced by a sentinel (<extra_id_k>),
    then each sentinel followed by its span, then end of text

and its loss mask is 1 on exactly the targets (the sentinels and spans after the input). Spans follow T5's
`random_spans_noise_mask`: num_noise = round(n·rate) clamped to [1, n-1], num_spans = max(1,
round(num_noise/mean_span)) (also at most num_noise and n - num_noise, so both segmentations exist), noise and
non-noise lengths random positive segmentations, alternating starting with non-noise. The S-denoiser
(`prefix_lm`) has one span: the suffix of length round(n·rate). Each example's length is n + 2·num_spans + 2.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_DENOISERS",
    "MIN_SPACE",
    "Denoiser",
    "Ul2Packer",
    "build_example",
    "example_length",
    "fit_length",
    "span_counts",
]

Ids = npt.NDArray[np.int64]

MIN_SPACE = 8
"""When fewer tokens than this are left in a sequence, the rest is padding."""

DEFAULT_DENOISERS: tuple[dict[str, Any], ...] = (
    {"name": "R1", "mean_span": 3, "corruption_rate": 0.15, "paradigm_token": "[NLU]"},
    {"name": "R2", "mean_span": 8, "corruption_rate": 0.15, "paradigm_token": "[NLU]"},
    {"name": "S", "mean_span": "L/4", "corruption_rate": 0.25, "paradigm_token": "[S2S]", "prefix_lm": True},
    {"name": "X1", "mean_span": 3, "corruption_rate": 0.5, "paradigm_token": "[NLG]"},
    {"name": "X2", "mean_span": 8, "corruption_rate": 0.5, "paradigm_token": "[NLG]"},
    {"name": "X3", "mean_span": 64, "corruption_rate": 0.15, "paradigm_token": "[NLG]"},
    {"name": "X4", "mean_span": 64, "corruption_rate": 0.5, "paradigm_token": "[NLG]"},
)
"""The spec's default mixture (the UL2 paper's R, S and X denoisers)."""


@dataclass(frozen=True)
class Denoiser:
    """One denoiser of the mixture."""

    name: str
    mean_span: float
    """Mean corrupted span length (unused by the S-denoiser, whose one span is the suffix)."""
    rate: float
    """Corruption rate: the share of the n tokens that are noise."""
    paradigm: str
    """The paradigm token (`[NLU]`, `[S2S]`, `[NLG]`)."""
    prefix_lm: bool
    """The S-denoiser: the target is the suffix."""
    weight: float

    @staticmethod
    def of(value: Mapping[str, Any]) -> Denoiser:
        """From one entry of the spec's `denoisers` (mean_span a number or "L/4" for prefix-LM)."""
        mean = value.get("mean_span", 3)
        prefix_lm = bool(value.get("prefix_lm", False)) or isinstance(mean, str)
        return Denoiser(
            name=str(value.get("name", "")),
            mean_span=float(mean) if not isinstance(mean, str) else 0.0,
            rate=float(value.get("corruption_rate", 0.15)),
            paradigm=str(value.get("paradigm_token", "[NLU]")),
            prefix_lm=prefix_lm,
            weight=float(value.get("weight", 1.0)),
        )


def span_counts(n: int, d: Denoiser) -> tuple[int, int]:
    """(num_noise, num_spans) for a raw length n >= 2."""
    noise = min(max(round(n * d.rate), 1), n - 1)
    if d.prefix_lm:
        return noise, 1
    spans = max(1, round(noise / d.mean_span))
    return noise, min(spans, noise, n - noise)


def example_length(n: int, d: Denoiser) -> int:
    """Tokens of an example of raw length n: paradigm + input + targets + end of text."""
    return n + 2 * span_counts(n, d)[1] + 2


def fit_length(space: int, available: int, d: Denoiser, sentinels: int) -> int:
    """The largest raw length n <= `available` whose example fits in `space` tokens with at most `sentinels` spans;
    0 when not even n = 2 fits."""

    def fits(n: int) -> bool:
        spans = span_counts(n, d)[1]
        return n + 2 * spans + 2 <= space and spans <= sentinels

    # Both conditions are monotone in n (num_spans never decreases as n grows): bisect for the largest n that fits.
    lo, hi = 2, min(available, space - 4)
    if hi < lo or not fits(lo):
        return 0
    if fits(hi):
        return hi
    while hi - lo > 1:  # fits(lo) and not fits(hi)
        mid = (lo + hi) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid
    return lo


def _segments(rng: np.random.Generator, items: int, segments: int) -> npt.NDArray[np.int64]:
    """A uniformly random split of `items` into `segments` positive lengths."""
    if segments == 1:
        return np.array([items], dtype=np.int64)
    cuts = np.sort(rng.choice(items - 1, segments - 1, replace=False)) + 1
    return np.diff(np.concatenate([[0], cuts, [items]])).astype(np.int64)


def noise_mask(n: int, d: Denoiser, rng: np.random.Generator) -> npt.NDArray[np.bool_]:
    """T5's random_spans_noise_mask (or the suffix for prefix-LM): True on the corrupted positions."""
    noise, spans = span_counts(n, d)
    if d.prefix_lm:
        mask = np.zeros(n, dtype=bool)
        mask[n - noise :] = True
        return mask
    lengths = np.stack([_segments(rng, n - noise, spans), _segments(rng, noise, spans)], axis=1).reshape(-1)
    return np.repeat(np.tile(np.array([False, True]), spans), lengths)


def build_example(
    tokens: Ids, noise: npt.NDArray[np.bool_], paradigm: int, sentinels: Ids, eot: int
) -> tuple[Ids, npt.NDArray[np.uint8]]:
    """The decoder-only example of `tokens` with corrupted positions `noise`: (ids, loss mask)."""
    starts = np.flatnonzero(noise & ~np.concatenate([[False], noise[:-1]]))
    k = starts.size
    src = tokens.copy()
    src[starts] = sentinels[:k]
    keep = ~noise
    keep[starts] = True
    inputs = src[keep]
    noisy = tokens[noise]
    # Span k's sentinel goes before its tokens: the sentinel of span j sits at (tokens of spans before j) + j.
    span_ids = np.cumsum(noise & ~np.concatenate([[False], noise[:-1]]))[noise] - 1
    targets = np.empty(noisy.size + k, dtype=np.int64)
    token_at = np.arange(noisy.size) + span_ids + 1
    is_token = np.zeros(targets.size, dtype=bool)
    is_token[token_at] = True
    targets[token_at] = noisy
    targets[~is_token] = sentinels[:k]
    ids = np.concatenate([[paradigm], inputs, targets, [eot]]).astype(np.int64)
    mask = np.zeros(ids.size, dtype=np.uint8)
    mask[1 + inputs.size : 1 + inputs.size + targets.size] = 1
    return ids, mask


@dataclass
class Ul2Packer:
    """Packs documents into sequences of UL2 examples, each example sized to fit the space left.

    Every random decision of example e (its denoiser, its spans) comes from `rng_of(e)`.
    """

    seq_len: int
    denoisers: Sequence[Denoiser]
    paradigm_ids: Sequence[int]
    sentinels: Ids
    eot: int
    pad: int
    seed: int
    shard: int
    tokens_out: Ids = field(init=False)
    mask_out: npt.NDArray[np.uint8] = field(init=False)
    at: int = 0
    examples: int = 0
    per_denoiser: dict[str, int] = field(default_factory=dict)
    tokens_skipped: int = 0
    pad_tokens: int = 0
    starts: list[int] = field(default_factory=list)
    done: list[tuple[Ids, npt.NDArray[np.uint8]]] = field(default_factory=list)
    sequences: int = 0

    def __post_init__(self) -> None:
        self.tokens_out = np.full(self.seq_len, self.pad, dtype=np.int64)
        self.mask_out = np.zeros(self.seq_len, dtype=np.uint8)
        weights = np.array([d.weight for d in self.denoisers], dtype=np.float64)
        self._cum = np.cumsum(weights / weights.sum())
        self.per_denoiser = {d.name: 0 for d in self.denoisers}

    def _flush(self) -> None:
        self.pad_tokens += self.seq_len - self.at
        self.done.append((self.tokens_out, self.mask_out))
        self.sequences += 1
        self.tokens_out = np.full(self.seq_len, self.pad, dtype=np.int64)
        self.mask_out = np.zeros(self.seq_len, dtype=np.uint8)
        self.at = 0

    def add(self, doc: Ids) -> None:
        """Packs one document (its ids, no end of text) as one or more examples."""
        o = 0
        k = int(self.sentinels.size)
        while o < doc.size:
            if doc.size - o < 2:
                self.tokens_skipped += doc.size - o  # one token cannot be corrupted and kept at once
                return
            if self.seq_len - self.at < MIN_SPACE:
                self._flush()
            rng = np.random.default_rng([self.seed, self.shard, self.examples])
            which = min(int(np.searchsorted(self._cum, rng.random(), side="right")), len(self.denoisers) - 1)
            d = self.denoisers[which]
            n = fit_length(self.seq_len - self.at, doc.size - o, d, k)
            if n == 0:
                self._flush()
                continue
            ids, mask = build_example(
                doc[o : o + n], noise_mask(n, d, rng), self.paradigm_ids[which], self.sentinels, self.eot
            )
            self.tokens_out[self.at : self.at + ids.size] = ids
            self.mask_out[self.at : self.at + ids.size] = mask
            self.starts.append(self.sequences * self.seq_len + self.at)
            self.at += ids.size
            self.examples += 1
            self.per_denoiser[d.name] += 1
            o += n

    def finish(self) -> None:
        """Pads and completes the last sequence (when it holds anything)."""
        if self.at:
            self._flush()

    def take(self) -> tuple[list[tuple[Ids, npt.NDArray[np.uint8]]], list[int]]:
        """The sequences completed and example starts recorded since the last call."""
        done, starts = self.done, self.starts
        self.done, self.starts = [], []
        return done, starts
