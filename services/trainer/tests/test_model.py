"""kiln's Transformer on the CPU in float32: shapes, causality, ALiBi against a reference, the loss, the config."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kiln_trainer.model import (
    ModelConfig,
    Transformer,
    alibi_slopes,
    count_targets,
    flops_per_token,
    lm_loss,
    loss_targets,
)

V = 512


def tiny(pe: str, **kw: object) -> ModelConfig:
    base: dict[str, object] = {
        "vocab_size": V,
        "d_model": 64,
        "n_layers": 2,
        "n_heads": 4,
        "mlp_ratio": 4.0,
        "max_seq_len": 64,
        "position_encoding": pe,
        "precision": "fp32",
    }
    return ModelConfig.of({**base, **kw})


def model(pe: str, seed: int = 0, **kw: object) -> Transformer:
    m = Transformer(tiny(pe, **kw))
    m.init_weights(seed)
    return m.eval()


@pytest.mark.parametrize("pe", ["rope", "alibi"])
def test_shapes_and_dtype(pe: str) -> None:
    m = model(pe)
    idx = torch.randint(0, V, (3, 17))
    logits = m(idx)
    assert logits.shape == (3, 17, V)
    assert logits.dtype == torch.float32
    assert isinstance(m.layers, torch.nn.ModuleList) and len(m.layers) == 2
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("pe", ["rope", "alibi"])
def test_causal(pe: str) -> None:
    m = model(pe)
    g = torch.Generator().manual_seed(3)
    idx = torch.randint(0, V, (2, 32), generator=g)
    base = m(idx)
    for t in (0, 7, 31):
        changed = idx.clone()
        changed[:, t:] = (changed[:, t:] + 1 + torch.randint(0, V - 1, changed[:, t:].shape, generator=g)) % V
        out = m(changed)
        torch.testing.assert_close(out[:, :t], base[:, :t], rtol=0, atol=1e-5)
        assert not torch.allclose(out[:, t], base[:, t], atol=1e-3)


@pytest.mark.parametrize("pe", ["rope", "alibi"])
def test_init_is_deterministic(pe: str) -> None:
    a, b, c = model(pe, 5), model(pe, 5), model(pe, 6)
    for (n, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb), n
        if pa.ndim == 2:
            assert not torch.equal(pa, pc), n
    assert a.embed.weight.std().item() == pytest.approx(0.02, rel=0.1)


def test_alibi_slopes_as_the_paper_for_powers_of_two() -> None:
    # 8 heads: 1/2, 1/4, ..., 1/256 (Press et al.); alibi_bias_max 8.
    torch.testing.assert_close(alibi_slopes(8), torch.tensor([2.0 ** -(i + 1) for i in range(8)]))
    torch.testing.assert_close(alibi_slopes(4), torch.tensor([2.0 ** -(2 * (i + 1)) for i in range(4)]))
    # 6 heads: MPT takes the 8-head slopes' odd then even entries.
    s8 = [2.0 ** -(i + 1) for i in range(8)]
    torch.testing.assert_close(alibi_slopes(6), torch.tensor([s8[1], s8[3], s8[5], s8[7], s8[0], s8[2]]))


def reference_alibi_forward(m: Transformer, idx: torch.Tensor) -> torch.Tensor:
    """The ALiBi (MPT) model written out with loops over heads: softmax(qk/sqrt(d) + slope·(j-i), causal) v."""
    cfg = m.cfg
    h, hd = cfg.n_heads, cfg.head_dim
    slopes = [2.0 ** (-8 * (i + 1) / h) for i in range(h)]  # n_heads a power of two in these tests
    t = idx.shape[1]
    i = torch.arange(t)[:, None]
    j = torch.arange(t)[None, :]
    w: dict[str, torch.Tensor] = {k: v.detach() for k, v in m.state_dict().items()}
    emb = w["embed.weight"]
    x = emb[idx]

    def ln(y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        mu = y.mean(-1, keepdim=True)
        var = ((y - mu) ** 2).mean(-1, keepdim=True)
        return (y - mu) / torch.sqrt(var + 1e-5) * weight

    for n in range(cfg.n_layers):
        p = f"layers.{n}."
        a = ln(x, w[p + "attn_norm.weight"])
        q, k, v = (a @ w[p + "attn.qkv.weight"].T).chunk(3, dim=-1)
        heads = []
        for hh in range(h):
            sl = slice(hh * hd, (hh + 1) * hd)
            s = q[..., sl] @ k[..., sl].transpose(-1, -2) / math.sqrt(hd) + slopes[hh] * (j - i)
            s = s.masked_fill(j > i, float("-inf"))
            heads.append(torch.softmax(s, dim=-1) @ v[..., sl])
        x = x + torch.cat(heads, dim=-1) @ w[p + "attn.out.weight"].T
        f = ln(x, w[p + "mlp_norm.weight"])
        x = x + F.gelu(f @ w[p + "mlp.up.weight"].T) @ w[p + "mlp.down.weight"].T
    return ln(x, w["norm.weight"]) @ emb.T


def test_alibi_cpu_path_equals_a_reference() -> None:
    m = model("alibi", seed=2, n_heads=8)
    idx = torch.randint(0, V, (2, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(m(idx), reference_alibi_forward(m, idx), rtol=1e-4, atol=1e-4)


def test_lm_loss_shift_and_ignore_ids() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 11)
    tokens = torch.randint(1, 11, (2, 6))
    tokens[0, 4:] = 0  # padding
    per = F.cross_entropy(logits[:, :-1].reshape(-1, 11), tokens[:, 1:].reshape(-1), reduction="none").view(2, 5)
    keep = tokens[:, 1:] != 0
    expected = per[keep].mean()
    torch.testing.assert_close(lm_loss(logits, tokens, None, [0]), expected)
    assert int(count_targets(tokens, None, [0])) == int(keep.sum()) == 8
    torch.testing.assert_close(lm_loss(logits, tokens, None, []), per.mean())
    torch.testing.assert_close(lm_loss(logits, tokens, None, [0], reduction="sum"), per[keep].sum())


def test_lm_loss_honours_the_mask() -> None:
    torch.manual_seed(1)
    logits = torch.randn(1, 5, 7)
    tokens = torch.tensor([[1, 2, 3, 4, 5]])
    mask = torch.tensor([[1, 0, 1, 1, 0]], dtype=torch.uint8)  # targets: tokens 3 and 4 (positions 2, 3)
    per = F.cross_entropy(logits[0, :-1], tokens[0, 1:], reduction="none")
    torch.testing.assert_close(lm_loss(logits, tokens, mask, [3]), (per[1] + per[2]) / 2)
    # The mask wins over ignore_ids; a mask with no targets gives 0, not NaN.
    assert float(lm_loss(logits, tokens, torch.zeros_like(mask), [])) == 0.0


def test_lm_loss_gradient_only_from_counted_targets() -> None:
    logits = torch.randn(1, 4, 5, requires_grad=True)
    tokens = torch.tensor([[1, 2, 0, 0]])
    lm_loss(logits, tokens, None, [0]).backward()  # type: ignore[no-untyped-call]
    assert logits.grad is not None
    assert logits.grad[0, 0].abs().sum() > 0
    assert logits.grad[0, 1:].abs().sum() == 0


def test_config_round_trip_and_derived() -> None:
    section = {
        "d_model": 128,
        "n_layers": 2,
        "n_heads": 4,
        "mlp_ratio": 4,
        "vocab_size": 4096,
        "max_seq_len": 256,
        "position_encoding": "rope",
        "precision": "bf16",
        "parameters": 917504,
    }
    cfg = ModelConfig.of(section)
    assert cfg.head_dim == 32
    assert cfg.intermediate_size == 512  # 2/3 * 4 * 128 = 341 -> 512 (Llama's multiple of 256)
    assert ModelConfig(32768, 2048, 24, 16, 4.0, 2048, "rope", "bf16").intermediate_size == 5632  # 5461 -> 5632
    assert ModelConfig(32768, 1024, 24, 16, 4.0, 2048, "rope", "bf16").intermediate_size == 2816  # 2730 -> 2816
    assert ModelConfig.from_json(cfg.to_json()) == cfg
    alibi = ModelConfig.of({**section, "position_encoding": "alibi"})
    assert alibi.intermediate_size == 512 and alibi.architecture == "mpt"
    with pytest.raises(ValueError, match="mlp_ratio 4"):
        ModelConfig.of({**section, "position_encoding": "alibi", "mlp_ratio": 3})
    with pytest.raises(ValueError, match="multiple"):
        ModelConfig.of({**section, "n_heads": 5})


def test_flops_per_token() -> None:
    cfg = tiny("rope")
    m = Transformer(cfg)
    n = m.num_params()
    assert n == m.num_params(exclude_embedding=False) - V * 64
    assert flops_per_token(cfg, n) == 6 * n + 12 * 2 * 64 * 64


def test_parameter_count_matches_the_spec_for_alibi() -> None:
    # libs/spec parameterCount: (4 + 2·mlp_ratio)·d²·L + V·d (tied); plus the norms' weights.
    cfg = tiny("alibi")
    m = Transformer(cfg)
    d, L = 64, 2
    assert m.num_params(exclude_embedding=False) == (4 + 2 * 4) * d * d * L + V * d + (2 * L + 1) * d


def test_too_long_is_an_error() -> None:
    with pytest.raises(ValueError, match="max_seq_len"):
        model("rope")(torch.zeros(1, 65, dtype=torch.long))


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
@pytest.mark.parametrize("n_heads", [8, 6])
def test_alibi_flex_attention_equals_the_mask_path(n_heads: int) -> None:
    # The CUDA path's FlexAttention (its score_mod and causal block mask), run eagerly on the CPU (forward only:
    # FlexAttention has no CPU backward), against the explicit mask.
    cfg = tiny("alibi", n_heads=n_heads, d_model=96, max_seq_len=160)
    flex, mask = Transformer(cfg, alibi_impl="flex"), Transformer(cfg, alibi_impl="mask")
    flex.init_weights(8)
    mask.init_weights(8)
    idx = torch.randint(0, V, (2, 160), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(flex(idx), mask(idx), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("pe", ["rope", "alibi"])
def test_fsdp2_meta_init_equals_the_plain_model(pe: str, tmp_path: Path) -> None:
    # What the train loop does: build on the meta device, fully_shard each of .layers then the root, to_empty,
    # init_weights(seed): the same weights (DTensors) and logits as a plain model with the same seed; its DTensor
    # state dict exports. One process on gloo (the CPU).
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor

    from kiln_trainer.export import hf_state_dict

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        cfg = tiny(pe)
        plain = Transformer(cfg)
        plain.init_weights(3)
        with torch.device("meta"):
            sharded = Transformer(cfg)
        mesh = init_device_mesh("cpu", (1,))
        for layer in sharded.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(sharded, mesh=mesh)
        sharded.to_empty(device="cpu")
        sharded.init_weights(3)
        assert isinstance(sharded.embed.weight, DTensor)
        idx = torch.randint(0, V, (2, 32), generator=torch.Generator().manual_seed(0))
        out = sharded(idx)
        torch.testing.assert_close(out, plain(idx), rtol=0, atol=0)
        lm_loss(out, idx, None, []).backward()  # type: ignore[no-untyped-call]
        exported = hf_state_dict(sharded.state_dict(), cfg)
        expected = hf_state_dict(plain.state_dict(), cfg)
        assert all(torch.equal(exported[k], expected[k]) for k in expected)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("pe", ["rope", "alibi"])
def test_bf16_autocast_on_the_cpu(pe: str) -> None:
    # The train loop's mixed precision (the tiny plan trains in bf16): float32 logits close to float32's, and
    # gradients for every parameter, in float32 (the master weights).
    m = model(pe, seed=1)
    idx = torch.randint(0, V, (2, 32), generator=torch.Generator().manual_seed(6))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = m(idx)
        loss = lm_loss(logits, idx, None, [])
    assert logits.dtype == torch.float32 and loss.dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(logits, m(idx), rtol=0, atol=0.05)
    loss.backward()  # type: ignore[no-untyped-call]
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("pe", ["rope", "alibi"])
def test_the_forward_with_targets_is_lm_loss_of_the_logits_and_so_are_its_gradients(pe: str) -> None:
    m = model(pe, seed=3).train()
    tokens = torch.randint(0, V, (2, 32), generator=torch.Generator().manual_seed(5))
    mask = (torch.rand(2, 32, generator=torch.Generator().manual_seed(6)) > 0.3).to(torch.uint8)
    expected = lm_loss(m(tokens), tokens, mask, [], reduction="sum")
    expected.backward()  # type: ignore[no-untyped-call]
    grads = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
    m.zero_grad()
    targets, weights = loss_targets(tokens, mask, [])
    got = m(tokens, targets, weights)
    got.backward()
    assert got.shape == () and got.dtype == torch.float32
    torch.testing.assert_close(got, expected)
    for n, p in m.named_parameters():
        torch.testing.assert_close(p.grad, grads[n], msg=n)
    with pytest.raises(ValueError, match="weights"):
        m(tokens, targets)


@pytest.mark.parametrize("pe", ["rope", "alibi"])
def test_activation_checkpointing_gives_the_same_loss_and_gradients(pe: str) -> None:
    tokens = torch.randint(0, V, (2, 32), generator=torch.Generator().manual_seed(7))
    targets, weights = loss_targets(tokens, None, [])
    results = []
    for recompute in (False, True):
        m = model(pe, seed=4).train()
        m.activation_checkpointing = recompute
        loss = m(tokens, targets, weights)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in m.parameters() if p.grad is not None]))
    torch.testing.assert_close(results[1][0], results[0][0])
    assert len(results[1][1]) == len(results[0][1]) > 0
    for a, b in zip(results[0][1], results[1][1], strict=True):
        torch.testing.assert_close(b, a)


def test_compiled_blocks_keep_the_state_dict_keys() -> None:
    m = model("rope")
    keys = list(m.state_dict())
    m.compile_blocks()  # compiles lazily, on the first call: nothing runs here
    assert list(m.state_dict()) == keys
