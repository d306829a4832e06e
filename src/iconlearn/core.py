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

__all__ = ["SparseRows", "Smoothed", "Target", "icon_loss", "reverse_icon_loss", "icon_divergence", "DIVERGENCES",
           "gaussian_icon_loss", "candidate_mask", "num_candidates"]


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


# --------------------------------------------------------------------------- divergences beside KL
#
# Each divergence is a sum over a row's columns of an entry function g(p_j, q_j) with g(0, 0) = 0.
# Sparse and smoothed targets never form a dense p: a row's sum is the sum of g at the row's
# background value b (0 for SparseRows, alpha / N_i on the candidates for Smoothed) over all
# columns, corrected at the K listed columns by g(b + (1 - alpha) v, q) - g(b, q). Every term is an
# elementwise function of log q (B x M), the same size as the forward KL's log-softmax.


def _entries(p: Tensor, log_q: Tensor, kind: str) -> Tensor:
    """g(p, q) elementwise; ``p`` broadcasts against ``log_q``; q = 0 where log_q = -inf."""
    p = p.to(log_q.dtype)
    live = log_q > float("-inf")
    lq = torch.where(live, log_q, torch.zeros_like(log_q))  # safe logs: no -inf reaches a gradient
    q = torch.where(live, lq.exp(), torch.zeros_like(lq))
    has_p = p > 0
    lp = torch.where(has_p, p, torch.ones_like(p)).log()
    if kind == "reverse_kl":  # q log(q / p); +inf where q > 0 = p
        return torch.where(live, torch.where(has_p, q * (lq - lp), torch.full_like(q, float("inf"))), torch.zeros_like(q))
    if kind == "tv":  # |p - q| / 2
        return 0.5 * (p - q).abs()
    if kind == "hellinger":  # (sqrt p - sqrt q)^2 / 2, sqrt q = exp(log q / 2)
        sq = torch.where(live, (0.5 * lq).exp(), torch.zeros_like(lq))
        return 0.5 * (p.sqrt() - sq) ** 2
    if kind == "l2":  # (p - q)^2
        return (p - q) ** 2
    if kind == "js":  # (p log(p / m) + q log(q / m)) / 2, m = (p + q) / 2
        both = has_p | live
        ninf = torch.full_like(lq, float("-inf"))
        # log m = logaddexp(log p, log q) - log 2; entries with p = q = 0 get finite dummies (masked below),
        # so no -inf - -inf reaches logaddexp's gradient
        lm = torch.logaddexp(torch.where(has_p, lp, torch.where(both, ninf, 0.0)),
                             torch.where(live, lq, torch.where(both, ninf, 0.0))) - math.log(2.0)
        return 0.5 * (torch.where(has_p, p * (lp - lm), torch.zeros_like(lm)) + torch.where(live, q * (lq - lm), torch.zeros_like(lm)))
    raise ValueError(f"divergence must be one of {DIVERGENCES}, got {kind!r}")  # pragma: no cover


def _listed_correction(values: Tensor, indices: Tensor, background: Tensor, log_q: Tensor, kind: str) -> Tensor:
    """sum over the listed (value > 0) columns of g(background + v, q) - g(background, q), per row."""
    lq = log_q.gather(1, indices)
    v = values.to(log_q.dtype)
    diff = _entries(background + v, lq, kind) - _entries(background.expand_as(v), lq, kind)
    return torch.where(v > 0, diff, torch.zeros_like(diff)).sum(1)


def _divergence_rows(p: Target, log_q: Tensor, kind: str) -> Tensor:
    shape, dt = tuple(log_q.shape), log_q.dtype
    if isinstance(p, SparseRows):
        zero = log_q.new_zeros(shape[0], 1)
        if kind == "reverse_kl":  # background g(0, q) is +inf wherever q > 0: the row is the listed sum or +inf
            lq, listed = log_q.gather(1, p.indices), p.values > 0
            on_support = torch.where(listed, _entries(p.values, lq, kind), torch.zeros_like(lq)).sum(1)
            off_support = (log_q > float("-inf")).sum(1) - (listed & (lq > float("-inf"))).sum(1)
            return torch.where(off_support > 0, torch.full_like(on_support, float("inf")), on_support)
        return _entries(zero, log_q, kind).sum(1) + _listed_correction(p.values, p.indices, zero, log_q, kind)
    if isinstance(p, Smoothed):
        a = float(p.alpha)
        n = num_candidates(p.exclude, shape, log_q.device).to(dt)
        u = (a / n)[:, None]
        mask = candidate_mask(p.exclude, shape, log_q.device)
        if isinstance(p.part, SparseRows):
            base = u.expand(shape) if mask is None else u.expand(shape).masked_fill(mask, 0.0)
            return (_entries(base, log_q, kind).sum(1)
                    + _listed_correction((1.0 - a) * p.part.values.to(dt), p.part.indices, u, log_q, kind))
        mixed = (1.0 - a) * p.part.to(dt) + u
        return _entries(mixed if mask is None else mixed.masked_fill(mask, 0.0), log_q, kind).sum(1)
    return _entries(p, log_q, kind).sum(1)


DIVERGENCES = ("kl", "reverse_kl", "js", "tv", "hellinger", "l2")


def icon_divergence(p: Target, log_q: Tensor, divergence: str = "kl", *, reduction: str = "mean") -> Tensor:
    """eq. 3.1.1 with another divergence in place of KL: mean_i D(p(.|i), q(.|i)).

    The divergences the I-Con authors' code offers for the same p and q, each a sum over a row's
    columns (0 log 0 = 0 throughout):

    * ``"kl"``: KL(p || q), exactly :func:`icon_loss`;
    * ``"reverse_kl"``: KL(q || p) = sum_j q_j log(q_j / p_j) (k-means / c-SNE direction, Theorem 6);
      +inf when q has mass where p has none, so with a sparse p only a :class:`Smoothed` target
      (or a q that vanishes off p's support) gives a finite value;
    * ``"js"``: Jensen-Shannon, (KL(p || m) + KL(q || m)) / 2 with m = (p + q) / 2, in [0, log 2];
    * ``"tv"``: total variation, sum_j |p_j - q_j| / 2, in [0, 1];
    * ``"hellinger"``: squared Hellinger distance, sum_j (sqrt p_j - sqrt q_j)^2 / 2, in [0, 1];
    * ``"l2"``: sum_j (p_j - q_j)^2.

    (The authors' code averages tv / hellinger / l2 over all B x M entries and leaves out the 1/2 of
    Hellinger; here every divergence is the per-row sum, averaged over rows as in eq. 3.1.1, so it
    does not shrink with the number of columns.)

    ``p`` takes the three forms of :func:`icon_loss` (dense, :class:`SparseRows`, :class:`Smoothed`)
    and, as there, sparse and smoothed targets are never made dense: only elementwise functions of
    ``log_q`` (B x M) and gathers at the listed columns are formed.
    """
    if divergence == "kl":
        return icon_loss(p, log_q, reduction=reduction)
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {DIVERGENCES}, got {divergence!r}")
    return _reduce(_divergence_rows(p, log_q, divergence), reduction)


def gaussian_icon_loss(mean_p: Tensor, mean_q: Tensor, sigma: float = math.sqrt(0.5), *, reduction: str = "mean") -> Tensor:
    """eq. 3.1.1 over a continuous space X = R^d for isotropic Gaussians of one width sigma:

        p(.|i) = N(mean_p_i, sigma^2 I),  q(.|i) = N(mean_q_i, sigma^2 I),
        KL(p(.|i) || q(.|i)) = ||mean_p_i - mean_q_i||^2 / (2 sigma^2)

    (the integral of eq. 3.1.1 in closed form; a fine grid of columns and :func:`icon_loss` give the
    same number, as the tests check). With the targets as mean_p and the predictions as mean_q this
    is least-squares regression, the I-Con view of mean squared error.
    """
    if sigma <= 0 or not math.isfinite(sigma):
        raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
    rows = ((mean_p.to(mean_q.dtype) - mean_q) ** 2).flatten(1).sum(1) / (2.0 * sigma**2)
    return _reduce(rows, reduction)
