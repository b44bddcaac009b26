"""Fill-in-the-middle (Bavarian et al. 2022, arXiv 2207.14255) as the pack stage applies it.

A text is split at two uniformly random character positions into prefix, middle and suffix, each encoded on its
own (no token crosses a split point), and written

- PSM: `<PRE> prefix <SUF> suffix <MID> middle`, or
- SPM (with probability `spm_rate`): `<PRE> <SUF> suffix <MID> prefix middle` (the paper's SPM variant, as
  bigcode's Megatron-LM writes it).

Level `document` transforms each document before packing (`fim_documents`); level `context` transforms each
fragment (the text between end-of-text tokens) of each packed context after chunking (`FimContexts`), as bigcode's
Megatron-LM `permute` at context level. With truncation `suffix` a transformed piece keeps its length in tokens:
the suffix is trimmed by the tokens the sentinels and re-encoding added (a piece whose suffix is too short for
that is left as it was and counted as skipped), and a piece that came out shorter is filled with `<fim_pad>`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "FimContexts",
    "FimCounts",
    "FimIds",
    "FimParams",
    "FimPlan",
    "Splicer",
    "assemble",
    "fim_documents",
    "plan_split",
]

Ids = npt.NDArray[np.int64]
Encode = Callable[[Sequence[str]], list[list[int]]]


@dataclass(frozen=True)
class FimIds:
    """The sentinel ids."""

    prefix: int
    middle: int
    suffix: int
    pad: int


@dataclass(frozen=True)
class FimParams:
    """The objective's settings (the spec's `objective` when `type: fim`)."""

    rate: float = 0.5
    spm_rate: float = 0.5
    level: str = "context"
    truncation: str = "none"

    @staticmethod
    def of(objective: dict[str, Any]) -> FimParams:
        """From the resolved spec's objective section (its defaults where a field is absent)."""
        return FimParams(
            rate=float(objective.get("rate", 0.5)),
            spm_rate=float(objective.get("spm_rate", 0.5)),
            level=str(objective.get("level", "context")),
            truncation=str(objective.get("truncation", "none")),
        )


@dataclass
class FimCounts:
    """How many pieces became PSM, SPM, were left untouched (not drawn), or skipped (drawn but not possible)."""

    psm: int = 0
    spm: int = 0
    untouched: int = 0
    skipped: int = 0

    def add(self, other: FimCounts) -> None:
        """Adds another's counts to these."""
        self.psm += other.psm
        self.spm += other.spm
        self.untouched += other.untouched
        self.skipped += other.skipped

    def to_json(self) -> dict[str, int]:
        """The counts as a JSON object."""
        return {"psm": self.psm, "spm": self.spm, "untouched": self.untouched, "skipped": self.skipped}


@dataclass(frozen=True)
class FimPlan:
    """One drawn transform: the text's split into three, and the order."""

    prefix: str
    middle: str
    suffix: str
    spm: bool


def plan_split(text: str, rng: np.random.Generator, spm_rate: float) -> FimPlan:
    """Splits `text` at two uniform random character positions (0..len, sorted); SPM with probability `spm_rate`."""
    lo, hi = sorted(int(x) for x in rng.integers(0, len(text) + 1, size=2))
    return FimPlan(text[:lo], text[lo:hi], text[hi:], bool(rng.random() < spm_rate))


def assemble(ids: FimIds, prefix: Sequence[int], middle: Sequence[int], suffix: Sequence[int], spm: bool) -> list[int]:
    """The FIM token sequence of encoded prefix, middle and suffix, PSM or SPM."""
    if spm:
        return [ids.prefix, ids.suffix, *suffix, ids.middle, *prefix, *middle]
    return [ids.prefix, *prefix, ids.suffix, *suffix, ids.middle, *middle]


@dataclass
class _Piece:
    plan: FimPlan | None
    original: Ids
    encoded: tuple[list[int], list[int], list[int]] | None = None


def _finish(piece: _Piece, ids: FimIds, truncation: str, counts: FimCounts) -> Ids:
    """The piece's tokens after the transform (its original ones when it was not drawn or not possible)."""
    if piece.plan is None or piece.encoded is None:
        return piece.original
    pre, mid, suf = piece.encoded
    if truncation == "suffix":
        diff = len(pre) + len(mid) + len(suf) + 3 - len(piece.original)
        if diff > 0:
            if len(suf) <= diff:
                counts.skipped += 1
                return piece.original
            suf = suf[: len(suf) - diff]
        out = assemble(ids, pre, mid, suf, piece.plan.spm)
        if diff < 0:
            out.extend([ids.pad] * -diff)
    else:
        out = assemble(ids, pre, mid, suf, piece.plan.spm)
    if piece.plan.spm:
        counts.spm += 1
    else:
        counts.psm += 1
    return np.asarray(out, dtype=np.int64)


def _encode_pieces(pieces: list[_Piece], encode: Encode) -> None:
    texts: list[str] = []
    for p in pieces:
        if p.plan is not None:
            texts.extend((p.plan.prefix, p.plan.middle, p.plan.suffix))
    if not texts:
        return
    encoded = encode(texts)
    k = 0
    for p in pieces:
        if p.plan is not None:
            p.encoded = (encoded[k], encoded[k + 1], encoded[k + 2])
            k += 3


_WHITESPACE = np.array(sorted(b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"), dtype=np.uint8)


@dataclass(frozen=True)
class Splicer:
    """Encodes a fragment's FIM pieces reusing the fragment's own tokens between hard boundaries: exact, and cheaper.

    For a byte-level BPE tokenizer whose only pre-tokenizer is GPT-2's regex (no normaliser, no prefix space), a
    newline right after an ASCII character that is not whitespace is a *hard boundary*: no pre-token crosses it and
    the pre-tokens on either side do not depend on the other side, so encode(x + y) == encode(x) + encode(y) when
    x + y has a hard boundary at len(x). The fragment's tokens between its first and last hard boundary inside a
    piece are then the piece's own encoding there (the document was encoded whole); only the text from the piece's
    edges to those boundaries is encoded again. `PackTokenizer.spliceable` says when a tokenizer qualifies.
    """

    token_bytes: npt.NDArray[np.int64]
    """The length in bytes of every id."""

    def encode_pieces(self, items: Sequence[tuple[Ids, FimPlan]], encode: Encode) -> list[tuple[list[int], ...]]:
        """(prefix, middle, suffix) ids of each (fragment, plan), equal to encoding each piece on its own."""
        windows: list[str] = []
        layouts: list[list[tuple[int, list[int], int]]] = []
        for fragment, plan in items:
            data = (plan.prefix + plan.middle + plan.suffix).encode("utf-8")
            lo = len(plan.prefix.encode("utf-8"))
            hi = lo + len(plan.middle.encode("utf-8"))
            arr = np.frombuffer(data, dtype=np.uint8)
            newlines = np.flatnonzero(arr[1:] == 10) + 1
            before = arr[newlines - 1]
            hard = newlines[(before < 0x80) & ~np.isin(before, _WHITESPACE)]
            starts = np.concatenate([[0], np.cumsum(self.token_bytes[fragment])[:-1]]).astype(np.int64)
            layout: list[tuple[int, list[int], int]] = []
            for a, e in ((0, lo), (lo, hi), (hi, len(data))):
                inside = hard[(hard > a) & (hard < e)]
                t1 = int(np.searchsorted(starts, inside[0])) if inside.size else -1
                t2 = int(np.searchsorted(starts, inside[-1])) if inside.size else -1
                if inside.size and starts[t1] == inside[0] and starts[t2] == inside[-1]:
                    windows.extend((data[a : inside[0]].decode("utf-8"), data[inside[-1] : e].decode("utf-8")))
                    layout.append((len(windows) - 2, fragment[t1:t2].tolist(), len(windows) - 1))
                else:  # no hard boundary inside: the whole piece is encoded again
                    windows.append(data[a:e].decode("utf-8"))
                    layout.append((len(windows) - 1, [], -1))
            layouts.append(layout)
        encoded = encode(windows) if windows else []
        out: list[tuple[list[int], ...]] = []
        for layout in layouts:
            out.append(tuple(encoded[h] + mid + (encoded[t] if t >= 0 else []) for h, mid, t in layout))
        return out


def _encode_drawn(pieces: list[_Piece], encode: Encode, splicer: Splicer | None) -> None:
    """Encodes the prefix, middle and suffix of every drawn piece: whole, or spliced from the piece's own tokens."""
    drawn = [p for p in pieces if p.plan is not None]
    if splicer is None:
        _encode_pieces(drawn, encode)
        return
    done = splicer.encode_pieces([(p.original, p.plan) for p in drawn if p.plan is not None], encode)
    for p, (pre, mid, suf) in zip(drawn, done, strict=True):
        p.encoded = (pre, mid, suf)


def fim_documents(
    texts: Sequence[str],
    originals: Sequence[Ids],
    rngs: Sequence[np.random.Generator],
    params: FimParams,
    ids: FimIds,
    encode: Encode,
    counts: FimCounts,
    splicer: Splicer | None = None,
) -> list[Ids]:
    """Document-level FIM: each document (its text and its plain encoding) transformed with its own generator."""
    pieces: list[_Piece] = []
    for text, original, rng in zip(texts, originals, rngs, strict=True):
        drawn = rng.random() < params.rate
        if not drawn:
            counts.untouched += 1
        pieces.append(_Piece(plan_split(text, rng, params.spm_rate) if drawn else None, original))
    _encode_drawn(pieces, encode, splicer)
    return [_finish(p, ids, params.truncation, counts) for p in pieces]


@dataclass
class FimContexts:
    """Context-level FIM: transforms packed contexts (seq_len tokens each) fragment by fragment.

    `text_of` recovers a fragment's exact text from its ids (None when a token boundary falls inside a
    character: that fragment is left untouched and counted as skipped).
    """

    params: FimParams
    ids: FimIds
    eot: int
    encode: Encode
    text_of: Callable[[Ids], str | None]
    counts: FimCounts = field(default_factory=FimCounts)
    splicer: Splicer | None = None
    """Encodes the pieces reusing the fragment's tokens (a qualifying tokenizer); None: encodes them whole."""

    def transform(self, contexts: Sequence[Ids], rngs: Sequence[np.random.Generator]) -> list[tuple[Ids, Ids]]:
        """Each context transformed: (its tokens, the offsets in them where each fragment starts)."""
        plans: list[list[_Piece]] = []
        for context, rng in zip(contexts, rngs, strict=True):
            plans.append(self._plan(context, rng))
        _encode_drawn([p for ps in plans for p in ps], self.encode, self.splicer)
        out: list[tuple[Ids, Ids]] = []
        for context, pieces in zip(contexts, plans, strict=True):
            out.append(self._join(context, pieces))
        return out

    def _plan(self, context: Ids, rng: np.random.Generator) -> list[_Piece]:
        pieces: list[_Piece] = []
        for fragment in _fragments(context, self.eot):
            if fragment.size == 0:
                pieces.append(_Piece(None, fragment))
                continue
            if not rng.random() < self.params.rate:
                self.counts.untouched += 1
                pieces.append(_Piece(None, fragment))
                continue
            text = self.text_of(fragment)
            plan = plan_split(text or "", rng, self.params.spm_rate)
            if text is None:
                self.counts.skipped += 1
                pieces.append(_Piece(None, fragment))
                continue
            pieces.append(_Piece(plan, fragment))
        return pieces

    def _join(self, context: Ids, pieces: list[_Piece]) -> tuple[Ids, Ids]:
        parts: list[Ids] = []
        starts: list[int] = []
        at = 0
        eot = np.array([self.eot], dtype=np.int64)
        for k, piece in enumerate(pieces):
            done = _finish(piece, self.ids, self.params.truncation, self.counts)
            if done.size:
                starts.append(at)
            parts.append(done)
            at += done.size
            if k < len(pieces) - 1:  # the end-of-text that separated it from the next fragment
                parts.append(eot)
                at += 1
        del context
        return np.concatenate(parts) if parts else np.zeros(0, np.int64), np.asarray(starts, dtype=np.int64)


def _fragments(context: Ids, eot: int) -> list[Ids]:
    """The runs of `context` between its end-of-text tokens (empty runs included, one more than there are eots)."""
    cuts = np.flatnonzero(context == eot)
    return np.split(context, cuts) if cuts.size == 0 else _split_drop(context, cuts)


def _split_drop(context: Ids, cuts: npt.NDArray[np.intp]) -> list[Ids]:
    bounds = np.concatenate([[-1], cuts, [context.size]])
    return [context[bounds[i] + 1 : bounds[i + 1]] for i in range(bounds.size - 1)]
