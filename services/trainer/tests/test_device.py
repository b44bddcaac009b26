"""The trainer runs where it is: on the GPU when one is visible, else on the CPU, with the same code."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from kiln_trainer.device import check_step, device_info, pick_device


def test_given_this_machine_when_a_device_is_picked_then_it_is_the_gpu_exactly_when_one_is_visible() -> None:
    info = device_info()

    assert info.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert info.gpus == torch.cuda.device_count()
    assert (info.gpu_name is not None) == (info.device == "cuda")


def test_given_the_picked_device_when_a_small_model_trains_there_then_its_loss_falls_and_it_ran_there() -> None:
    device = pick_device()

    step = check_step(device, steps=30)

    assert step["device"].startswith(device)
    assert step["last_loss"] < 0.5 * step["first_loss"]


def test_given_kiln_device_cpu_when_a_device_is_picked_then_it_is_the_cpu_even_beside_a_gpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KILN_DEVICE", "cpu")

    assert pick_device() == "cpu"


def test_given_the_module_cli_when_run_with_json_then_it_reports_the_device_and_a_step() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kiln_trainer.device", "--json"], capture_output=True, text=True, check=True
    )

    report = json.loads(out.stdout)
    assert report["torch"] == torch.__version__
    assert report["device"] in ("cpu", "cuda")
    assert report["step"]["last_loss"] < report["step"]["first_loss"]


def test_given_kiln_device_cuda_when_run_then_it_computes_on_the_gpu_or_fails_saying_there_is_none() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kiln_trainer.device", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "KILN_DEVICE": "cuda"},
    )

    assert "Traceback" not in out.stderr
    if torch.cuda.is_available():
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["step"]["device"].startswith("cuda")
    else:
        assert out.returncode == 1
        assert "PyTorch sees no GPU" in out.stderr
