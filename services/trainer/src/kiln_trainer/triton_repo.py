"""The Triton model repositories the export stage writes beside the Hugging Face folder.

One repository per serving target at `<output><target.name>/` (libs/plan points that target's Triton there with
`--model-repository`), and one for the eval model server at the config's `eval_model`. Inside each, the model is
called `ensemble`: the eval runner's Triton client (services/eval-runner/src/client-triton.ts) asks for that name
and speaks TensorRT-LLM's ensemble conventions over Triton's generate extension, and every backend here keeps them
(see kiln_trainer/triton_model.py for the inputs and outputs), with two additions: `suffix` (infilling) and
`stream`.

- `python` (also the eval repository): `ensemble/config.pbtxt`, `ensemble/1/model.py` (kiln_trainer/triton_model.py)
  and `ensemble/1/kiln_generate.py` (kiln_trainer/generate.py, byte for byte). One decoupled model serves both
  `/generate` (exactly one response per request) and `/generate_stream`. Its `hf_dir` parameter is the HF folder
  relative to the model folder, so the repository works wherever the storage is mounted.
- `vllm`: the vLLM backend's layout, `ensemble/config.pbtxt` and `ensemble/1/model.json` (engine arguments). vLLM's
  backend has inputs of its own (`text_input`, `stream`, `sampling_parameters` as JSON, `exclude_input_in_output`).
- `tensorrtllm`: TensorRT-LLM's inflight-batcher layout (`ensemble`, `preprocessing`, `tensorrt_llm`,
  `postprocessing`), with the parameters filled in; the engine is not built here (`build-engine.sh` says how, on a
  GPU node) and the pre- and post-processing `model.py` files come from TensorRT-LLM's backend release.
- `fastertransformer`: retired upstream; a terminal `StageConfigError`.
"""

from __future__ import annotations

import json
import posixpath
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kiln_trainer.stage import StageConfigError, file_digest, storage_path

__all__ = [
    "MODEL_NAME",
    "QUEUE_DELAY_US",
    "Repository",
    "Target",
    "artifacts",
    "check_targets",
    "eval_precision",
    "python_repository",
    "relative_hf_dir",
    "tensorrtllm_repository",
    "vllm_repository",
    "write_repositories",
]

MODEL_NAME = "ensemble"
"""The model's name in every repository (the eval runner's Triton client's default)."""
QUEUE_DELAY_US = 5000
"""How long the dynamic batcher waits to fill a batch (microseconds), when the target does not say."""
_HERE = Path(__file__).resolve().parent
_HF_DTYPE = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class Target:
    """A serving target of the export config (export.schema.json's `targets[]`)."""

    name: str
    """The repository's folder under the output (`<output><name>/`)."""
    backend: str
    """`python`, `vllm`, `tensorrtllm` (or the retired `fastertransformer`)."""
    precision: str
    """The engine's precision: fp32, fp16, bf16, fp8, int8."""
    tensor_parallel: int
    """GPUs the engine is split over."""
    max_batch_size: int
    """Requests batched together at most."""
    queue_delay_us: int = QUEUE_DELAY_US
    """How long the dynamic batcher waits to fill a batch (`max_queue_delay_microseconds`)."""
    instances: int = 1
    """Model instances per server (`instance_group` count)."""

    @staticmethod
    def of(value: Mapping[str, Any]) -> Target:
        """From a validated config's target."""
        engine = value["engine"]
        return Target(
            value["name"],
            value["backend"],
            engine["precision"],
            int(engine["tensor_parallel"]),
            value["max_batch_size"],
            int(value.get("queue_delay_us", QUEUE_DELAY_US)),
            int(value.get("instances", 1)),
        )


@dataclass(frozen=True)
class Repository:
    """What was written for one repository."""

    name: str
    """The target's name, or `eval`."""
    folder: Path
    """The repository's folder (local path)."""
    files: tuple[Path, ...]
    """Every file written, in order."""
    warnings: tuple[str, ...] = ()
    """What the stage must say about it (an engine still to build)."""


# --- protobuf text -------------------------------------------------------------------------------------------------


def _q(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid protobuf text string for these values


def _tensor(name: str, dtype: str, dims: Sequence[int], *, optional: bool = False, ragged: bool = False) -> str:
    extra = (" optional: true" if optional else "") + (" allow_ragged_batch: true" if ragged else "")
    return f"  {{ name: {_q(name)} data_type: {dtype} dims: [ {', '.join(map(str, dims))} ]{extra} }}"


def _block(key: str, items: Sequence[str]) -> str:
    return f"{key} [\n" + ",\n".join(items) + "\n]\n"


def _parameters(params: Mapping[str, str]) -> str:
    return "".join(f"parameters {{ key: {_q(k)} value: {{ string_value: {_q(v)} }} }}\n" for k, v in params.items())


KILN_INPUTS = (
    _tensor("text_input", "TYPE_STRING", [1]),
    _tensor("suffix", "TYPE_STRING", [1], optional=True),
    _tensor("max_tokens", "TYPE_INT32", [1], optional=True),
    _tensor("temperature", "TYPE_FP32", [1], optional=True),
    _tensor("top_p", "TYPE_FP32", [1], optional=True),
    _tensor("top_k", "TYPE_INT32", [1], optional=True),
    _tensor("random_seed", "TYPE_UINT64", [1], optional=True),
    _tensor("stop_words", "TYPE_STRING", [-1], optional=True, ragged=True),
    _tensor("bad_words", "TYPE_STRING", [-1], optional=True, ragged=True),
    _tensor("stream", "TYPE_BOOL", [1], optional=True),
)
"""kiln's request protocol (the python backend's inputs; see kiln_trainer/triton_model.py)."""
KILN_OUTPUTS = (
    _tensor("text_output", "TYPE_STRING", [-1]),
    _tensor("finish_reason", "TYPE_STRING", [1]),
    _tensor("prompt_tokens", "TYPE_INT32", [1]),
    _tensor("completion_tokens", "TYPE_INT32", [1]),
)


# --- paths ---------------------------------------------------------------------------------------------------------


def _storage_root(uri: str) -> str:
    """What two URIs must share for a relative path between them to hold on every pod: the scheme and claim."""
    match = re.match(r"^(pvc://[^/]+|file://)", uri)
    if match is None:
        raise StageConfigError(
            f"storage {uri.split('/')[0]}// is not written by the export stage; use pvc:// or file://"
        )
    return match.group(1)


def relative_hf_dir(model_folder_uri: str, hf_uri: str, env: Mapping[str, str] | None = None) -> str:
    """The HF folder as a path relative to a model folder (`../../hf`); both URIs must be on the same storage."""
    if _storage_root(model_folder_uri) != _storage_root(hf_uri):
        raise StageConfigError(
            f"the model repository {model_folder_uri} and the Hugging Face folder {hf_uri} are not on the same "
            "storage: the python backend finds its weights by a relative path (put eval_model on the output's storage)"
        )
    who = "the export stage"
    return posixpath.relpath(storage_path(hf_uri, who, env).rstrip("/"), storage_path(model_folder_uri, who, env))


def _write(path: Path, text: str, files: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    files.append(path)


# --- the backends ----------------------------------------------------------------------------------------------------


def python_repository(
    folder: Path,
    hf_dir: str,
    max_batch_size: int,
    precision: str,
    queue_delay_us: int = QUEUE_DELAY_US,
    instances: int = 1,
) -> list[Path]:
    """The python-backend repository: `ensemble/` running kiln_trainer.generate's core on the HF folder at `hf_dir`
    (relative to `folder/ensemble/`), batching up to `max_batch_size` requests that arrive within `queue_delay_us`,
    in `instances` model instances. Returns the files written."""
    if precision not in _HF_DTYPE:
        raise StageConfigError(f"the python backend runs fp32, fp16 or bf16, not {precision}")
    files: list[Path] = []
    model = folder / MODEL_NAME
    config = (
        f"name: {_q(MODEL_NAME)}\n"
        'backend: "python"\n'
        f"max_batch_size: {max_batch_size}\n"
        f"dynamic_batching {{ max_queue_delay_microseconds: {queue_delay_us} }}\n"
        "# One decoupled model for both /generate (one response per request) and /generate_stream.\n"
        "model_transaction_policy { decoupled: true }\n"
        + _block("input", KILN_INPUTS)
        + _block("output", KILN_OUTPUTS)
        + f"instance_group [ {{ count: {instances} kind: KIND_AUTO }} ]\n"
        + _parameters({"hf_dir": hf_dir, "precision": precision})
    )
    _write(model / "config.pbtxt", config, files)
    for src, dst in ((_HERE / "triton_model.py", "model.py"), (_HERE / "generate.py", "kiln_generate.py")):
        (model / "1").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, model / "1" / dst)
        files.append(model / "1" / dst)
    return files


def vllm_repository(folder: Path, hf_path: str, target: Target) -> list[Path]:
    """The vLLM backend's repository: `ensemble/config.pbtxt` and `ensemble/1/model.json`, its engine arguments
    (`model` is `hf_path`, the HF folder as the serving pod sees it)."""
    engine: dict[str, Any] = {
        "model": hf_path,
        "tokenizer": hf_path,
        "tensor_parallel_size": target.tensor_parallel,
        "max_num_seqs": target.max_batch_size,
        "gpu_memory_utilization": 0.9,
        "disable_log_requests": True,
    }
    if target.precision == "fp8":  # vLLM quantizes the weights to fp8 when it loads them
        engine.update({"dtype": "bfloat16", "quantization": "fp8"})
    elif target.precision in _HF_DTYPE:
        engine["dtype"] = _HF_DTYPE[target.precision]
    else:
        raise StageConfigError(
            f"target {target.name}: vllm serves fp32, fp16, bf16 or fp8 here, not {target.precision}"
        )
    files: list[Path] = []
    config = (
        f"name: {_q(MODEL_NAME)}\n"
        'backend: "vllm"\n'
        "# vLLM batches on its own; the backend needs the decoupled policy.\n"
        "max_batch_size: 0\n"
        "model_transaction_policy { decoupled: true }\n"
        + _block(
            "input",
            [
                _tensor("text_input", "TYPE_STRING", [1]),
                _tensor("stream", "TYPE_BOOL", [1], optional=True),
                _tensor("sampling_parameters", "TYPE_STRING", [1], optional=True),
                _tensor("exclude_input_in_output", "TYPE_BOOL", [1], optional=True),
            ],
        )
        + _block("output", [_tensor("text_output", "TYPE_STRING", [-1])])
        + "instance_group [ { count: 1 kind: KIND_MODEL } ]\n"
    )
    _write(folder / MODEL_NAME / "config.pbtxt", config, files)
    _write(folder / MODEL_NAME / "1" / "model.json", json.dumps(engine, indent=2) + "\n", files)
    return files


def _trtllm_build(target: Target, hf_path: str, engine_dir: str, architecture: str) -> tuple[str, str]:
    """The commands that build the engine on a GPU node (TensorRT-LLM's examples; unverified here)."""
    family = "mpt" if architecture.startswith("Mpt") else "llama"
    ckpt = f"/tmp/kiln-trtllm-{target.name}"
    tp = target.tensor_parallel
    if target.precision == "fp8":
        convert = (
            f'python3 "$TRTLLM/examples/quantization/quantize.py" --model_dir {hf_path} --dtype float16 '
            f"--qformat fp8 --kv_cache_dtype fp8 --tp_size {tp} --output_dir {ckpt}"
        )
    else:
        dtype = "float16" if target.precision == "int8" else _HF_DTYPE[target.precision]
        weight_only = " --use_weight_only --weight_only_precision int8" if target.precision == "int8" else ""
        convert = (
            f'python3 "$TRTLLM/examples/{family}/convert_checkpoint.py" --model_dir {hf_path} '
            f"--output_dir {ckpt} --dtype {dtype} --tp_size {tp}{weight_only}"
        )
    build = (
        f"trtllm-build --checkpoint_dir {ckpt} --output_dir {engine_dir} --gemm_plugin auto "
        f"--max_batch_size {target.max_batch_size}"
    )
    return convert, build


def tensorrtllm_repository(
    folder: Path, hf_path: str, folder_path: str, target: Target, architecture: str
) -> Repository:
    """TensorRT-LLM's inflight-batcher layout with kiln's protocol on the ensemble; the engine is left to build.

    `hf_path` and `folder_path`: the HF folder and this repository as the serving pod sees them.
    """
    files: list[Path] = []
    engine_dir = folder_path.rstrip("/") + "/tensorrt_llm/1/"
    mbs = target.max_batch_size
    batching = f"dynamic_batching {{ max_queue_delay_microseconds: {target.queue_delay_us} }}\n"
    # The ensemble: kiln's inputs (TensorRT-LLM's names, random_seed for its `seed`), no suffix (no infilling here).
    steps = [
        (
            "preprocessing",
            {"QUERY": "text_input", "REQUEST_OUTPUT_LEN": "max_tokens", "BAD_WORDS_DICT": "bad_words",
             "STOP_WORDS_DICT": "stop_words"},
            {"REQUEST_INPUT_LEN": "_REQUEST_INPUT_LEN", "INPUT_ID": "_INPUT_ID", "REQUEST_OUTPUT_LEN":
             "_REQUEST_OUTPUT_LEN", "STOP_WORDS_IDS": "_STOP_WORDS_IDS", "BAD_WORDS_IDS": "_BAD_WORDS_IDS",
             "OUT_END_ID": "_END_ID", "OUT_PAD_ID": "_PAD_ID"},
        ),
        (
            "tensorrt_llm",
            {"input_ids": "_INPUT_ID", "input_lengths": "_REQUEST_INPUT_LEN", "request_output_len":
             "_REQUEST_OUTPUT_LEN", "end_id": "_END_ID", "pad_id": "_PAD_ID", "stop_words_list": "_STOP_WORDS_IDS",
             "bad_words_list": "_BAD_WORDS_IDS", "runtime_top_k": "top_k", "runtime_top_p": "top_p",
             "temperature": "temperature", "seed": "random_seed", "streaming": "stream"},
            {"output_ids": "_TOKENS_BATCH", "sequence_length": "_SEQUENCE_LENGTH"},
        ),
        (
            "postprocessing",
            {"TOKENS_BATCH": "_TOKENS_BATCH", "SEQUENCE_LENGTH": "_SEQUENCE_LENGTH"},
            {"OUTPUT": "text_output"},
        ),
    ]  # fmt: skip

    def step(model: str, inputs: Mapping[str, str], outputs: Mapping[str, str]) -> str:
        maps = [f"      input_map {{ key: {_q(k)} value: {_q(v)} }}" for k, v in inputs.items()]
        maps += [f"      output_map {{ key: {_q(k)} value: {_q(v)} }}" for k, v in outputs.items()]
        return f"    {{\n      model_name: {_q(model)}\n      model_version: -1\n" + "\n".join(maps) + "\n    }"

    ensemble_inputs = [
        _tensor("text_input", "TYPE_STRING", [1]),
        _tensor("max_tokens", "TYPE_INT32", [1]),
        _tensor("bad_words", "TYPE_STRING", [-1], optional=True),
        _tensor("stop_words", "TYPE_STRING", [-1], optional=True),
        _tensor("top_k", "TYPE_INT32", [1], optional=True),
        _tensor("top_p", "TYPE_FP32", [1], optional=True),
        _tensor("temperature", "TYPE_FP32", [1], optional=True),
        _tensor("random_seed", "TYPE_UINT64", [1], optional=True),
        _tensor("stream", "TYPE_BOOL", [1], optional=True),
    ]
    ensemble = (
        f'name: {_q(MODEL_NAME)}\nplatform: "ensemble"\nmax_batch_size: {mbs}\n'
        + _block("input", ensemble_inputs)
        + _block("output", [_tensor("text_output", "TYPE_STRING", [-1])])
        + "ensemble_scheduling {\n  step [\n"
        + ",\n".join(step(*s) for s in steps)
        + "\n  ]\n}\n"
    )
    pre = (
        f'name: "preprocessing"\nbackend: "python"\nmax_batch_size: {mbs}\n'
        + _block(
            "input",
            [
                _tensor("QUERY", "TYPE_STRING", [1]),
                _tensor("REQUEST_OUTPUT_LEN", "TYPE_INT32", [1]),
                _tensor("BAD_WORDS_DICT", "TYPE_STRING", [-1], optional=True),
                _tensor("STOP_WORDS_DICT", "TYPE_STRING", [-1], optional=True),
                _tensor("END_ID", "TYPE_INT32", [1], optional=True),
                _tensor("PAD_ID", "TYPE_INT32", [1], optional=True),
            ],
        )
        + _block(
            "output",
            [
                _tensor("INPUT_ID", "TYPE_INT32", [-1]),
                _tensor("REQUEST_INPUT_LEN", "TYPE_INT32", [1]),
                _tensor("BAD_WORDS_IDS", "TYPE_INT32", [2, -1]),
                _tensor("STOP_WORDS_IDS", "TYPE_INT32", [2, -1]),
                _tensor("REQUEST_OUTPUT_LEN", "TYPE_INT32", [-1]),
                _tensor("OUT_END_ID", "TYPE_INT32", [1]),
                _tensor("OUT_PAD_ID", "TYPE_INT32", [1]),
            ],
        )
        + _parameters({"tokenizer_dir": hf_path, "add_special_tokens": "False"})
        + "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
    )
    trtllm = (
        f'name: "tensorrt_llm"\nbackend: "tensorrtllm"\nmax_batch_size: {mbs}\n'
        "model_transaction_policy { decoupled: true }\n"
        + batching
        + _block(
            "input",
            [
                _tensor("input_ids", "TYPE_INT32", [-1]),
                _tensor("input_lengths", "TYPE_INT32", [1]),
                _tensor("request_output_len", "TYPE_INT32", [1]),
                _tensor("end_id", "TYPE_INT32", [1], optional=True),
                _tensor("pad_id", "TYPE_INT32", [1], optional=True),
                _tensor("stop_words_list", "TYPE_INT32", [2, -1], optional=True),
                _tensor("bad_words_list", "TYPE_INT32", [2, -1], optional=True),
                _tensor("runtime_top_k", "TYPE_INT32", [1], optional=True),
                _tensor("runtime_top_p", "TYPE_FP32", [1], optional=True),
                _tensor("temperature", "TYPE_FP32", [1], optional=True),
                _tensor("seed", "TYPE_UINT64", [1], optional=True),
                _tensor("streaming", "TYPE_BOOL", [1], optional=True),
            ],
        )
        + _block(
            "output",
            [_tensor("output_ids", "TYPE_INT32", [-1, -1]), _tensor("sequence_length", "TYPE_INT32", [-1])],
        )
        + "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
        + _parameters(
            {
                "engine_dir": engine_dir,
                "tokenizer_dir": hf_path,
                "max_beam_width": "1",
                "batching_strategy": "inflight_fused_batching",
                "exclude_input_in_output": "true",
                "kv_cache_free_gpu_mem_fraction": "0.9",
                "FORCE_CPU_ONLY_INPUT_TENSORS": "no",
            }
        )
    )
    post = (
        f'name: "postprocessing"\nbackend: "python"\nmax_batch_size: {mbs}\n'
        + _block(
            "input",
            [_tensor("TOKENS_BATCH", "TYPE_INT32", [-1, -1]), _tensor("SEQUENCE_LENGTH", "TYPE_INT32", [-1])],
        )
        + _block("output", [_tensor("OUTPUT", "TYPE_STRING", [-1])])
        + _parameters({"tokenizer_dir": hf_path, "skip_special_tokens": "True"})
        + "instance_group [ { count: 1 kind: KIND_CPU } ]\n"
    )
    for name, text in (
        (MODEL_NAME, ensemble),
        ("preprocessing", pre),
        ("tensorrt_llm", trtllm),
        ("postprocessing", post),
    ):
        _write(folder / name / "config.pbtxt", text, files)
    (folder / "tensorrt_llm" / "1").mkdir(parents=True, exist_ok=True)
    convert, build = _trtllm_build(target, hf_path, engine_dir, architecture)
    script = (
        "#!/bin/sh\n"
        f"# Builds the TensorRT-LLM engine of target {target.name} on a GPU node of the serving GPU, in NVIDIA's\n"
        "# TensorRT-LLM Triton image. Unverified by kiln's tests (no GPU there). TRTLLM: a TensorRT-LLM checkout of\n"
        "# the image's version; TRTLLM_BACKEND: the matching tensorrtllm_backend (pre/postprocessing model.py).\n"
        "# Newer TensorRT-LLM releases moved the converters to examples/models/core/<family>/.\n"
        "set -eu\n"
        f"{convert}\n"
        f"{build}\n"
        "for m in preprocessing postprocessing; do\n"
        f"  mkdir -p {folder_path.rstrip('/')}/$m/1\n"
        f'  cp "$TRTLLM_BACKEND/all_models/inflight_batcher_llm/$m/1/model.py" {folder_path.rstrip("/")}/$m/1/\n'
        "done\n"
    )
    _write(folder / "build-engine.sh", script, files)
    (folder / "build-engine.sh").chmod(0o755)
    warning = (
        f"target {target.name}: the TensorRT-LLM engine is not built (kiln does not build engines); on a "
        f"{target.tensor_parallel}-GPU node of the serving GPU run {folder_path.rstrip('/')}/build-engine.sh, that is: "
        f"{convert} && {build}"
    )
    return Repository(target.name, folder, tuple(files), (warning,))


# --- the stage's part ----------------------------------------------------------------------------------------------


def eval_precision(targets: Sequence[Target], hf_dtype: str) -> str:
    """The eval server's precision: the first target's when the python backend runs it (it serves that engine's
    numbers), else the exported weights' own."""
    if targets and targets[0].precision in _HF_DTYPE:
        return targets[0].precision
    return hf_dtype if hf_dtype in _HF_DTYPE else "fp32"


def _folder_uri(uri: str) -> str:
    return uri if uri.endswith("/") else uri + "/"


def check_targets(
    config: Mapping[str, Any], output_uri: str, hf_uri: str, env: Mapping[str, str] | None = None
) -> list[Target]:
    """The config's targets, or a `StageConfigError` for the first that cannot be written (fastertransformer, a name
    that is not a folder name or collides, a precision its backend does not run) or an eval model on other storage.
    The stage calls it before it exports anything."""
    targets = [Target.of(t) for t in config["targets"]]
    eval_uri = _folder_uri(config["eval_model"])
    reserved = {"hf"} | ({eval_uri[len(output_uri) :].strip("/")} if eval_uri.startswith(output_uri) else set())
    seen: set[str] = set()
    for t in targets:
        if t.backend == "fastertransformer":
            raise StageConfigError(
                f"target {t.name}: the fastertransformer backend is retired upstream (its successor is TensorRT-LLM); "
                "use backend tensorrtllm or vllm"
            )
        if not _SAFE_NAME.fullmatch(t.name) or t.name in reserved or t.name in seen:
            why = (
                "is taken by the export's own folders"
                if t.name in reserved or t.name in seen
                else "is not a folder name"
            )
            raise StageConfigError(f"target name {t.name!r} {why}; the repository goes to {output_uri}{t.name}/")
        seen.add(t.name)
        if t.backend == "python" and t.precision not in _HF_DTYPE:
            raise StageConfigError(f"target {t.name}: the python backend runs fp32, fp16 or bf16, not {t.precision}")
        if t.backend == "vllm" and t.precision == "int8":
            raise StageConfigError(f"target {t.name}: vllm serves fp32, fp16, bf16 or fp8 here, not int8")
    relative_hf_dir(eval_uri + MODEL_NAME + "/", hf_uri, env)
    return targets


def write_repositories(
    config: Mapping[str, Any], output_uri: str, hf_uri: str, hf_dir: Path, env: Mapping[str, str] | None = None
) -> list[Repository]:
    """Every target's repository and the eval model's, from a validated export config, after `hf_dir` is written.

    `output_uri` ends with "/"; `hf_uri` is `<output>hf`. The targets are checked first (`check_targets`).
    """
    targets = check_targets(config, output_uri, hf_uri, env)
    who = "the export stage"
    eval_uri = _folder_uri(config["eval_model"])
    eval_hf_dir = relative_hf_dir(eval_uri + MODEL_NAME + "/", hf_uri, env)
    hf_json = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    architecture = str((hf_json.get("architectures") or ["LlamaForCausalLM"])[0])
    hf_dtype = {v: k for k, v in _HF_DTYPE.items()}.get(str(hf_json.get("torch_dtype")), "fp32")
    hf_path = storage_path(hf_uri, who, env).rstrip("/")

    repos: list[Repository] = []
    for t in targets:
        uri = f"{output_uri}{t.name}/"
        folder = Path(storage_path(uri, who, env))
        if t.backend == "python":
            files = python_repository(folder, relative_hf_dir(uri + MODEL_NAME + "/", hf_uri, env), t.max_batch_size,
                                      t.precision, t.queue_delay_us, t.instances)  # fmt: skip
            repos.append(Repository(t.name, folder, tuple(files)))
        elif t.backend == "vllm":
            note = (
                f"target {t.name}: the vllm repository runs in NVIDIA's Triton image with the vLLM backend, on a "
                "GPU; not on this machine (vLLM's wheel is CUDA-only, and `kiln serve`'s Triton has only the python "
                "backend)"
            )
            repos.append(Repository(t.name, folder, tuple(vllm_repository(folder, hf_path, t)), (note,)))
        else:
            repos.append(tensorrtllm_repository(folder, hf_path, storage_path(uri, who, env), t, architecture))
    eval_folder = Path(storage_path(eval_uri, who, env))
    eval_batch = targets[0].max_batch_size if targets else 4
    eval_delay = targets[0].queue_delay_us if targets else QUEUE_DELAY_US
    files = python_repository(eval_folder, eval_hf_dir, eval_batch, eval_precision(targets, hf_dtype), eval_delay)
    repos.append(Repository("eval", eval_folder, tuple(files)))
    return repos


def artifacts(repos: Sequence[Repository], output_uri: str, eval_uri: str) -> list[dict[str, Any]]:
    """The manifest's artifacts of the repositories: each file by its path in the repository, with its digest."""
    out: list[dict[str, Any]] = []
    for repo in repos:
        base = (eval_uri if repo.name == "eval" else f"{output_uri}{repo.name}/").rstrip("/") + "/"
        for path in repo.files:
            rel = path.relative_to(repo.folder).as_posix()
            out.append(
                {
                    "name": f"{repo.name}/{rel}",
                    "uri": base + rel,
                    "digest": file_digest(path),
                    "bytes": path.stat().st_size,
                }
            )
    return out
