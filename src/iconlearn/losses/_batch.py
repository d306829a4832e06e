"""What the presets share: the base that gathers candidates across ranks, the two-view batch
layout, and the checks of soft assignments and prepared targets."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .. import _validation as V
from ..core import SparseRows
from ..distributed import gather

__all__ = ["BatchLoss", "check_assignments", "check_target", "own_columns", "zero_loss"]


class BatchLoss(nn.Module):
    """A loss whose rows are this process's anchors and whose columns are candidates.

    With ``gather_distributed`` the candidates are gathered from every rank
    (:func:`iconlearn.distributed.gather`, whose backward sums the ranks' gradients) while the
    anchors stay local, so the mean of the ranks' losses equals the single-process loss on the
    global batch.
    """

    def __init__(self, gather_distributed: bool = False):
        super().__init__()
        self.gather_distributed = gather_distributed

    def _gather(self, x: Tensor) -> tuple[Tensor, int]:
        """(x of all ranks, this rank's offset in it); (x, 0) without gathering."""
        return gather(x) if self.gather_distributed else (x, 0)

    def _two_views(self, z1: Tensor, z2: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Anchors [z1; z2] of this rank, candidates [Z1; Z2] of all ranks, and the anchors' own
        columns (the I-Con batch of InfoNCE: item i's views are rows i and N + i)."""
        V.check_embeddings(z1, "z1")
        V.check_embeddings(z2, "z2")
        V.check_same_shape(z1, z2, "z1", "z2")
        Z1, offset = self._gather(z1)
        Z2, _ = self._gather(z2)
        local = own_columns(z1, offset)
        return torch.cat([z1, z2]), torch.cat([Z1, Z2]), torch.cat([local, local + Z1.shape[0]])


def own_columns(rows: Tensor, offset: int) -> Tensor:
    """The column of each local row among the gathered candidates: offset, offset + 1, ..."""
    return torch.arange(rows.shape[0], device=rows.device) + offset


def zero_loss(x: Tensor) -> Tensor:
    """A zero that keeps the graph (for batches where no row has a positive)."""
    return x.sum() * 0.0


def check_assignments(phi: Tensor, name: str = "probs") -> None:
    """Soft cluster assignments: (N x C), C >= 2, non-negative."""
    V.check_embeddings(phi, name)
    if phi.shape[1] < 2:
        raise ValueError(f"{name} must have at least 2 clusters (columns), got {phi.shape[1]}")
    if bool((phi < 0).any()):
        raise ValueError(f"{name} must be soft assignments (non-negative rows summing to 1), got negative values;"
                         " apply softmax to the logits first")


def check_target(p, rows: int, cols: int, name: str = "p") -> None:
    """A prepared supervisory target over ``cols`` columns for ``rows`` anchors."""
    if isinstance(p, SparseRows):
        if p.values.shape != p.indices.shape or p.values.ndim != 2 or p.values.shape[0] != rows:
            raise ValueError(f"{name} (SparseRows) must have values and indices of shape ({rows}, K), got "
                             f"{tuple(p.values.shape)} and {tuple(p.indices.shape)}")
        if p.indices.numel() and (int(p.indices.min()) < 0 or int(p.indices.max()) >= cols):
            raise ValueError(f"{name} (SparseRows) has column indices outside [0, {cols})")
        values = p.values
    elif isinstance(p, Tensor):
        if p.shape != (rows, cols):
            raise ValueError(f"{name} must have shape ({rows}, {cols}) (anchors x candidates), got {tuple(p.shape)}")
        values = p
    else:
        raise ValueError(f"{name} must be a dense tensor or SparseRows, got {type(p).__name__}")
    if not bool(torch.isfinite(values).all()) or bool((values < 0).any()):
        raise ValueError(f"{name} must hold finite non-negative probabilities")
