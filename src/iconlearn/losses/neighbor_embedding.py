"""Neighbour embedding as I-Con (Theorems 1-2): a perplexity-calibrated Gaussian p on the inputs,
a Gaussian (SNE) or Student-t (t-SNE) q on the embeddings. The estimators that optimise an
embedding table are :class:`iconlearn.TSNE` and :class:`iconlearn.SNE`; these losses serve
mini-batch training of a network (parametric t-SNE)."""
from __future__ import annotations

import torch
from torch import Tensor

from .. import _validation as V
from ..core import SparseRows, icon_loss
from ..distances import sq_distances
from ..learned import GaussianKernel, Kernel, StudentTKernel
from ..supervisory import gaussian_targets, symmetrize
from ._batch import BatchLoss, check_target, own_columns

__all__ = ["SNELoss", "TSNELoss"]


class SNELoss(BatchLoss):
    """Stochastic Neighbour Embedding as I-Con (Theorem 1).

    p(j|i) = exp(-||x_i - x_j||^2 / 2 sigma_i^2) / sum_{k != i} (...), sigma_i calibrated to the
    ``perplexity``; q(j|i) = exp(-||y_i - y_j||^2) / sum_{k != i} (...) on the embeddings.

    ``loss(Y, X)`` computes p from the inputs X (dense, for batches of a few thousand points);
    ``loss(Y, p=P)`` takes a prepared conditional p: dense (N x N) or sparse kNN
    :class:`SparseRows` (e.g. :func:`iconlearn.supervisory.gaussian_targets` on kNN distances).
    ``normalization="conditional"`` is the table's mean_i KL(p_i || q_i); ``"joint"`` is t-SNE's
    KL(P || Q) with P = (p_j|i + p_i|j) / 2N and Q normalised over all pairs.

    Examples:
        >>> loss = SNELoss(perplexity=10)
        >>> loss(net(x), x).backward()   # p from the inputs of the batch, q from the embeddings
    """

    normalizations = ("conditional", "joint")

    def __init__(self, perplexity: float = 30.0, normalization: str = "conditional", gather_distributed: bool = False):
        super().__init__(gather_distributed)
        self.perplexity = V.check_positive(perplexity, "perplexity")
        if normalization not in self.normalizations:
            raise ValueError(f"normalization must be one of {self.normalizations}, got {normalization!r}")
        if normalization == "joint" and gather_distributed:
            raise ValueError("normalization='joint' normalises over all pairs of one process; it cannot gather")
        self.normalization = normalization
        self.kernel = self._make_kernel()

    def _make_kernel(self) -> Kernel:
        return GaussianKernel()  # sigma^2 = 1/2: exp(-||y_i - y_j||^2)

    @torch.no_grad()
    def targets(self, X: Tensor, X_all: Tensor, own: Tensor) -> Tensor:
        """Dense conditional p(j|i) of the local rows of X over the columns of X_all."""
        if not self.perplexity < X_all.shape[0] - 1:
            raise ValueError(f"perplexity ({self.perplexity:g}) must be smaller than the number of other points "
                             f"({X_all.shape[0] - 1}); lower it or use a larger batch")
        d = sq_distances(X.double(), X_all.double())
        return gaussian_targets(d, perplexity=self.perplexity, exclude=own)

    def forward(self, embeddings: Tensor, X: Tensor | None = None, *, p=None) -> Tensor:
        V.check_embeddings(embeddings, "embeddings")
        if (X is None) == (p is None):
            raise ValueError("pass exactly one of X (inputs, p computed from them) or p= (a prepared p(j|i))")
        n = embeddings.shape[0]
        Y_all, offset = self._gather(embeddings)
        N = Y_all.shape[0]
        if N < 2:
            raise ValueError(f"need at least 2 points, got {N}")
        own = own_columns(embeddings, offset)
        if p is None:
            V.check_embeddings(X, "X")
            V.check_same_length(X, embeddings, "X", "embeddings")
            X_all, _ = self._gather(X.detach())
            p = self.targets(X, X_all, own)
        else:
            check_target(p, n, N)
        if self.normalization == "conditional":
            return icon_loss(p, self.kernel(embeddings, Y_all, exclude=own))
        if isinstance(p, SparseRows):
            idx, val = symmetrize(p, N)
            P = SparseRows(val[None, :], (idx[0] * N + idx[1])[None, :])
        else:
            P = ((p + p.T) / (2.0 * N)).reshape(1, -1)
        return icon_loss(P, self.kernel.joint(embeddings))


class TSNELoss(SNELoss):
    """t-SNE as I-Con (Theorem 2): SNE's p, and a Student-t q (Cauchy at ``dof=1``),
    q(j|i) ∝ (1 + ||y_i - y_j||^2 / dof)^(-(dof + 1) / 2).

    The default ``normalization="joint"`` is van der Maaten & Hinton's KL(P || Q) with symmetric P;
    ``"conditional"`` is the per-row form written in the I-Con table.

    Examples:
        >>> loss = TSNELoss(perplexity=30)
        >>> loss(net(x), x)              # parametric t-SNE on a batch
        >>> loss(Y, p=P)                 # P from kNN + calibration (iconlearn.supervisory)
    """

    def __init__(self, perplexity: float = 30.0, dof: float = 1.0, normalization: str = "joint",
                 gather_distributed: bool = False):
        self.dof = V.check_positive(dof, "dof")
        super().__init__(perplexity, normalization, gather_distributed)

    def _make_kernel(self) -> Kernel:
        return StudentTKernel(self.dof)

