"""Text generation from an exported Hugging Face folder (the export stage's `<output>hf/`).

`python -m kiln_trainer.generate --model DIR --prompt TEXT [--suffix TEXT] [--max-new-tokens N] [--temperature T]
[--top-p P] [--seed N] [--stop S ...] [--device cpu|cuda] [--json]` streams the completion to stdout, or prints one
`kiln.generate/v1` object with `--json`. Bad input is one line on stderr and exit 2.

From Python: `Generator(folder).generate(prompt, ...)` gives a `Completion` (text, finish reason, token counts);
`Generator.stream(...)` the same as text pieces, decoded incrementally; `Generator.run(requests)` several requests
in one left-padded batch, as the Triton model does with dynamic batching. With `suffix`, the prompt is built from
the FIM sentinels in kiln-tokenizer.json (PSM: `<prefix>prefix<suffix>suffix<middle>`), each piece encoded on its
own as the pack stage trains on them.

Self-contained on purpose: this file imports only the standard library, torch, tokenizers and transformers, because
the export stage copies it verbatim into the Triton python-backend model folder (`ensemble/1/kiln_generate.py`).
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

__all__ = [
    "KIND",
    "Completion",
    "Event",
    "GenerateError",
    "Generator",
    "Request",
    "check_request",
    "main",
]

KIND = "kiln.generate/v1"
"""The `--json` output's kind."""
ROLES_FILE = "kiln-tokenizer.json"
ROLES_KIND = "kiln.tokenizer-roles/v1"
# End-of-text names for a folder without a roles file (kiln_trainer.special.EOT_NAMES; not imported: see above).
_EOT_NAMES = ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>", "<|eot_id|>", "<EOS>")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
FinishReason = Literal["stop", "length", "eos"]


class GenerateError(ValueError):
    """Input generation cannot use (a folder that is not an export, a bad parameter): the CLI's exit 2."""


@dataclass(frozen=True)
class Request:
    """One generation request. Defaults are the CLI's."""

    prompt: str
    """The text to continue (with `suffix`: the text before the hole)."""
    suffix: str | None = None
    """For infilling: the text after the hole. Default none (plain completion)."""
    max_new_tokens: int = 64
    """At most this many new tokens (0 gives an empty completion)."""
    temperature: float = 0.0
    """0 is greedy; above 0 samples from the softmax of logits / temperature."""
    top_p: float = 1.0
    """Nucleus sampling: the smallest set of tokens whose probability reaches top_p, in (0, 1]."""
    top_k: int = 0
    """Sample among the k most likely tokens; 0 is off; 1 is greedy."""
    seed: int | None = None
    """Seed of the sampling (reproducible); default a fresh random one."""
    stop: tuple[str, ...] = ()
    """Stop sequences: the text ends before the first one found (it is not included)."""


@dataclass(frozen=True)
class Completion:
    """What came out of one request."""

    text: str
    """The completion (never the prompt), cut before a stop sequence."""
    finish_reason: FinishReason
    """`stop` (a stop sequence), `eos` (the model ended the text) or `length` (max_new_tokens, or the context)."""
    prompt_tokens: int
    """Tokens of the prompt as the model saw it (sentinels included)."""
    completion_tokens: int
    """Tokens the model generated (an end-of-text token included)."""
    token_ids: tuple[int, ...] = ()
    """The generated tokens (an end-of-text token included, and those past a stop sequence's cut)."""


@dataclass(frozen=True)
class Event:
    """A piece of one request's text; `completion` is set on the last event of that request."""

    index: int
    """Which request of the batch."""
    text: str
    """New text (may be empty)."""
    completion: Completion | None = None
    """The whole result, on the request's last event."""


def check_request(req: Request) -> None:
    """A `GenerateError` naming the first parameter of `req` that is out of range."""
    if not isinstance(req.prompt, str):
        raise GenerateError("the prompt must be a string")
    if req.suffix is not None and not isinstance(req.suffix, str):
        raise GenerateError("the suffix must be a string")
    if isinstance(req.max_new_tokens, bool) or not isinstance(req.max_new_tokens, int) or req.max_new_tokens < 0:
        raise GenerateError(f"max_new_tokens must be a non-negative integer, got {req.max_new_tokens!r}")
    if not (isinstance(req.temperature, int | float) and math.isfinite(req.temperature) and req.temperature >= 0):
        raise GenerateError(f"temperature must be a finite number >= 0, got {req.temperature!r}")
    if not (isinstance(req.top_p, int | float) and 0 < req.top_p <= 1):
        raise GenerateError(f"top_p must be in (0, 1], got {req.top_p!r}")
    if isinstance(req.top_k, bool) or not isinstance(req.top_k, int) or req.top_k < 0:
        raise GenerateError(f"top_k must be a non-negative integer, got {req.top_k!r}")
    if req.seed is not None and (isinstance(req.seed, bool) or not isinstance(req.seed, int) or req.seed < 0):
        raise GenerateError(f"seed must be a non-negative integer, got {req.seed!r}")
    if not all(isinstance(s, str) for s in req.stop):
        raise GenerateError("stop sequences must be strings")


# --- incremental decoding and stop sequences -----------------------------------------------------------------------


class _Row:
    """One request's state in a batch: its ids, its text decoded so far, what of it was handed out."""

    def __init__(self, gen: Generator, req: Request, prompt_ids: list[int]) -> None:
        self.gen, self.req = gen, req
        self.prompt_ids = prompt_ids
        self.ids: list[int] = []
        self.text = ""
        self.emitted = 0
        self.prefix_offset = 0
        self.read_offset = 0
        self.finish: FinishReason | None = None
        self.eos_token: tuple[int, ...] = ()
        self.stops = tuple(s for s in req.stop if s)
        self.rng: torch.Generator | None = None
        if req.temperature > 0 and req.top_k != 1:
            self.rng = torch.Generator().manual_seed(req.seed if req.seed is not None else secrets.randbits(63))

    def _decode(self, ids: list[int]) -> str:
        return str(self.gen.tokenizer.decode(ids, skip_special_tokens=True))

    def push(self, token: int) -> None:
        """Adds a generated token: decodes what it completes (a token may end half a character: held back)."""
        self.ids.append(token)
        before = self._decode(self.ids[self.prefix_offset : self.read_offset])
        after = self._decode(self.ids[self.prefix_offset :])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.text += after[len(before) :]
            self.prefix_offset, self.read_offset = self.read_offset, len(self.ids)
        self._cut_at_stop()

    def flush(self) -> None:
        """At the end: whatever is still held back (an incomplete character decodes as U+FFFD)."""
        if self.finish != "stop" and self.read_offset < len(self.ids):
            before = self._decode(self.ids[self.prefix_offset : self.read_offset])
            self.text += self._decode(self.ids[self.prefix_offset :])[len(before) :]
            self.read_offset = len(self.ids)
            self._cut_at_stop()

    def _cut_at_stop(self) -> None:
        if not self.stops or self.finish == "stop":
            return
        # A stop sequence may span tokens: look from where the newest text could begin one.
        start = max(0, self.emitted - max(map(len, self.stops)))
        found = [i for i in (self.text.find(s, start) for s in self.stops) if i >= 0]
        if found:
            self.text = self.text[: min(found)]
            self.finish = "stop"

    def take(self) -> str:
        """New text that no stop sequence can still cut (a tail that begins a stop sequence waits)."""
        end = len(self.text)
        if self.finish is None:
            hold = 0
            for s in self.stops:
                for n in range(min(len(s) - 1, len(self.text)), hold, -1):
                    if self.text.endswith(s[:n]):
                        hold = n
                        break
            end -= hold
        piece = self.text[self.emitted : end]
        self.emitted = max(self.emitted, end)
        return piece

    def completion(self) -> Completion:
        assert self.finish is not None
        ids = (*self.ids, *self.eos_token)
        return Completion(self.text, self.finish, len(self.prompt_ids), len(ids), ids)


# --- the generator -------------------------------------------------------------------------------------------------


def _roles(folder: Path, added: Sequence[str]) -> dict[str, Any]:
    path = folder / ROLES_FILE
    if path.is_file():
        try:
            roles = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise GenerateError(f"{path} is not JSON: {e}") from e
        if not isinstance(roles, dict) or roles.get("kind") != ROLES_KIND or not isinstance(roles.get("eot"), str):
            raise GenerateError(f"{path} is not a {ROLES_KIND} file")
        return roles
    eot = next((t for t in _EOT_NAMES if t in added), None)
    fim_names = {"prefix": "<fim_prefix>", "middle": "<fim_middle>", "suffix": "<fim_suffix>"}
    fim = fim_names if all(t in added for t in fim_names.values()) else None
    return {"eot": eot, "fim": fim}


def _pick_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise GenerateError("--device cuda: no CUDA device is available here")
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise GenerateError(f"device must be cpu or cuda, got {device!r}")
    return torch.device(device)


def _pick_dtype(precision: str | None, device: torch.device, notes: list[str]) -> torch.dtype:
    """The dtype asked for when the device runs it well, else fp32 (and a note saying so)."""
    if precision in (None, "fp32"):
        return torch.float32
    if precision not in _DTYPES:
        notes.append(f"precision {precision} is not run by this generator: loading in fp32")
        return torch.float32
    if device.type == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            notes.append("precision bf16 is not supported by this GPU: loading in fp32")
            return torch.float32
        return _DTYPES[precision]
    # Half precision on the CPU is slow and some kernels lack it: the CPU runs fp32.
    notes.append(f"precision {precision} on the CPU: loading in fp32")
    return torch.float32


class Generator:
    """A loaded export: the model (transformers, offline) and its tokenizer (tokenizers), on one device.

    `folder`: an export's `hf/` folder. `device`: `cpu`, `cuda` or None (CUDA when there is one). `precision`:
    `fp32`, `fp16` or `bf16` (default fp32), used when the device supports it, else fp32; `notes` says what was
    chosen.
    """

    def __init__(self, folder: str | Path, device: str | None = None, precision: str | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise GenerateError(f"no such folder: {self.folder}")
        missing = [n for n in ("config.json", "tokenizer.json") if not (self.folder / n).is_file()]
        if missing:
            raise GenerateError(f"{self.folder} is not an exported model folder (no {', '.join(missing)})")
        from tokenizers import Tokenizer

        try:
            self.tokenizer: Any = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        except Exception as e:  # tokenizers raises its own Exception type
            raise GenerateError(f"cannot read {self.folder / 'tokenizer.json'}: {e}") from e
        added = [t.content for _, t in sorted(self.tokenizer.get_added_tokens_decoder().items())]
        roles = _roles(self.folder, added)
        self.eos_ids = self._eos_ids(roles)
        fim = roles.get("fim")
        self.fim_ids: tuple[int, int, int] | None = None
        if isinstance(fim, dict):
            found = [self.tokenizer.token_to_id(str(fim.get(k) or "")) for k in ("prefix", "suffix", "middle")]
            ids = [i for i in found if isinstance(i, int)]
            if len(ids) == 3:
                self.fim_ids = (ids[0], ids[1], ids[2])
        self.device = _pick_device(device)
        self.notes: list[str] = []
        self.dtype = _pick_dtype(precision, self.device, self.notes)
        self.model = self._load_model()
        config = self.model.config
        self.context = int(getattr(config, "max_position_embeddings", None) or getattr(config, "max_seq_len", 0) or 0)
        pad = getattr(config, "pad_token_id", None)
        self.pad_id = int(pad) if isinstance(pad, int) else min(self.eos_ids, default=0)
        import inspect

        takes = inspect.signature(self.model.forward).parameters
        self._takes_positions = "position_ids" in takes
        # transformers 5.x renamed past_key_values to cache (the old name warns); older versions have only the old.
        self._cache_key = "cache" if "cache" in takes else "past_key_values"
        self._last_logits_only = "logits_to_keep" in takes

    def _eos_ids(self, roles: dict[str, Any]) -> frozenset[int]:
        ids: set[int] = set()
        eot = roles.get("eot")
        if isinstance(eot, str) and self.tokenizer.token_to_id(eot) is not None:
            ids.add(int(self.tokenizer.token_to_id(eot)))
        path = self.folder / "generation_config.json"
        if path.is_file():
            with_eos = json.loads(path.read_text(encoding="utf-8")).get("eos_token_id")
            ids.update(i for i in (with_eos if isinstance(with_eos, list) else [with_eos]) if isinstance(i, int))
        return frozenset(ids)

    def _load_model(self) -> Any:
        import transformers
        from transformers import AutoModelForCausalLM

        # transformers 4.56 renamed torch_dtype to dtype; Triton's containers may carry an older one.
        major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
        key = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
        try:
            model: Any = AutoModelForCausalLM.from_pretrained(self.folder, local_files_only=True, **{key: self.dtype})
        except Exception as e:  # a missing or corrupt weights file (safetensors raises its own error type)
            first = (str(e).splitlines() or [type(e).__name__])[0]
            raise GenerateError(f"cannot load the model in {self.folder}: {first}") from e
        return model.to(self.device).eval()

    # --- prompts ---

    def prompt_ids(self, prompt: str, suffix: str | None = None) -> list[int]:
        """The prompt's ids; with `suffix`, PSM infilling: `<prefix>` prompt `<suffix>` suffix `<middle>`."""
        if suffix is None:
            return list(self.tokenizer.encode(prompt).ids)
        if self.fim_ids is None:
            raise GenerateError(
                f"infilling (a suffix) needs FIM sentinels, and the tokenizer in {self.folder} has none "
                f"(no fim roles in {ROLES_FILE})"
            )
        pre, suf, mid = self.fim_ids

        def enc(text: str) -> list[int]:
            return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

        return [pre, *enc(prompt), suf, *enc(suffix), mid]

    def check(self, req: Request) -> list[int]:
        """`req`'s prompt ids, or a `GenerateError`: a parameter out of range, infilling without FIM sentinels, a
        prompt that fills the model's context."""
        check_request(req)
        ids = self.prompt_ids(req.prompt, req.suffix)
        if self.context and len(ids) >= self.context:
            raise GenerateError(f"the prompt is {len(ids)} tokens; the model's context is {self.context}")
        return ids

    # --- generation ---

    def generate(self, prompt: str, suffix: str | None = None, **params: Any) -> Completion:
        """One completion of `prompt` (see `Request` for the parameters)."""
        return self.generate_batch([Request(prompt, suffix, **params)])[0]

    def stream(self, prompt: str, suffix: str | None = None, **params: Any) -> Stream:
        """The completion as text pieces; the `Stream`'s `completion` is set once it is exhausted."""
        return Stream(self.run([Request(prompt, suffix, **params)]))

    def generate_batch(self, requests: Sequence[Request]) -> list[Completion]:
        """Each request's completion, the requests run as one left-padded batch."""
        out: list[Completion | None] = [None] * len(requests)
        for event in self.run(requests):
            if event.completion is not None:
                out[event.index] = event.completion
        return [c for c in out if c is not None]

    def run(self, requests: Sequence[Request]) -> Iterator[Event]:
        """The requests as one batch: events of new text as it is decoded, one final event per request.

        Every request is checked before anything runs (a `GenerateError` for the first bad one).
        """
        rows = [_Row(self, req, self.check(req)) for req in requests]
        with torch.inference_mode():
            yield from self._run(rows)

    def _budget(self, row: _Row) -> int:
        room = self.context - len(row.prompt_ids) if self.context else row.req.max_new_tokens
        return min(row.req.max_new_tokens, room)

    def _run(self, rows: list[_Row]) -> Iterator[Event]:
        for i, row in enumerate(rows):
            if self._budget(row) == 0:
                row.finish = "length"
                yield Event(i, "", row.completion())
        live = [i for i, row in enumerate(rows) if row.finish is None]
        if not live:
            return
        width = max(len(rows[i].prompt_ids) for i in live)
        # Left padding: every row's last prompt token sits in the last column; the mask hides the padding.
        ids = torch.full((len(live), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(live), width), dtype=torch.long)
        for r, i in enumerate(live):
            p = rows[i].prompt_ids
            ids[r, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            mask[r, width - len(p) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        past: Any = None
        step_ids = ids
        while True:
            kwargs: dict[str, Any] = {"input_ids": step_ids, "attention_mask": mask, "use_cache": True}
            if past is not None:
                kwargs[self._cache_key] = past
            if self._takes_positions:
                kwargs["position_ids"] = positions[:, -step_ids.shape[1] :]
            if self._last_logits_only:
                kwargs["logits_to_keep"] = 1
            out = self.model(**kwargs)
            past = getattr(out, self._cache_key, None)
            if past is None:
                past = getattr(out, "past_key_values", None)
            if past is None:  # without its cache, the next step would see only the newest token
                raise RuntimeError(f"{type(self.model).__name__} returned no cache of keys and values")
            logits = out.logits[:, -1, :].float().cpu()  # [batch, vocab]; sampling on the CPU is reproducible
            nxt: list[int] = []
            for r, i in enumerate(live):
                row = rows[i]
                if row.finish is not None:
                    nxt.append(self.pad_id)
                    continue
                token = _pick(logits[r], row)
                nxt.append(token)
                if token in self.eos_ids:
                    row.eos_token = (token,)
                    row.finish = "eos"
                else:
                    row.push(token)
                if row.finish is None and len(row.ids) >= self._budget(row):
                    row.finish = "length"
                if row.finish is not None:
                    row.flush()
                piece = row.take()
                if row.finish is not None:
                    yield Event(i, piece, row.completion())
                elif piece:
                    yield Event(i, piece)
            if all(rows[i].finish is not None for i in live):
                return
            step_ids = torch.tensor(nxt, dtype=torch.long, device=self.device).unsqueeze(1)
            mask = torch.cat([mask, torch.ones_like(step_ids)], dim=1)
            positions = torch.cat([positions, positions[:, -1:] + 1], dim=1)


def _pick(logits: torch.Tensor, row: _Row) -> int:
    """The next token from one row's logits: argmax when greedy, else temperature, top-k, top-p sampling."""
    req = row.req
    if row.rng is None:
        return int(logits.argmax())
    scores = logits / req.temperature
    if req.top_k > 0:
        kth = torch.topk(scores, min(req.top_k, scores.numel())).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if req.top_p < 1:
        sorted_probs, order = probs.sort(descending=True)
        # Keep the smallest prefix whose mass reaches top_p (the most likely token always stays).
        drop = sorted_probs.cumsum(-1) - sorted_probs >= req.top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=row.rng))


class Stream:
    """Text pieces of one request as they are decoded; `completion` once the iteration is over."""

    def __init__(self, events: Iterator[Event]) -> None:
        self._events = events
        self.completion: Completion | None = None

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> str:
        while True:
            event = next(self._events)
            if event.completion is not None:
                self.completion = event.completion
            if event.text or event.completion is not None:
                return event.text


# --- the CLI -------------------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, exit 2 (argparse's default prints the usage too)
        print(f"{self.prog}: {message}", file=sys.stderr)
        sys.exit(2)


def _parser() -> _Parser:
    p = _Parser(prog="python -m kiln_trainer.generate", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--model", required=True, help="an exported Hugging Face folder (the export stage's <output>hf/)")
    p.add_argument("--prompt", required=True, help="the text to continue (with --suffix: the text before the hole)")
    p.add_argument("--suffix", help="infill between --prompt and this text (needs FIM sentinels)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="at most this many new tokens (default 64)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default 0)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling, in (0, 1] (default 1)")
    p.add_argument("--seed", type=int, help="seed of the sampling (default random)")
    p.add_argument("--stop", action="append", default=[], help="a stop sequence (repeatable; not in the output)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when there is one, else cpu")
    p.add_argument("--json", action="store_true", help=f"print one {KIND} object instead of streaming the text")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m kiln_trainer.generate ...`: 0 when done, 2 on bad input (one line on stderr)."""
    parser = _parser()
    args = parser.parse_args(argv)
    prog = parser.prog
    req = Request(args.prompt, args.suffix, args.max_new_tokens, args.temperature, args.top_p, 0, args.seed,
                  tuple(args.stop))  # fmt: skip
    try:
        check_request(req)
        if not Path(args.model).is_dir():
            raise GenerateError(f"no such folder: {args.model}")
        try:
            import transformers

            transformers.logging.set_verbosity_error()  # type: ignore[no-untyped-call]
            transformers.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        except ImportError as e:
            raise GenerateError(f"generation needs transformers, which is not installed: {e}") from e
        gen = Generator(args.model, device=args.device)
        t0 = time.perf_counter()
        if args.json:
            c = gen.generate_batch([req])[0]
            seconds = time.perf_counter() - t0
            print(json.dumps({
                "kind": KIND, "model": args.model, "prompt": args.prompt, "suffix": args.suffix, "text": c.text,
                "finish_reason": c.finish_reason,
                "usage": {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens},
                "seconds": round(seconds, 4),
                "tokens_per_s": round(c.completion_tokens / seconds, 2) if seconds > 0 else None,
            }, ensure_ascii=False))  # fmt: skip
            return 0
        stream = Stream(gen.run([req]))
        for piece in stream:
            sys.stdout.write(piece)
            sys.stdout.flush()
        if sys.stdout.isatty():
            sys.stdout.write("\n")
        return 0
    except GenerateError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
