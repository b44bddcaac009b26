"""The Triton python-backend model of kiln's model repositories: `<repo>/ensemble/1/model.py` is a copy of this file.

Not imported by kiln_trainer: the export stage copies it, with `kiln_generate.py` (a byte-for-byte copy of
kiln_trainer/generate.py) beside it, and Triton's python backend runs it with its own `triton_python_backend_utils`.

The model config's parameters: `hf_dir`, the Hugging Face folder relative to the model folder (`../../hf` for
`<output><target>/ensemble/`), resolved at load time, so the repository works wherever storage is mounted; and
`precision` (`fp32`, `fp16`, `bf16`), used when the device supports it, else fp32 (logged).

The protocol (TensorRT-LLM's ensemble names, one for every kiln backend), per request, every input optional but
`text_input`: `text_input`, `suffix` (infilling), `max_tokens` (default 64), `temperature` (0 or absent: greedy),
`top_p`, `top_k` (1: greedy), `random_seed`, `stop_words` (strings; `""` is none), `bad_words` (only `""`), `stream`.
Outputs: `text_output` (the completion only, never the prompt), `finish_reason`, `prompt_tokens`,
`completion_tokens`. The model is decoupled: a request without `stream` gets exactly one response (so Triton's
`/generate` works), with `stream` one response per piece of text and a last one with the finish reason.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

_CORE = "kiln_generate"


def _load_core() -> Any:
    """kiln_generate.py from this file's folder (the python backend does not put it on sys.path)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), _CORE + ".py")
    spec = importlib.util.spec_from_file_location(_CORE, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_CORE] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def _values(request: Any, name: str) -> list[Any] | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    return list(np.asarray(tensor.as_numpy()).reshape(-1))


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _one(request: Any, name: str) -> Any:
    values = _values(request, name)
    if not values:
        return None
    if len(values) != 1:
        raise ValueError(f"{name} must be one value, got {len(values)}")
    return values[0]


def decode_request(core: Any, request: Any) -> tuple[Any, bool]:
    """A Triton request as the core's `Request` and whether it streams; a `ValueError` for a bad one."""
    prompt = _one(request, "text_input")
    if prompt is None:
        raise ValueError("text_input is required")
    suffix = _one(request, "suffix")
    max_tokens = _one(request, "max_tokens")
    temperature = _one(request, "temperature")
    top_p = _one(request, "top_p")
    top_k = _one(request, "top_k")
    seed = _one(request, "random_seed")
    stream = _one(request, "stream")
    stops = [s for s in (_text(v) for v in _values(request, "stop_words") or []) if s]
    bad = [s for s in (_text(v) for v in _values(request, "bad_words") or []) if s]
    if bad:
        raise ValueError("bad_words is not supported by kiln's python backend")
    req = core.Request(
        prompt=_text(prompt),
        suffix=None if suffix is None else _text(suffix),
        max_new_tokens=64 if max_tokens is None else int(max_tokens),
        temperature=0.0 if temperature is None else float(temperature),
        top_p=1.0 if top_p is None else float(top_p),
        top_k=0 if top_k is None else int(top_k),
        seed=None if seed is None else int(seed),
        stop=tuple(stops),
    )
    try:
        core.check_request(req)
    except ValueError as e:  # said in the protocol's names, not the core's
        raise ValueError(str(e).replace("max_new_tokens", "max_tokens").replace("seed", "random_seed")) from e
    return req, bool(stream)


def _response(text: str, completion: Any | None) -> Any:
    tensors = [pb_utils.Tensor("text_output", np.array([[text.encode("utf-8")]], dtype=np.object_))]
    if completion is not None:
        tensors += [
            pb_utils.Tensor("finish_reason", np.array([[completion.finish_reason.encode()]], dtype=np.object_)),
            pb_utils.Tensor("prompt_tokens", np.array([[completion.prompt_tokens]], dtype=np.int32)),
            pb_utils.Tensor("completion_tokens", np.array([[completion.completion_tokens]], dtype=np.int32)),
        ]
    return pb_utils.InferenceResponse(output_tensors=tensors)


def _error(message: str) -> Any:
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))


class TritonPythonModel:
    """kiln's generation behind Triton: the requests of one `execute` run as one left-padded batch."""

    def initialize(self, args: dict[str, Any]) -> None:
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in (config.get("parameters") or {}).items()}
        folder = os.path.normpath(os.path.join(args["model_repository"], params.get("hf_dir", "../../hf")))
        kind = args.get("model_instance_kind", "CPU")
        device = f"cuda:{args.get('model_instance_device_id', '0')}" if kind == "GPU" else "cpu"
        self.core = _load_core()
        self.gen = self.core.Generator(folder, device=device, precision=params.get("precision") or None)
        self.decoupled = bool(pb_utils.using_decoupled_model_transaction_policy(config))
        for note in self.gen.notes:
            pb_utils.Logger.log_warn(f"kiln: {note}")
        pb_utils.Logger.log_info(f"kiln: {folder} on {self.gen.device} in {str(self.gen.dtype).split('.')[-1]}")

    def execute(self, requests: list[Any]) -> list[Any] | None:
        """Decoupled: answers through each request's response sender and returns None; else one response each."""
        answers: list[Any] = [None] * len(requests)
        batch: list[tuple[int, Any, bool]] = []
        for i, request in enumerate(requests):
            try:
                req, stream = decode_request(self.core, request)
                self.gen.check(req)
            except ValueError as e:  # the core's GenerateError is a ValueError
                answers[i] = _error(str(e))
                continue
            batch.append((i, req, stream and self.decoupled))
        senders = [r.get_response_sender() for r in requests] if self.decoupled else []
        finished: set[int] = set()
        try:
            for event in self.gen.run([req for _, req, _ in batch]) if batch else ():
                i, _, stream = batch[event.index]
                if event.completion is not None:
                    finished.add(i)
                if stream and event.completion is None:
                    senders[i].send(_response(event.text, None))
                elif stream:
                    final = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
                    senders[i].send(_response(event.text, event.completion), flags=final)
                elif event.completion is not None:
                    answers[i] = _response(event.completion.text, event.completion)
        except Exception as e:  # every request still waiting gets an answer: a decoupled one would hang otherwise
            pb_utils.Logger.log_error(f"kiln: generation failed: {e}")
            for i, _, _ in batch:
                if i not in finished:
                    answers[i] = _error(f"generation failed: {e}")
        if not self.decoupled:
            return answers
        for i, answer in enumerate(answers):
            if answer is not None:
                senders[i].send(answer, flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None

    def finalize(self) -> None:
        self.gen = None
