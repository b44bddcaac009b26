"""The roles of a tokenizer's special tokens: end of text, padding, the FIM sentinels, the UL2 sentinels.

The tokenizer stage writes them next to `tokenizer.json` as `kiln-tokenizer.json` (`ROLES_FILE`); the pack stage,
the trainer and the eval runner read them from there, so no one guesses which token ends a document. A tokenizer
directory made elsewhere (no roles file) gets its roles inferred from the usual names (`infer_roles`).

The roles file (`kind: kiln.tokenizer-roles/v1`):

    {"kind": "kiln.tokenizer-roles/v1", "eot": "<|endoftext|>", "pad": "<|padding|>",
     "fim": {"prefix": "<fim_prefix>", "middle": "<fim_middle>", "suffix": "<fim_suffix>", "pad": "<fim_pad>"},
     "ul2_sentinels": ["<extra_id_0>", ...], "special_tokens": [every special token, in id order]}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "EOT_NAMES",
    "PAD_NAMES",
    "ROLES_FILE",
    "ROLES_KIND",
    "FimSentinels",
    "SpecialTokens",
    "infer_roles",
    "ul2_sentinel_names",
]

ROLES_FILE = "kiln-tokenizer.json"
ROLES_KIND = "kiln.tokenizer-roles/v1"
EOT_NAMES = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "<|eot_id|>", "<EOS>")
"""Names that mean end of text, in order of preference, for tokenizers without a roles file."""
PAD_NAMES = ("<|padding|>", "<pad>", "<|pad|>", "[PAD]", "<PAD>")
"""Names that mean padding, in order of preference."""
_FIM_DEFAULTS = {"prefix": "<fim_prefix>", "middle": "<fim_middle>", "suffix": "<fim_suffix>", "pad": "<fim_pad>"}
UL2_TEMPLATE = "<extra_id_{i}>"
"""The UL2 (and T5) sentinel names: `<extra_id_0>`, `<extra_id_1>`, ..."""


def ul2_sentinel_names(count: int, template: str = UL2_TEMPLATE) -> tuple[str, ...]:
    """The `count` UL2 sentinel tokens spelt by `template` (`{i}` is the number)."""
    return tuple(template.replace("{i}", str(i)) for i in range(count))


@dataclass(frozen=True)
class FimSentinels:
    """The four FIM sentinel tokens (Bavarian et al. 2022; StarCoder's names by default)."""

    prefix: str
    middle: str
    suffix: str
    pad: str

    def names(self) -> tuple[str, str, str, str]:
        """prefix, middle, suffix, pad."""
        return (self.prefix, self.middle, self.suffix, self.pad)

    @staticmethod
    def of(value: Mapping[str, Any]) -> FimSentinels:
        """From the spec's `fim_sentinels` (its missing keys take StarCoder's names)."""
        merged = {**_FIM_DEFAULTS, **{k: v for k, v in value.items() if isinstance(v, str)}}
        return FimSentinels(merged["prefix"], merged["middle"], merged["suffix"], merged["pad"])


def _unique(tokens: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(tokens))


@dataclass(frozen=True)
class SpecialTokens:
    """A tokenizer's special tokens and what each is for."""

    eot: str
    """Ends every document (joins documents in packed sequences)."""
    pad: str | None
    """Fills the end of a sequence; never a training target."""
    fim: FimSentinels | None
    """The FIM sentinels, when the tokenizer has them."""
    ul2_sentinels: tuple[str, ...]
    """UL2's span sentinels, in order (`<extra_id_0>`, ...), when the tokenizer has them."""
    special_tokens: tuple[str, ...]
    """Every special token (the roles' included), in the order they get ids."""

    @staticmethod
    def of_section(section: Mapping[str, Any]) -> SpecialTokens:
        """The roles a spec's resolved tokenizer section asks for (`special_tokens`, `fim_sentinels`, `ul2_sentinels`).

        End of text is the first listed token with an end-of-text name, else the first listed token; padding the first
        with a padding name. The FIM sentinels and the UL2 sentinels are added after the listed tokens.
        """
        listed = [str(t) for t in section.get("special_tokens") or []]
        fim_value = section.get("fim_sentinels")
        fim = FimSentinels.of(fim_value) if isinstance(fim_value, Mapping) else None
        ul2_value = section.get("ul2_sentinels")
        ul2: tuple[str, ...] = ()
        if isinstance(ul2_value, Mapping):
            ul2 = ul2_sentinel_names(int(ul2_value.get("count", 100)), str(ul2_value.get("template", UL2_TEMPLATE)))
        every = _unique([*listed, *(fim.names() if fim else ()), *ul2])
        if not every:
            every = ("<|endoftext|>",)
        eot = next((t for t in every if t in EOT_NAMES), every[0])
        pad = next((t for t in every if t in PAD_NAMES), None)
        return SpecialTokens(eot, pad, fim, ul2, every)

    def to_json(self) -> dict[str, Any]:
        """The roles file's content."""
        return {
            "kind": ROLES_KIND,
            "eot": self.eot,
            "pad": self.pad,
            "fim": None
            if self.fim is None
            else dict(zip(("prefix", "middle", "suffix", "pad"), self.fim.names(), strict=True)),
            "ul2_sentinels": list(self.ul2_sentinels),
            "special_tokens": list(self.special_tokens),
        }

    @staticmethod
    def from_json(value: Mapping[str, Any]) -> SpecialTokens:
        """Roles from a roles file's content; a `ValueError` when it is not one."""
        if value.get("kind") != ROLES_KIND or not isinstance(value.get("eot"), str):
            raise ValueError(f"not a {ROLES_KIND} file")
        fim = value.get("fim")
        return SpecialTokens(
            eot=value["eot"],
            pad=value.get("pad") if isinstance(value.get("pad"), str) else None,
            fim=FimSentinels.of(fim) if isinstance(fim, Mapping) else None,
            ul2_sentinels=tuple(str(t) for t in value.get("ul2_sentinels") or []),
            special_tokens=tuple(str(t) for t in value.get("special_tokens") or []),
        )

    def write(self, folder: Path) -> Path:
        """Writes the roles file into `folder`; returns its path."""
        path = folder / ROLES_FILE
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        return path

    @staticmethod
    def read(folder: Path, added_tokens: Sequence[str] = ()) -> SpecialTokens:
        """The roles of the tokenizer in `folder`: its roles file, else inferred from `added_tokens` (`infer_roles`)."""
        path = folder / ROLES_FILE
        if path.is_file():
            try:
                return SpecialTokens.from_json(json.loads(path.read_text(encoding="utf-8")))
            except ValueError as e:
                raise ValueError(f"{path} is not a kiln tokenizer roles file: {e}") from e
        return infer_roles(added_tokens)


def infer_roles(added_tokens: Sequence[str]) -> SpecialTokens:
    """Roles from a tokenizer's special tokens by their usual names (a tokenizer not made by kiln).

    A `ValueError` when none of them can end a document.
    """
    have = set(added_tokens)
    eot = next((t for t in EOT_NAMES if t in have), None)
    if eot is None:
        raise ValueError(f"none of the tokenizer's special tokens ends a document (looked for {', '.join(EOT_NAMES)})")
    pad = next((t for t in PAD_NAMES if t in have), None)
    fim = FimSentinels(**_FIM_DEFAULTS) if all(t in have for t in _FIM_DEFAULTS.values()) else None
    sentinels: list[str] = []
    while UL2_TEMPLATE.format(i=len(sentinels)) in have:
        sentinels.append(UL2_TEMPLATE.format(i=len(sentinels)))
    return SpecialTokens(eot, pad, fim, tuple(sentinels), tuple(added_tokens))
