"""The shared cluster likelihood (I-Con Table 1, appendix C), below both sides: the learned q of
k-means, mutual-information clustering, TEMI and I-Con clustering (:mod:`iconlearn.learned`), and
the cluster-induced supervisory p (:func:`iconlearn.supervisory.cluster_targets`).

Shared cluster likelihood (Definition 2):

    q(j|i) = sum_c phi_ic phi_jc / sum_k phi_kc

and its degree-weighted form (normalized cuts, Theorem 8):

    q(j|i) = sum_c phi_ic phi_jc d_j / sum_k phi_kc d_k

where phi_i is the soft cluster assignment of point i. Both are computed by one matrix product
(B x C) @ (C x M), never a (B x M x C) tensor, in float32 or wider.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .core import candidate_mask, smooth_log_q

_TINY = 1e-30


class _SharedClusterProduct(torch.autograd.Function):
    """Q = phi diag(1 / s) phi^T with s = sum_k phi_k (the shared cluster likelihood of a batch
    against itself). Q is symmetric, so the backward pass needs one (B x B) @ (B x C) product
    instead of autograd's two:

        dL/dphi = (G + G^T) phi / s - 1/2 sum_i phi_i * ((G + G^T) phi)_i / s^2,   G = dL/dQ.
    """

    @staticmethod
    def forward(ctx, a: Tensor) -> Tensor:
        s = a.sum(0).clamp_min(_TINY)
        ctx.save_for_backward(a, s)
        return (a / s) @ a.T

    @staticmethod
    def backward(ctx, g: Tensor) -> Tensor:
        a, s = ctx.saved_tensors
        ms = ((g + g.T) @ a) / s
        return ms - 0.5 * ((a / s) * ms).sum(0)  # no s^2: a cluster of mass 1e-24 would underflow


def cluster_log_q(phi: Tensor, phi_ref: Tensor | None = None, degrees: Tensor | None = None,
                  exclude: Tensor | None = None, exclude_self: bool = False, alpha: float = 0.0) -> Tensor:
    """log q(j|i) of the (degree-weighted) shared cluster likelihood, optionally debiased.

    Args:
        phi: (B x C) soft assignments of the anchors (rows sum to 1).
        phi_ref: (M x C) assignments of the candidates (e.g. an EMA teacher's); defaults to phi.
            The cluster sizes sum_k phi_kc (or volumes sum_k phi_kc d_k) are taken over them.
        degrees: (M,) node degrees d_j for the normalized-cuts form.
        exclude: columns that are not candidates (see :class:`iconlearn.core.Smoothed`); q is
            renormalised over the rest.
        exclude_self: exclude the anchor's own column (only when ``phi_ref`` is None).
        alpha: debiasing of q, (1 - alpha) q + alpha / N_i (I-Con section 3.3, "both sides"); the
            same as :func:`iconlearn.core.smooth_log_q` on the result, but computed in probability
            space, where this q is formed anyway (one pass over B x M instead of four).
    """
    dtype = torch.promote_types(phi.dtype, torch.float32)
    a = phi.to(dtype)
    if (phi_ref is None or phi_ref is phi) and degrees is None:
        q = _SharedClusterProduct.apply(a)
    else:
        b = a if phi_ref is None else phi_ref.to(dtype)
        w = b if degrees is None else b * degrees.to(dtype)[:, None]
        sizes = w.sum(0).clamp_min(_TINY)  # (C,) expected cluster size or volume
        q = (a / sizes) @ w.T
    if exclude is None and exclude_self and phi_ref is None:
        exclude = torch.arange(phi.shape[0], device=phi.device)
    if exclude is not None and exclude.dtype != torch.bool:
        # one excluded column per row (the anchor itself): renormalise by the row sum minus that
        # entry, an O(B) correction instead of a second pass of log-softmax over B x M
        own = exclude.view(-1, 1).long()
        rest = (q.sum(1, keepdim=True) - q.gather(1, own)).clamp_min(_TINY)
        if alpha == 0:
            return (q.clamp_min(_TINY).log() - rest.log()).scatter(1, own, float("-inf"))
        q = q * ((1.0 - alpha) / rest) + alpha / max(q.shape[1] - 1, 1)  # >= alpha / N > 0: no clamp needed
        return q.log().scatter(1, own, float("-inf"))
    log_q = q.clamp_min(_TINY).log()
    mask = candidate_mask(exclude, tuple(log_q.shape), log_q.device)
    if mask is not None:
        log_q = torch.log_softmax(log_q.masked_fill(mask, float("-inf")), dim=1)
    return smooth_log_q(log_q, alpha, exclude) if alpha else log_q


class ClusterLikelihood:
    """q from soft cluster assignments; ``degrees`` turns on the normalized-cuts weighting."""

    def __init__(self, exclude_self: bool = False, alpha: float = 0.0):
        self.exclude_self = exclude_self
        self.alpha = alpha

    def __call__(self, phi: Tensor, phi_ref: Tensor | None = None, degrees: Tensor | None = None,
                 exclude: Tensor | None = None) -> Tensor:
        return cluster_log_q(phi, phi_ref, degrees, exclude, self.exclude_self, self.alpha)


def hard_partition_loss(labels: np.ndarray, W, alpha_p: float, alpha_q: float) -> float:
    """Exact full-data I-Con loss (eq. 1, cross-entropy form: p's constant entropy dropped) of a
    hard partition, in O(nnz(W) + N).

    For a partition with cluster sizes n_c the shared cluster likelihood is q(j|i) = [c_i = c_j] /
    n_c, debiased q' = (1 - alpha_q) q + alpha_q / N; p' = (1 - alpha_p) W + alpha_p / N with W the
    row-stochastic kNN-walk matrix (section 3.3). The uniform part of p' only needs the sizes.
    """
    labels = np.asarray(labels)
    n = len(labels)
    sizes = np.maximum(np.bincount(labels), 1).astype(float)
    W = W.tocoo()
    same = labels[W.row] == labels[W.col]
    q_edges = np.where(same, (1 - alpha_q) / sizes[labels[W.row]], 0.0) + alpha_q / n
    sparse = -(W.data * np.log(q_edges)).sum() / n
    own = sizes[labels]  # n_c columns share i's cluster, the other n - n_c do not
    uniform = -(own * np.log((1 - alpha_q) / own + alpha_q / n) + (n - own) * np.log(alpha_q / n)) / n
    return float((1 - alpha_p) * sparse + alpha_p * uniform.mean())
