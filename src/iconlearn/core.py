"""The I-Con equation (I-Con paper, eq. 3.1.1).

    L = mean_i KL( p(.|i) || q(.|i) ) = mean_i sum_j p(j|i) log( p(j|i) / q(j|i) )

``p`` is the supervisory neighbourhood distribution and ``log_q`` the log of the learned one,
both as rows over the same M candidate columns. ``p`` comes in three forms so that sparse and
debiased targets never force a dense matrix:

* a dense tensor (B x M) of probabilities;
* :class:`SparseRows`: K (column, probability) pairs per row, every other column 0;
* :class:`Smoothed`: ``(1 - alpha) * part + alpha / N_i`` (eq. 3.3.1), ``part`` dense or sparse,
  the uniform part spread over the row's N_i candidate columns.

Everything is computed in log space with 0 log 0 = 0.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Union

import torch
from torch import Tensor

__all__ = ["SparseRows", "Smoothed", "Target", "icon_loss", "reverse_icon_loss", "candidate_mask", "num_candidates"]


@dataclass(frozen=True)
class SparseRows:
    """p(j|i) as K (column index, probability) pairs per row; unlisted columns have p = 0.

    ``values`` (B x K) are non-negative and sum to 1 over each row; padding entries have value
    0 (their index is ignored). Indices with a non-zero value must be distinct within a row.
    """

    values: Tensor
    indices: Tensor

    def to_dense(self, num_columns: int) -> Tensor:
        out = self.values.new_zeros(self.values.shape[0], num_columns)
        return out.scatter_add_(1, self.indices, self.values)


@dataclass(frozen=True)
class Smoothed:
    """The debiased target (1 - alpha) * part + alpha / N_i of eq. 3.3.1.

    ``exclude`` names the columns that are not candidates of a row (they get no uniform mass):
    ``None`` (every column is a candidate), a (B,) long tensor of one column per row (the anchor
    itself), or a (B x M) bool mask that is True where a column is excluded.
    """

    part: Union[Tensor, SparseRows]
    alpha: float
    exclude: Union[Tensor, None] = None


Target = Union[Tensor, SparseRows, Smoothed]


def candidate_mask(exclude: Tensor | None, shape: tuple[int, int], device) -> Tensor | None:
    """(B x M) bool mask, True where a column is *not* a candidate of the row; None if all are."""
    if exclude is None:
        return None
    if exclude.dtype == torch.bool:
        return exclude
    mask = torch.zeros(shape, dtype=torch.bool, device=device)
    return mask.scatter_(1, exclude.view(-1, 1).long(), True)


def num_candidates(exclude: Tensor | None, shape: tuple[int, int], device) -> Tensor:
    """N_i, the number of candidate columns of each row, as a (B,) float tensor."""
    rows, cols = shape
    if exclude is None:
        return torch.full((rows,), float(cols), device=device)
    if exclude.dtype == torch.bool:
        return (~exclude).sum(1).to(torch.get_default_dtype())
    return torch.full((rows,), float(cols - 1), device=device)


def _cross_term(p: Tensor | SparseRows, log_q: Tensor) -> Tensor:
    """sum_j p(j|i) log q(j|i) per row, with 0 * log 0 = 0."""
    if isinstance(p, SparseRows):
        lq = log_q.gather(1, p.indices)
        v = p.values.to(lq.dtype)
        return (v * torch.where(v > 0, lq, torch.zeros_like(lq))).sum(1)
    p = p.to(log_q.dtype)
    return (p * torch.where(p > 0, log_q, torch.zeros_like(log_q))).sum(1)


def _neg_entropy(p: Tensor | SparseRows) -> Tensor:
    """sum_j p log p per row (0 log 0 = 0)."""
    values = p.values if isinstance(p, SparseRows) else p
    return torch.special.xlogy(values, values).sum(1)


def sparse_smoothed_neg_entropy(values: Tensor, alpha: float, n: Tensor) -> Tensor:
    """sum_j p' log p' per row of p' = (1 - alpha) p + alpha / N_i, p given by its sparse ``values``
    (B x K) and ``n`` (B,) the candidates N_i: the listed entries carry (1 - alpha) v + u, the other
    N_i - K carry u = alpha / N_i alone."""
    u = alpha / n
    mixed = (1.0 - alpha) * values + u[:, None]
    listed = torch.where(values > 0, torch.special.xlogy(mixed, mixed) - torch.special.xlogy(u, u)[:, None], 0.0)
    return listed.sum(1) + n * torch.special.xlogy(u, u)


def _smoothed_terms(p: Smoothed, log_q: Tensor) -> tuple[Tensor, Tensor]:
    """(sum_j p log q, sum_j p log p) per row for p = (1 - a) part + a / N_i."""
    a = float(p.alpha)
    n = num_candidates(p.exclude, tuple(log_q.shape), log_q.device).to(log_q.dtype)
    u = a / n  # (B,) uniform mass per candidate
    sparse = isinstance(p.part, SparseRows)
    if p.exclude is not None and p.exclude.dtype != torch.bool and sparse:
        # one excluded column per row: zero it by index, no (B x M) mask needed
        mask, lq_cand = None, log_q.scatter(1, p.exclude.view(-1, 1).long(), 0.0)
    else:
        mask = candidate_mask(p.exclude, tuple(log_q.shape), log_q.device)
        lq_cand = log_q if mask is None else log_q.masked_fill(mask, 0.0)
    cross = (1.0 - a) * _cross_term(p.part, log_q) + u * lq_cand.sum(1)
    if sparse:
        neg_ent = sparse_smoothed_neg_entropy(p.part.values.to(log_q.dtype), a, n)
    else:
        mixed = (1.0 - a) * p.part + u[:, None]
        if mask is not None:
            mixed = mixed.masked_fill(mask, 0.0)
        neg_ent = torch.special.xlogy(mixed, mixed).sum(1)
    return cross, neg_ent


def _reduce(rows: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return rows.mean()
    if reduction == "sum":
        return rows.sum()
    if reduction == "none":
        return rows
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def icon_loss(p: Target, log_q: Tensor, *, reduction: str = "mean", cross_entropy: bool = False) -> Tensor:
    """The I-Con loss, mean_i KL(p(.|i) || q(.|i)) (eq. 3.1.1).

    Args:
        p: the supervisory distribution: dense (B x M), :class:`SparseRows` or :class:`Smoothed`.
        log_q: (B x M) log-probabilities of the learned distribution over the same columns
            (``-inf`` where a column is not a candidate).
        reduction: ``"mean"`` over rows (the paper's average), ``"sum"`` or ``"none"``.
        cross_entropy: return H(p, q) = KL(p || q) + H(p) instead, the form in which InfoNCE,
            SupCon and cross-entropy are usually written (same gradients, since p is fixed).
    """
    if isinstance(p, Smoothed):
        cross, neg_ent = _smoothed_terms(p, log_q)
    else:
        cross, neg_ent = _cross_term(p, log_q), _neg_entropy(p)
    rows = (-cross if cross_entropy else neg_ent - cross).to(log_q.dtype)
    return _reduce(rows, reduction)


def reverse_icon_loss(log_p: Tensor, log_q: Tensor, *, reduction: str = "mean") -> Tensor:
    """The reverse direction mean_i KL(q(.|i) || p(.|i)) that k-means / c-SNE minimise (Theorem 6).

    Both arguments are (B x M) log-probabilities; q = 0 contributes 0, p = 0 where q > 0 gives inf.
    Entries with q = 0 are masked before the subtraction, so -inf - -inf never reaches the gradient.
    """
    q = log_q.exp()
    live = q > 0
    diff = torch.where(live, log_q, torch.zeros_like(log_q)) - torch.where(live, log_p.to(log_q.dtype), torch.zeros_like(log_q))
    return _reduce((q * diff).sum(1), reduction)


def smooth_log_q(log_q: Tensor, alpha: float, exclude: Tensor | None = None) -> Tensor:
    """log of the debiased learned distribution (1 - alpha) q + alpha / N_i (section 3.3, "both sides").

    Excluded columns stay at -inf.
    """
    if alpha == 0:
        return log_q
    mask = candidate_mask(exclude, tuple(log_q.shape), log_q.device)
    n = num_candidates(exclude, tuple(log_q.shape), log_q.device).to(log_q.dtype)
    log_u = (math.log(alpha) - n.log())[:, None].expand_as(log_q)
    out = torch.logaddexp(log_q + math.log1p(-alpha), log_u) if alpha < 1 else log_u.clone()
    if mask is not None:
        out = out.masked_fill(mask, float("-inf"))
    return out


__all__.append("smooth_log_q")
