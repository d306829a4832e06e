"""Transforms of supervisory distributions: debiasing (eq. 3.3.1) and mixtures."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from ..core import SparseRows, Smoothed


def debias(p: Tensor | SparseRows, alpha: float, exclude: Tensor | None = None) -> Tensor | SparseRows | Smoothed:
    """(1 - alpha) p + alpha / N_i (I-Con eq. 3.3.1), kept as the sparse-plus-uniform form."""
    if alpha == 0:
        return p
    return Smoothed(p, float(alpha), exclude)


def mix(parts: Sequence[Tensor | SparseRows], weights: Sequence[float]) -> Tensor | SparseRows:
    """sum_k w_k p_k for targets over the same columns (e.g. augmentations together with kNN
    neighbours). Sparse parts are concatenated (duplicate columns summed); weights are
    renormalised to 1 over the rows where a part has mass."""
    if len(parts) != len(weights):
        raise ValueError(f"got {len(parts)} targets but {len(weights)} weights")
    if all(isinstance(p, SparseRows) for p in parts):
        values = torch.cat([w * p.values for p, w in zip(parts, weights)], 1)
        indices = torch.cat([p.indices for p in parts], 1)
        # merge duplicate columns so indices with mass are distinct within a row
        order = indices.argsort(1)
        indices, values = indices.gather(1, order), values.gather(1, order)
        dup = torch.zeros_like(indices, dtype=torch.bool)
        dup[:, 1:] = indices[:, 1:] == indices[:, :-1]
        # run-length merge: add each duplicate into the first entry of its run
        first = torch.arange(indices.shape[1], device=indices.device).expand_as(indices).clone()
        first = torch.where(dup, torch.zeros_like(first), first).cummax(1).values
        merged = torch.zeros_like(values).scatter_add_(1, first, values)
        values = torch.where(dup, torch.zeros_like(merged), merged)
        return SparseRows(values / values.sum(1, keepdim=True).clamp_min(1e-30), indices)
    n = next(p.shape[1] for p in parts if not isinstance(p, SparseRows))
    dense = sum(w * (p.to_dense(n) if isinstance(p, SparseRows) else p) for p, w in zip(parts, weights))
    return dense / dense.sum(1, keepdim=True).clamp_min(1e-30)
