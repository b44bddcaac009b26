"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms"): the spec's `optimizer.type: lion`.

    update = sign(beta1 * m + (1 - beta1) * g)
    p      = p * (1 - lr * weight_decay) - lr * update
    m      = beta2 * m + (1 - beta2) * g

One state tensor per parameter (AdamW keeps two), so the optimizer's memory halves; the paper's advice is a
learning rate 3-10x smaller than AdamW's with a weight decay as much larger. The updates are `torch._foreach_*`
over each parameter group (plain tensors, or FSDP2's DTensor shards alike).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

__all__ = ["Lion"]


class Lion(torch.optim.Optimizer):
    """Lion with decoupled weight decay; `exp_avg` is its state (what torch.distributed.checkpoint saves)."""

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
    ) -> None:
        if lr < 0:
            raise ValueError(f"Lion: lr must be at least 0, not {lr}")
        if not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"Lion: betas must be in [0, 1), not {betas}")
        super().__init__(params, {"lr": lr, "betas": betas, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            lr, (beta1, beta2), decay = float(group["lr"]), group["betas"], float(group["weight_decay"])
            grads = [p.grad for p in params]
            moments = []
            for p in params:
                state = self.state[p]
                if "exp_avg" not in state:
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                moments.append(state["exp_avg"])
            if decay:
                torch._foreach_mul_(params, 1.0 - lr * decay)
            update = torch._foreach_lerp(moments, grads, 1.0 - beta1)
            torch._foreach_sign_(update)
            torch._foreach_add_(params, update, alpha=-lr)
            torch._foreach_lerp_(moments, grads, 1.0 - beta2)
        return loss
