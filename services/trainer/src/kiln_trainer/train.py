"""The train stage: `python -m kiln_trainer.train --config FILE`, under torchrun or as one process.

It reads the mounted train config (train.schema.json), the packed sequences (each data-parallel rank its
`PackedDataset.for_rank(rank, world)` share), builds the model (`kiln_trainer.model`), and trains with AdamW,
linear warmup then the spec's decay, gradient clipping and gradient accumulation so that the global batch is the
spec's at any world size; DDP (or FSDP2 `fully_shard` per block and root). It checkpoints every
`checkpoint.interval` tokens (kiln_trainer.checkpoint) and resumes from the latest on `resume: true` or with
`autoresume`; on CPU a resumed run's losses are exactly an uninterrupted run's.

Exit codes: 0 done; 2 (`TERMINAL_EXIT`) a config or data it cannot use, or a non-finite loss (the run fails for
good: retrying gives the same NaN); 3 (`RETRYABLE_EXIT`) stopped by SIGTERM or SIGINT after saving a checkpoint
(the retry resumes from it); anything else (1, a signal) is a crash, retried too. torchrun turns a worker's 2 and
3 into 1: `python -m kiln_trainer.launch` (torchrun's arguments) keeps them.

Rank 0 prints one `kiln.progress/v1` JSON line per log interval on stdout (docs/train.md); everything else is on
stderr. Test hooks: `KILN_TRAIN_INJECT_NAN_AT_STEP=N` makes step N's loss NaN; `KILN_TRAIN_HANG_AFTER_STEP=N`
stops making progress after step N (and its checkpoint, if due), waiting for a signal, as a hung or preempted
worker would; `KILN_TRAIN_LOG_INTERVAL=N` logs every N steps (default: about 100 lines a run).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import resource
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.distributed as dist
from torch import nn

from . import checkpoint as ckpt
from .device import pick_device
from .launch import RETRYABLE_EXIT, record_exit
from .model import ModelConfig, Transformer, autocast_dtype, count_targets, flops_per_token, loss_targets
from .packed import PackedDataset
from .stage import (
    TERMINAL_EXIT,
    StageConfigError,
    TrainConfig,
    file_digest,
    read_stage_config,
    storage_path,
    write_summary,
)

__all__ = [
    "PROGRESS_KIND",
    "RETRYABLE_EXIT",
    "Diverged",
    "Schedule",
    "Steps",
    "lr_at",
    "main",
    "plan_steps",
    "run",
]

PROGRESS_KIND = "kiln.progress/v1"
"""The `kind` of rank 0's progress lines on stdout."""

# Dense bf16 peak FLOP/s by GPU name (docs: trainer.md's MFU section), for the progress lines' MFU.
_PEAK_FLOPS = (("H200", 989.4e12), ("H100", 989.4e12), ("A100", 312e12), ("L4", 121e12))

_WHO = "the train stage"


class Diverged(Exception):
    """A non-finite loss: the run fails for good (a retry from the last checkpoint would diverge the same way)."""


def _say(line: str) -> None:
    print(f"train: {line}", file=sys.stderr, flush=True)


# --- the numbers of a run ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """The learning rate per step: linear warmup over `warmup_steps`, then `decay` to `peak * min_lr_ratio`."""

    peak: float
    warmup_steps: int
    steps: int
    decay: str
    min_lr_ratio: float


def lr_at(s: Schedule, step: int) -> float:
    """The learning rate of 0-based step `step`."""
    if s.warmup_steps > 0 and step < s.warmup_steps:
        return s.peak * (step + 1) / s.warmup_steps
    low = s.peak * s.min_lr_ratio
    progress = min(1.0, (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps))
    if s.decay == "cosine":
        return low + (s.peak - low) * 0.5 * (1.0 + math.cos(math.pi * progress))
    if s.decay == "linear":
        return s.peak - (s.peak - low) * progress
    if s.decay == "inverse_sqrt":
        return max(low, s.peak * math.sqrt(max(1, s.warmup_steps) / (step + 1)))
    return s.peak  # constant


@dataclass(frozen=True)
class Steps:
    """What the spec's training section means at this world size and sequence length."""

    world: int
    seq_len: int
    global_sequences: int
    micro_batch: int
    accumulation: int
    tokens_per_step: int
    steps: int
    checkpoint_interval: int
    """Tokens between checkpoints."""
    keep_last: int
    schedule: Schedule
    betas: tuple[float, float]
    weight_decay: float
    eps: float
    clip: float | None
    seed: int
    strategy: str
    optimizer: str = "adamw"
    """`adamw` (fused on a GPU) or `lion` (kiln_trainer.lion)."""
    sharding: str = "full"
    """FSDP2's: `full` (reshard after forward), `grad_op` (keep the parameters gathered from forward to backward,
    ZeRO-2-like), `hybrid` (shard within a node, replicate across nodes: HSDP on a 2-D mesh)."""
    activation_checkpointing: bool = False


def _tokens(value: Any, budget: float, what: str) -> float:
    """A token count of the resolved spec: a number, or a share of the budget (`1%`)."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.endswith("%"):
        return budget * float(value[:-1]) / 100.0
    raise StageConfigError(f"training.{what} {value!r} is not a token count")


AUTO_MICRO_CAP = 64
"""`micro_batch: auto` tries micro batches of at most this many sequences."""
CPU_AUTO_MICRO = 8
"""`micro_batch: auto` on the CPU: the largest divisor of the rank's share not above this (nothing to probe)."""


def micro_candidates(sequences: int, world: int, cap: int = AUTO_MICRO_CAP) -> list[int]:
    """`micro_batch: auto`'s candidates, largest first: the divisors of a rank's share of the global batch up to
    `cap`, each at most half the one before (the probe halves on running out of memory)."""
    if sequences < 1 or sequences % world:
        raise StageConfigError(
            f"training.global_batch.sequences {sequences} does not divide over {world} data-parallel ranks"
        )
    share = sequences // world
    divisors = [d for d in range(min(share, cap), 0, -1) if share % d == 0]
    picked = [divisors[0]]
    for d in divisors[1:]:
        if d * 2 <= picked[-1]:
            picked.append(d)
    if picked[-1] != 1:
        picked.append(1)
    return picked


def plan_steps(training: Mapping[str, Any], seq_len: int, world: int, micro_batch: int | None = None) -> Steps:
    """The run's steps and batch at `world` data-parallel ranks; a `StageConfigError` when they cannot be kept.

    `micro_batch` overrides the config's (`auto`'s probed size); an `auto` config without it gets the CPU's rule.
    """
    seqs = int(training["global_batch"]["sequences"])
    configured = training["micro_batch"]
    if micro_batch is not None:
        micro = micro_batch
    elif configured == "auto":
        micro = next(m for m in micro_candidates(seqs, world) if m <= CPU_AUTO_MICRO)
    else:
        micro = int(configured)
    if micro < 1 or seqs < 1:
        raise StageConfigError("training.micro_batch and global_batch.sequences must be at least 1")
    if seqs % (micro * world):
        raise StageConfigError(
            f"training.global_batch.sequences {seqs} is not micro_batch {micro} x a whole gradient accumulation x "
            f"{world} data-parallel ranks; choose a micro batch or a world size that divides it"
        )
    accumulation = seqs // (micro * world)
    planned = training.get("gradient_accumulation")
    if isinstance(planned, int) and planned and planned != accumulation:
        _say(f"gradient accumulation {accumulation} at {world} ranks (the plan's {training['gradient_accumulation']})")
    tokens_per_step = seqs * seq_len
    budget = float(training["token_budget"])
    steps = int(training.get("steps") or math.ceil(budget / tokens_per_step))
    opt = training["optimizer"]
    if opt.get("type", "adamw") not in ("adamw", "lion"):
        raise StageConfigError(f"training.optimizer.type {opt.get('type')!r}: use adamw or lion")
    sched = training["schedule"]
    warmup = _tokens(sched.get("warmup", "1%"), budget, "schedule.warmup")
    schedule = Schedule(
        peak=float(opt["lr"]),
        warmup_steps=min(steps, math.ceil(warmup / tokens_per_step)),
        steps=steps,
        decay=str(sched.get("decay", "cosine")),
        min_lr_ratio=float(sched.get("min_lr_ratio", 0.1)),
    )
    clip = training.get("gradient_clipping")
    betas = opt.get("betas", [0.9, 0.95])
    return Steps(
        world=world,
        seq_len=seq_len,
        global_sequences=seqs,
        micro_batch=micro,
        accumulation=accumulation,
        tokens_per_step=tokens_per_step,
        steps=steps,
        checkpoint_interval=max(1, int(_tokens(training["checkpoint"].get("interval", budget), budget, "interval"))),
        keep_last=int(training["checkpoint"].get("keep_last", 2)),
        schedule=schedule,
        betas=(float(betas[0]), float(betas[1])),
        weight_decay=float(opt.get("weight_decay", 0.0)),
        eps=float(opt.get("eps", 1e-8)),
        clip=float(clip) if clip else None,
        seed=int(training["seed"]),
        strategy=str(training["parallelism"].get("strategy", "ddp")),
        optimizer=str(opt.get("type", "adamw")),
        sharding=str(training["parallelism"].get("sharding", "full")),
        activation_checkpointing=bool(training["parallelism"].get("activation_checkpointing", False)),
    )


# --- the data ----------------------------------------------------------------------------------------------------


class Batches:
    """This rank's micro-batches of each step, the same global batch at any world size.

    Each epoch reads the sequences in a seeded permutation (the packed shards hold documents in file order);
    step s of an epoch is positions [s*G, (s+1)*G) of it (G the global batch), and rank r holds the positions
    `PackedDataset.for_rank(r, world)` names. An epoch is the whole global batches the data holds (the rest of the
    permutation is not read that epoch); later epochs read another permutation.
    """

    def __init__(self, ds: PackedDataset, rank: int, st: Steps) -> None:
        self.ds = ds
        self.local = ds.for_rank(rank, st.world)
        self.per_rank = st.global_sequences // st.world
        self.micro = st.micro_batch
        self.seed = st.seed
        self.steps_per_epoch = len(ds) // st.global_sequences
        if self.steps_per_epoch == 0:
            raise StageConfigError(
                f"the packed data holds {len(ds)} sequences, fewer than one global batch ({st.global_sequences})"
            )
        self.ignore = tuple(ds.never_targets)
        self._epoch = -1
        self._order = np.empty(0, dtype=np.int64)

    def order(self, epoch: int) -> npt.NDArray[np.int64]:
        """The permutation of the sequences that epoch `epoch` reads."""
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._order, self._epoch = rng.permutation(len(self.ds)).astype(np.int64), epoch
        return self._order

    def step(self, step: int) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.uint8] | None, int]]:
        """(tokens, mask or None, number of targets) of each micro-batch of step `step`."""
        epoch, within = divmod(step, self.steps_per_epoch)
        rows = self.order(epoch)[self.local[within * self.per_rank : (within + 1) * self.per_rank]]
        for i in range(0, len(rows), self.micro):
            picked = [self.ds[int(g)] for g in rows[i : i + self.micro]]
            tokens = np.stack([t for t, _ in picked]).astype(np.int64)
            mask = None if picked[0][1] is None else np.stack([m for _, m in picked if m is not None])
            n = count_targets(torch.from_numpy(tokens), None if mask is None else torch.from_numpy(mask), self.ignore)
            yield tokens, mask, int(n)


# --- the process group and the model -----------------------------------------------------------------------------


@dataclass
class World:
    rank: int
    size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.size > 1


def _init_world() -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    kind = pick_device()
    device = torch.device(f"cuda:{local_rank}") if kind == "cuda" else torch.device("cpu")
    if kind == "cuda":
        torch.cuda.set_device(device)
    if size > 1:
        dist.init_process_group(
            backend="nccl" if kind == "cuda" else "gloo",
            timeout=datetime.timedelta(minutes=int(os.environ.get("KILN_TRAIN_PG_TIMEOUT_MIN", "10"))),
        )
    return World(rank, size, local_rank, device)


def _all_sum(values: Sequence[float], world: World) -> list[float]:
    t = torch.tensor(list(values), dtype=torch.float64, device=world.device)
    if world.distributed:
        dist.all_reduce(t)
    return [float(v) for v in t.tolist()]


def _wrap(model: nn.Module, st: Steps, world: World) -> nn.Module:
    if not world.distributed:
        return model
    if st.strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        options: dict[str, Any] = {"reshard_after_forward": st.sharding != "grad_op"}
        if st.sharding == "hybrid":
            from torch.distributed.device_mesh import init_device_mesh

            per_node = int(os.environ.get("LOCAL_WORLD_SIZE", str(world.size)))
            if world.size % per_node:
                raise StageConfigError(
                    f"sharding hybrid needs the same number of ranks on every node ({world.size} ranks, "
                    f"{per_node} on this one)"
                )
            options["mesh"] = init_device_mesh(
                world.device.type, (world.size // per_node, per_node), mesh_dim_names=("replicate", "shard")
            )
        for block in model.layers:  # type: ignore[union-attr]
            fully_shard(block, **options)
        fully_shard(model, **options)
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [world.local_rank] if world.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _no_sync(model: nn.Module, last: bool) -> contextlib.AbstractContextManager[Any]:
    """No gradient all-reduce on micro-batches but the step's last (DDP's no_sync, FSDP2's gradient sync off)."""
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(model, DistributedDataParallel):
        return model.no_sync() if not last else contextlib.nullcontext()
    setter = getattr(model, "set_requires_gradient_sync", None)
    if callable(setter):
        setter(last)
    return contextlib.nullcontext()


def _optimizer(model: nn.Module, st: Steps, on_gpu: bool) -> torch.optim.Optimizer:
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    rest = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": st.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    if st.optimizer == "lion":
        from .lion import Lion

        return Lion(groups, lr=st.schedule.peak, betas=st.betas)
    return torch.optim.AdamW(groups, lr=st.schedule.peak, betas=st.betas, eps=st.eps, fused=True if on_gpu else None)


def _compile_wanted(on_gpu: bool, environ: Mapping[str, str]) -> bool:
    """torch.compile the blocks and the loss: on a GPU unless KILN_TRAIN_COMPILE=0; on the CPU only when it is 1
    (compiling there takes longer than the tests' whole runs)."""
    value = environ.get("KILN_TRAIN_COMPILE", "")
    if value not in ("", "0", "1"):
        raise StageConfigError(f"KILN_TRAIN_COMPILE must be 0 or 1, not {value!r}")
    return value == "1" or (value == "" and on_gpu)


def _probe_micro_batch(cfg: ModelConfig, st: Steps, world: World) -> int:
    """`micro_batch: auto` on a GPU: the largest candidate whose forward and backward fit, every rank agreeing.

    Each rank probes a whole, uncompiled copy of the model on its own GPU (no collective can hang on one rank
    running out of memory) with the optimizer's state (AdamW: 8 bytes a parameter, divided over the ranks under
    FSDP) held aside, and keeps 10% of the GPU free; eager attention and activations use at least the compiled
    run's memory, and under FSDP the whole copy more than its shard, so the pick errs small. The smallest pick of
    any rank wins (an all-reduce).
    """
    candidates = micro_candidates(st.global_sequences, world.size)
    device = world.device
    total = torch.cuda.get_device_properties(device).total_memory
    model = Transformer(cfg).to(device)
    model.activation_checkpointing = st.activation_checkpointing
    n = model.num_params(exclude_embedding=False)
    shards = world.size if st.strategy == "fsdp" else 1
    held = torch.empty(8 * n // shards, dtype=torch.uint8, device=device)
    amp = autocast_dtype(cfg)
    chosen = 1
    for mb in candidates:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        try:
            tokens = torch.randint(0, cfg.vocab_size, (mb, st.seq_len), device=device)
            targets, weights = loss_targets(tokens, None, ())
            with torch.autocast("cuda", dtype=amp or torch.float32, enabled=amp is not None):
                loss = model(tokens, targets, weights)
            loss.backward()
            torch.cuda.synchronize(device)
            fits = torch.cuda.max_memory_allocated(device) <= 0.9 * total
        except torch.OutOfMemoryError:
            fits = False
        finally:
            model.zero_grad(set_to_none=True)
            tokens = targets = weights = loss = None  # type: ignore[assignment]
        if fits:
            chosen = mb
            break
    del model, held
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    if world.distributed:
        t = torch.tensor([chosen], dtype=torch.int64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        chosen = int(t.item())
    return chosen


def _keep_tokenizer(tok_dir: Path, ckpt_dir: Path) -> None:
    """The tokenizer's files at <checkpoints>/tokenizer/, so that a checkpoint alone is enough to export it
    (`kiln export --checkpoint`); written once, through a temporary folder and a rename."""
    target = ckpt_dir / "tokenizer"
    if (target / "tokenizer.json").is_file() and file_digest(target / "tokenizer.json") == file_digest(
        tok_dir / "tokenizer.json"
    ):
        return
    import shutil

    ckpt_dir.mkdir(parents=True, exist_ok=True)
    tmp = ckpt_dir / "tokenizer.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for f in sorted(tok_dir.iterdir()):
        if f.is_file() and (f.suffix == ".json" or f.name in ("tokenizer.model", "merges.txt", "vocab.json")):
            shutil.copyfile(f, tmp / f.name)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def _peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in _PEAK_FLOPS if key in name), None)


def _peak_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def _tokenizer_digest(folder: Path) -> str:
    """The tokenizer's digest as the pack stage records it: the sha256 of its tokenizer.json."""
    tj = folder / "tokenizer.json"
    if not tj.is_file():
        raise StageConfigError(f"no tokenizer.json in {folder} (the config's tokenizer)")
    return file_digest(tj)


# --- signals -------------------------------------------------------------------------------------------------------


@dataclass
class _Stop:
    signal: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signum


def _hang_until_signal(stop: _Stop) -> None:
    _say("KILN_TRAIN_HANG_AFTER_STEP: not making progress until a signal")
    while stop.signal is None:
        time.sleep(0.02)


# --- the run -------------------------------------------------------------------------------------------------------


@dataclass
class _Trainer:
    """What resuming must put back besides the tensors: the loss's running mean (for spike warnings)."""

    loss_mean: float | None = None
    last_loss: float | None = None
    warnings: list[str] = field(default_factory=list)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


def run(config_file: str, env: Mapping[str, str] | None = None) -> int:
    """The stage on its mounted config; the exit code (raises StageConfigError and Diverged for exit 2)."""
    environ = dict(os.environ if env is None else env)
    config: TrainConfig = read_stage_config("train", config_file)
    data_dir = Path(storage_path(config.data, _WHO, environ))
    tok_dir = Path(storage_path(config.tokenizer, _WHO, environ))
    ckpt_dir = Path(storage_path(config.checkpoints, _WHO, environ))
    try:
        ds = PackedDataset(data_dir)
    except (FileNotFoundError, ValueError) as e:
        raise StageConfigError(f"cannot read the packed data at {config.data}: {e}") from e
    cfg = ModelConfig.of(config.model)
    if ds.seq_len > cfg.max_seq_len:
        raise StageConfigError(f"the packed sequences ({ds.seq_len} tokens) exceed model.max_seq_len {cfg.max_seq_len}")
    if ds.objective != config.objective_type:
        raise StageConfigError(f"the packed data is for {ds.objective}, the spec trains {config.objective_type}")
    vocab = int(ds.manifests[0]["tokenizer"]["vocab_size"])
    if vocab > cfg.vocab_size:
        raise StageConfigError(f"the tokenizer has {vocab} tokens, more than model.vocab_size {cfg.vocab_size}")

    packed_with = ds.manifests[0]["tokenizer"]["digest"]
    tok_digest = _tokenizer_digest(tok_dir)
    if tok_digest != packed_with:
        raise StageConfigError(
            f"the packed data at {config.data} was made with another tokenizer ({packed_with}) than the one at "
            f"{config.tokenizer} ({tok_digest}); the exported model would decode wrongly"
        )

    world = _init_world()
    try:
        return _train(config, cfg, ds, tok_dir, ckpt_dir, world, environ)
    finally:
        if world.distributed and dist.is_initialized():
            dist.destroy_process_group()


def _train(
    config: TrainConfig,
    cfg: ModelConfig,
    ds: PackedDataset,
    tok_dir: Path,
    ckpt_dir: Path,
    world: World,
    environ: Mapping[str, str],
) -> int:
    st = plan_steps(config.training, ds.seq_len, world.size)
    on_gpu = world.device.type == "cuda"
    lead = world.rank == 0
    if not on_gpu:
        torch.use_deterministic_algorithms(True)
    torch.manual_seed(st.seed)
    np.random.seed(st.seed % 2**32)
    import random

    random.seed(st.seed)

    if config.training["micro_batch"] == "auto" and on_gpu:
        probed = _probe_micro_batch(cfg, st, world)
        st = plan_steps(config.training, ds.seq_len, world.size, micro_batch=probed)
        if lead:
            _say(f"micro_batch auto: {st.micro_batch} sequences, gradient accumulation {st.accumulation}")
    compiled = _compile_wanted(on_gpu, environ)

    # Built on the meta device (no memory), sharded (FSDP2) before it is materialised, then initialised in place:
    # `init_weights` gives each rank its shard of the same full tensors, the same on any device and world size.
    with torch.device("meta"):
        bare = Transformer(cfg)
    bare.activation_checkpointing = st.activation_checkpointing
    if compiled:
        bare.compile_blocks()
    if st.strategy == "fsdp" and world.distributed:
        model = _wrap(bare, st, world)
        bare.to_empty(device=world.device)
        bare.init_weights(st.seed)
    else:
        bare.to_empty(device=world.device)
        bare.init_weights(st.seed)
        model = _wrap(bare, st, world)
    opt = _optimizer(model, st, on_gpu)
    batches = Batches(ds, world.rank, st)
    amp_dtype = autocast_dtype(cfg) if on_gpu else None  # fp32 on the CPU
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    trainer = _Trainer()
    if lead:
        _keep_tokenizer(tok_dir, ckpt_dir)

    # Resume.
    removed = ckpt.clean_torn(ckpt_dir)
    if removed:
        _say(f"removed torn checkpoint(s) {', '.join(removed)}")
    if world.distributed:
        dist.barrier()
    start = 0
    resumed_from: str | None = None
    autoresume = bool(config.training.get("autoresume", True))
    pointer = ckpt.latest_pointer(ckpt_dir)
    if pointer is not None and not (config.envelope.resume or autoresume):
        raise StageConfigError(
            f"{config.checkpoints} already holds checkpoints ({pointer['path']}) and autoresume is off: "
            "resume (resume: true), or train into another checkpoints folder"
        )
    if pointer is not None:
        restored = ckpt.restore(ckpt_dir, model, opt)
        if restored is not None:
            meta, rng = restored
            if meta["model_config"] != cfg.to_json():
                raise StageConfigError(
                    f"the checkpoint {pointer['path']} is of another model ({meta['model_config']}); "
                    "train into another checkpoints folder"
                )
            start = int(meta["step"])
            trainer.loss_mean = meta["trainer"].get("loss_mean")
            trainer.last_loss = meta["trainer"].get("last_loss")
            trainer.warnings = list(meta["trainer"].get("warnings", []))
            if scaler is not None and meta.get("grad_scaler"):
                scaler.load_state_dict(meta["grad_scaler"])
            if rng is not None and int(meta["world_size"]) == world.size:
                ckpt.restore_rng(rng)
            else:
                torch.manual_seed(st.seed + 1_000_003 * start + world.rank)
            resumed_from = str(pointer["path"])
            if lead:
                _say(f"resumed from {resumed_from} (step {start}, written at world size {meta['world_size']})")
    elif config.envelope.resume and lead:
        _say(f"resume asked, but {config.checkpoints} holds no committed checkpoint: starting at step 0")

    epochs = math.ceil(st.steps / batches.steps_per_epoch)
    if epochs > 1:
        repeat = (
            f"the packed data holds {batches.steps_per_epoch} steps of {st.global_sequences} sequences: "
            f"{st.steps} steps read it {epochs} times"
        )
        if repeat not in trainer.warnings:
            trainer.warnings.append(repeat)
        if lead and start == 0:
            _say(f"warning: {repeat}")

    stop = _Stop()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    inject_nan = _env_int("KILN_TRAIN_INJECT_NAN_AT_STEP")
    hang_after = _env_int("KILN_TRAIN_HANG_AFTER_STEP")
    log_every = _env_int("KILN_TRAIN_LOG_INTERVAL") or max(1, st.steps // 100)
    flops = flops_per_token(cfg, bare.num_params(exclude_embedding=True))
    peak = _peak_flops(world.device)
    total_tokens = st.steps * st.tokens_per_step
    tok_digest = _tokenizer_digest(tok_dir)  # the packed data's (checked in `run`)

    def meta_of(step: int) -> dict[str, Any]:
        return {
            "tokens": step * st.tokens_per_step,
            "data": {
                "next_step": step,
                "epoch": step // batches.steps_per_epoch,
                "next_sequence": (step % batches.steps_per_epoch) * st.global_sequences,
                "sequences": len(ds),
                "packed": config.data,
                "packed_tokenizer_digest": ds.manifests[0]["tokenizer"]["digest"],
            },
            "model_config": cfg.to_json(),
            # The tokenizer's files are also kept at <checkpoints>/tokenizer/ (`copy`): the checkpoint alone exports.
            "tokenizer": {
                "uri": config.tokenizer,
                "path": os.fspath(tok_dir),
                "digest": tok_digest,
                "copy": "tokenizer",
            },
            "objective": config.objective_type,
            "schedule": {"lr": lr_at(st.schedule, max(0, step - 1)), "warmup_steps": st.schedule.warmup_steps},
            "global_batch": {"sequences": st.global_sequences, "seq_len": st.seq_len},
            "micro_batch": st.micro_batch,
            "grad_scaler": scaler.state_dict() if scaler is not None else None,
            "trainer": {
                "loss_mean": trainer.loss_mean,
                "last_loss": trainer.last_loss,
                "warnings": trainer.warnings[-5:],
            },
        }

    last_info: ckpt.CheckpointInfo | None = pointer
    # A retry of a run that had finished (its last checkpoint is the last step) reports that checkpoint's loss.
    loss_value = trainer.last_loss if trainer.last_loss is not None else float("nan")
    started = time.perf_counter()
    window_t, window_tokens = started, 0
    done_tokens = start * st.tokens_per_step
    model.train()
    step = start
    for step in range(start, st.steps):
        lr = lr_at(st.schedule, step)
        for group in opt.param_groups:
            group["lr"] = lr
        micro = list(batches.step(step))
        total_targets = _all_sum([sum(n for _, _, n in micro)], world)[0]
        denom = max(total_targets, 1.0)
        local_sum = torch.zeros((), dtype=torch.float64, device=world.device)
        for i, (tokens_np, mask_np, _) in enumerate(micro):
            tokens = torch.from_numpy(tokens_np).to(world.device, non_blocking=True)
            mask = None if mask_np is None else torch.from_numpy(mask_np).to(world.device)
            targets, weights = loss_targets(tokens, mask, batches.ignore)
            with _no_sync(model, i == len(micro) - 1):
                with torch.autocast(world.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    # The model's forward sums the loss itself (in its compiled region when compiled).
                    loss_sum = model(tokens, targets, weights)
                if inject_nan == step + 1:
                    loss_sum = loss_sum * float("nan")
                # The global batch's token mean: DDP averages the ranks' gradients, hence x world.
                scaled = loss_sum * (world.size / denom)
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
            local_sum += loss_sum.detach().double()
        loss_value = _all_sum([float(local_sum)], world)[0] / denom
        if not math.isfinite(loss_value):
            raise Diverged(
                f"the loss is {loss_value} at step {step + 1} of {st.steps} (lr {lr:.3g}); the run cannot go on. "
                "Try a lower learning rate (training.optimizer.lr), fp32 precision (model.precision), gradient "
                "clipping (training.gradient_clipping), or a longer warmup; the last checkpoint is "
                f"{last_info['path'] if last_info else 'none'}"
            )
        if scaler is not None:
            scaler.unscale_(opt)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), st.clip or float("inf")))
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)

        if trainer.loss_mean is not None and step >= 10 and loss_value > 3 * trainer.loss_mean:
            warning = (
                f"loss spike at step {step + 1}: {loss_value:.4g}, over 3x the running mean {trainer.loss_mean:.4g}"
            )
            trainer.warnings.append(warning)
            if lead:
                _say(f"warning: {warning}")
        trainer.loss_mean = loss_value if trainer.loss_mean is None else 0.9 * trainer.loss_mean + 0.1 * loss_value
        trainer.last_loss = loss_value

        done = step + 1
        done_tokens = done * st.tokens_per_step
        window_tokens += st.tokens_per_step
        if lead and (done % log_every == 0 or done == st.steps):
            now = time.perf_counter()
            tps = window_tokens / max(now - window_t, 1e-9)
            line: dict[str, Any] = {
                "kind": PROGRESS_KIND,
                "progress": {
                    "done": done_tokens,
                    "total": total_tokens,
                    "unit": "tokens",
                    "updatedAt": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                },
                "step": done,
                "steps": st.steps,
                "loss": loss_value,
                "lr": lr,
                "grad_norm": grad_norm,
                "tokens_per_s": round(tps, 1),
                "eta_s": round((st.steps - done) * st.tokens_per_step / max(tps, 1e-9), 1),
            }
            if peak is not None:
                line["mfu"] = round(flops * tps / (peak * world.size), 4)
            print(json.dumps(line), flush=True)
            window_t, window_tokens = now, 0

        before = (done - 1) * st.tokens_per_step // st.checkpoint_interval
        due = done_tokens // st.checkpoint_interval > before or done == st.steps
        if due:
            last_info = ckpt.save(ckpt_dir, done, model, opt, meta_of(done), st.keep_last)
            if lead:
                _say(f"checkpoint {last_info['path']} ({last_info['digest']})")
        if hang_after == done:
            _hang_until_signal(stop)
        stopping = _all_sum([1.0 if stop.signal is not None else 0.0], world)[0] > 0
        if stopping and done < st.steps:
            if not due:
                last_info = ckpt.save(ckpt_dir, done, model, opt, meta_of(done), st.keep_last)
            if lead:
                assert last_info is not None
                _say(f"stopped by a signal after step {done}: checkpoint {last_info['path']}; exit {RETRYABLE_EXIT}")
                write_summary(
                    {
                        "metrics": {"steps": done, "tokens": done_tokens, "loss": loss_value},
                        "artifacts": [_artifact(config, last_info)],
                        "resumedFrom": resumed_from,
                        "warnings": [
                            f"stopped by a signal after step {done}; the retry resumes from {last_info['path']}"
                        ],
                    },
                    environ,
                )
            return RETRYABLE_EXIT

    seconds = time.perf_counter() - started
    trained = (st.steps - start) * st.tokens_per_step
    if last_info is None or int(last_info["step"]) != st.steps:
        last_info = ckpt.save(ckpt_dir, st.steps, model, opt, meta_of(st.steps), st.keep_last)
    memory = _all_sum([float(_peak_memory(world.device))], world)
    if lead:
        metrics: dict[str, float] = {
            "loss": loss_value,
            "steps": st.steps,
            "steps_this_attempt": st.steps - start,
            "tokens": done_tokens,
            "tokens_per_s": round(trained / max(seconds, 1e-9), 1),
            "peak_memory_bytes": memory[0] / world.size,
            "world_size": world.size,
            "gradient_accumulation": st.accumulation,
            "micro_batch": st.micro_batch,
        }
        if peak is not None:  # this attempt's MFU (PaLM's 6N + 12·L·d·T FLOPs a token), as the progress lines'
            metrics["mfu"] = round(flops * metrics["tokens_per_s"] / (peak * world.size), 4)
        artifact = _artifact(config, last_info)
        summary: dict[str, Any] = {"metrics": metrics, "artifacts": [artifact], "resumedFrom": resumed_from}
        if trainer.warnings:
            summary["warnings"] = [w[:300] for w in trainer.warnings[-5:]]
        env_ = config.envelope
        if env_.manifest and env_.run_id and env_.stage:
            where = Path(storage_path(env_.manifest, _WHO, environ))
            where.parent.mkdir(parents=True, exist_ok=True)
            manifest = {
                "kind": "kiln.stage-manifest/v1",
                "runId": env_.run_id,
                "stage": env_.stage,
                "attempt": env_.attempt,
                "artifacts": [artifact],
                "counts": {"steps": st.steps, "tokens": done_tokens, "sequences": st.steps * st.global_sequences},
                "metrics": metrics,
                "warnings": trainer.warnings,
            }
            where.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        write_summary(summary, environ)
        _say(
            f"done: {st.steps} steps, {done_tokens} tokens, loss {loss_value:.4f}, "
            f"{metrics['tokens_per_s']} tokens/s; checkpoint {last_info['path']}"
        )
    return 0


def _artifact(config: TrainConfig, info: ckpt.CheckpointInfo) -> dict[str, Any]:
    return {
        "name": "checkpoint",
        "uri": f"{config.checkpoints.rstrip('/')}/{info['path']}/",
        "digest": info["digest"],
        "bytes": info["bytes"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m kiln_trainer.train --config FILE`: the train stage."""
    parser = argparse.ArgumentParser(prog="python -m kiln_trainer.train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="the stage's mounted config (train.schema.json)")
    args = parser.parse_args(argv)

    def terminal(message: str) -> int:
        _say(message)
        if int(os.environ.get("RANK", "0")) == 0:
            write_summary({"error": message})
        return TERMINAL_EXIT

    try:
        code = run(args.config)
    except (StageConfigError, Diverged) as e:
        code = terminal(str(e))
    record_exit(code)  # for kiln_trainer.launch: torchrun itself would say 1 for 2 and 3
    return code


if __name__ == "__main__":
    sys.exit(main())
