"""`kiln serve --model DIR` end to end on the tiny export: it picks the python target's repository, prints one JSON
line with the endpoint, the real Triton behind it answers, SIGTERM ends it with exit 0 and no process left; a vllm
repository is refused with a clear message (exit 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, node
from test_triton_serve import stop

KILN = REPO / "tools/kiln/bin/kiln.js"


def tiny_export() -> Path:
    code = (
        "import(require('node:url').pathToFileURL(process.env.KILN_SERVE_MJS).href)"
        ".then((m) => m.ensureTinyExport()).then((d) => console.log(d))"
    )
    out = subprocess.run(
        [node(), "-e", code],
        capture_output=True,
        text=True,
        env={**os.environ, "KILN_SERVE_MJS": str(REPO / "services/trainer/scripts/serve.mjs")},
    )
    if out.returncode != 0:
        pytest.fail(f"ensureTinyExport failed:\n{out.stderr[-3000:]}")
    return Path(out.stdout.strip())


def test_kiln_serve_serves_the_export_and_stops_on_sigterm() -> None:
    export = tiny_export()
    proc = subprocess.Popen(
        [node(), str(KILN), "serve", "--model", str(export), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    timer = threading.Timer(600, proc.kill)
    timer.start()
    server_pid = proc.pid
    try:
        line = proc.stdout.readline()
        timer.cancel()
        assert line, f"kiln serve printed nothing (exit {proc.poll()}):\n{proc.stderr.read()[-3000:]}"
        info = json.loads(line)
        server_pid = info["pid"]
        assert info["model"] == "ensemble" and info["target"] == "completions"
        assert Path(info["repository"]) == export / "completions"
        body = json.dumps({"text_input": "def f(", "max_tokens": 4}).encode()
        req = urllib.request.Request(info["url"] + "/v2/models/ensemble/generate", body, method="POST")
        with urllib.request.urlopen(req, timeout=120) as r:
            out = json.loads(r.read())
        assert out["completion_tokens"] == 4 and out["finish_reason"] == "length"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        for pgid in (proc.pid, info["pid"]):
            with pytest.raises(ProcessLookupError):
                os.killpg(pgid, 0)
    finally:
        timer.cancel()
        stop(proc, server_pid)


def test_kiln_serve_refuses_a_vllm_repository_clearly(tmp_path: Path) -> None:
    (tmp_path / "fast/ensemble/1").mkdir(parents=True)
    (tmp_path / "fast/ensemble/config.pbtxt").write_text('name: "ensemble"\nbackend: "vllm"\n')
    out = subprocess.run([node(), str(KILN), "serve", "--model", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "only the python backend" in out.stderr and "fast (vllm)" in out.stderr
    out = subprocess.run(
        [node(), str(KILN), "serve", "--model", str(tmp_path / "fast")], capture_output=True, text=True
    )
    assert out.returncode == 2 and "vllm repository" in out.stderr


def test_a_killed_kiln_serve_leaves_no_server_behind() -> None:
    """SIGKILL gives the launcher no chance to stop Triton: the kernel's parent-death signal does."""
    proc = subprocess.Popen(
        [node(), str(KILN), "serve", "--model", str(REPO / "services/trainer/serve-fixtures/echo"), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    timer = threading.Timer(300, proc.kill)
    timer.start()
    server_pid = proc.pid
    try:
        line = proc.stdout.readline()
        assert line, f"kiln serve printed nothing (exit {proc.poll()}):\n{proc.stderr.read()[-3000:]}"
        server_pid = json.loads(line)["pid"]
        os.killpg(server_pid, 0)  # the server's group is there
        proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.killpg(server_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        with pytest.raises(ProcessLookupError):
            os.killpg(server_pid, 0)
    finally:
        timer.cancel()
        stop(proc, server_pid)
