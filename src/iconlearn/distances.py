"""Pairwise squared Euclidean distances: the one formula that kernels (learned q), Gaussian
targets (supervisory p), neighbour search and the embedding metrics share."""
from __future__ import annotations

from torch import Tensor

__all__ = ["MIN_SQ_DISTANCE", "chunk_rows", "sq_distances"]

MIN_SQ_DISTANCE = 1e-12  # the default floor: ||x - y||^gamma keeps finite gradients at x = y


def sq_distances(x: Tensor, y: Tensor | None = None, *, floor: float = MIN_SQ_DISTANCE) -> Tensor:
    """||x_i - y_j||^2 for every row of x and of y (B x M; y defaults to x), as ||x||^2 + ||y||^2 -
    2 x.y (one matrix product), clamped below at ``floor``: the default tiny positive value for
    kernels, whose gradients at distance 0 must stay finite; ``floor=0`` for plain distances."""
    y = x if y is None else y
    d2 = (x * x).sum(1, keepdim=True) + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return d2.clamp_min(floor)


def chunk_rows(n: int, budget: int = 2**26) -> int:
    """Query rows per chunk, so that one chunk's distances to n points hold about ``budget``
    numbers (at most 4,096 rows): how the neighbour search and the metrics stay O(chunk x n)."""
    return max(1, min(n, budget // max(n, 1), 4096))
