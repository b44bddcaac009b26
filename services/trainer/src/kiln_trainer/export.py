"""The export stage: kiln's model as a Hugging Face folder that transformers loads offline, with no custom code.

`python -m kiln_trainer.export --config FILE` (the stage; schemas/stages/export.schema.json) reads the latest
committed checkpoint under the config's `checkpoints` (`kiln_trainer.checkpoint.load_latest`, the train loop's) and
writes `<output>hf/`; `export_checkpoint(state_or_model, cfg, tokenizer_dir, out_dir)` does the work from a plain
state dict (or a `Transformer`) and returns the stage manifest. Then the stage writes the Triton model repositories,
one per serving target at `<output><target>/` and the eval model server's at `eval_model` (kiln_trainer.triton_repo);
every file of them is in the manifest with its digest.

The folder: `config.json` (`LlamaForCausalLM` for rope, `MptForCausalLM` for alibi, see kiln_trainer.model),
`generation_config.json` (end of text and padding ids from the tokenizer's roles, kiln-tokenizer.json),
`model.safetensors` (the head is tied to the embedding, so it is stored once, as HF does), and the tokenizer's
files copied from the tokenizer folder. `AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)` gives
the logits of kiln's forward.

`python -m kiln_trainer.export --checkpoint DIR --output DIR [--dtype fp32|fp16|bf16] [--json]` (`kiln export`)
exports one checkpoint by hand: DIR is a checkpoints folder (its `latest`) or one `step-NNNNNNNN` folder; the
checkpoint's meta.json names its model config and its tokenizer, so nothing else is needed. The Hugging Face folder
goes into --output itself; a short summary (or, with --json, the manifest) on stdout; exit 2 when DIR holds no
checkpoint or its tokenizer cannot be found.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from kiln_trainer import triton_repo
from kiln_trainer.model import ModelConfig, Transformer
from kiln_trainer.special import SpecialTokens
from kiln_trainer.stage import (
    TERMINAL_EXIT,
    Envelope,
    StageConfigError,
    exit_on_config_error,
    file_digest,
    storage_path,
    validate_stage_config,
    write_summary,
)

__all__ = [
    "CHECKPOINT_TOKENIZER",
    "HF_SUBDIR",
    "TOKENIZER_FILES",
    "checkpoint_tokenizer",
    "export_checkpoint",
    "export_from_checkpoint",
    "hf_config",
    "hf_state_dict",
    "main",
    "run_stage",
    "token_ids",
]

CHECKPOINT_TOKENIZER = "tokenizer"
"""The train stage keeps a copy of its tokenizer's files at `<checkpoints>/tokenizer/`."""
HF_SUBDIR = "hf"
"""The stage writes the Hugging Face folder at `<output>hf/`."""
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "kiln-tokenizer.json")
"""What is copied from the tokenizer folder (those present)."""
ExportDtype = Literal["fp32", "bf16", "fp16"]
_TORCH_DTYPE = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_HF_DTYPE = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
# Prefixes a wrapped model's state dict may carry: torch.compile's, DDP's, FSDP1's.
_PREFIXES = ("_orig_mod.", "module.", "_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")


# --- the tokenizer's ids -----------------------------------------------------------------------------------------


def token_ids(tokenizer_dir: Path) -> dict[str, int | None]:
    """`eos`, `pad` (and `bos`, the same as `eos`: documents are joined by end of text) from the tokenizer's roles.

    Padding falls back to end of text when the tokenizer has none.
    """
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    added = [t.content for _, t in sorted(tok.get_added_tokens_decoder().items())]
    roles = SpecialTokens.read(tokenizer_dir, added)
    eos = tok.token_to_id(roles.eot)
    if eos is None:
        raise ValueError(f"the tokenizer in {tokenizer_dir} has no id for its end of text {roles.eot!r}")
    pad = tok.token_to_id(roles.pad) if roles.pad else None
    return {"eos": eos, "pad": eos if pad is None else pad, "bos": eos}


# --- the Hugging Face config and weights -------------------------------------------------------------------------


def hf_config(cfg: ModelConfig, ids: Mapping[str, int | None], dtype: ExportDtype = "fp32") -> dict[str, Any]:
    """config.json for `LlamaForCausalLM` (rope) or `MptForCausalLM` (alibi), the same model as kiln's."""
    common = {
        "vocab_size": cfg.vocab_size,
        "tie_word_embeddings": True,
        "bos_token_id": ids.get("bos"),
        "eos_token_id": ids.get("eos"),
        "pad_token_id": ids.get("pad"),
        "use_cache": True,
        "dtype": _HF_DTYPE[dtype],
        "torch_dtype": _HF_DTYPE[dtype],
        "kiln": cfg.to_json(),
    }
    if cfg.position_encoding == "rope":
        return {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": cfg.d_model,
            "intermediate_size": cfg.intermediate_size,
            "num_hidden_layers": cfg.n_layers,
            "num_attention_heads": cfg.n_heads,
            "num_key_value_heads": cfg.n_heads,
            "head_dim": cfg.head_dim,
            "hidden_act": "silu",
            "max_position_embeddings": cfg.max_seq_len,
            "rms_norm_eps": cfg.norm_eps,
            "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
            "rope_theta": cfg.rope_theta,
            "rope_scaling": None,
            "attention_bias": False,
            "attention_dropout": 0.0,
            "mlp_bias": False,
            "pretraining_tp": 1,
            "initializer_range": 0.02,
            **common,
        }
    return {
        "architectures": ["MptForCausalLM"],
        "model_type": "mpt",
        "d_model": cfg.d_model,
        "n_heads": cfg.n_heads,
        "n_layers": cfg.n_layers,
        "expansion_ratio": int(cfg.mlp_ratio),
        "max_seq_len": cfg.max_seq_len,
        "no_bias": True,
        "learned_pos_emb": False,
        "layer_norm_epsilon": cfg.norm_eps,
        "norm_type": "low_precision_layernorm",
        "logit_scale": None,
        "embedding_fraction": 1.0,
        "resid_pdrop": 0.0,
        "emb_pdrop": 0.0,
        "initializer_range": 0.02,
        "attn_config": {
            "attn_type": "multihead_attention",
            "attn_pdrop": 0,
            "attn_impl": "torch",
            "clip_qkv": None,
            "softmax_scale": None,
            "prefix_lm": False,
            "qk_ln": False,
            "attn_uses_sequence_id": False,
            "alibi": True,
            "alibi_bias_max": cfg.alibi_bias_max,
        },
        **common,
    }


def _plain(state: Mapping[str, Any]) -> dict[str, Tensor]:
    """A state dict with wrappers' prefixes stripped, DTensors gathered, on the CPU, detached."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        name = key
        for prefix in _PREFIXES:
            name = name.replace(prefix, "")
        tensor = value.full_tensor() if hasattr(value, "full_tensor") else value
        if not isinstance(tensor, Tensor):
            raise TypeError(f"state dict entry {key!r} is a {type(value).__name__}, not a tensor")
        out[name] = tensor.detach().to("cpu")
    return out


def hf_state_dict(state: Mapping[str, Any], cfg: ModelConfig, dtype: ExportDtype = "fp32") -> dict[str, Tensor]:
    """kiln's state dict under Hugging Face's names (Llama or MPT), contiguous, in `dtype`.

    A missing or unexpected key (a state dict of another model) is a `KeyError` naming it.
    """
    src = _plain(state)
    expected = _shapes(cfg)
    missing, extra = sorted(expected.keys() - src.keys()), sorted(src.keys() - expected.keys())
    wrong = [
        f"{k} {tuple(src[k].shape)} (not {expected[k]})" for k in expected if k in src and src[k].shape != expected[k]
    ]
    if missing or extra or wrong:
        raise KeyError(
            f"not a state dict of this model: missing {missing[:5]}, unexpected {extra[:5]}, shapes {wrong[:5]}"
        )
    out: dict[str, Tensor] = {}
    ff = cfg.intermediate_size
    if cfg.position_encoding == "rope":
        out["model.embed_tokens.weight"] = src["embed.weight"]
        for i in range(cfg.n_layers):
            p, h = f"layers.{i}.", f"model.layers.{i}."
            q, k, v = src[p + "attn.qkv.weight"].chunk(3, dim=0)
            out[h + "input_layernorm.weight"] = src[p + "attn_norm.weight"]
            out[h + "self_attn.q_proj.weight"] = q
            out[h + "self_attn.k_proj.weight"] = k
            out[h + "self_attn.v_proj.weight"] = v
            out[h + "self_attn.o_proj.weight"] = src[p + "attn.out.weight"]
            out[h + "post_attention_layernorm.weight"] = src[p + "mlp_norm.weight"]
            up = src[p + "mlp.up.weight"]
            out[h + "mlp.gate_proj.weight"] = up[:ff]
            out[h + "mlp.up_proj.weight"] = up[ff:]
            out[h + "mlp.down_proj.weight"] = src[p + "mlp.down.weight"]
        out["model.norm.weight"] = src["norm.weight"]
    else:
        out["transformer.wte.weight"] = src["embed.weight"]
        for i in range(cfg.n_layers):
            p, h = f"layers.{i}.", f"transformer.blocks.{i}."
            out[h + "norm_1.weight"] = src[p + "attn_norm.weight"]
            out[h + "attn.Wqkv.weight"] = src[p + "attn.qkv.weight"]
            out[h + "attn.out_proj.weight"] = src[p + "attn.out.weight"]
            out[h + "norm_2.weight"] = src[p + "mlp_norm.weight"]
            out[h + "ffn.up_proj.weight"] = src[p + "mlp.up.weight"]
            out[h + "ffn.down_proj.weight"] = src[p + "mlp.down.weight"]
        out["transformer.norm_f.weight"] = src["norm.weight"]
    return {k: v.to(_TORCH_DTYPE[dtype]).contiguous() for k, v in out.items()}


def _shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The state dict's names and shapes of `cfg`'s model (built on the meta device: no memory, no time)."""
    with torch.device("meta"):
        model = Transformer(cfg)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# --- writing -----------------------------------------------------------------------------------------------------


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def export_checkpoint(
    state_dict_or_model: Mapping[str, Any] | nn.Module,
    cfg: ModelConfig,
    tokenizer_dir: str | Path,
    out_dir: str | Path,
    *,
    dtype: ExportDtype = "fp32",
    uri: str | None = None,
    envelope: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Writes the Hugging Face folder `out_dir` from kiln's model state; returns the stage manifest.

    `state_dict_or_model`: a `Transformer` (or a wrapper of one), or its `state_dict()` (plain, compiled, DDP or
    DTensor entries). `uri`: how the manifest names `out_dir` (default its path). `envelope`: the stage config's
    envelope fields (runId, stage, attempt) for the manifest. `meta`: the checkpoint's (its step, tokens) for the
    manifest's counts.
    """
    t0 = time.perf_counter()
    from safetensors.torch import save_file

    state = state_dict_or_model.state_dict() if isinstance(state_dict_or_model, nn.Module) else state_dict_or_model
    tokenizer_dir, out_dir = Path(tokenizer_dir), Path(out_dir)
    weights = hf_state_dict(state, cfg, dtype)
    ids = token_ids(tokenizer_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(out_dir / "config.json", hf_config(cfg, ids, dtype))
    generation = {"bos_token_id": ids["bos"], "eos_token_id": ids["eos"], "pad_token_id": ids["pad"]}
    _write_json(out_dir / "generation_config.json", generation)
    save_file(weights, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    copied = [name for name in TOKENIZER_FILES if (tokenizer_dir / name).is_file()]
    for name in copied:
        shutil.copyfile(tokenizer_dir / name, out_dir / name)
    names = ["config.json", "generation_config.json", "model.safetensors", *copied]
    base = (uri or out_dir.as_posix()).rstrip("/") + "/"
    artifacts = [
        {"name": n, "uri": base + n, "digest": file_digest(out_dir / n), "bytes": (out_dir / n).stat().st_size}
        for n in names
    ]
    n_params = sum(t.numel() for t in weights.values())
    head = {k: v for k, v in (envelope or {}).items() if k in ("runId", "stage", "attempt") and v is not None}
    counts = {"parameters": n_params, "tensors": len(weights)}
    counts.update({k: v for k, v in (meta or {}).items() if isinstance(v, int) and not isinstance(v, bool) and v >= 0})
    return {
        "kind": "kiln.stage-manifest/v1",
        **{"stage": "export", "attempt": 1, **head},
        "artifacts": artifacts,
        "counts": counts,
        "metrics": {
            "parameters": float(n_params),
            "weights_bytes": float((out_dir / "model.safetensors").stat().st_size),
            "export_seconds": round(time.perf_counter() - t0, 3),
        },
        "warnings": [],
    }


def _summary(manifest: Mapping[str, Any]) -> dict[str, Any]:
    # Small: the weights, config and tokenizer, and each repository's ensemble config (the manifest has every file).
    keep = ("config.json", "model.safetensors", "tokenizer.json")
    ensemble = f"/{triton_repo.MODEL_NAME}/config.pbtxt"
    return {
        "metrics": dict(manifest["metrics"]),
        "artifacts": [a for a in manifest["artifacts"] if a["name"] in keep or a["name"].endswith(ensemble)],
        "warnings": list(manifest["warnings"])[:3],
    }


# --- the stage ---------------------------------------------------------------------------------------------------


def run_stage(config_path: str, env: Mapping[str, str] | None = None) -> int:
    """The stage: the latest checkpoint as `<output>hf/`, the manifest at the envelope's location, the summary."""
    try:
        raw: dict[str, Any] = json.loads(Path(config_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise StageConfigError(f"cannot read the stage config {config_path}: {e}") from e
    config = validate_stage_config("export", raw, config_path)
    envelope = Envelope.of(config)
    who = "the export stage"
    checkpoints = Path(storage_path(config["checkpoints"], who, env))
    tokenizer_dir = Path(storage_path(config["tokenizer"], who, env))
    output_uri = config["output"] if config["output"].endswith("/") else config["output"] + "/"
    out_dir = Path(storage_path(output_uri, who, env)) / HF_SUBDIR
    if not (tokenizer_dir / "tokenizer.json").is_file():
        raise StageConfigError(f"no tokenizer.json in {tokenizer_dir} (tokenizer {config['tokenizer']})")

    # The train loop's reader of its own checkpoint format (torch.distributed.checkpoint):
    # load_latest(dir) -> (model_state, model_config_json, meta).
    load_latest: Any = importlib.import_module("kiln_trainer.checkpoint").load_latest
    try:
        latest = load_latest(checkpoints)
    except FileNotFoundError as e:
        latest = None
        why = f": {e}"
    else:
        why = ""
    if latest is None:  # no retry makes one: the train stage committed none
        raise StageConfigError(f"no committed checkpoint under {config['checkpoints']} ({checkpoints}){why}")
    model_state, model_config_json, meta = latest
    cfg = ModelConfig.from_json(model_config_json)
    dtype: ExportDtype = cfg.precision
    hf_uri = output_uri + HF_SUBDIR
    triton_repo.check_targets(config, output_uri, hf_uri, env)  # before the weights: a bad target fails at once
    manifest = export_checkpoint(
        model_state, cfg, tokenizer_dir, out_dir, dtype=dtype, uri=hf_uri, envelope=raw, meta=meta
    )
    repos = triton_repo.write_repositories(config, output_uri, hf_uri, out_dir, env)
    manifest["artifacts"] += triton_repo.artifacts(repos, output_uri, config["eval_model"])
    manifest["counts"]["repositories"] = len(repos)
    for repo in repos:
        manifest["warnings"] += list(repo.warnings)
        print(f"export: model repository {repo.name} at {repo.folder} ({len(repo.files)} files)", file=sys.stderr)
    for warning in manifest["warnings"]:
        print(f"export: warning: {warning}", file=sys.stderr)
    target = Path(storage_path(envelope.manifest, who, env)) if envelope.manifest else out_dir / "manifest.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    _write_json(target, manifest)
    write_summary(_summary(manifest), env)
    print(
        f"export: {cfg.architecture} model ({manifest['counts']['parameters']} parameters) at {out_dir}",
        file=sys.stderr,
    )
    return 0


# --- one checkpoint, by hand ------------------------------------------------------------------------------------


def _load(checkpoint: Path) -> tuple[dict[str, Tensor], dict[str, Any], dict[str, Any], Path]:
    """The model state, ModelConfig JSON and meta of a checkpoints folder's latest or of one step folder, and the
    checkpoints folder it belongs to."""
    ckpt = importlib.import_module("kiln_trainer.checkpoint")
    if not checkpoint.is_dir():
        raise StageConfigError(f"there is no folder {checkpoint}")
    try:
        if (checkpoint / ckpt.LATEST).is_file():
            latest = ckpt.load_latest(checkpoint)
            if latest is not None:
                return (*latest, checkpoint)
        if (checkpoint / ckpt.META).is_file():
            return (*ckpt.load_step(checkpoint), checkpoint.parent)
    except FileNotFoundError as e:
        raise StageConfigError(f"cannot read the checkpoint at {checkpoint}: {e}") from e
    raise StageConfigError(
        f"{checkpoint} holds no checkpoint: give a checkpoints folder (kiln train's --output, with `latest`) or one "
        "of its step-NNNNNNNN folders"
    )


def checkpoint_tokenizer(checkpoints: Path, meta: Mapping[str, Any]) -> Path:
    """The tokenizer a checkpoint was trained with: the copy at `<checkpoints>/tokenizer/`, else the folder its meta
    names; either must hash to the meta's digest. A `StageConfigError` saying where it looked when neither does."""
    recorded = meta.get("tokenizer") or {}
    digest, path = recorded.get("digest"), recorded.get("path")
    candidates = [checkpoints / CHECKPOINT_TOKENIZER, *([Path(path)] if path else [])]
    looked: list[str] = []
    for folder in candidates:
        tj = folder / "tokenizer.json"
        if not tj.is_file():
            looked.append(f"{folder} (no tokenizer.json)")
            continue
        found = file_digest(tj)
        if digest is None or found == digest:
            return folder
        looked.append(f"{folder} (another tokenizer: {found}, not the checkpoint's {digest})")
    raise StageConfigError(
        "the checkpoint's tokenizer is not found; looked in "
        + "; ".join(looked)
        + ("" if path else " (the checkpoint's meta.json records no tokenizer path)")
    )


def export_from_checkpoint(
    checkpoint: str | Path, out_dir: str | Path, dtype: ExportDtype | None = None
) -> dict[str, Any]:
    """Exports a checkpoints folder's latest checkpoint, or one `step-NNNNNNNN` folder, as the Hugging Face folder
    `out_dir`, with the tokenizer it was trained with; returns the manifest. `dtype`: default the model's precision.
    """
    state, model_config, meta, checkpoints = _load(Path(checkpoint))
    cfg = ModelConfig.from_json(model_config)
    tokenizer_dir = checkpoint_tokenizer(checkpoints, meta)
    # The meta's whole numbers (step, tokens, world size) become the manifest's counts.
    return export_checkpoint(state, cfg, tokenizer_dir, out_dir, dtype=dtype or cfg.precision, meta=meta)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"  # unreachable


def _checkpoint_command(args: argparse.Namespace) -> int:
    out = Path(args.output)
    manifest = export_from_checkpoint(Path(args.checkpoint), out, args.dtype)
    if args.json:
        print(json.dumps(manifest, indent=2))
        return 0
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    counts = manifest["counts"]
    print(
        f"exported step {counts['step']} ({counts.get('tokens', 0):,} tokens trained) as {config['architectures'][0]}: "
        f"{counts['parameters']:,} parameters, {config['torch_dtype']}, to {out}"
    )
    for a in manifest["artifacts"]:
        print(f"  {a['name']:<24} {_human_bytes(a['bytes']):>10}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m kiln_trainer.export --config FILE` (the stage) or `--checkpoint DIR --output DIR` (by hand)."""
    parser = argparse.ArgumentParser(prog="python -m kiln_trainer.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="the stage's mounted config")
    parser.add_argument("--checkpoint", help="a checkpoints folder (its latest) or one step-NNNNNNNN folder")
    parser.add_argument("--output", help="with --checkpoint: where the Hugging Face folder goes")
    parser.add_argument("--dtype", choices=sorted(_TORCH_DTYPE), help="the weights' type (default the model's)")
    parser.add_argument("--json", action="store_true", help="with --checkpoint: print the manifest as JSON")
    args = parser.parse_args(argv)
    if args.config and (args.checkpoint or args.output or args.dtype or args.json):
        parser.print_usage(sys.stderr)
        print(
            "export: --config runs the stage; --checkpoint, --output, --dtype and --json go without it", file=sys.stderr
        )
        return TERMINAL_EXIT
    if args.config:
        return exit_on_config_error("export", lambda: run_stage(args.config))
    if not (args.checkpoint and args.output):
        parser.print_usage(sys.stderr)
        print(
            "export: give --checkpoint DIR --output DIR, or --config FILE (the stage's mounted config)", file=sys.stderr
        )
        return TERMINAL_EXIT
    try:
        return _checkpoint_command(args)
    except StageConfigError as e:
        print(f"export: {e}", file=sys.stderr)
        return TERMINAL_EXIT
    except (OSError, ValueError, KeyError) as e:
        print(f"export: failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
