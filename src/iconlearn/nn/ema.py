"""Exponential-moving-average teacher (MoCo, BYOL, DINO, TEMI; I-Con section 4 "+EMA").

    theta_teacher <- decay * theta_teacher + (1 - decay) * theta_student

The teacher is a deep copy of the student with gradients off; buffers (e.g. batch-norm
statistics) are copied as they are.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA(nn.Module):
    """A frozen, deep-copied teacher that follows ``model`` by an exponential moving average.

    Args:
        model: the student module (not modified).
        decay: weight of the old teacher in each update, in [0, 1) (0 copies the student).

    Call :meth:`update` after each optimiser step; call the EMA itself (or ``.module``) to run
    the teacher.
    """

    def __init__(self, model: nn.Module, decay: float = 0.99):
        super().__init__()
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        try:
            decay = float(decay)
        except (TypeError, ValueError):
            raise ValueError(f"decay must be a number in [0, 1), got {decay!r}") from None
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must lie in [0, 1), got {decay!r}")
        self.decay = decay
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)
        self.module.eval()

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float | None = None) -> None:
        """theta_t <- d theta_t + (1 - d) theta_s for parameters; buffers are copied."""
        d = self.decay if decay is None else float(decay)
        for t, s in zip(self.module.parameters(), model.parameters()):
            if t.shape != s.shape:
                raise ValueError(f"student and teacher differ in shape: {tuple(s.shape)} vs {tuple(t.shape)}")
            t.mul_(d).add_(s.detach().to(t.dtype), alpha=1.0 - d)
        for t, s in zip(self.module.buffers(), model.buffers()):
            t.copy_(s)

    def forward(self, *args, **kwargs):
        with torch.no_grad():
            return self.module(*args, **kwargs)

    def train(self, mode: bool = True):  # the teacher always stays in eval mode
        super().train(mode)
        self.module.eval()
        return self
