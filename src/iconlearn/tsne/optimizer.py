"""openTSNE's gradient descent, in torch: momentum plus per-coordinate gains (delta-bar-delta:
+0.2 when the gradient flips sign against the last update, x0.8 otherwise, floor 0.01), update
norm clipped per point (``max_step_norm``), gradient norm optionally clipped per point
(``max_grad_norm``), and the embedding re-centred after every step (not in ``transform``)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


class GainsOptimizer:
    def __init__(self, y: Tensor, min_gain: float = 0.01):
        self.update = torch.zeros_like(y)
        self.gains = torch.ones_like(y)
        self.min_gain = min_gain

    def step(self, y: Tensor, grad: Tensor, learning_rate: float, momentum: float,
             max_step_norm: float | None = 5.0, max_grad_norm: float | None = None, recenter: bool = True) -> None:
        if max_grad_norm is not None:
            norm = grad.norm(dim=1, keepdim=True)
            grad = grad * (max_grad_norm / (norm + 1e-6)).clamp(max=1.0)
        flipped = torch.sign(self.update) != torch.sign(grad)
        self.gains = torch.where(flipped, self.gains + 0.2, self.gains * 0.8 + self.min_gain)
        self.update = momentum * self.update - learning_rate * self.gains * grad
        if max_step_norm is not None:
            norm = self.update.norm(dim=1, keepdim=True)
            self.update = self.update * (max_step_norm / norm.clamp_min(1e-30)).clamp(max=1.0)
        y.add_(self.update)
        if recenter:
            y.sub_(y.mean(0, keepdim=True))


def run_stage(y: Tensor, opt: GainsOptimizer, gradient: Callable[[Tensor, bool], tuple[Tensor, Tensor | None]],
              n_iter: int, learning_rate: float, momentum: float, progress=None, log_every: int = 50,
              **step_kw) -> list[tuple[int, float]]:
    """n_iter steps; ``gradient(y, with_kl)`` returns (grad, kl or None). Returns (iteration, KL) pairs
    logged every ``log_every`` iterations."""
    history = []
    for it in range(n_iter):
        want = progress is not None and (it + 1) % log_every == 0
        grad, kl = gradient(y, want)
        if not torch.isfinite(grad).all():
            raise FloatingPointError(f"non-finite gradient at iteration {it}; lower the learning rate")
        opt.step(y, grad, learning_rate, momentum, **step_kw)
        if progress is not None:
            progress.update(1)
            if kl is not None:
                history.append((it + 1, float(kl)))
                progress.set_postfix(kl=f"{float(kl):.4f}")
    return history
