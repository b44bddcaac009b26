"""kiln_trainer.lion against the paper's update written out by hand, step by step."""

from __future__ import annotations

import pytest
import torch

from kiln_trainer.lion import Lion


def reference(
    p: torch.Tensor, m: torch.Tensor, g: torch.Tensor, lr: float, b1: float, b2: float, wd: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Algorithm 2 of Chen et al. 2023, one parameter at a time."""
    update = torch.sign(b1 * m + (1 - b1) * g)
    p = p * (1 - lr * wd) - lr * update
    return p, b2 * m + (1 - b2) * g


def test_three_steps_equal_the_papers_update_and_only_groups_with_decay_decay() -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 3, generator=gen), torch.randn(5, generator=gen)
    pa, pb = a.clone().requires_grad_(), b.clone().requires_grad_()
    opt = Lion(
        [{"params": [pa], "weight_decay": 0.5}, {"params": [pb], "weight_decay": 0.0}], lr=0.01, betas=(0.9, 0.99)
    )
    ma, mb = torch.zeros_like(a), torch.zeros_like(b)
    for _ in range(3):
        ga, gb = torch.randn(4, 3, generator=gen), torch.randn(5, generator=gen)
        pa.grad, pb.grad = ga.clone(), gb.clone()
        opt.step()
        a, ma = reference(a, ma, ga, 0.01, 0.9, 0.99, 0.5)
        b, mb = reference(b, mb, gb, 0.01, 0.9, 0.99, 0.0)
        torch.testing.assert_close(pa.detach(), a)
        torch.testing.assert_close(pb.detach(), b)
    torch.testing.assert_close(opt.state[pa]["exp_avg"], ma)
    # Lion moves every coordinate by exactly lr (before decay): the sign, not the gradient's size.
    p = torch.zeros(3, requires_grad=True)
    p.grad = torch.tensor([1e-6, -5.0, 0.0])
    Lion([p], lr=0.1).step()
    torch.testing.assert_close(p.detach(), torch.tensor([-0.1, 0.1, 0.0]))


def test_bad_hyperparameters_are_refused() -> None:
    with pytest.raises(ValueError, match="betas"):
        Lion([torch.zeros(1, requires_grad=True)], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="lr"):
        Lion([torch.zeros(1, requires_grad=True)], lr=-1.0)
