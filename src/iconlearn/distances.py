"""Pairwise squared Euclidean distances: the one formula that kernels (learned q), Gaussian
targets (supervisory p), neighbour search and the embedding metrics share; and the other metrics a
kernel can be built on (Minkowski / Manhattan, the Poincare ball's hyperbolic distance)."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["MIN_SQ_DISTANCE", "METRICS", "chunk_rows", "sq_distances", "distances", "minkowski_distances",
           "poincare_distances", "to_poincare_ball"]

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


METRICS = ("euclidean", "manhattan", "minkowski", "poincare")


def minkowski_distances(x: Tensor, y: Tensor | None = None, p: float = 2.0, *, floor: float = MIN_SQ_DISTANCE) -> Tensor:
    """(sum_k |x_ik - y_jk|^p)^(1/p) for every pair (B x M); p = 1 is the Manhattan distance. Clamped
    below at sqrt(floor) so that powers d^gamma (gamma < 1) keep finite gradients at x = y."""
    if not p >= 1:
        raise ValueError(f"the Minkowski exponent p must be >= 1 (a metric), got {p!r}")
    y = x if y is None else y
    if p == 2:
        return sq_distances(x, y, floor=floor).sqrt()
    return torch.cdist(x, y, p=p).clamp_min(floor**0.5)


def to_poincare_ball(v: Tensor) -> Tensor:
    """The exponential map at 0 of the Poincare ball (curvature -1): v -> tanh(||v||) v / ||v||,
    a smooth map of R^d onto the open unit ball (the origin stays put)."""
    n = v.norm(dim=1, keepdim=True).clamp_min(1e-15)
    return torch.tanh(n) * v / n


def poincare_distances(x: Tensor, y: Tensor | None = None, *, floor: float = MIN_SQ_DISTANCE) -> Tensor:
    """Hyperbolic distance on the Poincare ball, arcosh(1 + 2 ||x - y||^2 / ((1 - ||x||^2)(1 - ||y||^2)));
    x and y must lie inside the unit ball (see :func:`to_poincare_ball`)."""
    y = x if y is None else y
    nx, ny = (x * x).sum(1), (y * y).sum(1)
    if bool((nx >= 1).any()) or bool((ny >= 1).any()):
        raise ValueError("points for the Poincare distance must lie inside the unit ball (norm < 1); "
                         "map them with iconlearn.distances.to_poincare_ball first")
    arg = 2.0 * sq_distances(x, y, floor=floor) / ((1.0 - nx)[:, None] * (1.0 - ny)[None, :])
    return torch.acosh(1.0 + arg)


def distances(x: Tensor, y: Tensor | None = None, metric: str = "euclidean", p: float = 2.0) -> Tensor:
    """Pairwise distances (not squared) under ``metric``: ``"euclidean"``, ``"manhattan"``,
    ``"minkowski"`` (exponent ``p``) or ``"poincare"`` (points inside the unit ball)."""
    if metric == "euclidean":
        return minkowski_distances(x, y, 2.0)
    if metric == "manhattan":
        return minkowski_distances(x, y, 1.0)
    if metric == "minkowski":
        return minkowski_distances(x, y, p)
    if metric == "poincare":
        return poincare_distances(x, y)
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
