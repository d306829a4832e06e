"""openTSNE's gradient descent: momentum plus per-coordinate gains (delta-bar-delta: +0.2 when the
gradient's sign differs from the last update's, x0.8 otherwise, floored at 0.01), the update's
norm clipped per point (``max_step_norm``), the gradient's norm optionally clipped per point
(``max_grad_norm``), the embedding re-centred after every step (not in ``transform``).

Two implementations of one iteration share :func:`optimize`, the loop over the stages (early
exaggeration, then the rest) with KL logging, callbacks and the divergence check:

* :class:`iconlearn.tsne.cpu.TSNEDescent`: t-SNE on the CPU, compiled kernels;
* :class:`TorchDescent`: any gradient function in torch (the GPU, SNE, the reference path).
  It stays on the device: no value comes back to the host inside an iteration unless the KL is
  asked for.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
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
        self.gains = torch.where(flipped, self.gains + 0.2, (self.gains * 0.8).clamp_(min=self.min_gain))
        self.update = momentum * self.update - learning_rate * self.gains * grad
        if max_step_norm is not None:
            norm = self.update.norm(dim=1, keepdim=True)
            self.update = self.update * (max_step_norm / norm.clamp_min(1e-30)).clamp(max=1.0)
        y.add_(self.update)
        if recenter:
            y.sub_(y.mean(0, keepdim=True))


class TorchDescent:
    """Gradient descent on any objective whose ``gradient(y, exaggeration, with_kl)`` returns
    (grad, kl or None) in torch; the state lives on y's device."""

    def __init__(self, y0: Tensor, gradient: Callable[[Tensor, float, bool], tuple[Tensor, Tensor | None]]):
        self.y, self.gradient = y0, gradient
        self.opt = GainsOptimizer(y0)

    @property
    def embedding(self) -> np.ndarray:
        return self.y.detach().cpu().numpy()

    def step(self, exaggeration: float, learning_rate: float, momentum: float, max_step_norm: float | None = 5.0,
             max_grad_norm: float | None = None, want_kl: bool = False) -> float | None:
        grad, kl = self.gradient(self.y, exaggeration, want_kl)
        self.opt.step(self.y, grad, learning_rate, momentum, max_step_norm=max_step_norm, max_grad_norm=max_grad_norm)
        return float(kl) if kl is not None else None

    def kl(self) -> float:
        return float(self.gradient(self.y, 1.0, True)[1])

    def close(self) -> None:
        pass


def optimize(descent, stages: Sequence[tuple[float, int, float, float]], *, max_step_norm: float | None = 5.0,
             max_grad_norm: float | None = None, callbacks: Sequence[Callable] = (), every: int = 50,
             progress=None) -> tuple[int, list[tuple[int, float]]]:
    """Run the stages, each (exaggeration, iterations, learning rate, momentum), on ``descent``.

    Every ``every`` iterations (counted over all stages) the KL is logged, the embedding is checked
    for non-finite values, and every callback is called as ``callback(iteration, kl, embedding)``
    (openTSNE's signature); one that returns True stops the optimisation there.
    Returns (iterations run, [(iteration, KL), ...]).
    """
    history, done = [], 0
    for exaggeration, n_iter, learning_rate, momentum in stages:
        for _ in range(n_iter):
            log = (done + 1) % every == 0
            kl = descent.step(exaggeration, learning_rate, momentum, max_step_norm, max_grad_norm, want_kl=log)
            done += 1
            if progress is not None:
                progress.update(1)
            if not log:
                continue
            embedding = descent.embedding
            if not np.isfinite(embedding).all() or not np.isfinite(kl):
                raise FloatingPointError(f"the embedding diverged (non-finite values at iteration {done}); "
                                         "lower learning_rate")
            history.append((done, kl))
            if progress is not None:
                progress.set_postfix(kl=f"{kl:.4f}")
            if any([bool(cb(done, kl, embedding)) for cb in callbacks]):
                return done, history
    return done, history
