"""The tokenizer as the pack stage uses it: a tokenizer folder, its roles, batched encoding, ids back to text.

A tokenizer folder holds `tokenizer.json` (Hugging Face tokenizers) and, from kiln's tokenizer stage,
`kiln-tokenizer.json` (the roles of its special tokens, see special.py). Ordinary text is encoded with
`encode_special_tokens = True`: a literal `<|endoftext|>` inside code is text, never the special id; the pack
stage inserts special ids itself.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from .special import ROLES_FILE, SpecialTokens
from .stage import StageConfigError
from .tokenizer import PRETOKENIZER_PATTERN

__all__ = ["TOKENIZER_FILE", "PackTokenizer", "TextOfIds", "byte_level_table", "encode_ids"]

TOKENIZER_FILE = "tokenizer.json"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte-to-character map that byte-level BPE vocabularies are spelt in."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs, strict=True)}


def byte_level_table(tok: Tokenizer) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """For a byte-level tokenizer: (bytes of every id concatenated, offset of each id, length of each id)."""
    inverse = {c: b for b, c in _bytes_to_unicode().items()}
    special = {t.content for t in tok.get_added_tokens_decoder().values()}
    size = tok.get_vocab_size(with_added_tokens=True)
    pieces: list[bytes] = [b""] * size
    for token, i in tok.get_vocab(with_added_tokens=True).items():
        if token in special or any(c not in inverse for c in token):
            pieces[i] = token.encode("utf-8")
        else:
            pieces[i] = bytes(inverse[c] for c in token)
    lengths = np.array([len(p) for p in pieces], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return np.frombuffer(b"".join(pieces), dtype=np.uint8), offsets, lengths


def encode_ids(tok: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """The ids of each text (no special tokens added, literal special-token text kept as text)."""
    return [e.ids for e in tok.encode_batch_fast(list(texts), add_special_tokens=False)]


def _is_byte_level(spec: Any) -> bool:
    if not isinstance(spec, dict):
        return False
    if spec.get("type") == "ByteLevel":
        return True
    return any(_is_byte_level(d) for d in spec.get("decoders") or [])


def _is_gpt2_byte_level(pre: dict[str, Any]) -> bool:
    return (
        pre.get("type") == "ByteLevel" and pre.get("use_regex", True) is True and pre.get("add_prefix_space") is False
    )


def _is_kiln_pre_tokenizer(pre: dict[str, Any]) -> bool:
    """kiln's own pre-tokenizer (the tokenizer stage's pattern, then bytes). A newline right after a non-space
    character always starts a piece there too (no alternative matches "x\\n"), and the pieces tile the text, so
    GPT-2's hard boundaries hold; the splicing tests run against a tokenizer trained with it."""
    parts = pre.get("pretokenizers") if pre.get("type") == "Sequence" else None
    if not isinstance(parts, list) or len(parts) != 2:
        return False
    split, byte_level = parts
    return (
        split.get("type") == "Split"
        and split.get("pattern") == {"Regex": PRETOKENIZER_PATTERN}
        and split.get("behavior") == "Isolated"
        and split.get("invert") is False
        and byte_level.get("type") == "ByteLevel"
        and byte_level.get("use_regex") is False
        and byte_level.get("add_prefix_space") is False
    )


def _is_spliceable(spec: dict[str, Any]) -> bool:
    pre = spec.get("pre_tokenizer") or {}
    model = spec.get("model") or {}
    return (
        spec.get("normalizer") is None
        and (_is_gpt2_byte_level(pre) or _is_kiln_pre_tokenizer(pre))
        and model.get("type") == "BPE"
        and model.get("dropout") is None
        and _is_byte_level(spec.get("decoder"))
        and all(t.get("special") for t in spec.get("added_tokens") or [])
    )


@dataclass
class PackTokenizer:
    """A loaded tokenizer folder: the tokenizer, its roles, ids of the roles, and how to get text back."""

    folder: Path
    tokenizer: Tokenizer
    roles: SpecialTokens
    vocab_size: int
    digest: str
    eot_id: int
    pad_id: int
    byte_level: bool
    spliceable: bool = False
    """Byte-level BPE behind GPT-2's regex or kiln's own pre-tokenizer (no normaliser, no prefix space, only special
    added tokens): FIM pieces can reuse a fragment's own tokens between hard boundaries (fim.Splicer)."""

    @staticmethod
    def load(folder: str | os.PathLike[str]) -> PackTokenizer:
        """The tokenizer in `folder`; a `StageConfigError` saying what is expected when it is not one."""
        path = Path(folder)
        file = path / TOKENIZER_FILE
        expected = (
            f"expected a tokenizer folder with {TOKENIZER_FILE} (Hugging Face tokenizers) and {ROLES_FILE} "
            "(the roles of its special tokens), as kiln's tokenizer stage writes"
        )
        if not file.is_file():
            raise StageConfigError(f"{path} is not a tokenizer: no {TOKENIZER_FILE}; {expected}")
        data = file.read_bytes()
        try:
            tok = Tokenizer.from_str(data.decode("utf-8"))
        except Exception as e:  # tokenizers raises plain Exceptions
            raise StageConfigError(f"{file} is not a tokenizer ({e}); {expected}") from e
        added = [t.content for _, t in sorted(tok.get_added_tokens_decoder().items())]
        try:
            roles = SpecialTokens.read(path, added)
        except ValueError as e:
            raise StageConfigError(f"{path}: {e}; {expected}") from e
        tok.encode_special_tokens = True
        ids = PackTokenizer._ids(tok, [roles.eot, roles.pad or ""], what="end of text and padding")
        spec = json.loads(tok.to_str())
        return PackTokenizer(
            folder=path,
            tokenizer=tok,
            roles=roles,
            vocab_size=tok.get_vocab_size(with_added_tokens=True),
            digest="sha256:" + hashlib.sha256(data).hexdigest(),
            eot_id=ids[0],
            pad_id=ids[1],
            byte_level=_is_byte_level(spec.get("decoder")),
            spliceable=_is_spliceable(spec),
        )

    @staticmethod
    def _ids(tok: Tokenizer, names: Sequence[str], what: str) -> list[int]:
        missing = [n or "(none)" for n in names if not n or tok.token_to_id(n) is None]
        if missing:
            raise StageConfigError(f"the tokenizer lacks the {what} tokens {', '.join(missing)}")
        return [tok.token_to_id(n) or 0 for n in names]

    def ids_of(self, names: Sequence[str], what: str) -> list[int]:
        """The ids of special tokens `names`; a `StageConfigError` naming those the tokenizer lacks."""
        return self._ids(self.tokenizer, names, what)

    def fim_ids(self) -> tuple[int, int, int, int]:
        """prefix, middle, suffix, pad ids; a `StageConfigError` when the tokenizer has no FIM sentinels."""
        if self.roles.fim is None:
            raise StageConfigError(f"the tokenizer in {self.folder} has no FIM sentinels (its roles name none)")
        p, m, s, pad = self.ids_of(self.roles.fim.names(), "FIM sentinel")
        return p, m, s, pad

    def decode(self, ids: Sequence[int]) -> str:
        """The text of `ids`, special tokens shown."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)


class TextOfIds:
    """Recovers the exact text of a run of ids, or None when a token boundary falls inside a character."""

    def __init__(self, tok: PackTokenizer) -> None:
        self.tok = tok
        self.table = byte_level_table(tok.tokenizer) if tok.byte_level else None

    def token_bytes(self) -> npt.NDArray[np.int64] | None:
        """The length in bytes of every id (byte-level tokenizers), else None."""
        return None if self.table is None else self.table[2]

    def __call__(self, ids: npt.NDArray[Any]) -> str | None:
        if self.table is None:
            text = self.tok.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)
            return None if "\ufffd" in text else text
        buf, offsets, lengths = self.table
        idx = ids.astype(np.int64)
        lens = lengths[idx]
        total = int(lens.sum())
        if total == 0:
            return ""
        # Gather every id's bytes at once: position k of id j reads buf[offsets[j] + k].
        ends = np.cumsum(lens)
        gather = np.repeat(offsets[idx] - (ends - lens), lens) + np.arange(total)
        try:
            return buf[gather].tobytes().decode("utf-8")
        except UnicodeDecodeError:
            return None
