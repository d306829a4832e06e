"""Supervisory distributions from known positives (I-Con Table 1: InfoNCE, SupCon, CMC/CLIP).

p(j|i) = 1[j is a positive of i] / #positives(i), over the columns of a batch. Augmentation
views share an item id; SupCon positives share a label; cross-modal positives are the partner in
the other modality. When every row has the same number of positives (the usual case: V views of
each item) the result is :class:`SparseRows`, so no dense B x B target is kept.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..core import SparseRows


def same_group_targets(groups: Tensor, groups_ref: Tensor | None = None, exclude_self: bool = True) -> Tensor | SparseRows:
    """Uniform p(j|i) over columns j whose group id equals row i's (the anchor itself excluded).

    ``groups`` (B,) are the ids of the rows; ``groups_ref`` (M,) those of the columns (defaults
    to ``groups``, in which case the diagonal is the anchor itself). Rows with no positive get an
    all-zero row; callers drop them (see :func:`has_positive`).
    """
    ref = groups if groups_ref is None else groups_ref
    pos = groups[:, None] == ref[None, :]
    if exclude_self and groups_ref is None:
        pos.fill_diagonal_(False)
    counts = pos.sum(1)
    if counts.numel() and bool((counts == counts[0]).all()) and int(counts[0]) > 0:
        k = int(counts[0])
        indices = pos.nonzero()[:, 1].view(-1, k)
        values = torch.full(indices.shape, 1.0 / k, device=groups.device)
        return SparseRows(values, indices)
    return pos.float() / counts.clamp_min(1)[:, None]


def augmentation_targets(n_items: int, n_views: int = 2, device=None) -> SparseRows:
    """InfoNCE / SimCLR targets for a batch laid out as [view 1 of all items; view 2; ...].

    Row i = v * n_items + a has as positives the other views of item a.
    """
    ids = torch.arange(n_items, device=device).repeat(n_views)
    return same_group_targets(ids)


def cross_modal_targets(n: int, device=None) -> SparseRows:
    """CLIP / CMC targets (Theorem 4): anchor i of one modality has its partner i in the other.

    Rows are anchors of one modality and columns the candidates of the other (only the other
    modality is a candidate), so p is the identity over the N x N cross-modal block.
    """
    idx = torch.arange(n, device=device)[:, None]
    return SparseRows(torch.ones(n, 1, device=device), idx)


def has_positive(p: Tensor | SparseRows) -> Tensor:
    """(B,) bool: rows with at least one positive."""
    values = p.values if isinstance(p, SparseRows) else p
    return values.sum(1) > 0
