"""Clustering losses as I-Con (Theorems 5-8, section 3.3): q is the shared cluster likelihood of
soft assignments phi (:func:`iconlearn.learned.cluster_log_q`), or its degree-weighted form for
normalized cuts; p comes from the data (a Gaussian, a graph, positives and kNN walks)."""
from __future__ import annotations

import torch
from torch import Tensor

from .. import _validation as V
from ..core import SparseRows, icon_loss, reverse_icon_loss, sparse_smoothed_neg_entropy
from ..learned import GaussianKernel, cluster_log_q, compute_dtype, masked_log_softmax
from ..supervisory import debias, has_positive, same_group_targets
from ._batch import BatchLoss, check_assignments, check_target, own_columns, zero_loss
from .fused_clustering import cluster_cross_entropy

__all__ = ["KMeansICon", "NormalizedCutsICon", "IConClusteringLoss", "MIClustering"]


class KMeansICon(BatchLoss):
    """Probabilistic k-means as I-Con: c-SNE (Theorem 6), the reverse direction

        L = mean_i KL( q(.|i) || p(.|i) ),
        p(j|i) = exp(-||x_i - x_j||^2 / 2 sigma^2) / sum_k exp(-||x_i - x_k||^2 / 2 sigma^2),
        q(j|i) = sum_c phi_ic phi_jc / sum_k phi_kc.

    What holds exactly (checked in the tests): sum_i KL(q_i || p_i) = (1 / 2 sigma^2) sum_ij
    ||x_i - x_j||^2 q(j|i) - sum_i H(q_i) + sum_i log Z_i, and sum_ij ||x_i - x_j||^2 q(j|i) =
    2 L_ProbKMeans with the centres at the phi-weighted means; so L_c-SNE = (1 / sigma^2)
    L_ProbKMeans - sum_i H(q_i) + const (the paper's Theorem 6 states 1 / 2 sigma^2: its
    Corollary 2 drops this factor 2). This loss is the mean over rows, i.e. that sum / B.
    ``loss(probs, X)``: probs (B x C) soft assignments, X (B x D) the data. Like the theorem, the
    sums run over all k including i unless ``exclude_self``.
    """

    def __init__(self, sigma: float = 1.0, exclude_self: bool = False, gather_distributed: bool = False):
        super().__init__(gather_distributed)
        self.sigma = V.check_positive(sigma, "sigma")
        self.exclude_self = exclude_self
        self.kernel = GaussianKernel(self.sigma, exclude_self=False)

    def forward(self, probs: Tensor, X: Tensor) -> Tensor:
        check_assignments(probs)
        V.check_embeddings(X, "X")
        V.check_same_length(probs, X, "probs", "X")
        cols, offset = self._gather(probs)
        X_all, _ = self._gather(X.detach())
        own = own_columns(probs, offset) if self.exclude_self else None
        if own is not None and X_all.shape[0] < 2:
            raise ValueError("exclude_self needs at least 2 points")
        with torch.no_grad():
            log_p = self.kernel(X.detach(), X_all, exclude=own)
        return reverse_icon_loss(log_p, cluster_log_q(probs, cols, exclude=own))


class NormalizedCutsICon(BatchLoss):
    """Normalized cuts as I-Con (Theorem 8): q(j|i) = sum_c phi_ic phi_jc d_j / sum_k phi_kc d_k,
    the degree-weighted cluster likelihood, against a graph-based p.

    * ``direction="reverse"`` (default, Table 1): mean_i KL(q_i || p_i) with
      p(j|i) = exp(w_ij / d_j) / sum_k exp(w_ik / d_k). Exactly (checked in the tests):
      sum_i KL(q_i || p_i) = Ncut(phi) - sum_i H(q_i) + const, with the soft normalized cut
      Ncut(phi) = sum_c cut(A_c, not A_c) / vol(A_c) = m - sum_c sum_ij w_ij phi_ic phi_jc / vol_c.
    * ``direction="forward"``: the usual I-Con direction mean_i KL(p_i || q_i) with the random-walk
      p(j|i) = w_ij / d_i (rows of isolated nodes are left out).

    ``loss(probs, weights, degrees=None)``: weights (B x M) non-negative edge weights from the
    batch's rows to the M (gathered) columns; ``degrees`` (M,) defaults to the row sums of the
    (symmetric) weights, gathered across ranks.
    """

    directions = ("reverse", "forward")

    def __init__(self, direction: str = "reverse", gather_distributed: bool = False):
        super().__init__(gather_distributed)
        if direction not in self.directions:
            raise ValueError(f"direction must be one of {self.directions}, got {direction!r}")
        self.direction = direction

    def forward(self, probs: Tensor, weights: Tensor, degrees: Tensor | None = None) -> Tensor:
        check_assignments(probs)
        V.check_embeddings(weights, "weights")
        cols, _ = self._gather(probs)
        if weights.shape != (probs.shape[0], cols.shape[0]):
            raise ValueError(f"weights must have shape ({probs.shape[0]}, {cols.shape[0]}) (rows x columns of the "
                             f"batch), got {tuple(weights.shape)}")
        if bool((weights < 0).any()):
            raise ValueError("weights must be non-negative edge weights")
        w = weights.detach().to(compute_dtype(weights, probs))
        if degrees is None:
            degrees, _ = self._gather(w.sum(1))
        elif degrees.shape != (cols.shape[0],) or not bool(torch.isfinite(degrees).all()) or bool((degrees < 0).any()):
            raise ValueError(f"degrees must be {cols.shape[0]} finite non-negative numbers, got shape "
                             f"{tuple(degrees.shape)}")
        d = degrees.detach().to(w.dtype)
        log_q = cluster_log_q(probs, cols, degrees=d)
        if self.direction == "reverse":
            log_p = masked_log_softmax(torch.where(d > 0, w / d.clamp_min(1e-30), torch.zeros_like(w)))
            return reverse_icon_loss(log_p, log_q)
        row_deg = w.sum(1, keepdim=True)
        keep = row_deg.squeeze(1) > 0
        if not bool(keep.any()):
            return zero_loss(probs)
        return icon_loss(w[keep] / row_deg[keep], log_q[keep])


class IConClusteringLoss(BatchLoss):
    """The I-Con clustering loss (section 3.3, section 4): supervisory p uniform over each
    anchor's positives in the batch (augmentations, kNN neighbours, walk neighbours, given as
    group ids or any target of :mod:`iconlearn.supervisory`), learned q the shared cluster
    likelihood of the heads' soft assignments, both debiased (eq. 3.3.1 on p; the same on q).

    ``loss(probs, groups)``: probs (B x C) soft assignments, groups (B,) ids such that rows sharing
    an id are positives; or ``loss(probs, target=p)`` with a prepared target over the batch's
    columns (dense or :class:`SparseRows`, e.g. from
    :func:`iconlearn.supervisory.restrict_to_batch`). ``probs_ref`` (e.g. an EMA teacher's
    assignments) can stand in for the columns' assignments. Rows without a positive are left out.
    Neither p nor q is ever materialised as a dense debiased matrix: debiasing of p is the
    :class:`iconlearn.core.Smoothed` form. The estimator that trains clustering heads with it is
    :class:`iconlearn.IConClustering`.

    Examples:
        >>> loss = IConClusteringLoss(alpha_p=0.6, alpha_q=0.3)
        >>> loss(head(x).softmax(1), groups)          # rows sharing a group id are positives
        >>> loss(probs, target=restrict_to_batch(W, anchor_ids, batch_ids))   # kNN-walk p
    """

    def __init__(self, alpha_p: float = 0.0, alpha_q: float = 0.0, exclude_self: bool = True,
                 gather_distributed: bool = False):
        super().__init__(gather_distributed)
        self.alpha_p = V.check_alpha(alpha_p, "alpha_p")
        self.alpha_q = V.check_alpha(alpha_q, "alpha_q")
        self.exclude_self = exclude_self

    def forward(self, probs: Tensor, groups: Tensor | None = None, target=None, probs_ref: Tensor | None = None) -> Tensor:
        check_assignments(probs)
        if (groups is None) == (target is None):
            raise ValueError("pass exactly one of groups (positive ids per row) or target (a prepared p)")
        if probs_ref is not None:
            check_assignments(probs_ref, "probs_ref")
            if probs_ref.shape[1] != probs.shape[1] or probs_ref.shape[0] < probs.shape[0]:  # anchors = first rows
                raise ValueError(f"probs_ref must have probs' {probs.shape[1]} clusters and at least its {probs.shape[0]}"
                                 f" rows (the anchors first, then other columns), got shape {tuple(probs_ref.shape)}")
        cols, offset = self._gather(probs if probs_ref is None else probs_ref)
        own = own_columns(probs, offset) if self.exclude_self else None
        if target is None:
            V.check_labels(groups, probs.shape[0], "groups")
            b, m = probs.shape[0], (probs if probs_ref is None else probs_ref).shape[0]
            all_groups, g_offset = self._gather(groups)
            g_own = own_columns(groups, g_offset)
            target = same_group_targets(groups, all_groups, self.exclude_self, g_own, dtype=compute_dtype(probs))
            if m != b:  # group column r * b + k is column r * m + k of the (gathered) probs_ref
                target = SparseRows(target.values, target.indices // b * m + target.indices % b)
        else:
            check_target(target, probs.shape[0], cols.shape[0], "target")
        keep = has_positive(target)
        if isinstance(target, SparseRows) and own is not None:  # the fused path (same values, tested)
            rows = self._fused_rows(probs[None], cols[None], target, own)[0]
        else:
            log_q = cluster_log_q(probs, cols, exclude=own, alpha=self.alpha_q)
            rows = icon_loss(debias(target, self.alpha_p, own), log_q, reduction="none")
        return rows[keep].mean() if bool(keep.any()) else zero_loss(probs)

    def _fused_rows(self, probs: Tensor, cols: Tensor, target: SparseRows, own: Tensor) -> Tensor:
        """KL rows (H x B) of H heads at once: :func:`iconlearn.losses.fused_clustering.cluster_cross_entropy`
        plus the entropy term of the debiased p."""
        cross_entropy = cluster_cross_entropy(probs, cols, target.indices, target.values, own, self.alpha_p, self.alpha_q)
        n = torch.full((probs.shape[1],), float(max(cols.shape[1] - 1, 1)), dtype=cross_entropy.dtype, device=probs.device)
        return cross_entropy + sparse_smoothed_neg_entropy(target.values.to(cross_entropy.dtype), self.alpha_p, n)

    def per_head(self, probs: Tensor, target: SparseRows, probs_ref: Tensor) -> Tensor:
        """(H,) losses of H heads in one fused pass: ``probs`` (H x B x C) the anchors' assignments,
        ``probs_ref`` (H x M x C) the columns' (anchors first), ``target`` a SparseRows p over the M
        columns. Each equals ``self(probs[h], target=target, probs_ref=probs_ref[h])`` (not distributed)."""
        own = torch.arange(probs.shape[1], device=probs.device)
        keep = has_positive(target)
        rows = self._fused_rows(probs, probs_ref, target, own)
        return rows[:, keep].mean(1) if bool(keep.any()) else probs.sum((1, 2)) * 0.0


class MIClustering(IConClusteringLoss):
    """Mutual-information clustering as I-Con (Theorem 7): p uniform over kNN / augmentation
    positives, q the shared cluster likelihood, no debiasing."""

    def __init__(self, exclude_self: bool = True, gather_distributed: bool = False):
        super().__init__(0.0, 0.0, exclude_self, gather_distributed)
