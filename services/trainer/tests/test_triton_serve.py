"""The python repository on a real tritonserver (scripts/serve.mjs: nvidia-pytriton's server 2.51), serving the tiny
trained model (`ensureTinyExport`): generate, stream, sampling, stop sequences, infilling, dynamic batching, errors.

One server for the module, started through the launcher's own CLI (`serve.mjs --tiny --json`), which this module also
checks: one JSON line with the endpoint, SIGTERM -> exit 0 and no process of its group left.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, node
from kiln_trainer.generate import Generator

SERVE = REPO / "services/trainer/scripts/serve.mjs"


class Triton:
    def __init__(self, info: dict[str, Any]) -> None:
        self.url: str = info["url"]
        self.metrics: str = info["metrics"]
        self.repository = Path(info["repository"])
        self.pid: int = info["pid"]

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, bytes]:
        req = urllib.request.Request(
            self.url + path, json.dumps(body).encode(), {"content-type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def generate(self, **body: Any) -> dict[str, Any]:
        status, raw = self.post("/v2/models/ensemble/generate", body)
        out: dict[str, Any] = json.loads(raw)
        assert status == 200 and "error" not in out, (status, out)
        return out

    def error(self, path: str = "/v2/models/ensemble/generate", **body: Any) -> tuple[int, str]:
        status, raw = self.post(path, body)
        out = json.loads(raw)
        assert "error" in out, out
        return status, str(out["error"])

    def stream(self, **body: Any) -> list[dict[str, Any]]:
        status, raw = self.post("/v2/models/ensemble/generate_stream", {**body, "stream": True})
        assert status == 200
        events = [json.loads(line[len("data: ") :]) for line in raw.decode().split("\n") if line.startswith("data: ")]
        return events

    def counter(self, name: str) -> float:
        with urllib.request.urlopen(self.metrics, timeout=10) as r:
            text = r.read().decode()
        m = re.search(rf'^{name}{{model="ensemble",version="1"}} ([0-9.e+]+)$', text, re.M)
        assert m is not None, f"no {name} in the metrics"
        return float(m.group(1))


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Triton, subprocess.Popen[str]]]:
    proc = subprocess.Popen(
        [node(), str(SERVE), "--tiny", "--json", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    timer = threading.Timer(600, proc.kill)  # a hang fails the test instead of blocking the run
    timer.start()
    line = proc.stdout.readline()
    timer.cancel()
    if not line:
        proc.kill()
        pytest.fail(f"serve.mjs --tiny printed no endpoint (exit {proc.wait()}):\n{proc.stderr.read()[-3000:]}")  # type: ignore[union-attr]
    triton = Triton(json.loads(line))
    try:
        yield triton, proc
    finally:
        stop(proc, triton.pid)


def stop(proc: subprocess.Popen[str], server_pid: int) -> None:
    """Ends the launcher (SIGTERM: it stops the server), then both process groups (the server has its own)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=60)
    for pgid in (proc.pid, server_pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)


@pytest.fixture(scope="module")
def triton(served: tuple[Triton, subprocess.Popen[str]]) -> Triton:
    return served[0]


@pytest.fixture(scope="module")
def ref(triton: Triton) -> Generator:
    """kiln_trainer.generate on the same export: what the server must answer."""
    return Generator(triton.repository.parent / "hf", device="cpu")


def test_ready_and_the_model_is_the_tiny_export(triton: Triton) -> None:
    with urllib.request.urlopen(triton.url + "/v2/health/ready", timeout=10) as r:
        assert r.status == 200
    with urllib.request.urlopen(triton.url + "/v2/models/ensemble/config", timeout=10) as r:
        config = json.loads(r.read())
    assert config["backend"] == "python" and config["max_batch_size"] == 8
    assert int(config["dynamic_batching"]["max_queue_delay_microseconds"]) == 5000
    assert config["model_transaction_policy"]["decoupled"] is True


def test_greedy_generate_is_the_reference_completion_and_deterministic(triton: Triton, ref: Generator) -> None:
    want = ref.generate("def loads(s", max_new_tokens=12)
    got = triton.generate(text_input="def loads(s", max_tokens=12)
    assert got["text_output"] == want.text and got["finish_reason"] == want.finish_reason == "length"
    assert got["completion_tokens"] == 12 and got["prompt_tokens"] == want.prompt_tokens > 0
    assert triton.generate(text_input="def loads(s", max_tokens=12, top_k=1) == got


def test_seeded_sampling_is_reproducible_and_the_seed_matters(triton: Triton, ref: Generator) -> None:
    body = {"text_input": "import ", "max_tokens": 16, "temperature": 1.2, "top_p": 0.95, "top_k": 50}
    a = triton.generate(**body, random_seed=7)
    assert triton.generate(**body, random_seed=7) == a
    want = ref.generate("import ", max_new_tokens=16, temperature=1.2, top_p=0.95, top_k=50, seed=7)
    assert a["text_output"] == want.text
    others = {triton.generate(**body, random_seed=s)["text_output"] for s in range(8, 12)}
    assert others - {a["text_output"]}, "four other seeds all gave the same text"


def test_stream_sends_pieces_then_the_finish_reason_and_counts(triton: Triton) -> None:
    body = {"text_input": "class ", "max_tokens": 10, "temperature": 0.9, "random_seed": 3}
    events = triton.stream(**body)
    assert len(events) >= 2
    assert all("finish_reason" not in e for e in events[:-1])
    last = events[-1]
    assert last["finish_reason"] == "length" and last["completion_tokens"] == 10 and last["prompt_tokens"] > 0
    assert "".join(e["text_output"] for e in events) == triton.generate(**body)["text_output"]


def test_a_stop_sequence_ends_the_text_before_it(triton: Triton) -> None:
    full = triton.generate(text_input="def f(x", max_tokens=24)["text_output"]
    stop = full[5:8]
    assert len(stop) == 3
    got = triton.generate(text_input="def f(x", max_tokens=24, stop_words=[stop, "never-there"])
    assert got["finish_reason"] == "stop" and got["text_output"] == full[: full.index(stop)]
    events = triton.stream(text_input="def f(x", max_tokens=24, stop_words=[stop])
    assert events[-1]["finish_reason"] == "stop" and "".join(e["text_output"] for e in events) == got["text_output"]
    assert triton.generate(text_input="def f(x", max_tokens=24, stop_words="")["text_output"] == full


def test_infilling_uses_the_fim_sentinels(triton: Triton, ref: Generator) -> None:
    want = ref.generate("def f(", suffix="):\n    return x\n", max_new_tokens=8)
    got = triton.generate(text_input="def f(", suffix="):\n    return x\n", max_tokens=8)
    assert got["text_output"] == want.text
    assert got["prompt_tokens"] == want.prompt_tokens == len(ref.prompt_ids("def f(", "):\n    return x\n"))
    plain = triton.generate(text_input="def f(", max_tokens=8)
    assert got["prompt_tokens"] > plain["prompt_tokens"]  # the suffix and three sentinels are in the prompt


def settled(triton: Triton, name: str, quiet: float = 2.5, timeout: float = 60.0) -> float:
    """A counter's value once it has not moved for `quiet` seconds (longer than a metrics refresh)."""
    deadline = time.monotonic() + timeout
    value = triton.counter(name)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = triton.counter(name)
        if now == value:
            return now
        value = now
    raise AssertionError(f"{name} still moving after {timeout} s")


def test_concurrent_requests_are_batched(triton: Triton, ref: Generator) -> None:
    prompts = [f"def f{i}(x" for i in range(8)]
    # A request of an earlier test may still be finishing on a loaded machine: count from a quiet server.
    before_req, before_exec = settled(triton, "nv_inference_request_success"), triton.counter("nv_inference_exec_count")
    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda p: triton.generate(text_input=p, max_tokens=24), prompts))
    requests = triton.counter("nv_inference_request_success") - before_req
    executions = triton.counter("nv_inference_exec_count") - before_exec
    assert requests == 8
    assert executions < requests, f"{requests} requests in {executions} executions: no batch of two or more"
    # Left-padded in one batch, each still gets its own greedy completion.
    for p, out in zip(prompts, outs, strict=True):
        assert out["text_output"] == ref.generate(p, max_new_tokens=24).text


def test_bad_requests_are_triton_errors(triton: Triton) -> None:
    _, message = triton.error(text_input="x", max_tokens=-1)
    assert "max_tokens" in message
    _, message = triton.error(text_input="x", bad_words=["x"])
    assert "bad_words" in message
    _, message = triton.error(max_tokens=3)
    assert "text_input" in message
    _, message = triton.error(text_input="x", temperature="hot")
    assert "Unable to parse" in message  # Triton's own check of the input's type (it does not name the input)
    status, message = triton.error("/v2/models/nope/generate", text_input="x")
    assert status >= 400 and "nope" in message
    # The server still answers afterwards.
    assert triton.generate(text_input="x", max_tokens=2)["completion_tokens"] == 2


def test_sigterm_stops_the_launcher_with_exit_0_and_no_process_left(
    served: tuple[Triton, subprocess.Popen[str]],
) -> None:
    # Last in the module: it stops the server.
    triton, proc = served
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    for pgid in (proc.pid, triton.pid):
        with pytest.raises(ProcessLookupError):
            os.killpg(pgid, 0)
