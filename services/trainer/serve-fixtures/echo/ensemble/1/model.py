"""The echo model of kiln's Triton protocol: `text_output` is `text_input`, cut to `max_tokens` words when given.

A "token" here is a word with the whitespace before it, so `prompt_tokens` and `completion_tokens` count words.
With `stream`, one response per word and a last, empty one with `finish_reason` (`length` when cut, else `stop`).
Requests arrive batched (dynamic batching); each gets its answers through its own response sender (decoupled).
Only numpy and Triton's `triton_python_backend_utils`: it loads in well under a second.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

_WORD = re.compile(r"\s*\S+|\s+$")


def _one(request: Any, name: str) -> Any:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        return None
    values = np.asarray(tensor.as_numpy()).reshape(-1)
    return values[0] if len(values) else None


def _response(text: str, final: tuple[str, int, int] | None) -> Any:
    tensors = [pb_utils.Tensor("text_output", np.array([[text.encode("utf-8")]], dtype=np.object_))]
    if final is not None:
        reason, prompt, completion = final
        tensors += [
            pb_utils.Tensor("finish_reason", np.array([[reason.encode()]], dtype=np.object_)),
            pb_utils.Tensor("prompt_tokens", np.array([[prompt]], dtype=np.int32)),
            pb_utils.Tensor("completion_tokens", np.array([[completion]], dtype=np.int32)),
        ]
    return pb_utils.InferenceResponse(output_tensors=tensors)


class TritonPythonModel:
    def execute(self, requests: list[Any]) -> None:
        final_flag = pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL
        for request in requests:
            sender = request.get_response_sender()
            raw = _one(request, "text_input")
            if raw is None:
                error = pb_utils.TritonError("text_input is required")
                sender.send(pb_utils.InferenceResponse(output_tensors=[], error=error), flags=final_flag)
                continue
            text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            words = _WORD.findall(text)
            limit = _one(request, "max_tokens")
            if limit is not None and int(limit) < 0:
                error = pb_utils.TritonError(f"max_tokens must be >= 0, got {int(limit)}")
                sender.send(pb_utils.InferenceResponse(output_tensors=[], error=error), flags=final_flag)
                continue
            cut = words if limit is None else words[: int(limit)]
            final = ("length" if len(cut) < len(words) else "stop", len(words), len(cut))
            if bool(_one(request, "stream")):
                for word in cut:
                    sender.send(_response(word, None))
                sender.send(_response("", final), flags=final_flag)
            else:
                sender.send(_response("".join(cut), final), flags=final_flag)
        return None
