"""Two contrastive losses the papers build on that are not a divergence between a p and a q, so
they stand beside the I-Con presets (like :class:`iconlearn.losses.GeneralizedNTXent`):

* :class:`SpectralContrastiveLoss`: HaoChen et al.'s spectral contrastive loss, the loss whose
  minimiser is spectral clustering on the augmentation graph and on which the Kernel-InfoNCE paper
  builds its InfoNCE analysis;
* :class:`DebiasedContrastiveLoss`: Chuang et al.'s debiased contrastive loss (tau+), the original
  of the debiasing that I-Con (section 3.3, eq. 3.3.1) turns into a mixture with the uniform p.

Both take the batch layout of :class:`iconlearn.losses.InfoNCE`: ``loss(z1, z2)``, two views of the
same N items.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import _validation as V
from ..learned import CosineKernel, compute_dtype
from ._batch import BatchLoss, own_columns

__all__ = ["SpectralContrastiveLoss", "DebiasedContrastiveLoss"]


class SpectralContrastiveLoss(BatchLoss):
    """HaoChen, Wei, Gaidon and Ma (2021), "Provable guarantees for self-supervised deep learning with
    spectral contrastive loss":

        L(f) = -2 E_{x, x+}[f(x)^T f(x+)] + E_{x, x'}[(f(x)^T f(x'))^2],

    x, x+ two views of one item and x, x' views of independent items. On a batch of N pairs the first
    expectation is the mean over the N positive pairs and the second the mean over the N (N - 1)
    pairs (z1_i, z2_j), j != i. As in the authors' code, embeddings longer than sqrt(mu) are scaled
    back to norm sqrt(mu) (the ball constraint of the paper's mu) and the loss is divided by mu.
    Its population minimiser is the top eigenvectors of the normalised augmentation graph (the
    paper's Theorem 3.1), which the Kernel-InfoNCE paper extends to InfoNCE itself.

    Examples:
        >>> SpectralContrastiveLoss(mu=1.0)(proj(f(aug(x))), proj(f(aug(x))))
    """

    def __init__(self, mu: float = 1.0, gather_distributed: bool = False):
        super().__init__(gather_distributed)
        self.mu = V.check_positive(mu, "mu")

    def _into_ball(self, z: Tensor) -> Tensor:
        r = math.sqrt(self.mu)
        return torch.where(z.norm(dim=1, keepdim=True) < r, z, F.normalize(z, dim=1) * r)

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        V.check_embeddings(z1, "z1")
        V.check_embeddings(z2, "z2")
        V.check_same_shape(z1, z2, "z1", "z2")
        dtype = compute_dtype(z1, z2)
        z1, z2 = self._into_ball(z1.to(dtype)), self._into_ball(z2.to(dtype))
        Z2, offset = self._gather(z2)
        n = Z2.shape[0]
        if n < 2:
            raise ValueError("the spectral contrastive loss needs at least 2 items (negative pairs i != j)")
        attract = -2.0 * (z1 * z2).sum(1).mean()
        sq = (z1 @ Z2.T) ** 2
        own = own_columns(z1, offset)
        repel = (sq.sum(1) - sq.gather(1, own[:, None]).squeeze(1)).mean() / (n - 1)
        return (attract + repel) / self.mu


class DebiasedContrastiveLoss(BatchLoss):
    """Chuang, Robinson, Lin, Torralba and Jegelka (2020), "Debiased contrastive learning": NT-Xent with
    the negatives' term corrected for the chance tau+ that a random negative shares the anchor's class.

    For anchor i of the 2N views, s_ij = cos(z_i, z_j) / t, the positive s_i+ and the M = 2N - 2 others:

        g_i = max( (1 / (1 - tau+)) ((1 / M) sum_{j negative} e^{s_ij} - tau+ e^{s_i+}), e^{-1/t} ),
        L = mean_i -log( e^{s_i+} / (e^{s_i+} + M g_i) )

    (the clamp at e^{-1/t}, the smallest value of the cosine kernel, is the paper's). tau+ = 0 is
    NT-Xent, i.e. :class:`iconlearn.losses.InfoNCE`. Unlike I-Con's debiasing (eq. 3.3.1, a mixture
    of p with the uniform distribution), this changes the estimate of the partition function, so it
    is not a divergence between a p and a q.

    Examples:
        >>> DebiasedContrastiveLoss(temperature=0.5, tau_plus=0.1)(z1, z2)
    """

    def __init__(self, temperature: float = 0.5, tau_plus: float = 0.1, gather_distributed: bool = False):
        super().__init__(gather_distributed)
        self.temperature = V.check_positive(temperature, "temperature")
        if not 0.0 <= tau_plus < 1.0:
            raise ValueError(f"tau_plus (the class prior of a false negative) must lie in [0, 1), got {tau_plus!r}")
        self.tau_plus = float(tau_plus)
        self.kernel = CosineKernel(self.temperature)

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        anchors, candidates, own = self._two_views(z1, z2)
        dtype = compute_dtype(anchors, candidates)
        s = self.kernel.log_affinity(anchors.to(dtype), candidates.to(dtype))
        n_items = candidates.shape[0] // 2
        partner = (own + n_items) % (2 * n_items)
        m = candidates.shape[0] - 2  # negatives per anchor
        if m < 1:
            raise ValueError("the debiased contrastive loss needs at least 2 items (one negative per anchor)")
        s = s.scatter(1, own[:, None], float("-inf"))  # the anchor itself is no candidate
        top = s.max(1, keepdim=True).values  # work with e^{s - top}: no overflow at small t
        e = (s - top).exp()
        log_pos = s.gather(1, partner[:, None]).squeeze(1) - top.squeeze(1)  # exact even where e^{log_pos} underflows
        pos = log_pos.exp()
        neg = e.sum(1) - pos
        floor = m * torch.exp(-1.0 / self.temperature - top.squeeze(1))
        ng = torch.maximum((neg - self.tau_plus * m * pos) / (1.0 - self.tau_plus), floor)
        return ((pos + ng).log() - log_pos).mean()
