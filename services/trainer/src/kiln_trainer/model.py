"""kiln's decoder-only transformer: two architectures that export exactly to Hugging Face with no custom code.

`position_encoding` picks the architecture (see services/trainer/docs/model.md):

- `rope`: Llama (`LlamaForCausalLM`). Pre-norm RMSNorm (eps 1e-5, computed in float32 as HF does), attention with
  rotary embeddings as HF Llama computes them (rotate-half, theta 10000, head_dim-wide), SwiGLU MLP
  `down(silu(gate(x)) * up(x))` with `intermediate_size = 256 * ceil(int(2/3 * mlp_ratio * d_model) / 256)`
  (Llama's rule, `multiple_of` 256: about the parameter count of a 4·d GELU MLP), no biases, the output head tied
  to the embedding (the spec's parameter count assumes tied embeddings).
- `alibi`: MPT as replit-code-v1-3b (`MptForCausalLM`). Pre-norm LayerNorm without bias (eps 1e-5), one fused
  `Wqkv` projection, ALiBi (MPT's slopes, `alibi_bias_max` 8), a GELU (exact, erf) MLP of `mlp_ratio * d_model`
  (Hugging Face's MPT hard-codes 4, so alibi requires `mlp_ratio` 4), no biases, tied embeddings.

Attention is `F.scaled_dot_product_attention(is_causal=True)` for RoPE. For ALiBi on CUDA it is FlexAttention
(a causal block mask and an ALiBi `score_mod`, compiled); elsewhere an SDPA with an explicit additive ALiBi + causal
float mask (the same math). The model keeps its weights in float32; mixed precision (bf16/fp16 autocast, the
config's `precision`) is the train loop's business. `Transformer.forward` returns float32 logits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ALIBI_BIAS_MAX",
    "FFN_MULTIPLE_OF",
    "NORM_EPS",
    "ROPE_THETA",
    "Block",
    "ModelConfig",
    "Transformer",
    "alibi_slopes",
    "autocast_dtype",
    "count_targets",
    "flops_per_token",
    "lm_loss",
    "loss_targets",
    "target_weights",
]

PositionEncoding = Literal["rope", "alibi"]
Precision = Literal["bf16", "fp16", "fp32"]

NORM_EPS = 1e-5
"""Epsilon of every norm (RMSNorm for rope, LayerNorm for alibi); exported as `rms_norm_eps` / `layer_norm_epsilon`."""
ROPE_THETA = 10000.0
"""RoPE's base (HF Llama's default `rope_theta`)."""
ALIBI_BIAS_MAX = 8
"""MPT's `alibi_bias_max`: the slopes are 2^(-alibi_bias_max * i / n) for i = 1..n (n the heads, rounded up to 2^k)."""
FFN_MULTIPLE_OF = 256
"""SwiGLU's intermediate size is rounded up to a multiple of this (Llama's `multiple_of`; a multiple of 64 such as
350m's 2752 runs its GEMMs measurably slower than 2816 on an H200: docs/model.md)."""
INIT_STD = 0.02
"""Standard deviation of the weights' normal init; the residual output projections get INIT_STD / sqrt(2 n_layers)."""
CONFIG_KIND = "kiln.model-config/v1"


@dataclass(frozen=True)
class ModelConfig:
    """The model's shape, from the resolved spec's model section (the train stage config's `model`)."""

    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    mlp_ratio: float = 4.0
    max_seq_len: int = 2048
    position_encoding: PositionEncoding = "alibi"
    precision: Precision = "bf16"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "max_seq_len"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"model.{name} must be at least 1, not {getattr(self, name)}")
        if self.d_model % self.n_heads:
            raise ValueError(f"model.d_model ({self.d_model}) must be a multiple of model.n_heads ({self.n_heads})")
        if self.position_encoding not in ("rope", "alibi"):
            raise ValueError(f"model.position_encoding must be rope or alibi, not {self.position_encoding!r}")
        if self.precision not in ("bf16", "fp16", "fp32"):
            raise ValueError(f"model.precision must be bf16, fp16 or fp32, not {self.precision!r}")
        if self.position_encoding == "rope" and self.head_dim % 2:
            raise ValueError(f"rope needs an even head dimension; d_model / n_heads is {self.head_dim}")
        if self.position_encoding == "alibi" and self.mlp_ratio != 4:
            raise ValueError(
                f"alibi (MPT) needs mlp_ratio 4: Hugging Face's MptForCausalLM has a 4 * d_model MLP, "
                f"so a model with mlp_ratio {self.mlp_ratio} would not export exactly"
            )

    # --- derived -----------------------------------------------------------------------------------------------

    @property
    def head_dim(self) -> int:
        """d_model / n_heads."""
        return self.d_model // self.n_heads

    @property
    def architecture(self) -> Literal["llama", "mpt"]:
        """`llama` for rope, `mpt` for alibi: the Hugging Face architecture the model exports to."""
        return "llama" if self.position_encoding == "rope" else "mpt"

    @property
    def intermediate_size(self) -> int:
        """The MLP's hidden width: SwiGLU's 256·ceil(int(2/3·ratio·d)/256) for rope, ratio·d (GELU) for alibi."""
        if self.position_encoding == "alibi":
            return int(self.mlp_ratio * self.d_model)
        hidden = int(2 * self.mlp_ratio * self.d_model / 3)
        return FFN_MULTIPLE_OF * ((hidden + FFN_MULTIPLE_OF - 1) // FFN_MULTIPLE_OF)

    @property
    def norm_eps(self) -> float:
        """Epsilon of the norms."""
        return NORM_EPS

    @property
    def rope_theta(self) -> float:
        """RoPE's base (rope only)."""
        return ROPE_THETA

    @property
    def alibi_bias_max(self) -> int:
        """MPT's alibi_bias_max (alibi only)."""
        return ALIBI_BIAS_MAX

    @property
    def tie_embeddings(self) -> bool:
        """The output head is the embedding matrix (both architectures)."""
        return True

    # --- (de)serialising ---------------------------------------------------------------------------------------

    @staticmethod
    def of(section: Mapping[str, Any]) -> ModelConfig:
        """From the config's model section (extra keys such as `parameters` are ignored; defaults as the spec's)."""
        return ModelConfig(
            vocab_size=int(section["vocab_size"]),
            d_model=int(section["d_model"]),
            n_layers=int(section["n_layers"]),
            n_heads=int(section["n_heads"]),
            mlp_ratio=float(section.get("mlp_ratio", 4.0)),
            max_seq_len=int(section.get("max_seq_len", 2048)),
            position_encoding=cast(PositionEncoding, section.get("position_encoding", "alibi")),
            precision=cast(Precision, section.get("precision", "bf16")),
        )

    def to_json(self) -> dict[str, Any]:
        """The fields, plus the derived architecture (informational: `from_json` recomputes it)."""
        return {
            "kind": CONFIG_KIND,
            **asdict(self),
            "derived": {
                "architecture": self.architecture,
                "head_dim": self.head_dim,
                "intermediate_size": self.intermediate_size,
                "norm_eps": self.norm_eps,
                "rope_theta": self.rope_theta,
                "alibi_bias_max": self.alibi_bias_max,
                "tie_embeddings": self.tie_embeddings,
            },
        }

    @staticmethod
    def from_json(value: Mapping[str, Any]) -> ModelConfig:
        """From `to_json`'s output (or a bare model section)."""
        kind = value.get("kind")
        if kind is not None and kind != CONFIG_KIND:
            raise ValueError(f"not a {CONFIG_KIND} object (kind {kind!r})")
        return ModelConfig.of(value)


def autocast_dtype(cfg: ModelConfig) -> torch.dtype | None:
    """The autocast dtype of the config's precision: bfloat16, float16, or None (fp32: no autocast)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[cfg.precision]


def flops_per_token(cfg: ModelConfig, n_params_without_embedding: int) -> float:
    """Training FLOPs per token, 6N + 12·L·d·T with T = max_seq_len (PaLM appendix B, as anchor_mfu.py)."""
    return 6.0 * n_params_without_embedding + 12.0 * cfg.n_layers * cfg.d_model * cfg.max_seq_len


# --- position encodings --------------------------------------------------------------------------------------------


def alibi_slopes(n_heads: int, alibi_bias_max: int = ALIBI_BIAS_MAX) -> Tensor:
    """ALiBi's per-head slopes exactly as MPT (and HF's `build_mpt_alibi_tensor`) computes them, float32 [n_heads]."""
    n = 2 ** math.ceil(math.log2(n_heads))
    base = torch.arange(1, n + 1, dtype=torch.int64).float() * (alibi_bias_max / n)
    slopes = 1.0 / torch.pow(2, base)
    if n != n_heads:
        slopes = torch.cat([slopes[1::2], slopes[::2]])[:n_heads]
    return slopes


def rope_cos_sin(head_dim: int, seq_len: int, theta: float = ROPE_THETA) -> tuple[Tensor, Tensor]:
    """cos and sin [seq_len, head_dim] (float32) as HF Llama's default rotary embedding computes them."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    positions = torch.arange(seq_len, dtype=torch.int64).float()
    freqs = torch.outer(positions, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def _rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x [B, H, T, hd] rotated; cos and sin [T, hd], cast to x's dtype as HF does."""
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + _rotate_half(x) * sin


def alibi_causal_mask(slopes: Tensor, seq_len: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """The additive mask [H, T, T]: slope_h · (k - q) where k ≤ q, -inf above the diagonal."""
    pos = torch.arange(seq_len, device=slopes.device)
    rel = (pos[None, :] - pos[:, None]).to(torch.float32)  # k - q
    bias = slopes.to(torch.float32)[:, None, None] * rel[None]
    bias = bias.masked_fill((rel > 0)[None], float("-inf"))
    return bias.to(dtype)


_flex_compiled: Callable[..., Any] | None = None


def _flex(device: torch.device) -> Callable[..., Any]:
    """FlexAttention: compiled on CUDA (its fused kernel); eager elsewhere (its reference math, for tests)."""
    from torch.nn.attention.flex_attention import flex_attention

    if device.type != "cuda":
        return flex_attention
    global _flex_compiled
    if _flex_compiled is None:
        _flex_compiled = torch.compile(flex_attention, dynamic=False)
    return _flex_compiled


@torch.compiler.disable  # type: ignore[untyped-decorator]
def _causal_block_mask(seq_len: int, device: torch.device) -> Any:
    from torch.nn.attention.flex_attention import create_block_mask

    key = (seq_len, str(device))
    found = _BLOCK_MASKS.get(key)
    if found is None:

        def causal(b: Tensor, h: Tensor, q: Tensor, kv: Tensor) -> Tensor:
            return q >= kv

        found = create_block_mask(causal, None, None, seq_len, seq_len, device=device)
        _BLOCK_MASKS[key] = found
    return found


_BLOCK_MASKS: dict[tuple[int, str], Any] = {}


# --- modules -------------------------------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    """HF Llama's RMSNorm: normalised in float32, cast back to the input's dtype, then scaled."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


class Attention(nn.Module):
    """Multi-head causal self-attention with a fused qkv projection; RoPE or ALiBi."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.rope = cfg.position_encoding == "rope"
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=False)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=False)

    def forward(self, x: Tensor, pos: Mapping[str, Any]) -> Tensor:
        b, t, d = x.shape
        q, k, v = (y.view(b, t, self.n_heads, self.head_dim).transpose(1, 2) for y in self.qkv(x).chunk(3, dim=-1))
        if self.rope:
            cos, sin = pos["cos"][:t], pos["sin"][:t]
            q, k = _apply_rope(q, cos, sin), _apply_rope(k, cos, sin)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif "block_mask" in pos:
            y = _flex(q.device)(q, k, v, score_mod=pos["score_mod"], block_mask=pos["block_mask"])
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=pos["mask"].to(q.dtype)[None])
        return cast(Tensor, self.out(y.transpose(1, 2).reshape(b, t, d)))


class MLP(nn.Module):
    """SwiGLU (rope: `down(silu(gate(x)) * up(x))`, gate and up fused) or GELU (alibi: `down(gelu(up(x)))`)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.swiglu = cfg.position_encoding == "rope"
        ff = cfg.intermediate_size
        self.up = nn.Linear(cfg.d_model, 2 * ff if self.swiglu else ff, bias=False)
        self.down = nn.Linear(ff, cfg.d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h = self.up(x)
        if self.swiglu:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        else:
            h = F.gelu(h)
        return cast(Tensor, self.down(h))


class Block(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        norm: Callable[[], nn.Module]
        if cfg.position_encoding == "rope":
            norm = lambda: RMSNorm(cfg.d_model, cfg.norm_eps)  # noqa: E731
        else:
            norm = lambda: nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps, bias=False)  # noqa: E731
        self.attn_norm, self.attn = norm(), Attention(cfg)
        self.mlp_norm, self.mlp = norm(), MLP(cfg)

    def forward(self, x: Tensor, pos: Mapping[str, Any]) -> Tensor:
        x = x + self.attn(self.attn_norm(x), pos)
        return cast(Tensor, x + self.mlp(self.mlp_norm(x)))


class Transformer(nn.Module):
    """The decoder: embedding, `layers` (an nn.ModuleList of `Block`, one FSDP unit each), final norm, tied head.

    `forward(idx [B, T]) -> logits [B, T, vocab_size]`, float32 (the head runs in the compute dtype under
    autocast, then is upcast). T may be at most `max_seq_len`.
    """

    def __init__(self, cfg: ModelConfig, alibi_impl: Literal["auto", "flex", "mask"] = "auto") -> None:
        super().__init__()
        self.cfg = cfg
        self.alibi_impl = alibi_impl
        self.activation_checkpointing = False
        """Recompute each block's activations in the backward pass (the spec's parallelism.activation_checkpointing)."""
        # ALiBi attention: "auto" is FlexAttention on CUDA, the explicit mask elsewhere; "flex" or "mask" forces one.
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm: nn.Module = (
            RMSNorm(cfg.d_model, cfg.norm_eps)
            if cfg.position_encoding == "rope"
            else nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps, bias=False)
        )
        # Position tables: not parameters, not in the state dict; rebuilt by `init_weights` (after `to_empty`).
        self.register_buffer("rope_cos", torch.empty(0), persistent=False)
        self.register_buffer("rope_sin", torch.empty(0), persistent=False)
        self.register_buffer("slopes", torch.empty(0), persistent=False)
        self._score_mod: Callable[..., Tensor] | None = None
        self._init_buffers()
        self.init_weights(0)

    def _init_buffers(self) -> None:
        device = self.embed.weight.device
        cfg = self.cfg
        if device.type == "meta":
            return
        with torch.no_grad():
            if cfg.position_encoding == "rope":
                cos, sin = rope_cos_sin(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
                self.rope_cos, self.rope_sin = cos.to(device), sin.to(device)
            else:
                slopes = alibi_slopes(cfg.n_heads, cfg.alibi_bias_max).to(device)
                self.slopes = slopes

                def alibi(score: Tensor, b: Tensor, h: Tensor, q: Tensor, kv: Tensor) -> Tensor:
                    return score + slopes[h] * (kv - q)

                # One function object per model, so the compiled FlexAttention is not recompiled each call.
                self._score_mod = alibi

    def _apply(self, fn: Any, recurse: bool = True) -> Transformer:
        # `.to(device)` and friends: rebuild the position tables where the model now is (never cast to half).
        super()._apply(fn, recurse)  # type: ignore[no-untyped-call]
        self._init_buffers()
        return self

    @torch.no_grad()
    def init_weights(self, seed: int) -> None:
        """Deterministic init from `seed`, the same on any device and whether or not the parameters are sharded.

        Every matrix ~ N(0, 0.02) (the residual output projections `attn.out` and `mlp.down` N(0, 0.02/sqrt(2L))),
        norm weights 1. Each tensor is drawn on the CPU from its own generator (seed, parameter index), then copied
        (a DTensor parameter gets its shard of the full tensor).
        """
        self._init_buffers()
        resid_std = INIT_STD / math.sqrt(2 * self.cfg.n_layers)
        for i, (name, p) in enumerate(self.named_parameters()):
            if name.endswith("norm.weight") or name.endswith("_norm.weight"):
                full = torch.ones(p.shape)
            else:
                g = torch.Generator().manual_seed(seed * 1_000_003 + i)
                std = resid_std if name.endswith(("attn.out.weight", "mlp.down.weight")) else INIT_STD
                full = torch.empty(p.shape).normal_(0.0, std, generator=g)
            _copy_full(p, full)

    def forward(self, idx: Tensor, targets: Tensor | None = None, weights: Tensor | None = None) -> Tensor:
        """The logits [B, T, V] (float32); with `targets` and `weights` (from `loss_targets`) instead the summed
        cross entropy of the counted targets, a float32 scalar, the same number as `lm_loss(..., "sum")` of the
        logits, computed without upcasting the whole logits tensor."""
        t = idx.shape[1]
        if t > self.cfg.max_seq_len:
            raise ValueError(f"sequence of {t} tokens is longer than max_seq_len {self.cfg.max_seq_len}")
        pos: dict[str, Any]
        if self.cfg.position_encoding == "rope":
            pos = {"cos": self.rope_cos, "sin": self.rope_sin}
        elif self.alibi_impl == "flex" or (self.alibi_impl == "auto" and idx.device.type == "cuda"):
            pos = {"score_mod": self._score_mod, "block_mask": _causal_block_mask(t, idx.device)}
        else:
            pos = {"mask": alibi_causal_mask(self.slopes, t)}
        x = self.embed(idx)
        for layer in self.layers:
            if self.activation_checkpointing and self.training and torch.is_grad_enabled():
                # Recomputed in the backward pass: only the block's input is kept (the non-reentrant variant,
                # which works under autocast, torch.compile'd blocks, DDP and FSDP2).
                from torch.utils.checkpoint import checkpoint

                x = cast(Tensor, checkpoint(layer, x, pos, use_reentrant=False))
            else:
                x = layer(x, pos)
        if targets is not None:
            if weights is None:
                raise ValueError("forward: give the targets' weights with the targets (see `loss_targets`)")
            return self._head_loss(x, targets, weights)
        x = self.norm(x)
        return F.linear(x, self.embed.weight).float()

    def _head_loss(self, x: Tensor, targets: Tensor, weights: Tensor) -> Tensor:
        """The final norm, the tied head and the summed cross entropy; `compile` compiles it with the blocks, so
        the [B, T, V] logits stay in the compute dtype and the float32 upcast happens inside the fused loss."""
        logits = F.linear(self.norm(x), self.embed.weight)
        b, t, v = logits.shape
        per = F.cross_entropy(logits.reshape(b * t, v).float(), targets.reshape(-1), reduction="none")
        return (per * weights.reshape(-1)).sum()

    def compile_blocks(self, **options: Any) -> None:
        """torch.compile each block and the head with its loss, in place (`nn.Module.compile`: the state dict's
        keys do not change, so checkpoints and export are the same compiled or not). Per block, as torchtitan
        does: the same compiled code serves DDP, FSDP2 (one unit per block) and activation checkpointing."""
        for layer in self.layers:
            layer.compile(**options)
        self._head_loss = torch.compile(self._head_loss, **options)  # type: ignore[method-assign]

    def num_params(self, exclude_embedding: bool = True) -> int:
        """Parameters (each once: the head is the embedding); without the embedding matrix by default."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.embed.weight.numel() if exclude_embedding else n


def _copy_full(p: Tensor, full: Tensor) -> None:
    try:
        from torch.distributed.tensor import DTensor, distribute_tensor
    except ImportError:  # pragma: no cover - torch without distributed
        p.copy_(full)
        return
    if isinstance(p, DTensor):
        # Every rank drew the same full tensor: each keeps its own shard, with no communication.
        p.copy_(distribute_tensor(full.to(p.device), p.device_mesh, p.placements, src_data_rank=None))
    else:
        p.copy_(full)


# --- the loss ------------------------------------------------------------------------------------------------------


def target_weights(tokens: Tensor, mask: Tensor | None, ignore_ids: Sequence[int]) -> Tensor:
    """[B, T-1] booleans: whether position t's prediction (of tokens[t+1]) counts.

    With a mask (kiln's packed mask, 1 = a training target): mask[t+1] == 1. Without: tokens[t+1] not in ignore_ids.
    """
    if mask is not None:
        return mask[:, 1:] == 1
    targets = tokens[:, 1:]
    if not ignore_ids:
        return torch.ones_like(targets, dtype=torch.bool)
    ignore = torch.tensor(list(ignore_ids), dtype=targets.dtype, device=targets.device)
    return ~torch.isin(targets, ignore)


def count_targets(tokens: Tensor, mask: Tensor | None, ignore_ids: Sequence[int]) -> Tensor:
    """How many targets `lm_loss` counts (an int64 scalar): for weighting micro batches and ranks by tokens."""
    return target_weights(tokens, mask, ignore_ids).sum()


def loss_targets(tokens: Tensor, mask: Tensor | None, ignore_ids: Sequence[int]) -> tuple[Tensor, Tensor]:
    """(targets [B, T] int64, weights [B, T] float32) for `Transformer.forward(tokens, targets, weights)`:
    position t predicts tokens[t+1] with weight 1 where `target_weights` counts it; the last position a dummy 0."""
    counted = F.pad(target_weights(tokens, mask, ignore_ids), (0, 1), value=False)
    return F.pad(tokens[:, 1:], (0, 1), value=0), counted.to(torch.float32)


def lm_loss(
    logits: Tensor,
    tokens: Tensor,
    mask: Tensor | None,
    ignore_ids: Sequence[int],
    reduction: Literal["mean", "sum"] = "mean",
) -> Tensor:
    """Next-token cross entropy (float32): position t predicts tokens[t+1]; counted as `target_weights` says.

    `mean` over the counted targets (0 when there are none); `sum` for the train loop's own token-weighted mean.
    The logits are not sliced (no copy of the [B, T, V] tensor): the last position gets a dummy target, weight 0.
    """
    b, t, v = logits.shape
    counted = F.pad(target_weights(tokens, mask, ignore_ids), (0, 1), value=False)  # [B, T]
    targets = F.pad(tokens[:, 1:], (0, 1), value=0)
    per = F.cross_entropy(logits.reshape(b * t, v).float(), targets.reshape(-1), reduction="none")
    total = (per * counted.reshape(-1).to(per.dtype)).sum()
    if reduction == "sum":
        return total
    return total / counted.sum().clamp(min=1).to(per.dtype)
