"""Optimisers and the learning-rate schedule of contrastive pretraining.

* LARS (You et al. 2017), as used by SimCLR and the Kernel-InfoNCE experiments: SGD with momentum
  whose per-layer step is scaled by the trust ratio eta ||w|| / ||g + wd w||; biases and
  normalisation parameters are excluded from weight decay and from the trust ratio.
* The schedule is a pure function of the step (linear warm-up, then cosine to zero or constant),
  so that a resumed run needs no scheduler state.
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LARS", "build_optimizer", "lr_at"]


class LARS(torch.optim.Optimizer):
    """SGD + momentum with layer-wise trust ratios; groups with ``lars=False`` are plain SGD."""

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0, eta: float = 0.001):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta, lars=True))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if group["weight_decay"]:
                    g = g.add(p, alpha=group["weight_decay"])
                if group["lars"]:
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(g)
                    trust = torch.where((w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm,
                                        torch.ones_like(w_norm))
                    g = g * trust
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(g).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(g)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


def _split_decay(model: nn.Module):
    """(weights of linear/conv layers, biases and normalisation parameters)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    return decay, no_decay


def build_optimizer(model: nn.Module, optim: dict, lr: float) -> torch.optim.Optimizer:
    decay, no_decay = _split_decay(model)
    wd, name = optim["weight_decay"], optim["name"]
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=optim["momentum"])
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "lars":
        groups[1]["lars"] = False
        return LARS(groups, lr=lr, momentum=optim["momentum"])
    raise ValueError(f"unknown optimizer {name!r}")


def lr_at(step: int, total: int, base_lr: float, warmup: int = 0, schedule: str = "cosine") -> float:
    """Learning rate of step ``step`` (0-based) out of ``total``."""
    if warmup > 0 and step < warmup:
        return base_lr * (step + 1) / warmup
    if schedule == "constant":
        return base_lr
    t = (step - warmup) / max(1, total - warmup)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
