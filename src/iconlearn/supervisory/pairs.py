"""Supervisory distributions from known positives (I-Con Table 1: InfoNCE, SupCon, CMC/CLIP).

p(j|i) = 1[j is a positive of i] / #positives(i), over the columns of a batch. Augmentation
views share an item id; SupCon positives share a label; cross-modal positives are the partner in
the other modality. Targets are always :class:`SparseRows` (padded to the largest group), so no
dense B x B target is ever built.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..core import SparseRows


def same_group_targets(groups: Tensor, groups_ref: Tensor | None = None, exclude_self: bool = True,
                       self_columns: Tensor | None = None, dtype: torch.dtype | None = None) -> SparseRows:
    """Uniform p(j|i) over columns j whose group id equals row i's, as padded :class:`SparseRows`.

    ``groups`` (B,) are the ids of the rows; ``groups_ref`` (M,) those of the columns (defaults to
    ``groups``). With ``exclude_self`` the anchor's own column is not a positive: column i by
    default, or ``self_columns[i]`` (e.g. the anchors' positions in a gathered batch). Built by
    sorting the column ids, so no B x M matrix is formed: the cost is O(B K) for K = the largest
    group. Rows with no positive get all-zero values; callers drop them (see :func:`has_positive`).
    """
    ref = groups if groups_ref is None else groups_ref
    device = groups.device
    sorted_ref, order = torch.sort(ref, stable=True)
    uniq, counts = torch.unique_consecutive(sorted_ref, return_counts=True)
    starts = counts.cumsum(0) - counts
    slot = torch.searchsorted(uniq, groups).clamp_max(max(len(uniq) - 1, 0))
    found = uniq[slot] == groups if len(uniq) else torch.zeros_like(groups, dtype=torch.bool)
    count = torch.where(found, counts[slot], torch.zeros_like(slot)) if len(uniq) else torch.zeros_like(groups)
    k = max(int(count.max()) if count.numel() else 0, 1)
    ar = torch.arange(k, device=device)
    valid = ar[None, :] < count[:, None]
    if len(ref):
        pos = (starts[slot][:, None] + ar[None, :]).clamp_max(len(ref) - 1)
        indices = order[pos]
    else:
        indices = torch.zeros(len(groups), k, dtype=torch.long, device=device)
    if exclude_self:
        own = torch.arange(len(groups), device=device) if self_columns is None else self_columns.to(device)
        valid &= indices != own[:, None]
    n_pos = valid.sum(1, keepdim=True).clamp_min(1)
    values = valid.to(dtype or torch.get_default_dtype()) / n_pos
    return SparseRows(values, torch.where(valid, indices, indices[:, :1]))


def augmentation_targets(n_items: int, n_views: int = 2, device=None, dtype: torch.dtype | None = None) -> SparseRows:
    """InfoNCE / SimCLR targets for a batch laid out as [view 1 of all items; view 2; ...].

    Row i = v * n_items + a has as positives the other views w != v of item a, each 1/(V - 1).
    Built directly as (B x (V - 1)) indices.
    """
    if n_views < 2:
        raise ValueError(f"n_views must be >= 2 (an anchor needs another view as positive), got {n_views}")
    b = n_items * n_views
    row = torch.arange(b, device=device)
    item, view = row % n_items, row // n_items
    others = torch.arange(n_views - 1, device=device)[None, :]
    others = others + (others >= view[:, None]).long()  # the views w != v, in order
    indices = others * n_items + item[:, None]
    values = torch.full(indices.shape, 1.0 / (n_views - 1), device=device, dtype=dtype)
    return SparseRows(values, indices)


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
