"""The export stage's Triton model repositories: layout, configs, digests, and the python backend's model run on the
real export through a test double of `triton_python_backend_utils` (the real tritonserver run is the Serving issue's
#15 test)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from conftest import mounted_config, plan_of, write_json
from kiln_trainer import triton_repo
from kiln_trainer.export import main, run_stage
from kiln_trainer.generate import Generator
from kiln_trainer.model import ModelConfig, Transformer
from kiln_trainer.stage import TERMINAL_EXIT, StageConfigError, storage_path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

V = 512
GENERATE_PY = Path(__file__).resolve().parents[1] / "src" / "kiln_trainer" / "generate.py"
TARGETS = [
    {"name": "completions", "backend": "python", "engine": {"precision": "fp16", "tensor_parallel": 1},
     "max_batch_size": 4},
    {"name": "fast", "backend": "vllm", "engine": {"precision": "bf16", "tensor_parallel": 2}, "max_batch_size": 32},
    {"name": "trt", "backend": "tensorrtllm", "engine": {"precision": "fp16", "tensor_parallel": 1},
     "max_batch_size": 8},
]  # fmt: skip


# --- a small reader of protobuf text (Triton's config.pbtxt) ---------------------------------------------------------

_TOKEN = re.compile(r'\s*(?:#[^\n]*\n|("(?:[^"\\]|\\.)*")|([A-Za-z_][A-Za-z0-9_]*)|(-?[0-9][0-9.eE+-]*)|([:{}\[\],]))')


def _tokens(text: str) -> Iterator[str]:
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos:].strip():
                raise ValueError(f"bad protobuf text at {text[pos : pos + 30]!r}")
            return
        pos = m.end()
        tok = next((g for g in m.groups() if g is not None), None)
        if tok is not None:
            yield tok


def parse_pbtxt(text: str) -> dict[str, Any]:
    """Protobuf text as a dict; a field given more than once, or as a `[...]` list, is a list."""
    toks = list(_tokens(text))
    pos = 0

    def value() -> Any:
        nonlocal pos
        tok = toks[pos]
        pos += 1
        if tok == "{":
            return message("}")
        if tok == "[":
            items = []
            while toks[pos] != "]":
                items.append(value())
                if toks[pos] == ",":
                    pos += 1
            pos += 1
            return items
        if tok.startswith('"'):
            return json.loads(tok)
        if re.fullmatch(r"-?[0-9].*", tok):
            return float(tok) if any(c in tok for c in ".eE") else int(tok)
        return {"true": True, "false": False, "True": True, "False": False}.get(tok, tok)

    def message(end: str | None) -> dict[str, Any]:
        nonlocal pos
        out: dict[str, Any] = {}
        while pos < len(toks) and toks[pos] != end:
            key = toks[pos]
            pos += 1
            if toks[pos] == ":":
                pos += 1
            v = value()
            if key in out:
                out[key] = (out[key] if isinstance(out[key], list) else [out[key]]) + (
                    v if isinstance(v, list) else [v]
                )
            else:
                out[key] = v
            if pos < len(toks) and toks[pos] == ",":
                pos += 1
        pos += 1
        return out

    return message(None)


def as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def params(config: dict[str, Any]) -> dict[str, str]:
    return {p["key"]: p["value"]["string_value"] for p in as_list(config.get("parameters", []))}


def tensors(config: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in as_list(config[key])}


# --- the stage, once for the module ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stage(tok512: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """run_stage on the tiny plan's export config with a python, a vllm and a tensorrtllm target."""
    tmp = tmp_path_factory.mktemp("stage")
    tok = tok512
    plan = plan_of("tiny")
    config = {**mounted_config(plan, "export"), "targets": TARGETS}
    env = {"KILN_STORAGE_ROOT": str(tmp / "storage"), "KILN_TERMINATION_LOG": str(tmp / "termination-log")}
    tok_dir = Path(storage_path(config["tokenizer"], "test", env))
    tok_dir.mkdir(parents=True)
    for f in tok.iterdir():
        (tok_dir / f.name).write_bytes(f.read_bytes())
    train = next(s for s in plan["stages"] if s["kind"] == "train")["config"]["model"]
    cfg = ModelConfig.of({**train, "vocab_size": V, "max_seq_len": 64, "d_model": 64, "n_layers": 2, "n_heads": 4})
    m = Transformer(cfg)
    m.init_weights(3)
    from kiln_trainer.checkpoint import save

    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    save(
        Path(storage_path(config["checkpoints"], "test", env)), 7, m, opt, {"model_config": cfg.to_json()}, keep_last=1
    )
    assert run_stage(str(write_json(tmp / "export.json", config)), env) == 0
    output = Path(storage_path(config["output"], "test", env))
    return {
        "config": config,
        "env": env,
        "output": output,
        "eval": Path(storage_path(config["eval_model"], "test", env)),
        "manifest": json.loads(Path(storage_path(config["manifest"], "test", env)).read_text()),
        "summary": json.loads((tmp / "termination-log").read_text()),
    }


def test_each_target_gets_its_repository_and_the_eval_model_its_own(stage: dict[str, Any]) -> None:
    out: Path = stage["output"]
    assert sorted(p.name for p in out.iterdir()) == ["completions", "eval", "fast", "hf", "trt"]
    for repo in (out / "completions", stage["eval"]):
        assert sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file()) == [
            "ensemble/1/kiln_generate.py",
            "ensemble/1/model.py",
            "ensemble/config.pbtxt",
        ]
        # The core is generate.py byte for byte; model.py is triton_model.py.
        assert (repo / "ensemble/1/kiln_generate.py").read_bytes() == GENERATE_PY.read_bytes()
        assert (repo / "ensemble/1/model.py").read_bytes() == (GENERATE_PY.parent / "triton_model.py").read_bytes()
    assert sorted(p.relative_to(out / "fast").as_posix() for p in (out / "fast").rglob("*") if p.is_file()) == [
        "ensemble/1/model.json",
        "ensemble/config.pbtxt",
    ]
    trt = out / "trt"
    assert {p.relative_to(trt).as_posix() for p in trt.rglob("config.pbtxt")} == {
        f"{m}/config.pbtxt" for m in ("ensemble", "preprocessing", "tensorrt_llm", "postprocessing")
    }
    assert (trt / "tensorrt_llm/1").is_dir() and not any((trt / "tensorrt_llm/1").iterdir())  # the engine: not built


def test_the_python_config_is_one_decoupled_batching_model_with_a_relative_hf_dir(stage: dict[str, Any]) -> None:
    out: Path = stage["output"]
    c = parse_pbtxt((out / "completions/ensemble/config.pbtxt").read_text())
    assert c["name"] == "ensemble" and c["backend"] == "python" and c["max_batch_size"] == 4
    assert c["dynamic_batching"]["max_queue_delay_microseconds"] > 0
    assert c["model_transaction_policy"] == {"decoupled": True}
    assert as_list(c["instance_group"]) == [{"count": 1, "kind": "KIND_AUTO"}]
    inputs = tensors(c, "input")
    assert set(inputs) == {"text_input", "suffix", "max_tokens", "temperature", "top_p", "top_k", "random_seed",
                           "stop_words", "bad_words", "stream"}  # fmt: skip
    assert "optional" not in inputs["text_input"] and all(inputs[k]["optional"] for k in set(inputs) - {"text_input"})
    assert inputs["stop_words"]["dims"] == [-1] and inputs["max_tokens"]["data_type"] == "TYPE_INT32"
    assert set(tensors(c, "output")) == {"text_output", "finish_reason", "prompt_tokens", "completion_tokens"}
    p = params(c)
    assert p == {"hf_dir": "../../hf", "precision": "fp16"}
    assert (out / "completions/ensemble" / p["hf_dir"]).resolve() == (out / "hf").resolve()
    e = parse_pbtxt((stage["eval"] / "ensemble/config.pbtxt").read_text())
    assert (stage["eval"] / "ensemble" / params(e)["hf_dir"]).resolve() == (out / "hf").resolve()
    assert params(e)["precision"] == "fp16"  # the first target's


def test_the_vllm_repository_holds_its_engine_arguments(stage: dict[str, Any]) -> None:
    out: Path = stage["output"]
    c = parse_pbtxt((out / "fast/ensemble/config.pbtxt").read_text())
    assert c["backend"] == "vllm" and c["max_batch_size"] == 0 and c["model_transaction_policy"]["decoupled"] is True
    assert as_list(c["instance_group"])[0]["kind"] == "KIND_MODEL"
    assert {"text_input", "stream", "sampling_parameters"} <= set(tensors(c, "input"))
    engine = json.loads((out / "fast/ensemble/1/model.json").read_text())
    assert engine["model"] == str(out / "hf")  # the HF folder as the pods see it (both mount the storage root)
    assert engine["dtype"] == "bfloat16" and engine["tensor_parallel_size"] == 2 and engine["max_num_seqs"] == 32
    assert engine["disable_log_requests"] is True and 0 < engine["gpu_memory_utilization"] <= 1
    assert any("fast" in w and "CUDA-only" in w for w in stage["manifest"]["warnings"])


def test_the_tensorrtllm_repository_is_filled_in_and_says_the_engine_is_to_build(stage: dict[str, Any]) -> None:
    trt: Path = stage["output"] / "trt"
    ens = parse_pbtxt((trt / "ensemble/config.pbtxt").read_text())
    assert ens["platform"] == "ensemble" and ens["max_batch_size"] == 8
    steps = as_list(ens["ensemble_scheduling"]["step"])
    assert [s["model_name"] for s in steps] == ["preprocessing", "tensorrt_llm", "postprocessing"]
    # Every tensor an ensemble step reads is an ensemble input or an earlier step's output.
    known = set(tensors(ens, "input"))
    for s in steps:
        assert {m["value"] for m in as_list(s["input_map"])} <= known, s["model_name"]
        known |= {m["value"] for m in as_list(s["output_map"])}
    assert "text_output" in known
    llm = parse_pbtxt((trt / "tensorrt_llm/config.pbtxt").read_text())
    assert llm["backend"] == "tensorrtllm" and llm["max_batch_size"] == 8
    assert params(llm)["engine_dir"] == str(trt) + "/tensorrt_llm/1/"
    assert params(llm)["exclude_input_in_output"] == "true"
    for m in ("preprocessing", "postprocessing"):
        assert params(parse_pbtxt((trt / m / "config.pbtxt").read_text()))["tokenizer_dir"] == str(
            stage["output"] / "hf"
        )
    script = (trt / "build-engine.sh").read_text()
    assert "examples/llama/convert_checkpoint.py" in script and "--dtype float16" in script
    assert f"trtllm-build --checkpoint_dir /tmp/kiln-trtllm-trt --output_dir {trt}/tensorrt_llm/1/" in script
    assert any("trt" in w and "trtllm-build" in w for w in stage["manifest"]["warnings"])


def test_every_file_is_in_the_manifest_with_its_digest_and_the_summary_stays_small(stage: dict[str, Any]) -> None:
    manifest, out = stage["manifest"], stage["output"]
    written = {p for p in out.rglob("*") if p.is_file() and p.parent != out / "hf"}
    by_uri = {storage_path(a["uri"], "test", stage["env"]): a for a in manifest["artifacts"]}
    assert {str(p) for p in written} <= set(by_uri)
    for p in written:
        a = by_uri[str(p)]
        assert a["digest"] == "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() and a["bytes"] == p.stat().st_size
    assert manifest["counts"]["repositories"] == 4
    assert len(json.dumps(stage["summary"])) < 4096 and "truncated" not in stage["summary"]


# --- the python backend's model, through a test double of triton_python_backend_utils -------------------------------


class FakeTensor:
    """Test double of pb_utils.Tensor: a name and a numpy array."""

    def __init__(self, name: str, array: np.ndarray[Any, Any]) -> None:
        self._name, self._array = name, array

    def name(self) -> str:
        return self._name

    def as_numpy(self) -> np.ndarray[Any, Any]:
        return self._array


class FakeSender:
    """Test double of a decoupled request's response sender: records what is sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, int]] = []

    def send(self, response: Any = None, flags: int = 0) -> None:
        self.sent.append((response, flags))


class FakeRequest:
    """Test double of pb_utils.InferenceRequest: its input tensors as Triton batches them ([1, ...])."""

    def __init__(self, **inputs: Any) -> None:
        self.inputs: dict[str, FakeTensor] = {}
        for name, v in inputs.items():
            if isinstance(v, str):
                arr = np.array([[v.encode()]], dtype=np.object_)
            elif isinstance(v, list):
                arr = np.array([[s.encode() for s in v]], dtype=np.object_)
            elif isinstance(v, bool):
                arr = np.array([[v]], dtype=np.bool_)
            elif isinstance(v, float):
                arr = np.array([[v]], dtype=np.float32)
            else:
                arr = np.array([[v]], dtype=np.uint64 if name == "random_seed" else np.int32)
            self.inputs[name] = FakeTensor(name, arr)
        self.sender = FakeSender()

    def get_response_sender(self) -> FakeSender:
        return self.sender


def fake_pb_utils() -> types.ModuleType:
    """A minimal stand-in for Triton's triton_python_backend_utils: only what kiln's model.py calls."""
    pb: Any = types.ModuleType("triton_python_backend_utils")
    module: types.ModuleType = pb
    pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL = 1
    pb.Tensor = FakeTensor

    class InferenceResponse:
        def __init__(self, output_tensors: list[FakeTensor], error: Any = None) -> None:
            self.outputs = {t.name(): t.as_numpy() for t in output_tensors}
            self.error = error

    class TritonError:
        def __init__(self, message: str) -> None:
            self.message = message

    class Logger:
        lines: ClassVar[list[str]] = []

        @classmethod
        def log_info(cls, msg: str) -> None:
            cls.lines.append(msg)

        log_warn = log_error = log_info

    pb.InferenceResponse, pb.TritonError, pb.Logger = InferenceResponse, TritonError, Logger
    pb.get_input_tensor_by_name = lambda request, name: request.inputs.get(name)
    pb.using_decoupled_model_transaction_policy = lambda config: bool(
        config.get("model_transaction_policy", {}).get("decoupled")
    )
    return module


@pytest.fixture(scope="module")
def triton_model(stage: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """The written `completions/ensemble/1/model.py`, initialized as Triton would, with the test double."""
    model_dir = stage["output"] / "completions" / "ensemble"
    saved = sys.modules.get("triton_python_backend_utils")
    pb = fake_pb_utils()
    sys.modules["triton_python_backend_utils"] = pb
    try:
        spec = importlib.util.spec_from_file_location("kiln_triton_model_under_test", model_dir / "1" / "model.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        config = parse_pbtxt((model_dir / "config.pbtxt").read_text())
        config["parameters"] = {k: {"string_value": v} for k, v in params(config).items()}  # Triton's JSON form
        model = module.TritonPythonModel()
        args = {"model_config": json.dumps(config), "model_repository": str(model_dir), "model_version": "1"}
        model.initialize({**args, "model_instance_kind": "CPU", "model_instance_device_id": "0"})
        yield model, pb
    finally:
        if saved is None:
            sys.modules.pop("triton_python_backend_utils", None)
        else:
            sys.modules["triton_python_backend_utils"] = saved
        sys.modules.pop("kiln_generate", None)


def text_of(response: Any) -> str:
    return "".join(v.decode() for v in response.outputs["text_output"].reshape(-1))


def test_the_python_model_decodes_requests_generates_and_answers(
    triton_model: tuple[Any, Any], stage: dict[str, Any]
) -> None:
    model, pb = triton_model
    assert model.gen.folder.resolve() == (stage["output"] / "hf").resolve()
    assert any("fp16 on the CPU: loading in fp32" in line for line in pb.Logger.lines)  # the precision's fallback
    ref = Generator(stage["output"] / "hf", device="cpu")
    greedy = FakeRequest(text_input="import json\n", max_tokens=6, top_k=1, stop_words="", bad_words="")
    sampled = FakeRequest(text_input="def f(", max_tokens=5, temperature=0.9, top_p=0.95, random_seed=12)
    infill = FakeRequest(text_input="def f(", suffix=")\n", max_tokens=4)
    streamed = FakeRequest(text_input="class A", max_tokens=6, temperature=1.5, random_seed=3, stream=True)
    bad = FakeRequest(text_input="x", max_tokens=-3)
    assert model.execute([greedy, sampled, infill, streamed, bad]) is None  # decoupled: answers go through senders
    expected = [
        ref.generate("import json\n", max_new_tokens=6),
        ref.generate("def f(", max_new_tokens=5, temperature=0.9, top_p=0.95, seed=12),
        ref.generate("def f(", suffix=")\n", max_new_tokens=4),
    ]
    for request, want in zip((greedy, sampled, infill), expected, strict=True):
        ((response, flags),) = request.sender.sent  # exactly one response: Triton's /generate works
        assert flags == pb.TRITONSERVER_RESPONSE_COMPLETE_FINAL and response.error is None
        assert text_of(response) == want.text  # the completion only, not the prompt
        assert response.outputs["finish_reason"].reshape(-1)[0].decode() == want.finish_reason
        assert int(response.outputs["completion_tokens"].reshape(-1)[0]) == want.completion_tokens
        assert int(response.outputs["prompt_tokens"].reshape(-1)[0]) == want.prompt_tokens
    pieces = streamed.sender.sent
    want = ref.generate("class A", max_new_tokens=6, temperature=1.5, seed=3)
    assert [f for _, f in pieces[:-1]] == [0] * (len(pieces) - 1) and pieces[-1][1] == 1
    assert "".join(text_of(r) for r, _ in pieces) == want.text
    ((error, flags),) = bad.sender.sent
    assert flags == 1 and error.error is not None and "max_tokens must be" in error.error.message


def test_fastertransformer_is_a_terminal_error_naming_the_target(
    stage: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    retired = {"name": "legacy", "backend": "fastertransformer", "engine": {"precision": "fp16", "tensor_parallel": 1},
               "max_batch_size": 4}  # fmt: skip
    config = {**stage["config"], "targets": [retired]}
    for key, value in {**stage["env"], "KILN_TERMINATION_LOG": str(tmp_path / "log")}.items():
        monkeypatch.setenv(key, value)
    assert main(["--config", str(write_json(tmp_path / "export.json", config))]) == TERMINAL_EXIT
    error = json.loads((tmp_path / "log").read_text())["error"]
    assert "legacy" in error and "tensorrtllm or vllm" in error


def test_bad_targets_and_an_eval_model_on_other_storage_are_refused(stage: dict[str, Any]) -> None:
    config, env = stage["config"], stage["env"]
    out = config["output"]
    hf = out + "hf"
    int8 = {"precision": "int8", "tensor_parallel": 1}
    for target, words in (({**TARGETS[0], "name": "hf"}, "taken"), ({**TARGETS[0], "name": "eval"}, "taken"),
                          ({**TARGETS[0], "name": "../up"}, "not a folder name"),
                          ({**TARGETS[0], "engine": int8}, "python backend")):  # fmt: skip
        with pytest.raises(StageConfigError, match=words):
            triton_repo.check_targets({**config, "targets": [target]}, out, hf, env)
    with pytest.raises(StageConfigError, match="not on the same storage"):
        triton_repo.check_targets({**config, "eval_model": "pvc://other-claim/eval/"}, out, hf, env)
    assert triton_repo.relative_hf_dir(out + "x/y/ensemble/", hf, env) == "../../../hf"


# The vLLM backend's documented format (triton-inference-server/vllm_backend, samples/model_repository/vllm_model/:
# config.pbtxt and 1/model.json, whose keys are vLLM's AsyncEngineArgs). Pinned here: vLLM's wheel is CUDA-only, so
# the repository cannot run on this machine's Triton.
VLLM_SAMPLE_KEYS = {"model", "disable_log_requests", "gpu_memory_utilization", "enforce_eager", "disable_log_stats"}
VLLM_ENGINE_ARGS = VLLM_SAMPLE_KEYS | {"tokenizer", "tensor_parallel_size", "max_num_seqs", "dtype", "quantization"}
VLLM_SAMPLE_INPUTS = {"text_input": ("TYPE_STRING", [1]), "stream": ("TYPE_BOOL", [1]),
                      "sampling_parameters": ("TYPE_STRING", [1])}  # fmt: skip


def test_the_vllm_repository_has_the_vllm_backends_documented_format(stage: dict[str, Any]) -> None:
    out: Path = stage["output"]
    engine = json.loads((out / "fast/ensemble/1/model.json").read_text())
    assert set(engine) <= VLLM_ENGINE_ARGS, set(engine) - VLLM_ENGINE_ARGS
    assert isinstance(engine["model"], str) and isinstance(engine["gpu_memory_utilization"], float)
    assert engine["dtype"] in {"float32", "float16", "bfloat16", "auto"}
    c = parse_pbtxt((out / "fast/ensemble/config.pbtxt").read_text())
    assert c["backend"] == "vllm" and c["max_batch_size"] == 0 and c["model_transaction_policy"]["decoupled"] is True
    assert as_list(c["instance_group"]) == [{"count": 1, "kind": "KIND_MODEL"}]
    inputs = tensors(c, "input")
    for name, (dtype, dims) in VLLM_SAMPLE_INPUTS.items():
        assert (inputs[name]["data_type"], inputs[name]["dims"]) == (dtype, dims), name
    assert {k: (v["data_type"], v["dims"]) for k, v in tensors(c, "output").items()} == {
        "text_output": ("TYPE_STRING", [-1])
    }


def test_the_python_repository_takes_the_targets_batcher_delay_and_instances(tmp_path: Path) -> None:
    t = triton_repo.Target.of({**TARGETS[0], "queue_delay_us": 250, "instances": 3})
    assert (t.queue_delay_us, t.instances) == (250, 3)
    assert (triton_repo.Target.of(TARGETS[0]).queue_delay_us, triton_repo.Target.of(TARGETS[0]).instances) == (5000, 1)
    triton_repo.python_repository(tmp_path, "../../hf", t.max_batch_size, "fp32", t.queue_delay_us, t.instances)
    c = parse_pbtxt((tmp_path / "ensemble/config.pbtxt").read_text())
    assert c["dynamic_batching"]["max_queue_delay_microseconds"] == 250
    assert as_list(c["instance_group"]) == [{"count": 3, "kind": "KIND_AUTO"}]
