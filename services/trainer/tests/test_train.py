"""The train stage on CPU: real code packed with kiln's tokenizer, a tiny model (d_model 64, 2 layers, seq 64).

Every run is a real process (`python -m kiln_trainer.train`, or torchrun with 2 processes on gloo); the per-step
losses come from rank 0's progress lines. One thread per process (OMP_NUM_THREADS=1): two ranks on two cores.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from jsonschema import Draft202012Validator

from conftest import mounted_config, plan_of, stdlib_dir, write_json
from kiln_trainer.checkpoint import LATEST, load_latest
from kiln_trainer.export import export_checkpoint
from kiln_trainer.model import ModelConfig, Transformer
from kiln_trainer.stage import (
    TERMINAL_EXIT,
    StageConfigError,
    _registry,
    read_stage_config,
    schemas_dir,
    storage_path,
)
from kiln_trainer.train import PROGRESS_KIND, RETRYABLE_EXIT, lr_at, micro_candidates, plan_steps
from kiln_trainer.train import run as run_train

STEPS = 30
"""Steps of the runs compared step by step; a checkpoint every 10 (5120 tokens of 512 a step)."""


def validator(name: str) -> Draft202012Validator:
    registry, by_file = _registry(schemas_dir())
    return Draft202012Validator(by_file[name], registry=registry)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pack(tokenizer: Path, out: Path, seq_len: int) -> Path:
    subprocess.run(
        [sys.executable, "-m", "kiln_trainer.pack", "run", "--tokenizer", str(tokenizer), "--output", str(out),
         "--seq-len", str(seq_len), "--workers", "1",
         "--input", str(stdlib_dir() / "json"), str(stdlib_dir() / "email")],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def packed(kiln_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """json and email of the standard library, packed into sequences of 64 with kiln's tokenizer (about 1700)."""
    return pack(kiln_tokenizer_dir, tmp_path_factory.mktemp("packed") / "packed", 64)


def config(packed: Path, tokenizer: Path, checkpoints: Path, steps: int = STEPS, **training: Any) -> dict[str, Any]:
    """A train config by hand (no envelope): global batch 8 sequences of 64, micro batch 2, lr 3e-3."""
    return {
        "model": {"d_model": 64, "n_layers": 2, "n_heads": 4, "mlp_ratio": 4, "vocab_size": 2048,
                  "max_seq_len": 64, "position_encoding": "rope", "precision": "bf16"},
        "objective": {"type": "next-token"},
        "training": {
            "token_budget": steps * 512, "global_batch": {"sequences": 8, "tokens": 512}, "micro_batch": 2,
            "checkpoint": {"interval": 5120, "keep_last": 2}, "parallelism": {"strategy": "ddp"},
            "optimizer": {"type": "adamw", "lr": 3e-3, "betas": [0.9, 0.95], "weight_decay": 0.1, "eps": 1e-8},
            "schedule": {"warmup": 1024, "decay": "cosine", "min_lr_ratio": 0.1},
            "gradient_clipping": 1.0, "autoresume": True, "seed": 42, **training,
        },
        "data": f"file://{packed}/",
        "tokenizer": f"file://{tokenizer}/",
        "checkpoints": f"file://{checkpoints}/",
    }  # fmt: skip


@dataclass
class Run:
    code: int
    losses: dict[int, float]
    lines: list[dict[str, Any]]
    stderr: str
    summary: dict[str, Any]


def _env(tmp: Path, extra: dict[str, str] | None) -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "KILN_DEVICE": "cpu",
        "KILN_TRAIN_LOG_INTERVAL": "1",
        "KILN_TERMINATION_LOG": str(tmp / "termination-log"),
        "PYTHONWARNINGS": "ignore",
        **(extra or {}),
    }


def command(cfg: Path, nproc: int) -> list[str]:
    """One process, or `nproc` under kiln_trainer.launch (torchrun's arguments; it keeps the exit codes)."""
    if nproc == 1:
        return [sys.executable, "-m", "kiln_trainer.train", "--config", str(cfg)]
    return [sys.executable, "-m", "kiln_trainer.launch", "--nnodes=1", f"--nproc-per-node={nproc}",
            f"--master-port={free_port()}", "-m", "kiln_trainer.train", "--config", str(cfg)]  # fmt: skip


def parse(stdout: str, tmp: Path, code: int, stderr: str) -> Run:
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    log = tmp / "termination-log"
    summary = json.loads(log.read_text(encoding="utf-8")) if log.exists() else {}
    return Run(code, {ln["step"]: ln["loss"] for ln in lines}, lines, stderr, summary)


def train(value: dict[str, Any], tmp: Path, nproc: int = 1, env: dict[str, str] | None = None) -> Run:
    cfg = write_json(tmp / "train.json", value)
    (tmp / "termination-log").unlink(missing_ok=True)
    out = subprocess.run(command(cfg, nproc), capture_output=True, text=True, env=_env(tmp, env), timeout=300)
    return parse(out.stdout, tmp, out.returncode, out.stderr)


def train_until(
    value: dict[str, Any], tmp: Path, step: int, then: signal.Signals, nproc: int = 1, env: dict[str, str] | None = None
) -> Run:
    """Trains with KILN_TRAIN_HANG_AFTER_STEP=step; once rank 0 reported that step, sends `then` (SIGKILL: to the
    whole process group, as a node loss; SIGTERM: to the launched process, as the kubelet does) and waits."""
    cfg = write_json(tmp / "train.json", value)
    (tmp / "termination-log").unlink(missing_ok=True)
    proc = subprocess.Popen(
        command(cfg, nproc),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp, {**(env or {}), "KILN_TRAIN_HANG_AFTER_STEP": str(step)}),
        start_new_session=True,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + 240
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("{") and json.loads(line)["step"] == step:
            break
        assert time.monotonic() < deadline
    time.sleep(0.3)  # the step's checkpoint (if due) is committed before the hang; let the hang begin
    if then == signal.SIGKILL:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.send_signal(then)
    rest, err = proc.communicate(timeout=120)
    return parse("".join(seen) + rest, tmp, proc.returncode, err)


def fresh(tmp: Path, name: str) -> Path:
    folder = tmp / name
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def reference(packed: Path, kiln_tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The uninterrupted single-process run of STEPS steps the others are compared with."""
    tmp = tmp_path_factory.mktemp("reference")
    run = train(config(packed, kiln_tokenizer_dir, tmp / "ckpt"), tmp)
    assert run.code == 0, run.stderr[-3000:]
    yield run


def test_given_real_code_when_trained_then_the_loss_falls_and_progress_and_summary_are_valid(
    packed: Path, kiln_tokenizer_dir: Path, tmp_path: Path
) -> None:
    run = train(config(packed, kiln_tokenizer_dir, tmp_path / "ckpt", steps=100), tmp_path)
    assert run.code == 0, run.stderr[-3000:]
    assert sorted(run.losses) == list(range(1, 101))
    first, last10 = run.losses[1], sum(run.losses[s] for s in range(91, 101)) / 10
    # At init the loss is about ln(2048) = 7.62; 100 steps of 512 tokens bring it near the data's unigram entropy
    # (6.6 nats): the mean of the last 10 steps is at least 0.8 nats below the first step's.
    assert first > 7.3 and last10 < first - 0.8, (first, last10)
    progress, whole = validator("progress.schema.json"), validator("progress-line.schema.json")
    for line in run.lines:
        assert line["kind"] == PROGRESS_KIND
        whole.validate(line)  # the controller keeps only lines that validate against this schema
        progress.validate(line["progress"])
        assert line["progress"]["unit"] == "tokens" and line["progress"]["total"] == 100 * 512
        assert line["progress"]["done"] == line["step"] * 512 and line["tokens_per_s"] > 0 and line["eta_s"] >= 0
        assert "mfu" not in line  # on the CPU there is no peak to divide by
    validator("summary.schema.json").validate(run.summary)
    m = run.summary["metrics"]
    assert m["steps"] == 100 and m["tokens"] == 51200 and m["loss"] == run.losses[100] and m["peak_memory_bytes"] > 0
    assert m["gradient_accumulation"] == 4 and m["world_size"] == 1 and run.summary["resumedFrom"] is None
    (artifact,) = run.summary["artifacts"]
    latest = json.loads((tmp_path / "ckpt" / LATEST).read_text(encoding="utf-8"))
    assert artifact["digest"] == latest["digest"] and artifact["uri"].endswith("/step-00000100/")
    assert "warnings" not in run.summary  # about 215 steps of data: read once, and no loss spike
    # The checkpoints keep the tokenizer they trained with, so that a checkpoint alone exports.
    kept = tmp_path / "ckpt" / "tokenizer" / "tokenizer.json"
    assert kept.read_bytes() == (kiln_tokenizer_dir / "tokenizer.json").read_bytes()
    meta = load_latest(tmp_path / "ckpt")
    assert meta is not None and meta[2]["tokenizer"]["copy"] == "tokenizer" and meta[2]["micro_batch"] == 2


def test_given_a_run_killed_after_a_checkpoint_when_resumed_then_its_losses_are_exactly_the_uninterrupted_runs(
    packed: Path, kiln_tokenizer_dir: Path, tmp_path: Path, reference: Run
) -> None:
    ckpt = tmp_path / "ckpt"
    value = config(packed, kiln_tokenizer_dir, ckpt)
    killed = train_until(value, fresh(tmp_path, "a"), 15, signal.SIGKILL)
    assert killed.code == -signal.SIGKILL
    assert json.loads((ckpt / LATEST).read_text(encoding="utf-8"))["path"] == "step-00000010"
    (ckpt / "step-00000020.tmp").mkdir()  # as a crash in the middle of writing the next checkpoint leaves it
    (ckpt / "step-00000020.tmp" / "__0_0.distcp").write_bytes(b"torn")

    resumed = train(value, fresh(tmp_path, "b"))
    assert resumed.code == 0, resumed.stderr[-3000:]
    assert "removed torn checkpoint(s) step-00000020.tmp" in resumed.stderr
    assert resumed.summary["resumedFrom"] == "step-00000010"
    assert sorted(resumed.losses) == list(range(11, STEPS + 1))
    # Exactly: the same floats, step by step, before the kill and after the resume (steps 11-15 are done twice).
    assert {s: killed.losses[s] for s in range(1, 16)} == {s: reference.losses[s] for s in range(1, 16)}
    assert resumed.losses == {s: reference.losses[s] for s in range(11, STEPS + 1)}
    # keep_last 2: only the last two committed checkpoints remain, and no torn one.
    assert sorted(p.name for p in ckpt.iterdir()) == [LATEST, "step-00000020", "step-00000030", "tokenizer"]


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_given_two_processes_then_they_match_one_and_a_sigterm_gives_a_checkpoint_a_resume_at_one_process_ends(
    packed: Path, kiln_tokenizer_dir: Path, tmp_path: Path, reference: Run, strategy: str
) -> None:
    ckpt = tmp_path / "ckpt"
    # DDP: the model replicated; FSDP2: `fully_shard` per block and the root, the checkpoint sharded (DTensors),
    # then loaded unsharded by the single process.
    value = config(packed, kiln_tokenizer_dir, ckpt, parallelism={"strategy": strategy})
    # 2 processes on gloo (kiln_trainer.launch around torchrun); the kubelet's SIGTERM goes to the launcher, which
    # passes it to torchrun, which passes it to its workers.
    two = train_until(value, fresh(tmp_path, "a"), 15, signal.SIGTERM, nproc=2)
    assert "stopped by a signal after step 15: checkpoint step-00000015" in two.stderr, two.stderr[-3000:]
    assert two.code == RETRYABLE_EXIT
    assert json.loads((ckpt / LATEST).read_text(encoding="utf-8"))["path"] == "step-00000015"
    meta = json.loads((ckpt / "step-00000015" / "meta.json").read_text(encoding="utf-8"))
    assert meta["world_size"] == 2 and meta["step"] == 15 and meta["tokens"] == 15 * 512
    # The same global batch (2 ranks x micro 2 x accumulation 2) as one process (micro 2 x accumulation 4): the
    # losses agree to float rounding (the gradients are summed in another order).
    for s in range(1, 16):
        assert two.losses[s] == pytest.approx(reference.losses[s], rel=1e-4), s

    one = train(value, fresh(tmp_path, "b"))  # the retry, at 1 process: DCP loads the 2 ranks' checkpoint
    assert one.code == 0, one.stderr[-3000:]
    assert "written at world size 2" in one.stderr and one.summary["resumedFrom"] == "step-00000015"
    assert sorted(one.losses) == list(range(16, STEPS + 1))
    for s in range(16, STEPS + 1):
        assert one.losses[s] == pytest.approx(reference.losses[s], rel=1e-3), s


@pytest.mark.parametrize(
    "parallelism",
    [
        {"strategy": "fsdp", "sharding": "grad_op", "activation_checkpointing": True},
        {"strategy": "fsdp", "sharding": "hybrid"},
    ],
    ids=["grad_op+recompute", "hybrid"],
)
def test_given_the_other_sharding_modes_and_recomputation_then_two_processes_still_match_one(
    packed: Path, kiln_tokenizer_dir: Path, tmp_path: Path, reference: Run, parallelism: dict[str, Any]
) -> None:
    # grad_op keeps the gathered parameters from forward to backward; hybrid shards within the node over a
    # (1 node x 2 ranks) mesh; activation checkpointing recomputes each block in backward: the same global batch,
    # so the same losses as the single process to float rounding.
    value = config(packed, kiln_tokenizer_dir, tmp_path / "ckpt", steps=STEPS, parallelism=parallelism)
    two = train_until(value, fresh(tmp_path, "a"), 8, signal.SIGTERM, nproc=2)
    assert two.code == RETRYABLE_EXIT, two.stderr[-3000:]
    for s in range(1, 9):
        assert two.losses[s] == pytest.approx(reference.losses[s], rel=1e-4), s


def test_given_lion_when_trained_then_the_loss_falls_and_its_state_is_checkpointed(
    packed: Path, kiln_tokenizer_dir: Path, tmp_path: Path
) -> None:
    # Lion at a third of AdamW's learning rate (the paper says 3-10x smaller), 30 steps: the loss falls, and the
    # checkpoint holds Lion's one moment per parameter (exp_avg), not AdamW's two.
    optimizer = {"type": "lion", "lr": 1e-3, "betas": [0.9, 0.99], "weight_decay": 0.3}
    run = train(config(packed, kiln_tokenizer_dir, tmp_path / "ckpt", optimizer=optimizer), tmp_path)
    assert run.code == 0, run.stderr[-3000:]
    first, last5 = run.losses[1], sum(run.losses[s] for s in range(26, 31)) / 5
    assert last5 < first - 0.5, (first, last5)
    from torch.distributed.checkpoint.filesystem import FileSystemReader

    keys = FileSystemReader(str(tmp_path / "ckpt" / "step-00000030")).read_metadata().state_dict_metadata
    states = {k.split(".")[-1] for k in keys if k.startswith("optim.state.")}
    assert states == {"exp_avg"}, states


def test_given_a_sigterm_when_training_then_it_saves_a_checkpoint_and_exits_retryable(
    packed: Path, kiln_tokenizer_dir: Path, tmp_path: Path, reference: Run
) -> None:
    ckpt = tmp_path / "ckpt"
    value = config(packed, kiln_tokenizer_dir, ckpt)
    run = train_until(value, tmp_path, 7, signal.SIGTERM)
    assert run.code == RETRYABLE_EXIT == 3, run.stderr[-3000:]
    assert json.loads((ckpt / LATEST).read_text(encoding="utf-8"))["path"] == "step-00000007"
    validator("summary.schema.json").validate(run.summary)
    assert "error" not in run.summary and run.summary["metrics"]["steps"] == 7
    assert run.summary["artifacts"][0]["uri"].endswith("/step-00000007/")
    # The export stage's reader: the bare model's names, plain CPU tensors, the ModelConfig to rebuild it.
    loaded = load_latest(ckpt)
    assert loaded is not None
    state, model_config, meta = loaded
    model = Transformer(ModelConfig.from_json(model_config))
    model.load_state_dict(state, strict=True)
    assert all(t.device.type == "cpu" and not t.is_meta for t in state.values())
    assert meta["step"] == 7 and meta["tokenizer"]["path"] == str(kiln_tokenizer_dir)
    assert meta["tokenizer"]["digest"].startswith("sha256:")
    assert run.losses[7] == reference.losses[7]


def test_given_a_nan_loss_when_launched_then_it_exits_2_naming_the_step_and_what_to_try(
    packed: Path, kiln_tokenizer_dir: Path, tmp_path: Path
) -> None:
    value = config(packed, kiln_tokenizer_dir, tmp_path / "ckpt")
    run = train(value, tmp_path, nproc=2, env={"KILN_TRAIN_INJECT_NAN_AT_STEP": "2"})
    # Each worker exits 2 and says so; torchrun alone would exit 1 (measured), kiln_trainer.launch keeps the 2.
    assert run.code == TERMINAL_EXIT, run.stderr[-3000:]
    assert sorted(run.losses) == [1]
    for words in ("the loss is nan at step 2 of 30", "lower learning rate", "fp32", "gradient clipping"):
        assert words in run.stderr and words in run.summary["error"], words
    validator("summary.schema.json").validate(run.summary)


def test_given_a_global_batch_the_world_size_does_not_divide_then_it_is_a_config_error(
    packed: Path, kiln_tokenizer_dir: Path, tmp_path: Path
) -> None:
    training = config(packed, kiln_tokenizer_dir, tmp_path / "ckpt")["training"]
    assert plan_steps(training, 64, 2).accumulation == 2 and plan_steps(training, 64, 1).accumulation == 4
    with pytest.raises(StageConfigError, match="sequences 8 is not micro_batch 2 x a whole gradient accumulation x 3"):
        plan_steps(training, 64, 3)
    steps = plan_steps(training, 64, 1)
    assert steps.steps == STEPS and steps.tokens_per_step == 512 and steps.schedule.warmup_steps == 2
    assert lr_at(steps.schedule, 0) == pytest.approx(1.5e-3) and lr_at(steps.schedule, 1) == pytest.approx(3e-3)
    assert lr_at(steps.schedule, STEPS) == pytest.approx(3e-4)  # cosine down to min_lr_ratio 0.1


def test_micro_batch_auto_candidates_halve_over_the_divisors_and_the_cpu_takes_at_most_8() -> None:
    assert micro_candidates(512, 1) == [64, 32, 16, 8, 4, 2, 1]
    assert micro_candidates(96, 2) == [48, 24, 12, 6, 3, 1]
    assert micro_candidates(12, 1) == [12, 6, 3, 1]
    assert micro_candidates(7, 1) == [7, 1]
    with pytest.raises(StageConfigError, match="does not divide over 3"):
        micro_candidates(8, 3)
    training = {
        "token_budget": 1e6,
        "global_batch": {"sequences": 24},
        "micro_batch": "auto",
        "seed": 1,
        "optimizer": {"lr": 1e-3},
        "schedule": {},
        "checkpoint": {},
        "parallelism": {},
    }
    cpu = plan_steps(training, 64, 1)
    assert (cpu.micro_batch, cpu.accumulation) == (6, 4)  # 24 -> 12 -> 6: the first not above 8
    probed = plan_steps(training, 64, 2, micro_batch=12)
    assert (probed.micro_batch, probed.accumulation) == (12, 1)
    with pytest.raises(StageConfigError, match="micro_batch 5"):
        plan_steps(training, 64, 1, micro_batch=5)


@pytest.mark.parametrize("spec", ["tiny", "fim", "ul2", "replit-code-v1-3b", "multinode-7b"])
def test_given_an_example_spec_when_its_train_config_is_mounted_then_the_plans_batch_arithmetic_is_the_trainers(
    spec: str, tmp_path: Path
) -> None:
    plan = plan_of(spec)
    stage = next(s for s in plan["stages"] if s["kind"] == "train")
    config = read_stage_config("train", write_json(tmp_path / "train.json", mounted_config(plan, "train")))
    assert config.envelope.stage == stage["name"] and config.checkpoints == stage["config"]["checkpoints"]
    world = stage["parallelism"]["nodes"] * stage["parallelism"]["gpusPerNode"]
    t = config.training
    steps = plan_steps(t, int(config.model["max_seq_len"]), world)
    assert steps.accumulation == t["gradient_accumulation"] and steps.steps == t["steps"], (spec, steps)
    assert steps.tokens_per_step == t["global_batch"]["tokens"]
    ModelConfig.of(config.model)  # the model section builds a ModelConfig


def test_given_a_tokenizer_that_did_not_pack_the_data_then_it_is_a_config_error(
    packed: Path, tokenizer_dir: Path, tmp_path: Path
) -> None:
    cfg = write_json(tmp_path / "train.json", config(packed, tokenizer_dir, tmp_path / "ckpt"))
    with pytest.raises(StageConfigError, match="was made with another tokenizer"):
        run_train(str(cfg))
    assert not (tmp_path / "ckpt").exists()


def test_given_the_tiny_plan_when_the_stage_runs_from_its_mounted_config_then_it_trains_and_writes_its_manifest(
    kiln_tokenizer_dir: Path, tmp_path: Path
) -> None:
    plan = plan_of("tiny")
    mounted = mounted_config(plan, "train")
    stage = next(s for s in plan["stages"] if s["kind"] == "train")
    root = tmp_path / "storage"
    env = {"KILN_STORAGE_ROOT": str(root)}
    # The plan's packed data and tokenizer, made here: the test tokenizer (2048 tokens, within the plan's 4096) and
    # sequences of the plan's 256.
    tok = Path(storage_path(mounted["tokenizer"], "tests", env))
    shutil.copytree(kiln_tokenizer_dir, tok)
    pack(tok, Path(storage_path(mounted["data"], "tests", env)), mounted["model"]["max_seq_len"])
    # Small, said so: 4 steps (of the plan's 123) and their budget, a checkpoint every 2; all else is the plan's.
    assert mounted["training"]["global_batch"] == {"sequences": 16, "tokens": 4096}
    mounted["training"] = {**mounted["training"], "steps": 4, "token_budget": 4 * 4096}
    mounted["training"]["checkpoint"] = {**mounted["training"]["checkpoint"], "interval": 2 * 4096}
    cfg = write_json(tmp_path / "train.json", mounted)
    # The plan's own command: torchrun through kiln_trainer.launch, which keeps the stage's exit codes.
    assert stage["command"][:5] == ["python", "-m", "kiln_trainer.launch", "--nnodes=1", "--nproc-per-node=2"]
    cmd = [sys.executable, *stage["command"][1:5], f"--master-port={free_port()}",
           *stage["command"][5:], "--config", str(cfg)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, env={**_env(tmp_path, env)}, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    run = parse(out.stdout, tmp_path, out.returncode, out.stderr)
    assert sorted(run.losses) == [1, 2, 3, 4]
    validator("summary.schema.json").validate(run.summary)
    assert run.summary["metrics"]["world_size"] == 2 and run.summary["metrics"]["gradient_accumulation"] == 2
    manifest = json.loads(Path(storage_path(mounted["manifest"], "tests", env)).read_text(encoding="utf-8"))
    validator("manifest.schema.json").validate(manifest)
    assert manifest["runId"] == plan["runId"] and manifest["counts"]["tokens"] == 4 * 4096
    (artifact,) = manifest["artifacts"]
    assert artifact["uri"] == mounted["checkpoints"] + "step-00000004/"
    loaded = load_latest(storage_path(mounted["checkpoints"], "tests", env))
    assert loaded is not None
    state, model_config, _ = loaded
    assert ModelConfig.from_json(model_config) == ModelConfig.of(mounted["model"])
    Transformer(ModelConfig.from_json(model_config)).load_state_dict(state, strict=True)
    assert all(torch.isfinite(t).all() for t in state.values())
    # The checkpoint alone is enough to export: the tokenizer's folder is in its meta.
    state, model_config, meta = loaded
    exported = export_checkpoint(state, ModelConfig.from_json(model_config), meta["tokenizer"]["path"], tmp_path / "hf")
    assert (tmp_path / "hf" / "config.json").is_file() and exported["kind"] == "kiln.stage-manifest/v1"
