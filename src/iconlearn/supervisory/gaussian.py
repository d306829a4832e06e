"""Gaussian supervisory distributions on inputs (SNE / t-SNE, I-Con Theorems 1-2):

    p(j|i) = exp(-||x_i - x_j||^2 / 2 sigma_i^2) / sum_{k != i} exp(-||x_i - x_k||^2 / 2 sigma_i^2)

with sigma_i chosen so that the perplexity 2^H(p(.|i)) equals the user's value (a vectorised
binary search over all rows at once, in float64).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ..core import SparseRows


def calibrate(sq_dist: Tensor, perplexity: float, tol: float = 1e-5, max_iter: int = 200) -> tuple[Tensor, Tensor]:
    """Conditional Gaussian affinities with per-row bandwidth matched to ``perplexity``.

    Args:
        sq_dist: (N x K) squared distances from each point to its K candidates (self excluded),
            e.g. its K nearest neighbours, or all other points.
        perplexity: target perplexity, 0 < perplexity < K.

    Returns:
        (P, beta): P (N x K) rows summing to 1, and beta_i = 1 / (2 sigma_i^2).
    """
    k = sq_dist.shape[1]
    if not 0 < perplexity < k:
        raise ValueError(f"perplexity must be in (0, {k}) for {k} candidates per point, got {perplexity}")
    d = sq_dist.to(torch.float64)
    d = d - d.min(1, keepdim=True).values  # shift for stability; does not change p
    target = math.log(perplexity)  # entropy in nats
    n = d.shape[0]
    lo = torch.full((n, 1), 0.0, dtype=torch.float64, device=d.device)
    hi = torch.full((n, 1), float("inf"), dtype=torch.float64, device=d.device)
    beta = torch.ones((n, 1), dtype=torch.float64, device=d.device)
    scale = d.mean(1, keepdim=True).clamp_min(1e-12)
    beta = beta / scale  # start near the data's own scale
    for _ in range(max_iter):
        logits = -beta * d
        logp = torch.log_softmax(logits, dim=1)
        entropy = -(logp.exp() * logp).sum(1, keepdim=True)
        diff = entropy - target
        done = diff.abs() < tol
        if bool(done.all()):
            break
        too_flat = diff > 0  # entropy too high -> sharpen (increase beta)
        lo = torch.where(too_flat, beta, lo)
        hi = torch.where(too_flat, hi, beta)
        # converged rows stay put, so each row's result does not depend on the other rows
        beta = torch.where(done, beta, torch.where(torch.isinf(hi), beta * 2.0, (lo + hi) / 2.0))
    P = torch.softmax(-beta * d, dim=1)
    return P.to(sq_dist.dtype if sq_dist.is_floating_point() else torch.float64), beta.squeeze(1)


def gaussian_targets(sq_dist: Tensor, neighbors: Tensor | None = None, perplexity: float = 30.0,
                     exclude: Tensor | None = None) -> Tensor | SparseRows:
    """SNE targets p(j|i) (I-Con Theorem 1) with perplexity-calibrated sigma_i.

    From (N x K) neighbour distances + (N x K) ``neighbors`` indices: :class:`SparseRows` over those
    columns. From a full (B x M) distance matrix: dense rows over the M columns, zero on each row's
    own column, which is ``exclude[i]`` ((B,) long) or, by default, the diagonal (B == M).
    """
    if neighbors is not None:
        P, _ = calibrate(sq_dist, perplexity)
        return SparseRows(P, neighbors)
    b, m = sq_dist.shape
    own = torch.arange(b, device=sq_dist.device) if exclude is None else exclude.to(sq_dist.device).long()
    if exclude is None and b != m:
        raise ValueError(f"a non-square distance matrix ({b} x {m}) needs exclude= (each row's own column)")
    off = torch.ones(b, m, dtype=torch.bool, device=sq_dist.device).scatter_(1, own.view(-1, 1), False)
    P, _ = calibrate(sq_dist[off].view(b, m - 1), perplexity)
    out = torch.zeros(b, m, dtype=P.dtype, device=P.device)
    out[off] = P.reshape(-1)
    return out


def symmetrize(p: SparseRows, n: int) -> tuple[Tensor, Tensor]:
    """t-SNE's joint p_ij = (p_j|i + p_i|j) / 2N as a coalesced sparse COO (indices, values)."""
    rows = torch.arange(p.values.shape[0], device=p.values.device).repeat_interleave(p.values.shape[1])
    cols = p.indices.reshape(-1)
    vals = p.values.reshape(-1)
    idx = torch.cat([torch.stack([rows, cols]), torch.stack([cols, rows])], 1)
    m = torch.sparse_coo_tensor(idx, torch.cat([vals, vals]) / (2.0 * n), (n, n), check_invariants=True).coalesce()
    return m.indices(), m.values()
