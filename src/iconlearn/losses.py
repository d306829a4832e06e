"""Named losses, each a choice of supervisory p and learned q for :func:`iconlearn.core.icon_loss`
(I-Con Table 1). No preset writes its own softmax or KL: they build p and log q and call the core.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from . import _validation as V
from .core import SparseRows, icon_loss
from .distributed import gather
from .learned import CosineKernel, DotKernel, cluster_log_q, smooth_log_q
from .supervisory import augmentation_targets, cross_modal_targets, debias, has_positive, same_group_targets

__all__ = ["InfoNCE", "SupCon", "CLIPLoss", "CrossEntropyICon", "MIClustering", "IConClusteringLoss", "IConClustering"]


def _views_batch(z1: Tensor, z2: Tensor, gather_distributed: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Anchors [z1; z2] of this rank, candidates [Z1; Z2] of all ranks, and the anchors' own columns."""
    V.check_embeddings(z1, "z1")
    V.check_embeddings(z2, "z2")
    V.check_same_shape(z1, z2, "z1", "z2")
    n = z1.shape[0]
    if gather_distributed:
        Z1, offset = gather(z1)
        Z2, _ = gather(z2)
    else:
        Z1, Z2, offset = z1, z2, 0
    N = Z1.shape[0]
    local = torch.arange(n, device=z1.device) + offset
    own_columns = torch.cat([local, local + N])
    return torch.cat([z1, z2]), torch.cat([Z1, Z2]), own_columns


class InfoNCE(nn.Module):
    """SimCLR's NT-Xent / InfoNCE as I-Con (Theorem 3).

    p(j|i): uniform over the other view of the same item; q(j|i) ∝ exp(cos(z_i, z_j) / tau) over
    all 2N views but the anchor itself. Mean over the 2N anchors. ``loss(z1, z2)``.
    """

    def __init__(self, temperature: float = 0.5, gather_distributed: bool = False):
        super().__init__()
        self.temperature = V.check_positive(temperature, "temperature")
        self.gather_distributed = gather_distributed
        self.kernel = CosineKernel(self.temperature)

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        anchors, candidates, own = _views_batch(z1, z2, self.gather_distributed)
        N = candidates.shape[0] // 2
        p = augmentation_targets(N, 2, device=z1.device)
        p = SparseRows(p.values[own], p.indices[own])
        log_q = self.kernel(anchors, candidates, exclude=own)
        return icon_loss(p, log_q)


class SupCon(nn.Module):
    """Supervised contrastive loss, L_out form (Khosla et al. 2020; I-Con Theorem 3 with labels).

    p(j|i): uniform over the other samples with the same label; q(j|i) ∝ exp(cos / tau) over all
    but the anchor. The value is the cross-entropy H(p, q) = the SupCon formula; anchors with no
    positive in the batch are left out of the mean. ``loss(z, labels)``.
    """

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = False):
        super().__init__()
        self.temperature = V.check_positive(temperature, "temperature")
        self.gather_distributed = gather_distributed
        self.kernel = CosineKernel(self.temperature)

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        V.check_embeddings(z, "z")
        V.check_labels(labels, z.shape[0])
        if self.gather_distributed:
            Z, offset = gather(z)
            L, _ = gather(labels)
        else:
            Z, L, offset = z, labels, 0
        own = torch.arange(z.shape[0], device=z.device) + offset
        pos = labels[:, None] == L[None, :]
        pos[torch.arange(z.shape[0]), own] = False
        p = pos.to(z.dtype) / pos.sum(1, keepdim=True).clamp_min(1)
        keep = has_positive(p)
        if not bool(keep.any()):
            return z.sum() * 0.0
        log_q = self.kernel(z[keep], Z, exclude=own[keep])
        return icon_loss(p[keep], log_q, cross_entropy=True)


class CLIPLoss(nn.Module):
    """Symmetric CLIP / CMC loss (I-Con Theorem 4).

    2N points in two modalities; p(j|i) is the partner in the other modality, and q(j|i) ∝
    exp(cos / tau) over the other modality only. The mean over all 2N anchors is the usual
    (CE(a -> b) + CE(b -> a)) / 2. ``loss(a, b)``.
    """

    def __init__(self, temperature: float = 0.07, gather_distributed: bool = False):
        super().__init__()
        self.temperature = V.check_positive(temperature, "temperature")
        self.gather_distributed = gather_distributed
        self.kernel = CosineKernel(self.temperature, exclude_self=False)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        V.check_embeddings(a, "a")
        V.check_embeddings(b, "b")
        V.check_same_length(a, b, "a", "b")
        if self.gather_distributed:
            A, offset = gather(a)
            B, _ = gather(b)
        else:
            A, B, offset = a, b, 0
        p = cross_modal_targets(A.shape[0], device=a.device)
        rows = slice(offset, offset + a.shape[0])
        p = SparseRows(p.values[rows].repeat(2, 1), p.indices[rows].repeat(2, 1))
        log_q = torch.cat([self.kernel(a, B), self.kernel(b, A)])
        return icon_loss(p, log_q)


class CrossEntropyICon(nn.Module):
    """Cross-entropy classification as I-Con (Corollary 1): points contrast against class
    prototypes phi_c. p(c|i) = 1[y_i = c]; q(c|i) ∝ exp(f(x_i) . phi_c). ``loss(features, prototypes,
    labels)``; with ``prototypes=None`` the features are taken to be logits already.
    """

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.kernel = DotKernel(V.check_positive(temperature, "temperature"))

    def forward(self, features: Tensor, prototypes: Tensor | None, labels: Tensor) -> Tensor:
        V.check_embeddings(features, "features")
        V.check_labels(labels, features.shape[0])
        if prototypes is None:
            log_q = torch.log_softmax(features / self.kernel.temperature, dim=1)
        else:
            V.check_embeddings(prototypes, "prototypes")
            if prototypes.shape[1] != features.shape[1]:
                raise ValueError(f"prototypes have dimension {prototypes.shape[1]} but features {features.shape[1]}")
            log_q = self.kernel(features, prototypes)
        n_classes = log_q.shape[1]
        if labels.numel() and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(f"labels must lie in [0, {n_classes}), got values in [{labels.min()}, {labels.max()}]")
        p = SparseRows(torch.ones(len(labels), 1, dtype=log_q.dtype, device=log_q.device), labels.view(-1, 1).long())
        return icon_loss(p, log_q)


def _check_assignments(phi: Tensor, name: str = "probs") -> None:
    V.check_embeddings(phi, name)
    if phi.shape[1] < 2:
        raise ValueError(f"{name} must have at least 2 clusters (columns), got {phi.shape[1]}")


class IConClusteringLoss(nn.Module):
    """The I-Con clustering loss (section 3.3, section 4): supervisory p uniform over each
    anchor's positives in the batch (augmentations, kNN neighbours, walk neighbours, given as
    group ids or any target of :mod:`iconlearn.supervisory`), learned q the shared cluster
    likelihood of the heads' soft assignments, both debiased (eq. 3.3.1 on p; the same on q).

    ``loss(probs, groups)``: probs (B x C) soft assignments, groups (B,) ids such that rows sharing
    an id are positives; or ``loss(probs, target=p)`` with a prepared target over the batch.
    ``probs_ref`` (e.g. an EMA teacher's assignments) can stand in for the columns' assignments.
    """

    def __init__(self, alpha_p: float = 0.0, alpha_q: float = 0.0, exclude_self: bool = True,
                 gather_distributed: bool = False):
        super().__init__()
        self.alpha_p = V.check_alpha(alpha_p, "alpha_p")
        self.alpha_q = V.check_alpha(alpha_q, "alpha_q")
        self.exclude_self = exclude_self
        self.gather_distributed = gather_distributed

    def forward(self, probs: Tensor, groups: Tensor | None = None, target=None, probs_ref: Tensor | None = None) -> Tensor:
        _check_assignments(probs)
        if (groups is None) == (target is None):
            raise ValueError("pass exactly one of groups (positive ids per row) or target (a prepared p)")
        cols = probs if probs_ref is None else probs_ref
        offset = 0
        if self.gather_distributed:
            cols, offset = gather(cols)
        own = torch.arange(probs.shape[0], device=probs.device) + offset if self.exclude_self else None
        if target is None:
            V.check_labels(groups, probs.shape[0], "groups")
            all_groups = gather(groups)[0] if self.gather_distributed else groups
            if self.exclude_self and not self.gather_distributed and probs_ref is None:
                target = same_group_targets(groups)
            else:
                pos = groups[:, None] == all_groups[None, :]
                if own is not None:
                    pos[torch.arange(len(groups)), own] = False
                target = pos.to(probs.dtype) / pos.sum(1, keepdim=True).clamp_min(1)
        log_q = cluster_log_q(probs, cols, exclude=own)
        log_q = smooth_log_q(log_q, self.alpha_q, own)
        keep = has_positive(target)
        p = debias(target, self.alpha_p, own)
        rows = icon_loss(p, log_q, reduction="none")
        return rows[keep].mean() if bool(keep.any()) else rows.sum() * 0.0


IConClustering = IConClusteringLoss  # the name used in the I-Con paper's Table 2


class MIClustering(IConClusteringLoss):
    """Mutual-information clustering as I-Con (Theorem 7): p uniform over kNN / augmentation
    positives, q the shared cluster likelihood, no debiasing."""

    def __init__(self, exclude_self: bool = True, gather_distributed: bool = False):
        super().__init__(0.0, 0.0, exclude_self, gather_distributed)
