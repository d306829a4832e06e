"""The supervisory side of SNE / t-SNE (I-Con Theorems 1-2): perplexity-calibrated Gaussians on
the k = 3 x perplexity nearest neighbours, stored sparse.

* conditional p(j|i): :func:`iconlearn.supervisory.gaussian.calibrate` on kNN distances (SNE);
* joint p_ij = (p(j|i) + p(i|j)) / 2N (t-SNE), via :func:`iconlearn.supervisory.gaussian.symmetrize`;
* affinities of new points to a frozen reference set (``transform``).

Everything is a :class:`SparseAffinities` (row-sorted COO = CSR), never an N x N matrix.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..core import SparseRows
from ..neighbors import knn
from ..supervisory.gaussian import calibrate, symmetrize
from . import _numba


@dataclass
class SparseAffinities:
    """p as (rows, cols, values) sorted by row, ``n_rows`` x ``n_cols``; ``crow`` is the CSR row pointer."""

    rows: Tensor
    cols: Tensor
    values: Tensor
    n_rows: int
    n_cols: int

    @property
    def crow(self) -> Tensor:
        counts = torch.bincount(self.rows, minlength=self.n_rows)
        return torch.cat([counts.new_zeros(1), counts.cumsum(0)])

    def to(self, device=None, dtype=None) -> "SparseAffinities":
        return SparseAffinities(self.rows.to(device), self.cols.to(device), self.values.to(device, dtype),
                                self.n_rows, self.n_cols)

    def to_dense(self) -> Tensor:
        out = torch.zeros(self.n_rows, self.n_cols, dtype=self.values.dtype, device=self.values.device)
        out.index_put_((self.rows, self.cols), self.values, accumulate=True)
        return out

    @classmethod
    def from_rows(cls, p: SparseRows, n_cols: int) -> "SparseAffinities":
        n, k = p.values.shape
        rows = torch.arange(n, device=p.values.device).repeat_interleave(k)
        return cls(rows, p.indices.reshape(-1).long(), p.values.reshape(-1), n, n_cols)


def n_neighbors_for(perplexity: float, n: int) -> int:
    """openTSNE's k = min(n - 1, floor(3 x perplexity))."""
    return int(min(n - 1, max(1, int(3 * perplexity))))


def effective_perplexity(perplexity, k: int) -> float:
    """The perplexity used with ``k`` neighbours: as given when k neighbours can reach it, else
    lowered to k / 3 with a warning (openTSNE's rule for inputs smaller than 3 x perplexity)."""
    try:
        value = float(perplexity)
    except (TypeError, ValueError):
        raise ValueError(f"perplexity must be a positive number, got {perplexity!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"perplexity must be positive, got {perplexity!r}; typical values are 5-50")
    if value >= k:
        lowered = k / 3.0
        warnings.warn(f"perplexity {value:g} is too large for {k} neighbours (k = min(n - 1, 3 x perplexity)); "
                      f"using perplexity {lowered:.3g} instead", UserWarning, stacklevel=3)
        return lowered
    return value


def nearest_neighbors(X, k: int, metric: str = "euclidean", device=None) -> tuple[Tensor, Tensor]:
    """Squared distances and indices (N x k) of the k nearest other points (faiss, chunked torch or
    chunked sparse products; for ``"precomputed"`` X is the N x N distance matrix). Cosine
    distances 1 - cos are returned unsquared, as scikit-learn uses them."""
    if metric == "precomputed":
        d, i = precomputed_neighbors(X, k, exclude_self=True)
        return torch.as_tensor(d, dtype=torch.float64) ** 2, torch.as_tensor(i, dtype=torch.long)
    m = "cosine" if metric == "cosine" else "sqeuclidean"
    backend = "torch" if (device is not None and torch.device(device).type != "cpu") else "auto"
    d, i = knn(X, k, metric=m, backend=backend, device=device)
    if not np.isfinite(d).all() or (i < 0).any():  # e.g. float32 squared distances that overflowed
        raise ValueError("the nearest-neighbour search returned non-finite distances; rescale X "
                         "(its squared distances must fit in float32)")
    d = torch.as_tensor(d, dtype=torch.float64)
    return d.clamp_min(0), torch.as_tensor(i, dtype=torch.long)


def precomputed_neighbors(D: np.ndarray, k: int, exclude_self: bool) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest entries of every row of a distance matrix (the diagonal left out when the
    rows and columns are the same points), nearest first."""
    D = np.array(D, dtype=np.float64)
    if exclude_self:
        np.fill_diagonal(D, np.inf)
    idx = np.argpartition(D, k - 1, axis=1)[:, :k]
    dist = np.take_along_axis(D, idx, 1)
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1)


def calibrated(sq_dist: Tensor, perplexity: float, n_threads: int = 1) -> Tensor:
    """p(j|i) over each row's neighbours (rows sum to 1) at the given perplexity (clipped below the
    number of neighbours, which a row cannot reach): compiled row by row on the CPU, else
    :func:`iconlearn.supervisory.gaussian.calibrate`."""
    perp = min(perplexity, sq_dist.shape[1] - 1e-3)
    if sq_dist.device.type != "cpu" or not _numba.HAVE_NUMBA:
        return calibrate(sq_dist, perp)[0]
    from .cpu import Tasks

    sq = np.ascontiguousarray(sq_dist.numpy(), dtype=np.float64)
    out = np.empty_like(sq)
    tasks = Tasks(n_threads)
    try:
        tasks.run([lambda a=a, b=b: _numba.calibrate_rows(sq, math.log(perp), 1e-5, 200, out, a, b)
                   for a, b in tasks.ranges(len(sq))])
    finally:
        tasks.close()
    return torch.from_numpy(out)


def conditional_affinities(sq_dist: Tensor, indices: Tensor, perplexity: float, n_cols: int,
                           n_threads: int = 1) -> SparseAffinities:
    """p(j|i) over the given neighbours (rows sum to 1): SNE's supervisory distribution."""
    return SparseAffinities.from_rows(SparseRows(calibrated(sq_dist, perplexity, n_threads), indices), n_cols)


def joint_affinities(sq_dist: Tensor, indices: Tensor, perplexity: float, n_threads: int = 1) -> SparseAffinities:
    """t-SNE's symmetric p_ij = (p(j|i) + p(i|j)) / 2N, summing to 1 over all pairs (scipy's sparse
    sum on the CPU, :func:`iconlearn.supervisory.gaussian.symmetrize` elsewhere)."""
    n = sq_dist.shape[0]
    P = calibrated(sq_dist, perplexity, n_threads)
    if P.device.type != "cpu":
        idx, vals = symmetrize(SparseRows(P, indices), n)
        return SparseAffinities(idx[0].contiguous(), idx[1].contiguous(), vals, n, n)
    import scipy.sparse as sp

    cond = sp.csr_matrix((P.numpy().ravel(), indices.numpy().ravel(), np.arange(0, n * P.shape[1] + 1, P.shape[1])),
                         shape=(n, n))
    M = ((cond + cond.T) / (2.0 * n)).tocsr()
    M.sort_indices()
    rows = np.repeat(np.arange(n), np.diff(M.indptr))
    return SparseAffinities(torch.from_numpy(rows), torch.from_numpy(M.indices.astype(np.int64)),
                            torch.from_numpy(M.data), n, n)


def from_matrix(P, symmetric: bool) -> SparseAffinities:
    """Precomputed affinities: a dense array / tensor or a scipy sparse matrix (N x N), non-negative.

    For t-SNE (``symmetric``) P is symmetrised as (P + P^T) and normalised to sum 1; for SNE every
    row is normalised to sum 1. The diagonal is dropped.
    """
    import scipy.sparse as sp

    if isinstance(P, Tensor):
        P = P.detach().cpu().numpy()
    M = sp.coo_matrix(P, dtype=np.float64) if not sp.issparse(P) else P.tocoo().astype(np.float64)
    if M.shape[0] != M.shape[1]:
        raise ValueError(f"precomputed affinities must be square (N x N), got shape {M.shape}")
    if M.nnz and (not np.isfinite(M.data).all() or (M.data < 0).any()):
        raise ValueError("precomputed affinities must be finite and non-negative")
    M = M.tocsr()
    M.setdiag(0)
    M.eliminate_zeros()
    if symmetric:
        M = M + M.T
        total = M.sum()
        if total <= 0:
            raise ValueError("precomputed affinities are all zero off the diagonal")
        M = M / total
    else:
        sums = np.asarray(M.sum(1)).ravel()
        if (sums <= 0).any():
            raise ValueError(f"{int((sums <= 0).sum())} rows of the precomputed affinities have no mass off the diagonal")
        M = sp.diags(1.0 / sums) @ M
    M = M.tocoo()
    order = np.lexsort((M.col, M.row))
    return SparseAffinities(torch.as_tensor(M.row[order], dtype=torch.long), torch.as_tensor(M.col[order], dtype=torch.long),
                            torch.as_tensor(M.data[order]), M.shape[0], M.shape[1])


def reference_affinities(X_new, X_ref, perplexity: float, k: int, metric: str = "euclidean") -> SparseAffinities:
    """p(j|i) of new points i over their k nearest reference points j (openTSNE's transform: the
    distances of the kNN index, squared for the Gaussian; cosine distances as they are). For
    ``"precomputed"``, X_new holds the distances from the new points to the reference points."""
    if metric == "precomputed":
        d, i = precomputed_neighbors(X_new, k, exclude_self=False)
    else:
        d, i = knn(X_new, k, y=X_ref, metric=metric)
    d = torch.as_tensor(d, dtype=torch.float64)
    sq = d if metric == "cosine" else d ** 2
    return conditional_affinities(sq, torch.as_tensor(i, dtype=torch.long), perplexity, X_ref.shape[0])
